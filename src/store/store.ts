import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { HubError } from '../base/errors.js';
import { ensureWritableDataDir, openFailure } from './data-dir.js';
import { DiskSpace, diskFullDetail, isDiskFull } from './disk-space.js';
import { DB_FILE } from './files.js';
import { type Group, WriteQueue } from './group-commit.js';
import { commitLazyThenGroup, JoinedWrites } from './lazy-writes.js';
import { migrations as allMigrations, type Migration } from './migrations.js';

export { ensureWritableDataDir, fileSystemFailure, storeInUse } from './data-dir.js';
export { DB_FILE };

/**
 * The WAL is checkpointed into the main file when it holds this many pages (SQLite's default is
 * 1000, about 4 MB — enough to fill a small volume before the first checkpoint), and truncated
 * back to WAL_SIZE_LIMIT_BYTES after a checkpoint that let it grow beyond.
 */
export const WAL_AUTOCHECKPOINT_PAGES = 256;
export const WAL_SIZE_LIMIT_BYTES = 1024 * 1024;
/**
 * A write queued with Store.commitLater waits at most this long for a group commit to ride in
 * before it commits (lazily) on its own.
 */
export const COMMIT_LATER_MS = 500;
/**
 * SQLite's page cache of the store's one connection, in KiB (`PRAGMA cache_size = -N`).
 * better-sqlite3 builds SQLite with 16 MB, and the connection (locking_mode EXCLUSIVE) keeps what
 * it read for good: the integrity check at start reads every page, so a hub with 100,000 queued
 * events started with a 16 MB cache full of them (~15 MB of RSS), and a 10k-user sync left its
 * pages there. What the hub reads per command is a few index seeks: 2 MB holds every interior
 * page of a store many times the size of a 10k-user site's; the rest comes from the kernel's file
 * cache. Only memory: what is written, when and how durably does not change (a transaction
 * larger than the cache spills pages to the WAL before its commit, still atomic).
 */
export const STORE_CACHE_KIB = 2048;

export interface StoreOptions {
  /**
   * Bytes of the disk-space reserve in the data directory (src/store/disk-space.ts); 0 or absent:
   * none. The daemon passes `store.reserveMB` (2 MB by default: room to checkpoint a WAL bounded
   * by WAL_AUTOCHECKPOINT_PAGES, and more); tools and tests that open a store need none.
   */
  reserveBytes?: number;
  /** Wall time (ms), for the moment the disk turned full. */
  now?: () => number;
  /**
   * How the group commit (commitSoon) waits for the writes of the same moment: it calls `flush`
   * once they are queued. Default: a zero-delay timer, then the check phase after it — the rest of
   * this turn of the event loop, the timers due in the next (an event collection the lock's answer
   * set off) and at least one check phase (where a TLS socket reports its write done: an answer
   * published ahead has left). Tests that drive time and frames by hand pass a microtask, so that
   * a group commits within the microtasks they await.
   */
  schedule?: (flush: () => void) => void;
}

/** Commits made since the store was opened (transactions; a statement run outside one is not counted). */
export interface CommitCounts {
  /** Commits that waited for the disk (synchronous=FULL): one fsync of the WAL each. */
  durable: number;
  /** Commits that did not (Store.lazyTransaction, a group of lazy writes only). */
  lazy: number;
  /** Group commits (Store.commitSoon), durable or lazy, and the writes they carried. */
  groups: number;
  groupWrites: number;
}

interface TxStatements {
  begin: Statement;
  commit: Statement;
  rollback: Statement;
  savepoint: Statement;
  release: Statement;
  rollbackTo: Statement;
}

export interface StoreInfo {
  path: string;
  schemaVersion: number;
  /** Schema version this build knows; equal to schemaVersion once open. */
  latestVersion: number;
  appliedNow: number[];
  integrity: 'ok';
  journalMode: string;
  synchronous: string;
}

/**
 * The hub's one SQLite database. WAL with synchronous=FULL: a commit that returned is on disk
 * and survives a power cut. Opened in exclusive locking mode, so a second daemon on the same
 * data directory fails at once instead of interleaving writes (single writer).
 */
