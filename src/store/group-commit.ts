import type { Database } from 'better-sqlite3';

/**
 * Writes waiting for the store's next group commit (Store.commitSoon). Each is a closure run
 * later, inside the one transaction that commits the whole group: many writes, one commit, one
 * fsync. Each runs in a savepoint of its own, so a write that throws is undone alone and only its
 * caller hears of it; a commit that fails undoes the whole group and every caller of the group
 * hears of it (nothing of the group is on disk).
 */
export class WriteQueue {
  #entries: Entry[] = [];

  get size(): number {
    return this.#entries.length;
  }

  /** Queue `fn`; the promise settles once the group that runs it has committed (or failed). */
  add<T>(fn: () => T, durable: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#entries.push({ fn, durable, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** Put every write queued in `other` ahead of this queue's, in their order (`other` is left empty). */
  prepend(other: WriteQueue): void {
    if (other.#entries.length === 0) return;
    this.#entries = [...other.#entries, ...this.#entries];
    other.#entries = [];
  }

  /** Take every queued write, in queue order, as one group. */
  take(): Group {
    const entries = this.#entries;
    this.#entries = [];
    return new Group(entries);
  }
}

interface Entry {
  fn: () => unknown;
  durable: boolean;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** One group of queued writes: run inside a transaction, then settled once that transaction ended. */
export class Group {
  readonly #entries: Entry[];
  readonly #outcomes: Outcome[] = [];

  constructor(entries: Entry[]) {
    this.#entries = entries;
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Whether a write of the group must reach the disk before its caller hears back (synchronous=FULL). */
  get durable(): boolean {
    return this.#entries.some((e) => e.durable);
  }

  /**
   * Run the writes in queue order, inside the caller's open transaction, each in a savepoint
   * (`savepoint`: the store's, with its statements prepared once; better-sqlite3's by default). A
   * write that throws is rolled back alone (its error passed through `failure`); if SQLite rolled back the whole transaction under it
   * (a full disk may), the error is thrown: the group is lost and the caller's commit fails.
   */
  run(
    db: Database,
    failure: (e: unknown) => unknown = (e) => e,
    savepoint: <T>(fn: () => T) => T = (fn) => db.transaction(fn)(),
  ): void {
    for (const e of this.#entries) {
      try {
        this.#outcomes.push({ ok: true, value: savepoint(e.fn) });
      } catch (error) {
        if (!db.inTransaction) throw error;
        // What its caller gets: a full disk as `store.disk-full` (and the disk's state turned).
        this.#outcomes.push({ ok: false, error: failure(error) });
      }
    }
  }

  /** The transaction committed: each caller gets its write's result (or the error it threw). */
  committed(): void {
    this.#entries.forEach((e, i) => {
      const o = this.#outcomes[i];
      if (!o) e.reject(new Error('the group commit ended before this write ran'));
      else if (o.ok) e.resolve(o.value);
      else e.reject(o.error);
    });
  }

  /** The transaction failed: nothing of the group is on disk, and every caller gets `error`. */
  failed(error: unknown): void {
    for (const e of this.#entries) e.reject(error);
  }
}
