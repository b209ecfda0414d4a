/** How long a message repeated as is stays quiet before it is written again (with its count). */
export const REPEAT_QUIET_MS = 10 * 60_000;
/** Distinct messages remembered; the longest unseen is forgotten first. */
const REMEMBERED = 256;

/**
 * Library chatter written once per change: the first time a message is seen it is written; the
 * same message again within `quietMs` is only counted; after that it is written again with the
 * count of lines left out (`repeated`). A library that prints the same warning every few seconds
 * (noble's) leaves one line per ten minutes, and a new message always gets through.
 */
export class Deduper {
  readonly #seen = new Map<string, { at: number; left: number }>();
  readonly #now: () => number;
  readonly #quietMs: number;

  constructor(o: { now?: () => number; quietMs?: number } = {}) {
    this.#now = o.now ?? Date.now;
    this.#quietMs = o.quietMs ?? REPEAT_QUIET_MS;
  }

  /** Undefined: say nothing. Otherwise write it, with `repeated` lines left out since it was last written. */
  admit(key: string): { repeated: number } | undefined {
    const now = this.#now();
    const seen = this.#seen.get(key);
    if (seen && now - seen.at < this.#quietMs) {
      seen.left++;
      return undefined;
    }
    this.#seen.delete(key);
    this.#seen.set(key, { at: now, left: 0 });
    if (this.#seen.size > REMEMBERED) this.#seen.delete(this.#seen.keys().next().value as string);
    return { repeated: seen?.left ?? 0 };
  }
}