export class Store {
  readonly db: Database;
  readonly info: StoreInfo;
  /** The data directory's disk: full or not, and the reserve released when it is. */
  readonly space: DiskSpace;
  #closed = false;
  /** Prepared once: the journal is written on hot paths (every remote command). */
  #journalInsert: Statement<[number, string, string]> | undefined;
  #pageSize: number | undefined;
  /** The disk turned full and the WAL has not been checkpointed into the main file since. */
  #checkpointDue = false;
  /** Writes waiting for the next group commit (commitSoon), and its timer. */
  readonly #queue = new WriteQueue();
  /** Lazy writes waiting for the next group commit (commitLater), and their timer. */
  readonly #later = new WriteQueue();
  #laterTimer: NodeJS.Timeout | undefined;
  #groupScheduled = false;
  /** Bumped when a group is taken, so a flush scheduled for an earlier one does nothing. */
  #groupEpoch = 0;
  readonly #schedule: (flush: () => void) => void;
  readonly #counts: CommitCounts = { durable: 0, lazy: 0, groups: 0, groupWrites: 0 };
  /** The store's transactions and savepoints under way (#atomic), and commitLater's writes that joined one. */
  #depth = 0;
  readonly #joined = new JoinedWrites();
  /** The statements of a transaction, prepared once (see #atomic). */
  readonly #tx: TxStatements;

