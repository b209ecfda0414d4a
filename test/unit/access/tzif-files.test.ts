import { execFileSync, spawn } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  realpathSync,
  rmSync,
  type Stats,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadZoneOffsets, MAX_FILE_BYTES, ZONEINFO_DIR } from '../../../src/base/tzif.js';
import { tempDir } from '../../helpers/tmp.js';
import { tzif } from '../../helpers/tzif.js';

// The checks loadZoneOffsets makes on the file it reads (src/base/tzif.ts), each on its own: a
// check that others mask in an ordinary directory (a FIFO's size is 0 on Linux, so the one-byte
// overrun refuses it too) is reached here through a moment the reader cannot rule out — a file
// swapped or grown between two of its calls, a system where fstat gives a pipe's pending bytes.
// node:fs is the real one; the hooks only act between the reader's calls.

const hooks = vi.hoisted(() => ({
  afterRealpath: undefined as ((path: string) => void) | undefined,
  afterFstat: undefined as ((st: Stats) => void) | undefined,
  reads: 0,
}));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    realpathSync: (path: string) => {
      const r = fs.realpathSync(path);
      hooks.afterRealpath?.(r);
      return r;
    },
    fstatSync: (fd: number) => {
      const st = fs.fstatSync(fd);
      hooks.afterFstat?.(st);
      return st;
    },
    readSync: (...a: Parameters<typeof fs.readSync>) => {
      hooks.reads++;
      return fs.readSync(...a);
    },
  };
});

afterEach(() => {
  hooks.afterRealpath = undefined;
  hooks.afterFstat = undefined;
  hooks.reads = 0;
});

/**
 * Runs `read` on a FIFO with a helper process that, if the read waits for a writer (an open
 * without O_NONBLOCK), releases it after 15 s as a writer — marking first that it did — so that
 * such a fault fails the test rather than hangs it.
 */
function noWaitOn(fifo: string, read: () => void): void {
  const marker = `${fifo}.released`;
  const rescuer = spawn('sh', ['-c', 'sleep 15; : > "$1"; exec 3> "$2"', 'sh', marker, fifo], {
    stdio: 'ignore',
    detached: true,
  });
  try {
    read();
    expect(existsSync(marker), 'the open waited for a writer').toBe(false);
  } finally {
    if (rescuer.pid !== undefined) process.kill(-rescuer.pid, 'SIGKILL'); // sh and its sleep
  }
}

const small = tzif({ types: [3600], footer: '<+01>-1' });

/** A zone directory with a sound Etc/Small (+01:00) and a sound file outside it (+02:00). */
function zoneDir() {
  const dir = tempDir();
  const zones = join(dir, 'zoneinfo');
  mkdirSync(join(zones, 'Etc'), { recursive: true });
  writeFileSync(join(zones, 'Etc/Small'), small);
  const outside = join(dir, 'Outside');
  writeFileSync(outside, tzif({ types: [7200], footer: '<+02>-2' }));
  return { dir, zones, outside };
}

