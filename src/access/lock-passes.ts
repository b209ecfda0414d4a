/**
 * The per-lock push loop shared by the site PIN key delivery and the offline lists: locks are
 * marked dirty (bound, reconnected, something changed, a retry came due), and passes run until
 * none is dirty, each updating the dirty locks that are still bound, `concurrency` at a time.
 * Only one pass runs at once; `settled()` resolves when the current one ends.
 */
export class LockPasses {
  readonly #dirty = new Set<string>();
  readonly #o: LockPassesOptions;
  #running: Promise<void> | undefined;

  constructor(options: LockPassesOptions) {
    this.#o = options;
  }

  /** These locks are to be updated; a pass starts if none runs (and the owner is running). */
  mark(lockIds: Iterable<string>): void {
    for (const id of lockIds) this.#dirty.add(id);
    this.#kick();
  }

  /** A lock left: it is not updated by a later pass. */
  forget(lockId: string): void {
    this.#dirty.delete(lockId);
  }

  /** Resolves when no pass runs. */
  settled(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  #kick(): void {
    if (this.#running || !this.#o.active()) return;
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    while (this.#dirty.size > 0 && this.#o.active()) {
      const batch = [...this.#dirty];
      this.#dirty.clear();
      const bound = new Set(this.#o.boundLocks());
      this.#o.beforePass?.(bound);
      const queue = batch.filter((id) => bound.has(id));
      const workers = Array.from({ length: Math.min(this.#o.concurrency ?? 1, queue.length) }, async () => {
        for (let id = queue.shift(); id !== undefined; id = queue.shift()) await this.#o.update(id);
      });
      await Promise.all(workers);
    }
  }
}

export interface LockPassesOptions {
  /** Whether passes may run (the owning component is running). */
  active(): boolean;
  /** The locks bound now; a dirty lock no longer bound is skipped. */
  boundLocks(): readonly string[];
  /** Updates one lock; must not throw (failures are the owner's to record and retry). */
  update(lockId: string): Promise<void>;
  /** How many locks are updated at once (default 1: one after another, in the order marked). */
  concurrency?: number;
  /** Called at the start of each pass with the bound locks. */
  beforePass?(bound: ReadonlySet<string>): void;
}