  private constructor(db: Database, info: StoreInfo, space: DiskSpace, schedule?: (flush: () => void) => void) {
    this.db = db;
    this.info = info;
    this.space = space;
    this.#schedule = schedule ?? ((flush) => setTimeout(() => setImmediate(flush), 0));
    this.#tx = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      savepoint: db.prepare('SAVEPOINT iqhub_tx'),
      release: db.prepare('RELEASE iqhub_tx'),
      rollbackTo: db.prepare('ROLLBACK TO iqhub_tx'),
    };
  }

  static open(dataDir: string, migrations: readonly Migration[] = allMigrations, opts: StoreOptions = {}): Store {
    ensureWritableDataDir(dataDir);
    const path = join(dataDir, DB_FILE);
    let db: Database;
    try {
      db = new BetterSqlite3(path, { timeout: 0 });
    } catch (e) {
      throw openFailure(e, path, dataDir);
    }
    try {
      const info = prepare(db, path, migrations);
      const space = new DiskSpace({
        dataDir,
        reserveBytes: opts.reserveBytes ?? 0,
        now: opts.now ?? Date.now,
      });
      const store = new Store(db, info, space, opts.schedule);
      space.ensureReserve();
      if (space.full) store.#checkpoint();
      return store;
    } catch (e) {
      db.close();
      throw e instanceof HubError ? e : openFailure(e, path, dataDir);
    }
  }

  /**
   * Run `fn` in one write transaction (BEGIN IMMEDIATE): all of it commits durably, or none.
   * Writes waiting for the next group commit (commitSoon) are committed with it, ahead of `fn`:
   * one fsync for both (the claim of a command takes along what the previous one left queued). `fn`
   * runs in a savepoint: if it throws, it alone is undone, the queued writes commit, and its error
   * is thrown. If the commit fails, nothing is committed and the queued writes fail with it.
   */
  transaction<T>(fn: () => T): T {
    if (this.db.inTransaction) return this.#guard(() => this.#atomic(fn));
    if (this.#queue.size === 0) {
      const result = this.#guard(() => this.#atomic(fn));
      this.#counts.durable++;
      return result;
    }
    const group = this.#takeGroup();
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = this.#guard(() =>
        this.#atomic(() => {
          group.run(this.db, (e) => this.#failure(e), this.#nested);
          try {
            return { ok: true as const, value: this.#atomic(fn) };
          } catch (error) {
            // SQLite rolled the whole transaction back under it: nothing to commit.
            if (!this.db.inTransaction) throw error;
            return { ok: false as const, error };
          }
        }),
      );
    } catch (e) {
      group.failed(e);
      throw e;
    }
    this.#counted(group.size, true);
    this.#checkpointIfDue();
    group.committed();
    if (outcome.ok) return outcome.value;
    // Its error passes the guard like any write's (a full disk turns the disk's state).
    const { error } = outcome;
    return this.#guard(() => {
      throw error;
    });
  }

  /**
   * Queue `fn` for the next group commit: every write queued until a zero-delay timer and the
   * check phase after it (StoreOptions.schedule; a durable `transaction` meanwhile takes them
   * along) runs in one transaction with one commit. Resolves with `fn`'s
   * result once that commit is done — on disk if any write of the group is `durable` (the
   * default), else as a lazy commit (see lazyTransaction). `fn` runs later, not now: it must read
   * what it needs from the store then, not rely on what was checked when it was queued. It runs
   * in a savepoint: if it throws, it alone is undone and the promise rejects with its error; a
   * failed commit rejects every write of the group, and none of them is on disk.
   */
  commitSoon<T>(fn: () => T, o: { durable?: boolean } = {}): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new HubError('store.closed', 'the store is closed: nothing more is written'));
    }
    const p = this.#queue.add(fn, o.durable ?? true);
    this.#scheduleGroup();
    return p;
  }

  /**
   * Queue `fn`, a write that need not reach the disk (see lazyTransaction), for the next group
   * commit (commitSoon) — or, if none comes within COMMIT_LATER_MS, a lazy commit of its own. Not
   * taken along by a durable `transaction` (a command's claim: nothing is added to its commit). For
   * the removals of what the broker or the cloud acknowledged: each was a transaction (and WAL
   * pages) of its own, twice per open; now they ride in the next open's group commit. Until then
   * the caller must treat the rows as gone itself (the outbox does). Settles like commitSoon.
   * Inside a transaction it runs at once, in it.
   */
  commitLater<T>(fn: () => T): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new HubError('store.closed', 'the store is closed: nothing more is written'));
    }
    if (this.db.inTransaction) {
      // It settles when the transaction it joined ends: a rollback (of it, or of the savepoint it
      // ran in) undid it. A transaction begun on db directly, not by the store, cannot be followed.
      try {
        const value = this.#atomic(fn);
        return this.#depth === 0 ? Promise.resolve(value) : this.#joined.add(value, this.#depth);
      } catch (e) {
        return Promise.reject(this.#failure(e));
      }
    }
    const p = this.#later.add(fn, false);
    // One timer at a time, left running when a group takes the writes (it then finds nothing, or
    // newer writes): not a timer set and cleared per write.
    if (this.#laterTimer === undefined) {
      this.#laterTimer = setTimeout(() => {
        this.#laterTimer = undefined;
        // Only these: writes queued by commitSoon keep their own moment (an answer's record commits
        // after the answer has left, not earlier).
        if (!this.#closed) this.flushLater();
      }, COMMIT_LATER_MS);
      this.#laterTimer.unref?.();
    }
    return p;
  }

  /** Commit the writes queued by commitLater now, lazily, without what commitSoon queued. */
  flushLater(): void {
    if (this.#later.size === 0 || this.db.inTransaction) return;
    this.#commit(this.#later.take(), new WriteQueue().take(), false);
  }

  /**
   * Commit the writes queued by commitSoon and commitLater now, in one transaction: commitLater's
   * first, then the group (a stop; a caller that cannot wait). A lazy write that rolls the whole
   * transaction back fails alone with the other lazy writes (lazy-writes.ts, commitLazyThenGroup).
   */
  flushGroup(): void {
    if (this.db.inTransaction) {
      // Called from inside a transaction: the group goes once that one has ended.
      if (this.#queue.size > 0) this.#scheduleGroup();
      return;
    }
    if (this.#queue.size === 0 && this.#later.size === 0) return;
    const lazy = this.#later.take();
    const group = this.#takeGroup();
    this.#commit(lazy, group, group.durable);
  }

  #commit(lazy: Group, group: Group, durable: boolean): void {
    const run = (g: Group) => g.run(this.db, (e) => this.#failure(e), this.#nested);
    const done = commitLazyThenGroup(lazy, group, (fn) => this.#writeTransaction(durable, fn), run);
    if (!done) return;
    this.#counted(done.writes, durable);
    this.#checkpointIfDue();
    done.settle();
  }

  /** Commits made since the store was opened (a command's commit budget is checked with these). */
  commitCounts(): CommitCounts {
    return { ...this.#counts };
  }

  #scheduleGroup(): void {
    if (this.#groupScheduled) return;
    this.#groupScheduled = true;
    const epoch = this.#groupEpoch;
    this.#schedule(() => {
      // The group it was for went already (a transaction took it along, or a flush): a newer
      // group scheduled its own.
      if (epoch !== this.#groupEpoch || this.#closed) return;
      this.#groupScheduled = false;
      this.flushGroup();
    });
  }

  #takeGroup() {
    this.#groupScheduled = false;
    this.#groupEpoch++;
    return this.#queue.take();
  }

  #counted(writes: number, durable: boolean): void {
    if (durable) this.#counts.durable++;
    else this.#counts.lazy++;
    this.#counts.groups++;
    this.#counts.groupWrites += writes;
  }

  /**
   * Run `fn` in one write transaction that commits without waiting for the disk (this commit
   * only: synchronous=NORMAL, then back to FULL). It is atomic and survives a crash of the
   * process (the WAL is written before this returns); a power cut may undo it, and the next
   * durable commit makes it durable too (the WAL is flushed in order). Only for work that may be
   * undone without breaking a promise — e.g. deleting outbox rows the broker acknowledged: undone,
   * they are published again, and delivery is at least once anyway. Never for anything acted on.
   * Inside another transaction it simply joins it (and commits as that one does).
   */
  lazyTransaction<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    const result = this.#writeTransaction(false, fn);
    this.#counts.lazy++;
    return result;
  }

  /** One immediate write transaction (full-disk guarded); not durable: synchronous=NORMAL for this commit only. */
  #writeTransaction<T>(durable: boolean, fn: () => T): T {
    // Not a statement prepared once: SQLite applies `PRAGMA synchronous` when the statement is
    // prepared, not each time it runs (a cached one switched nothing). exec prepares it afresh,
    // without the statement object db.pragma() makes.
    if (!durable) this.db.exec('PRAGMA synchronous = NORMAL');
    try {
      return this.#guard(() => this.#atomic(fn));
    } finally {
      if (!durable) this.db.exec('PRAGMA synchronous = FULL');
    }
  }

  /** `fn` in a savepoint of the transaction under way (a write of a group). */
  readonly #nested = <T>(fn: () => T): T => this.#atomic(fn);

  /**
   * Run `fn` atomically: in a write transaction (BEGIN IMMEDIATE … COMMIT), or in a savepoint when
   * one is under way; undone if it throws (unless SQLite already rolled everything back). What
   * better-sqlite3's db.transaction(fn) does, with its statements prepared once per store rather
   * than a wrapper made per call: every command makes several of these.
   */
  #atomic<T>(fn: () => T): T {
    const t = this.#tx;
    const nested = this.db.inTransaction;
    (nested ? t.savepoint : t.begin).run();
    const depth = ++this.#depth;
    try {
      const result = fn();
      if (result && typeof (result as { then?: unknown }).then === 'function') {
        throw new TypeError('a store transaction cannot return a promise');
      }
      (nested ? t.release : t.commit).run();
      if (!nested) this.#joined.committed();
      return result;
    } catch (e) {
      if (this.db.inTransaction) {
        if (nested) {
          t.rollbackTo.run();
          t.release.run();
        } else t.rollback.run();
      }
      // What joined this savepoint (or, when SQLite rolled everything back, any) is undone.
      this.#joined.rolledBack(nested && this.db.inTransaction ? depth : 0, e);
      throw e;
    } finally {
      this.#depth = depth - 1;
    }
  }

  /**
   * Run a write; if it meets a full disk, the disk turns full (the reserve is released, once) and
   * the WAL is checkpointed into the main file while the reserve's room is there, then the write
   * fails as `store.disk-full`. Nothing of it was committed: the caller keeps what it was storing
   * (an event stays on its lock, unacknowledged).
   */
  #guard<T>(write: () => T): T {
    try {
      return write();
    } catch (e) {
      throw this.#failure(e);
    }
  }

  /** What a failed write throws: a full disk turns the disk's state and becomes `store.disk-full`. */
  #failure(e: unknown): unknown {
    if (!isDiskFull(e)) return e;
    if (this.space.exhausted()) this.#checkpointDue = true;
    // Outside any transaction only (a nested write's failure reaches the outermost guard too; a
    // group's write, the end of its group commit).
    this.#checkpointIfDue();
    if (e instanceof HubError) return e;
    return new HubError('store.disk-full', `${diskFullDetail(this.space.path)} (${(e as Error).message})`, {
      cause: e,
    });
  }

  #checkpointIfDue(): void {
    if (this.#checkpointDue && !this.db.inTransaction) {
      this.#checkpointDue = false;
      this.#checkpoint();
    }
  }

  /** Fold the WAL into the main file and truncate it; on a full disk it may fail, and the WAL stays. */
  #checkpoint(): void {
    if (this.db.inTransaction) return;
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (e) {
      if (!isDiskFull(e)) throw e;
    }
  }

  /** Whether the data directory's disk is full (writes that can wait — events, lock states — wait). */
  get diskFull(): boolean {
    return this.space.full;
  }

  journal(kind: string, detail: Record<string, unknown>, at: number): void {
    this.#journalInsert ??= this.db.prepare<[number, string, string]>(
      'INSERT INTO journal (at, kind, detail) VALUES (?, ?, ?)',
    );
    const insert = this.#journalInsert;
    this.#guard(() => insert.run(at, kind, JSON.stringify(detail)));
  }

  /** A quick health probe for `iqhub status`: the database answers. */
  /**
   * For `iqhub status`: read without writing anything. It runs no checkpoint (SQLite's own
   * auto-checkpoint keeps the WAL in bounds): a checkpoint here stalled the event loop for as long
   * as it took to copy the WAL — seconds during a flood of commands — and failed on a full disk.
   * `walPages`: the pages the WAL file holds (its size; it is reused, not shrunk, after a checkpoint).
   */
  health(): { ok: boolean; schemaVersion: number; walPages: number; diskFull: string | null } {
    let walBytes = 0;
    try {
      walBytes = statSync(`${this.info.path}-wal`).size;
    } catch {
      // No WAL file yet (or it was just truncated at a checkpoint): nothing in it.
    }
    this.#pageSize ??= this.db.pragma('page_size', { simple: true }) as number;
    // A 32-byte header, then a 24-byte header before each page.
    const walPages = walBytes > 32 ? Math.floor((walBytes - 32) / (this.#pageSize + 24)) : 0;
    const disk = this.space.state();
    return { ok: true, schemaVersion: this.info.schemaVersion, walPages, diskFull: disk.full ? disk.detail : null };
  }

  close(): void {
    if (this.#closed) return;
    // What was queued for a group commit (or commitLater) was promised a commit: it goes before the
    // store closes, and so do the writes those writes queue (a few rounds at most).
    for (let round = 0; round < 8 && !this.db.inTransaction; round++) this.flushGroup();
    clearTimeout(this.#laterTimer);
    this.#closed = true;
    // Anything still queued (more rounds than that; a close from inside a transaction) hears now.
    const closed = new HubError('store.closed', 'the store closed before this write was committed');
    this.#queue.take().failed(closed);
    this.#later.take().failed(closed);
    // Fold the WAL into the main file so a copy of the data directory is self-contained. On a full
    // disk it stays: it is durable, and the next open reads it.
    try {
      this.#checkpoint();
    } finally {
      this.db.close();
    }
  }

  get closed(): boolean {
    return this.#closed;
  }
}

function prepare(db: Database, path: string, migrations: readonly Migration[]): StoreInfo {
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    // Taking the write lock now makes a second opener fail here, with a clear message.
    db.exec('BEGIN IMMEDIATE; COMMIT;');
  } catch (e) {
    if ((e as { code?: string }).code?.startsWith('SQLITE_BUSY')) {
      throw new HubError('store.locked', `the database ${path} is in use by another process`, {
        hint: 'another iq-hub daemon is running on this data directory; stop it first (systemctl stop iq-hub)',
      });
    }
    throw openFailure(e, path, dirname(path));
  }
  db.pragma('synchronous = FULL');
  db.pragma(`cache_size = -${STORE_CACHE_KIB}`);
  db.pragma('foreign_keys = ON');
  db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);

  const corrupt = (what: string) =>
    new HubError('store.corrupt', `the database ${path} failed its integrity check: ${what}`, {
      hint: 'refusing to start on a damaged store: stop the daemon, keep a copy of the data directory, and restore from a backup (docs/operations.md)',
    });
  let problems: { integrity_check: string }[];
  try {
    problems = db.pragma('integrity_check', { simple: false }) as { integrity_check: string }[];
  } catch (e) {
    throw corrupt((e as Error).message);
  }
  if (problems.length !== 1 || problems[0]?.integrity_check !== 'ok') {
    throw corrupt(
      problems
        .slice(0, 5)
        .map((p) => p.integrity_check)
        .join('; '),
    );
  }

  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
  ) STRICT`);
  const latest = migrations.reduce((m, x) => Math.max(m, x.version), 0);
  const current = (db.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations').get() as { v: number }).v;
  if (current > latest) {
    throw new HubError(
      'store.too-new',
      `the database ${path} has schema version ${current}, newer than this iq-hub knows (${latest})`,
      { hint: 'it was written by a newer iq-hub: install that version again; a downgrade would lose data' },
    );
  }
  const appliedNow: number[] = [];
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (m.version <= current) continue;
    db.transaction(() => {
      m.up(db);
      record.run(m.version, m.name, Date.now());
    }).immediate();
    appliedNow.push(m.version);
  }
  return {
    path,
    schemaVersion: latest,
    latestVersion: latest,
    appliedNow,
    integrity: 'ok',
    journalMode: String(db.pragma('journal_mode', { simple: true })),
    synchronous: String(db.pragma('synchronous', { simple: true })),
  };
}
