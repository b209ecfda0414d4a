import { createRequire } from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Controller } from 'zigbee-herdsman';
import { leanWaitFor, useLeanWaitresses, type WaitressLike } from '../../../drivers/zigbee/lean-waitress.js';

/**
 * The lean waitFor behaves as herdsman's own but for its timeout's Error: built only when the wait
 * times out (herdsman builds it at every start(), answered or not), so its stack ends in the timer.
 * useLeanWaitresses puts it on herdsman's waitresses only when both are as expected; otherwise it
 * replaces nothing and returns false; the ZigBee bearer then warns "herdsman not as expected" and
 * carries frames on herdsman's own waitFor (test/integration/zigbee-lean-fallback.test.ts;
 * test/integration/zigbee.test.ts holds that the installed herdsman is as expected).
 */

const require = createRequire(import.meta.url);
const { Waitress } = require('zigbee-herdsman/dist/utils/waitress.js') as {
  Waitress: new (
    validator: (payload: unknown, matcher: unknown) => boolean,
    formatter: (matcher: unknown, timeout: number) => string,
  ) => WaitressLike & {
    resolve(p: unknown): boolean;
    remove(id: number): void;
    reject(p: unknown, m: string): boolean;
  };
};

const validator = (payload: unknown, matcher: unknown) => (payload as { n: number }).n === (matcher as { n: number }).n;
const formatter = (matcher: unknown, timeout: number) => `waiting for ${(matcher as { n: number }).n} (${timeout} ms)`;

/** How many timeout messages (and so timeout Errors) were made. */
let formatted = 0;
const counting = (matcher: unknown, timeout: number) => {
  formatted++;
  return formatter(matcher, timeout);
};

afterEach(() => {
  vi.useRealTimers();
  formatted = 0;
});

function both() {
  const theirs = new Waitress(validator, counting);
  const ours = new Waitress(validator, counting);
  ours.waitFor = leanWaitFor;
  return [theirs, ours] as const;
}

describe('leanWaitFor', () => {
  it('resolves a started wait on a matching payload, as herdsman does', async () => {
    for (const w of both()) {
      const a = w.waitFor({ n: 1 }, 10_000);
      const b = w.waitFor({ n: 2 }, 10_000);
      const pa = a.start().promise;
      b.start();
      expect(a.ID).toBe(1);
      expect(b.ID).toBe(2);
      expect((w as unknown as { resolve(p: unknown): boolean }).resolve({ n: 1 })).toBe(true);
      await expect(pa).resolves.toEqual({ n: 1 });
      expect([...w.waiters.keys()]).toEqual([2]);
      (w as unknown as { remove(id: number): void }).remove(b.ID);
      expect(w.waiters.size).toBe(0);
    }
  });

  it('rejects on timeout with the same message, marks the waiter timed out', async () => {
    const messages: string[] = [];
    for (const w of both()) {
      const { start } = w.waitFor({ n: 3 }, 5);
      const { promise, ID } = start();
      const waiter = w.waiters.get(ID)!;
      await expect(promise).rejects.toThrow('waiting for 3 (5 ms)');
      expect(waiter.timedout).toBe(true);
      messages.push(String(await promise.catch((e: Error) => e.message)));
      // A timed-out waiter no longer matches, and is dropped when a payload comes.
      expect((w as unknown as { resolve(p: unknown): boolean }).resolve({ n: 3 })).toBe(false);
      expect(w.waiters.size).toBe(0);
    }
    expect(messages[0]).toBe(messages[1]);
  });

  it("builds the timeout's Error only when the wait times out, not at start() (herdsman: at every start())", async () => {
    const [theirs, ours] = both();
    const answered = (w: typeof ours) => {
      const { promise } = w.waitFor({ n: 6 }, 10_000).start();
      (w as unknown as { resolve(p: unknown): boolean }).resolve({ n: 6 });
      return promise;
    };
    await answered(theirs);
    expect(formatted).toBe(1); // herdsman's own: the message and the Error made for nothing
    formatted = 0;
    await expect(answered(ours)).resolves.toEqual({ n: 6 });
    expect(formatted).toBe(0);
    const { promise } = ours.waitFor({ n: 7 }, 5).start();
    expect(formatted).toBe(0);
    await expect(promise).rejects.toThrow('waiting for 7 (5 ms)');
    expect(formatted).toBe(1);
  });

  it('start() twice sets one timer; a wait answered (resolved or rejected) before start() sets none', async () => {
    vi.useFakeTimers();
    const [, w] = both();
    const { start } = w.waitFor({ n: 4 }, 5);
    const first = start();
    const timer = w.waiters.get(first.ID)!.timer;
    expect(timer).toBeDefined();
    start();
    expect(w.waiters.get(first.ID)!.timer).toBe(timer);
    expect(vi.getTimerCount()).toBe(1);
    (w as unknown as { resolve(p: unknown): boolean }).resolve({ n: 4 });
    await expect(first.promise).resolves.toEqual({ n: 4 });
    expect(vi.getTimerCount()).toBe(0);
    const early = w.waitFor({ n: 8 }, 5);
    (w as unknown as { resolve(p: unknown): boolean }).resolve({ n: 8 });
    await expect(early.start().promise).resolves.toEqual({ n: 8 });
    const late = w.waitFor({ n: 5 }, 5);
    (w as unknown as { reject(p: unknown, m: string): boolean }).reject({ n: 5 }, 'refused');
    await expect(late.start().promise).rejects.toThrow('refused');
    expect(vi.getTimerCount()).toBe(0);
    expect(formatted).toBe(0);
  });
});

