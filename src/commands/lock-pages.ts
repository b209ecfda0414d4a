import { CONTRACT_VERSION } from '../contract/mqtt-topics.js';

/**
 * `listLocks` answered in pages that each fit one message (docs/mqtt-api.md, listLocks): locks in
 * the order of their ids, from the first after `args.after`, as many as `args.limit` allows and
 * the message limit holds; `next` is the id to ask after for the next page, or null on the last.
 * A cursor by id, not an offset: a lock attached or detached between two pages moves no other
 * lock to another page.
 */

export interface LockPageArgs {
  after?: string;
  limit?: number;
}

export interface LockPage<L> {
  locks: L[];
  next: string | null;
}

/** Bytes of the answer besides its locks: `{"v":1,"id":…,"ok":true,"result":{"locks":[],"next":…}}`, ids at their longest. */
function overheadBytes(): number {
  const longest = 'x'.repeat(64);
  return Buffer.byteLength(
    JSON.stringify({ v: CONTRACT_VERSION, id: longest, ok: true, result: { locks: [], next: longest } }),
  );
}

export function lockPage<L extends { lockId: string }>(
  all: readonly L[],
  args: LockPageArgs,
  maxMessageBytes: number,
): LockPage<L> {
  const sorted = [...all].sort((a, b) => (a.lockId < b.lockId ? -1 : a.lockId > b.lockId ? 1 : 0));
  const after = args.after;
  const from = after === undefined ? sorted : sorted.filter((l) => l.lockId > after);
  const limit = args.limit ?? Number.POSITIVE_INFINITY;
  let size = overheadBytes();
  const locks: L[] = [];
  for (const lock of from) {
    if (locks.length >= limit) break;
    const grown = size + Buffer.byteLength(JSON.stringify(lock)) + (locks.length > 0 ? 1 : 0);
    // Always one lock per page, so a page is never empty while locks remain (one lock is far below any limit).
    if (locks.length > 0 && grown > maxMessageBytes) break;
    size = grown;
    locks.push(lock);
  }
  const more = locks.length < from.length;
  return { locks, next: more ? (locks.at(-1)?.lockId ?? null) : null };
}
