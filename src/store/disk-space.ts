import { closeSync, openSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Listeners, type Unsubscribe } from '../base/listeners.js';
import { RESERVE_FILE } from './files.js';

/** The data directory's disk as the store sees it: room to write, or full since a moment. */
export type DiskState = { full: false; path: string } | { full: true; path: string; since: number; detail: string };

/** What every report of a full disk says (status, diag, health, the log). */
export const diskFullDetail = (path: string) =>
  `disk full at ${path}: events are kept on the locks until space returns`;

/** Whether an error is the file system refusing to grow a file: SQLite's SQLITE_FULL, or ENOSPC. */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'store.disk-full') return true;
  const cause = (e as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== e && isDiskFull(cause);
}

/**
 * A full disk handled as a state, not a crash. A reserve file of `reserveBytes` zeros sits in the
 * data directory. When a write meets a full disk (`exhausted`), the reserve is deleted — room for
 * the store to checkpoint its WAL into the main file and for the daemon to keep answering — and
 * the state turns full, once, however many writes fail. `recheck` (every few seconds while full)
 * re-creates the reserve when the file system has room for it and as much again, and the state
 * turns back. Listeners hear each change once: the log gets one line per change, never one per
 * event.
 */
export class DiskSpace {
  readonly path: string;
  readonly reservePath: string;
  readonly #reserveBytes: number;
  readonly #now: () => number;
  readonly #listeners = new Listeners<DiskState>();
  #state: DiskState;

  constructor(o: { dataDir: string; reserveBytes: number; now: () => number }) {
    this.path = o.dataDir;
    this.reservePath = join(o.dataDir, RESERVE_FILE);
    this.#reserveBytes = o.reserveBytes;
    this.#now = o.now;
    this.#state = { full: false, path: o.dataDir };
  }

  get full(): boolean {
    return this.#state.full;
  }

  state(): DiskState {
    return this.#state;
  }

  onChange(listener: (s: DiskState) => void): Unsubscribe {
    return this.#listeners.add(listener);
  }

  /** Bytes the daemon's user may still write on the data directory's file system. */
  free(): number {
    const s = statfsSync(this.path);
    return s.bavail * s.bsize;
  }

  /**
   * At start: make sure the reserve exists. No room for it: the disk is full from the start
   * (the state says so; the daemon runs on).
   */
  ensureReserve(): void {
    if (this.#reserveBytes === 0 || this.#reserveSize() === this.#reserveBytes) return;
    if (!this.#writeReserve()) this.exhausted();
  }

  /** A write met a full disk: release the reserve and turn full. True if it was not full before. */
  exhausted(): boolean {
    rmSync(this.reservePath, { force: true });
    if (this.#state.full) return false;
    this.#state = { full: true, path: this.path, since: this.#now(), detail: diskFullDetail(this.path) };
    this.#listeners.emit(this.#state);
    return true;
  }

  /** While full: room again for the reserve and as much besides? Re-create it and turn back. */
  recheck(): boolean {
    if (!this.#state.full) return false;
    let free: number;
    try {
      free = this.free();
    } catch {
      return false;
    }
    // With no reserve configured, a megabyte free is "space again".
    if (free < Math.max(2 * this.#reserveBytes, 1024 * 1024)) return false;
    if (this.#reserveBytes > 0 && !this.#writeReserve()) return false;
    this.#state = { full: false, path: this.path };
    this.#listeners.emit(this.#state);
    return true;
  }

  #reserveSize(): number {
    try {
      return statSync(this.reservePath).size;
    } catch {
      return 0;
    }
  }

  /** Write the reserve in full (zeros: real blocks, not a sparse file); false, and no file, on ENOSPC. */
  #writeReserve(): boolean {
    // Never the reserve itself pushing a nearly full disk over the edge.
    try {
      if (this.free() < this.#reserveBytes) return false;
    } catch {
      return false;
    }
    const chunk = Buffer.alloc(Math.min(this.#reserveBytes, 256 * 1024));
    let fd: number | undefined;
    try {
      fd = openSync(this.reservePath, 'w', 0o600);
      for (let left = this.#reserveBytes; left > 0; left -= chunk.length) {
        writeSync(fd, chunk, 0, Math.min(chunk.length, left));
      }
      return true;
    } catch (e) {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
      rmSync(this.reservePath, { force: true });
      if (isDiskFull(e)) return false;
      throw e;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}
