import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import type { Controller } from 'zigbee-herdsman';
import { leanWaitFor, useLeanWaitresses, type WaitressLike } from '../../../drivers/zigbee/lean-waitress.js';

/** The lean waitFor behaves as herdsman's own, but for where the timeout's stack ends. */

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

function both() {
  const theirs = new Waitress(validator, formatter);
  const ours = new Waitress(validator, formatter);
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

  it('a wait answered before start() sets no timer; start() twice sets one', async () => {
    const [, w] = both();
    const { start } = w.waitFor({ n: 4 }, 5);
    const first = start();
    const timer = w.waiters.get(first.ID)!.timer;
    start();
    expect(w.waiters.get(first.ID)!.timer).toBe(timer);
    (w as unknown as { resolve(p: unknown): boolean }).resolve({ n: 4 });
    await expect(first.promise).resolves.toEqual({ n: 4 });
    const late = w.waitFor({ n: 5 }, 5);
    (w as unknown as { reject(p: unknown, m: string): boolean }).reject({ n: 5 }, 'refused');
    await expect(late.start().promise).rejects.toThrow('refused');
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
});
