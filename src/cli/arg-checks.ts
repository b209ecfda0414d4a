import { ID_PATTERN } from '../contract/mqtt-topics.js';

// The rules of the command line's arguments, without words: commander's parsers (program.ts) say
// what is wrong; the quick path (quick-parse.ts) only needs to know whether a value passes.

const LOCK_ID = new RegExp(ID_PATTERN);

/** A lock id before it goes to the daemon: the rule of the daemon's schema. */
export const isLockId = (v: string): boolean => LOCK_ID.test(v);

/** A whole number from 1 to 10000 (`--limit`), or undefined. */
export function countOf(v: string): number | undefined {
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 10_000 ? n : undefined;
}

/** A number of seconds, 0 < s <= 600 (`--duration`, `--timeout`), or undefined. */
export function secondsOf(v: string): number | undefined {
  const n = Number(v);
  return Number.isFinite(n) && n > 0 && n <= 600 ? n : undefined;
}