describe('the zone file loadZoneOffsets reads', () => {
  it.skipIf(!existsSync(join(ZONEINFO_DIR, 'US/Eastern')))(
    "the system's aliases (symlinks within the zone directory) give their target's offsets",
    () => {
      for (const [alias, target] of [
        ['UTC', 'Etc/UTC'],
        ['US/Eastern', 'America/New_York'],
      ] as const) {
        expect(lstatSync(join(ZONEINFO_DIR, alias)).isSymbolicLink(), alias).toBe(true);
        const z = loadZoneOffsets(alias);
        expect(z, alias).toBeDefined();
        for (const at of [0, Date.UTC(2026, 0, 15), Date.UTC(2026, 6, 15)])
          expect(z?.offsetAt(at), `${alias} ${at}`).toBe(loadZoneOffsets(target)?.offsetAt(at));
      }
      expect(loadZoneOffsets('US/Eastern')?.offsetAt(Date.UTC(2026, 6, 15))).toBe(-4 * 3600);
    },
  );

  it('an alias in another folder and a symlinked zone directory resolve; a symlink out of it does not', () => {
    const { dir, zones, outside } = zoneDir();
    mkdirSync(join(zones, 'Europe'));
    symlinkSync('../Etc/Small', join(zones, 'Europe/Alias'));
    symlinkSync(zones, join(dir, 'linked'));
    expect(loadZoneOffsets('Europe/Alias', zones)?.offsetAt(0)).toBe(3600);
    expect(loadZoneOffsets('Europe/Alias', join(dir, 'linked'))?.offsetAt(0)).toBe(3600);
    symlinkSync(outside, join(zones, 'Europe/Out'));
    expect(loadZoneOffsets('Europe/Out', zones)).toBeUndefined();
  });

  it('a zone file replaced by a symlink after realpath (O_NOFOLLOW) is not followed', () => {
    const { dir, zones, outside } = zoneDir();
    const file = join(realpathSync(zones), 'Etc/Small');
    // The same swap before realpath: realpath would resolve it, and containment refuse it.
    hooks.afterRealpath = (path) => {
      if (path !== file) return;
      rmSync(file);
      symlinkSync(outside, file);
    };
    expect(loadZoneOffsets('Etc/Small', zones)).toBeUndefined();
    // Followed, the symlink would have given the outside file's +02:00: a sound zone file.
    hooks.afterRealpath = undefined;
    expect(loadZoneOffsets('Outside', dir)?.offsetAt(0)).toBe(7200);
  });

  it('a FIFO holding a sound zone file is refused unread, even where fstat gives its pending bytes as its size', () => {
    const { zones } = zoneDir();
    const fifo = join(zones, 'Etc/Pipe');
    execFileSync('mkfifo', [fifo]);
    // A reader keeps the pipe's contents while the writer closes; Linux reports a pipe's size as
    // 0, BSD and macOS as the bytes in it: the size alone would then let it through.
    const keep = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const w = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      writeSync(w, small);
      closeSync(w);
      hooks.afterFstat = (st) => {
        if (st.isFIFO()) st.size = small.length;
      };
      noWaitOn(fifo, () => expect(loadZoneOffsets('Etc/Pipe', zones)).toBeUndefined());
      // Nothing was taken from the pipe.
      const left = Buffer.alloc(small.length + 1);
      expect(readSync(keep, left, 0, left.length, null)).toBe(small.length);
    } finally {
      closeSync(keep);
    }
  });

  it('a FIFO with no writer does not block the caller (O_NONBLOCK; readFileSync once waited forever)', () => {
    const { zones } = zoneDir();
    const fifo = join(zones, 'Etc/Fifo');
    execFileSync('mkfifo', [fifo]);
    noWaitOn(fifo, () => expect(loadZoneOffsets('Etc/Fifo', zones)).toBeUndefined());
    expect(loadZoneOffsets('Etc', zones)).toBeUndefined(); // a directory
  });

  it('the size limit: a file of MAX_FILE_BYTES is read, one byte more is refused without a read', () => {
    const { zones } = zoneDir();
    // Bytes after the footer's newline are not the reader's concern: the zone is sound.
    const at = (n: number) => Buffer.concat([small, Buffer.alloc(n - small.length)]);
    writeFileSync(join(zones, 'Etc/AtLimit'), at(MAX_FILE_BYTES));
    writeFileSync(join(zones, 'Etc/Over'), at(MAX_FILE_BYTES + 1));
    expect(loadZoneOffsets('Etc/AtLimit', zones)?.offsetAt(0)).toBe(3600);
    hooks.reads = 0;
    expect(loadZoneOffsets('Etc/Over', zones)).toBeUndefined();
    expect(hooks.reads, 'bytes read from a file over the limit').toBe(0);
  });

  it('a file that grows after fstat is refused (at most one byte more than its size is read)', () => {
    const { zones } = zoneDir();
    const file = join(zones, 'Etc/Small');
    hooks.afterFstat = () => appendFileSync(file, Buffer.alloc(16));
    expect(loadZoneOffsets('Etc/Small', zones)).toBeUndefined();
    hooks.afterFstat = undefined;
    // The grown file, read whole, is sound: only the growth refused it.
    expect(loadZoneOffsets('Etc/Small', zones)?.offsetAt(0)).toBe(3600);
  });
});
