import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Write a file so that a reader (or a power cut) sees either the old content or the new,
 * never a mix: temporary file in the same directory, fsync, rename, fsync of the directory.
 * `flush: false` keeps the atomic replacement but skips both fsyncs: a crash of the process still
 * leaves the old or the new content, a power cut may lose the newest (the simulated locks' fast flash).
 */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
  options: { flush?: boolean } = {},
): void {
  const flush = options.flush ?? true;
  renameSync(stageFile(path, data, mode, { flush }), path);
  if (flush) fsyncDir(dirname(path));
}

/**
 * The first half of writeFileAtomic: the new content in a temporary file beside `path` (fsync'd
 * unless `flush: false`), whose name is returned for the caller to rename — several files can be
 * staged and then renamed in an order of the caller's choosing. On failure nothing is left behind.
 */
export function stageFile(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
  options: { flush?: boolean } = {},
): string {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    if (options.flush ?? true) fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    // The write's error is the one worth reporting, not a failed clean-up.
    try {
      unlinkSync(tmp);
    } catch {}
    throw e;
  }
  closeSync(fd);
  return tmp;
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
