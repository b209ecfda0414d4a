import type { VirtualClock } from '../../src/base/clock.js';

/**
 * Await `work` while moving virtual time forward in small steps, so timeouts and retries inside it
 * fire without real waiting. Gives up (throws) after `maxMs` of virtual time.
 */
export async function drive<T>(clock: VirtualClock, work: Promise<T>, maxMs = 120_000, stepMs = 5): Promise<T> {
  let settled = false;
  let value: T | undefined;
  let error: unknown;
  let failed = false;
  work.then(
    (v) => {
      settled = true;
      value = v;
    },
    (e: unknown) => {
      settled = true;
      failed = true;
      error = e;
    },
  );
  const start = clock.monotonic();
  while (!settled) {
    if (clock.monotonic() - start > maxMs) throw new Error(`drive: not settled after ${maxMs} ms of virtual time`);
    await clock.advance(stepMs);
  }
  if (failed) throw error;
  return value as T;
}