describe('useLeanWaitresses', () => {
  it("replaces waitFor on the adapter's and the ZNP's waitresses", () => {
    const a = new Waitress(validator, formatter);
    const z = new Waitress(validator, formatter);
    const controller = { adapter: { waitress: a, znp: { waitress: z } } } as unknown as Controller;
    expect(useLeanWaitresses(controller)).toBe(true);
    expect(a.waitFor).toBe(leanWaitFor);
    expect(z.waitFor).toBe(leanWaitFor);
  });

  it('changes nothing when either is not as expected', () => {
    const a = new Waitress(validator, formatter);
    const original = a.waitFor;
    for (const znp of [undefined, {}, { waitress: { waiters: new Map(), currentID: 0 } }]) {
      const controller = { adapter: { waitress: a, znp } } as unknown as Controller;
      expect(useLeanWaitresses(controller)).toBe(false);
      expect(a.waitFor).toBe(original);
    }
    expect(useLeanWaitresses({} as Controller)).toBe(false);
  });

  it('changes nothing when one part of either waitress changed shape (each checked part once)', () => {
    const changes: [string, (w: Record<string, unknown>) => void][] = [
      ['waiters not a Map', (w) => (w.waiters = {})],
      ['currentID not a number', (w) => (w.currentID = '0')],
      ['no timeoutFormatter', (w) => (w.timeoutFormatter = undefined)],
      ['no waitFor', (w) => (w.waitFor = undefined)],
      [
        'waitFor takes other arguments',
        (w) => (w.waitFor = (matcher: unknown, timeout: number, more: unknown) => [matcher, timeout, more]),
      ],
    ];
    for (const [what, change] of changes)
      for (const odd of ['adapter', 'znp'] as const) {
        const a = new Waitress(validator, formatter);
        const z = new Waitress(validator, formatter);
        change((odd === 'adapter' ? a : z) as unknown as Record<string, unknown>);
        const before = [a.waitFor, z.waitFor];
        const controller = { adapter: { waitress: a, znp: { waitress: z } } } as unknown as Controller;
        expect(useLeanWaitresses(controller), `${what} (${odd})`).toBe(false);
        expect([a.waitFor, z.waitFor], `${what} (${odd})`).toEqual(before);
        expect(a.waitFor === leanWaitFor || z.waitFor === leanWaitFor, `${what} (${odd})`).toBe(false);
      }
  });
});
