import { HubError } from '../base/errors.js';
import type { Group } from './group-commit.js';

/**
 * The lazy writes' part of the store's commits (Store.commitLater): committing them ahead of a
 * group without letting one of them sink the group, and the writes that joined a transaction.
 */

/**
 * Commit `lazy` (commitLater's writes) then `group` (commitSoon's) in one transaction (`transaction`
 * runs its function in one; `run` runs a group's writes in it). If a lazy write rolls the whole
 * transaction back (its statement's OR ROLLBACK, a trigger's RAISE(ROLLBACK)), the lazy writes fail
 * with its error and the group's writes — which had not run yet — commit in a transaction of their
 * own. Returns how many writes committed and what settles their callers once the caller's
 * bookkeeping is done; undefined when nothing committed (every caller already heard).
 */
export function commitLazyThenGroup(
  lazy: Group,
  group: Group,
  transaction: (fn: () => void) => void,
  run: (g: Group) => void,
): { writes: number; settle: () => void } | undefined {
  let withLazy = lazy.size > 0;
  let groupRan = false;
  const commit = () =>
    transaction(() => {
      if (withLazy) run(lazy);
      groupRan = true;
      run(group);
    });
  try {
    try {
      commit();
    } catch (e) {
      if (groupRan || !withLazy || group.size === 0) throw e;
      lazy.failed(e);
      withLazy = false;
      commit();
    }
  } catch (e) {
    if (withLazy) lazy.failed(e);
    group.failed(e);
    return undefined;
  }
  return {
    writes: group.size + (withLazy ? lazy.size : 0),
    settle: () => {
      if (withLazy) lazy.committed();
      group.committed();
    },
  };
}

/**
 * commitLater's writes that joined a transaction under way (they ran in it at once): each settles
 * when that transaction ends — resolved once the outermost commits, rejected (`store.rolled-back`)
 * if the savepoint it ran in, or the whole transaction, is rolled back.
 */
export class JoinedWrites {
  #writes: { depth: number; value: unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];

  /** A write that ran at savepoint depth `depth` (1: the transaction itself) with result `value`. */
  add<T>(value: T, depth: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#writes.push({ depth, value, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** The outermost transaction committed. */
  committed(): void {
    for (const w of this.#writes.splice(0)) w.resolve(w.value);
  }

  /** The savepoint at `depth` (0: the whole transaction) was rolled back because of `cause`. */
  rolledBack(depth: number, cause: unknown): void {
    if (this.#writes.length === 0) return;
    const undone = this.#writes.filter((w) => w.depth >= depth);
    this.#writes = this.#writes.filter((w) => w.depth < depth);
    const error = new HubError('store.rolled-back', 'the transaction this write joined was rolled back', { cause });
    for (const w of undone) w.reject(error);
  }
}
