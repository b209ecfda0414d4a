import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AccessMirror } from '../../../src/access/mirror.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { HEAP_SETTLE_MIN_ROWS, HeapSettle, syncRows } from '../../../src/base/heap-settle.js';
import type { SnapshotData } from '../../../src/contract/sync-data.js';
import { Store } from '../../../src/store/store.js';
import { deltaSync, snapshotSync } from '../../helpers/sync.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * Every wait is on fake timers (setTimeout/clearTimeout) or on the settle's own promises: "not
 * before the delay" is exact and nothing depends on the machine's load. The real collection
 * (vm.measureMemory) is V8's own task, not a timer: `idle()` awaits it.
 */
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
});
afterEach(() => {
  // No test leaves a settle's timer behind.
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

/** Let the delay pass, then wait for the round it started. */
async function settleAfter(settle: HeapSettle, delayMs: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(delayMs);
  await settle.idle();
}

/** A settle whose first collection waits for `release()`; counts collections and the most at once. */
function gated() {
  const g = { count: 0, most: 0, running: 0, release: () => {}, settle: undefined as unknown as HeapSettle };
  g.settle = new HeapSettle({
    delayMs: 1,
    collect: async () => {
      g.running++;
      g.most = Math.max(g.most, g.running);
      g.count++;
      if (g.count === 1) await new Promise<void>((r) => (g.release = r));
      g.running--;
    },
  });
  return g;
}

/** A HeapSettle whose collections are counted instead of run. */
function counting(delayMs = 20) {
  const calls: number[] = [];
  const settle = new HeapSettle({
    delayMs,
    collect: async () => {
      calls.push(calls.length);
    },
  });
  return { settle, calls };
}

describe('HeapSettle: two full collections once the hub is quiet after a large sync', () => {
  it('waits for quiet: several requests in a row give one round of two collections', async () => {
    const { settle, calls } = counting(40);
    expect(settle.busy).toBe(false);
    settle.soon();
    expect(settle.busy).toBe(true);
    await vi.advanceTimersByTimeAsync(15);
    settle.soon();
    settle.soon();
    // The wait started again at the last request.
    await vi.advanceTimersByTimeAsync(39);
    expect(calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    await settle.idle();
    expect(settle.runs).toBe(1);
    expect(calls).toHaveLength(2);
    expect(settle.busy).toBe(false);
    // Nothing more happens by itself.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toHaveLength(2);
  });

  it('held back while the work that follows runs (offline lists pushed), never started by it', async () => {
    const { settle, calls } = counting(30);
    // No collection asked for: work passes without one.
    const first = settle.during(() => new Promise((r) => setTimeout(r, 10)));
    await vi.advanceTimersByTimeAsync(10);
    await first;
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toHaveLength(0);
    settle.soon();
    let done: () => void = () => {};
    const long = settle.during(() => new Promise<void>((r) => (done = r)));
    const short = settle.during(() => new Promise((r) => setTimeout(r, 20)));
    await vi.advanceTimersByTimeAsync(120);
    await short;
    expect(calls).toHaveLength(0);
    done();
    await long;
    // The wait starts again when the last one ends.
    await vi.advanceTimersByTimeAsync(29);
    expect(calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    await settle.idle();
    expect(settle.runs).toBe(1);
    expect(calls).toHaveLength(2);
  });

  it('work that fails still lets the collection go (and its error through)', async () => {
    const { settle, calls } = counting(10);
    settle.soon();
    await expect(settle.during(async () => Promise.reject(new Error('link down')))).rejects.toThrow('link down');
    await vi.advanceTimersByTimeAsync(9);
    expect(calls).toHaveLength(0);
    await settleAfter(settle, 1);
    expect(settle.runs).toBe(1);
    expect(calls).toHaveLength(2);
  });

  it('a request while collecting gives one more round after it, not a second one at the same time', async () => {
    const g = gated();
    const settle = g.settle;
    settle.soon();
    await vi.advanceTimersByTimeAsync(1);
    expect(g.count).toBe(1);
    settle.soon();
    // Its delay passes while the first collection still runs: nothing starts beside it.
    await vi.advanceTimersByTimeAsync(20);
    expect([g.count, g.running]).toEqual([1, 1]);
    g.release();
    await settle.idle();
    expect(settle.runs).toBe(2);
    expect(g.count).toBe(4);
    expect(g.most).toBe(1);
  });

  it('a collection that fails is swallowed: it costs memory, never an error', async () => {
    let tried = 0;
    const settle = new HeapSettle({
      delayMs: 1,
      collect: async () => {
        tried++;
        throw new Error('no collection here');
      },
    });
    settle.soon();
    await settleAfter(settle, 1);
    expect([tried, settle.runs, settle.busy]).toEqual([1, 0, false]);
  });

  it('a round that fails does not drop a request made while it ran: that round still comes', async () => {
    let release: () => void = () => {};
    let count = 0;
    const settle = new HeapSettle({
      delayMs: 1,
      collect: async () => {
        count++;
        if (count === 1) {
          await new Promise<void>((r) => (release = r));
          throw new Error('no collection here');
        }
      },
    });
    settle.soon();
    await vi.advanceTimersByTimeAsync(1);
    settle.soon();
    await vi.advanceTimersByTimeAsync(1);
    release();
    await settle.idle();
    expect([count, settle.runs]).toEqual([3, 1]);
  });

  it('cancel(): a collection waiting for quiet never comes, and no timer is left (a stop)', async () => {
    const { settle, calls } = counting(30);
    settle.soon();
    expect(vi.getTimerCount()).toBe(1);
    settle.cancel();
    expect(vi.getTimerCount()).toBe(0);
    expect(settle.busy).toBe(false);
    // Held work that ends after the cancel does not bring it back.
    await settle.during(async () => undefined);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toHaveLength(0);
    // A round asked for while one runs is dropped too; the running one finishes.
    const g = gated();
    g.settle.soon();
    await vi.advanceTimersByTimeAsync(1);
    g.settle.soon();
    await vi.advanceTimersByTimeAsync(1);
    g.settle.cancel();
    g.release();
    await g.settle.idle();
    expect([g.count, g.settle.runs]).toEqual([2, 1]);
  });

  it("the real collection runs and prints no experimental warning (vm.measureMemory's is held back)", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const settle = new HeapSettle({ delayMs: 1 });
      settle.soon();
      await settleAfter(settle, 1);
      expect(settle.runs).toBe(1);
      // A warning is emitted on the next tick: let it through before looking.
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.includes('measureMemory'))).toEqual([]);
      // Other warnings still pass.
      process.emitWarning('a warning of someone else');
      await new Promise((r) => setImmediate(r));
      expect(warnings).toContain('a warning of someone else');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('counts the rows of a snapshot and of a delta (upserts and deletions)', () => {
    expect(syncRows({ users: [{}, {}], groups: [{}], pinKey: { version: 1 } })).toBe(3);
    expect(syncRows({ upsert: { users: [{}], pins: [{}, {}] }, delete: { keys: ['k'] } })).toBe(4);
    expect(syncRows(undefined)).toBe(0);
    expect(syncRows('nonsense')).toBe(0);
  });
});

describe('AccessMirror asks for a settle after a large sync only', () => {
  const users = (n: number, from = 0) =>
    Array.from({ length: n }, (_, i) => ({ id: `u-${String(i + from).padStart(7, '0')}` }));
  const site = (u: SnapshotData['users']): SnapshotData => ({
    users: u,
    groups: [],
    memberships: [],
    pins: [],
    tags: [],
    keys: [],
  });

  it('a small sync: none; a large snapshot: one, applied or refused; a large delta: one', async () => {
    const store = Store.open(tempDir());
    const { settle, calls } = counting(10);
    const mirror = new AccessMirror({
      store,
      clock: new VirtualClock(Date.parse('2026-06-03T10:00:00Z')),
      heapSettle: settle,
    });
    try {
      mirror.apply(snapshotSync(1, site(users(10))));
      await settleAfter(settle, 40);
      expect(calls).toHaveLength(0);
      expect(settle.busy).toBe(false);

      mirror.apply(snapshotSync(2, site(users(HEAP_SETTLE_MIN_ROWS))));
      await settleAfter(settle, 10);
      expect(settle.runs).toBe(1);

      // Refused (stale version): its garbage is the same.
      expect(() => mirror.apply(snapshotSync(2, site(users(HEAP_SETTLE_MIN_ROWS))))).toThrow();
      await settleAfter(settle, 10);
      expect(settle.runs).toBe(2);

      mirror.apply(deltaSync(2, { upsert: { users: users(HEAP_SETTLE_MIN_ROWS, 1_000_000) } }));
      await settleAfter(settle, 10);
      expect(settle.runs).toBe(3);
      expect(mirror.counts().users).toBe(2 * HEAP_SETTLE_MIN_ROWS);
    } finally {
      await settle.idle();
      store.close();
    }
  });
});

describe('HeapSettle.collectOnce: one collection now, for work that makes garbage steadily (an outbox drain)', () => {
  it('collects at once, without the quiet delay and despite work held by `during`', async () => {
    const { settle, calls } = counting(1_000);
    let done: () => void = () => {};
    const held = settle.during(() => new Promise<void>((r) => (done = r)));
    await settle.collectOnce();
    expect(calls).toHaveLength(1);
    expect(settle.collections).toBe(1);
    // Not a settle: no round of two, nothing waits for quiet afterwards.
    expect(settle.runs).toBe(0);
    expect(settle.busy).toBe(false);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toHaveLength(1);
    done();
    await held;
  });

  it('while a collection runs, another request adds none (never two at the same time)', async () => {
    const g = gated();
    const settle = g.settle;
    const first = settle.collectOnce();
    expect(g.count).toBe(1);
    const second = settle.collectOnce();
    g.release();
    await Promise.all([first, second]);
    expect(g.count).toBe(1);
    expect(g.most).toBe(1);
    expect(settle.collections).toBe(1);
  });

  it('a settle asked for while it runs still gets its round of two afterwards', async () => {
    let release: () => void = () => {};
    let count = 0;
    const settle = new HeapSettle({
      delayMs: 1,
      collect: async () => {
        count++;
        if (count === 1) await new Promise<void>((r) => (release = r));
      },
    });
    const once = settle.collectOnce();
    settle.soon();
    // The settle's delay passes while the single collection still runs.
    await vi.advanceTimersByTimeAsync(10);
    expect(count).toBe(1);
    release();
    await once;
    await settle.idle();
    expect(settle.runs).toBe(1);
    expect(count).toBe(3);
  });

  it('a collection that fails is swallowed', async () => {
    const settle = new HeapSettle({
      collect: async () => {
        throw new Error('no collection here');
      },
    });
    await expect(settle.collectOnce()).resolves.toBeUndefined();
    expect(settle.collections).toBe(0);
    expect(settle.busy).toBe(false);
  });
});
