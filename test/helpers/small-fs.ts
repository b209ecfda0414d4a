import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { CLI, type Proc, watch } from './daemon.js';

/**
 * A small file system for the daemon's data directory, to fill it for real (a tmpfs of a few MB):
 * - `unshare`: the daemon runs in a user and mount namespace of its own (`unshare -Urm`, allowed
 *   without root on most kernels), where it mounts the tmpfs; the test reaches that file system
 *   through `/proc/PID/root`, and the control socket (runDir, outside the tmpfs) as usual;
 * - `mount`: as root, the test mounts the tmpfs itself and unmounts it after.
 * `none` says why neither works.
 */
export type SmallFsSupport = { how: 'unshare' | 'mount' } | { how: 'none'; reason: string };

export function smallFsSupport(): SmallFsSupport {
  // IQHUB_SMALL_FS=mount (or unshare): only that way, to test each where both work.
  const only = process.env.IQHUB_SMALL_FS;
  const probe = mkdtempSync(join(tmpdir(), 'iqhub-fsprobe-'));
  try {
    const u = spawnSync(
      'unshare',
      ['-Urm', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs "$1" && mount --bind "$1" "$1"', 'sh', probe],
      {
        encoding: 'utf8',
      },
    );
    if (u.status === 0 && only !== 'mount') return { how: 'unshare' };
    const why = [`unshare -Urm: ${u.error?.message ?? (u.stderr.trim() || `exit ${u.status}`)}`];
    if (process.getuid?.() === 0 && only !== 'unshare') {
      const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { encoding: 'utf8' });
      if (m.status === 0) {
        spawnSync('umount', [probe]);
        return { how: 'mount' };
      }
      why.push(`mount -t tmpfs: ${m.error?.message ?? (m.stderr.trim() || `exit ${m.status}`)}`);
    } else {
      why.push(only === 'unshare' ? 'mount -t tmpfs: not tried (IQHUB_SMALL_FS=unshare)' : 'mount -t tmpfs: not root');
    }
    return { how: 'none', reason: `no small file system can be mounted here (${why.join('; ')})` };
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const mounts: string[] = [];
// The daemons are killed after the file by the helper that watches them (daemon.ts), then this.
if (process.env.VITEST) afterAll(() => unmountSmallFs());

export interface SmallFsDaemon extends Proc {
  /** The data directory as this process sees it (through /proc/PID/root under `unshare`). */
  view: string;
}

/**
 * `iqhub run --config CONFIG` with `dataDir` on a tmpfs of `sizeBytes`, and `dataDir/sim` (the
 * simulated locks' flash: the locks' own memory, not the hub's disk) bound to `simDir` on the real
 * disk, so filling the hub's disk does not break the locks.
 */
export function startOnSmallFs(o: {
  how: 'unshare' | 'mount';
  dataDir: string;
  simDir: string;
  sizeBytes: number;
  config: string;
}): SmallFsDaemon {
  mkdirSync(o.dataDir, { recursive: true });
  mkdirSync(o.simDir, { recursive: true });
  const size = `size=${o.sizeBytes}`;
  let child: ChildProcess;
  const env = { ...process.env, NOTIFY_SOCKET: '', WATCHDOG_USEC: '' };
  if (o.how === 'unshare') {
    const script =
      'mount -t tmpfs -o "$1" tmpfs "$2" && mkdir -p "$2/sim" && mount --bind "$3" "$2/sim" && exec "$4" "$5" run --config "$6"';
    child = spawn(
      'unshare',
      ['-Urm', 'sh', '-c', script, 'sh', size, o.dataDir, o.simDir, process.execPath, CLI, o.config],
      { env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
  } else {
    const run = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
    };
    run('mount', ['-t', 'tmpfs', '-o', size, 'tmpfs', o.dataDir]);
    mounts.push(o.dataDir);
    mkdirSync(join(o.dataDir, 'sim'));
    run('mount', ['--bind', o.simDir, join(o.dataDir, 'sim')]);
    mounts.push(join(o.dataDir, 'sim'));
    child = spawn(process.execPath, [CLI, 'run', '--config', o.config], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  }
  return {
    ...watch(child),
    view: o.how === 'unshare' ? `/proc/${child.pid}/root${o.dataDir}` : o.dataDir,
  };
}

/** Unmount what `startOnSmallFs` mounted itself (`mount`; under `unshare` the namespace goes with the daemon). */
export function unmountSmallFs(): void {
  for (const m of mounts.splice(0).reverse()) spawnSync('umount', ['-l', m]);
}

/** Write zeros into `path` until the file system refuses (ENOSPC); returns the bytes written. */
export function fillUntilFull(path: string): number {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  // The last blocks: smaller writes until not one byte more fits.
  const tail = openSync(path, 'a');
  try {
    for (const size of [4096, 512, 1]) {
      const b = Buffer.alloc(size);
      try {
        for (;;) written += writeSync(tail, b);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
    }
  } finally {
    closeSync(tail);
  }
  return written;
}
