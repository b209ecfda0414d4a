import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../src/base/random.js';
import { AwaitingAcks, type PublishedEvent } from '../../../src/events/awaiting-acks.js';
import { IdSet } from '../../../src/events/id-tables.js';

const ev = (rowId: number, lockId = 'L1'): PublishedEvent => ({ rowId, eventId: `${lockId}/1/${rowId}` });
const batch = (from: number, n: number, lockId?: string) => Array.from({ length: n }, (_, i) => ev(from + i, lockId));

describe('IdSet', () => {
  it('agrees with a Set over random adds and deletes: runs of ids, ids past 2^32, wrap-around, growth', () => {
    const rnd = new SeededRandom('idset');
    const set = new IdSet();
    const ref = new Set<number>();
    const bases = [1, 4_000, 2 ** 32 - 50, 2 ** 40 + 7];
    let disagreements = 0;
    for (let step = 0; step < 40_000; step++) {
      const base = bases[rnd.int(bases.length)] as number;
      const id = base + rnd.int(3_000);
      if (rnd.int(3) === 0) {
        if (set.delete(id) !== ref.delete(id)) disagreements++;
      } else {
        set.add(id);
        ref.add(id);
      }
      if (step % 997 === 0) {
        expect(set.size).toBe(ref.size);
        expect(set.values()).toEqual([...ref].sort((a, b) => a - b));
      }
      const probe = base + rnd.int(3_000);
      if (set.has(probe) !== ref.has(probe)) disagreements++;
    }
    expect(disagreements).toBe(0);
    for (const id of [...ref]) expect(set.delete(id)).toBe(true);
    expect(set.size).toBe(0);
    expect(set.values()).toEqual([]);
  });

  it('a drain pattern (add a run, delete from the front) keeps every id findable', () => {
    const set = new IdSet();
    let missing = 0;
    for (let id = 1; id <= 100_000; id++) {
      set.add(id);
      if (id > 2_000 && !set.delete(id - 2_000)) missing++;
    }
    expect(missing).toBe(0);
    expect(set.size).toBe(2_000);
    for (let id = 98_001; id <= 100_000; id++) if (!set.has(id)) missing++;
    expect(missing).toBe(0);
    expect(set.has(98_000)).toBe(false);
  });

  it('is no place for a non-row id: adding one throws, looking one up finds nothing', () => {
    const set = new IdSet();
    expect(() => set.add(0)).toThrow(RangeError);
    expect(() => set.add(-3)).toThrow(RangeError);
    expect(() => set.add(Number.NaN)).toThrow(RangeError);
    expect(set.has(0)).toBe(false);
    expect(set.delete(Number.NaN)).toBe(false);
  });
});

describe('AwaitingAcks', () => {
  it('finds the rows of acked ids in any order, forgets them, and knows nothing else', () => {
    const a = new AwaitingAcks();
    a.track(batch(1, 100), 1_000);
    a.track(batch(101, 100), 1_100);
    expect(a.size).toBe(200);
    // In order, backwards, across publishes.
    for (let row = 1; row <= 50; row++) expect(a.rowOf(`L1/1/${row}`)).toBe(row);
    for (let row = 150; row >= 51; row--) expect(a.rowOf(`L1/1/${row}`)).toBe(row);
    expect(a.rowOf('L1/1/201')).toBeUndefined();
    expect(a.rowOf('L2/1/5')).toBeUndefined();
    expect(a.has('L1/1/7')).toBe(true);
    for (let row = 1; row <= 150; row++) a.forget(row);
    expect(a.size).toBe(50);
    expect(a.rowOf('L1/1/7')).toBeUndefined();
    expect(a.has('L1/1/7')).toBe(false);
    expect(a.rowOf('L1/1/151')).toBe(151);
    a.forget(151);
    a.forget(151);
    expect(a.size).toBe(49);
    for (let row = 152; row <= 200; row++) a.forget(row);
    expect(a.size).toBe(0);
    expect(a.oldestFirstAt(() => true)).toBeUndefined();
  });

  it('a resend keeps the first publish time and starts the resend clock again', () => {
    const a = new AwaitingAcks();
    a.track(batch(1, 10), 1_000);
    expect(a.anyDue(5_000, 4_000)).toBe(true);
    a.track(batch(1, 10), 5_000);
    expect(a.size).toBe(10);
    expect(a.anyDue(5_000, 4_000)).toBe(false);
    expect(a.oldestFirstAt(() => true)).toBe(1_000);
    a.resent(9_000);
    expect(a.anyDue(12_000, 4_000)).toBe(false);
    a.restartClocks(20_000);
    expect(a.oldestFirstAt(() => true)).toBe(20_000);
  });

  it('rows gone from the outbox await nothing: pruned, and skipped (then forgotten) for the oldest time', () => {
    const a = new AwaitingAcks();
    a.track(batch(1, 3), 1_000);
    a.track(batch(4, 3), 2_000);
    const gone = new Set([1, 2, 3, 5]);
    expect(a.oldestFirstAt((row) => !gone.has(row))).toBe(2_000);
    expect(a.size).toBe(3);
    a.prune((row) => !gone.has(row));
    expect(a.size).toBe(2);
    expect(a.rowOf('L1/1/5')).toBeUndefined();
    expect(a.rowOf('L1/1/6')).toBe(6);
  });

  it('rows out of order in one publish still are found and forgotten', () => {
    const a = new AwaitingAcks();
    a.track([ev(9), ev(3), ev(7), ev(1)], 1_000);
    for (const row of [1, 3, 7, 9]) expect(a.rowOf(`L1/1/${row}`)).toBe(row);
    for (const row of [7, 9, 1, 3]) a.forget(row);
    expect(a.size).toBe(0);
    expect(a.oldestFirstAt(() => true)).toBeUndefined();
  });

  it('agrees with a Map of event id → row over random publishes, resends and acks', () => {
    const rnd = new SeededRandom('awaiting');
    const a = new AwaitingAcks();
    const ref = new Map<string, number>();
    let next = 1;
    for (let step = 0; step < 3_000; step++) {
      const op = rnd.int(4);
      if (op === 0 || ref.size === 0) {
        const n = 1 + rnd.int(20);
        const lock = `L${rnd.int(3)}`;
        const events = batch(next, n, lock);
        next += n;
        a.track(events, step);
        for (const e of events) ref.set(e.eventId, e.rowId);
      } else if (op === 1) {
        // A resend of some awaiting rows, in outbox order.
        const again = [...ref].slice(0, 1 + rnd.int(10)).map(([eventId, rowId]) => ({ eventId, rowId }));
        again.sort((x, y) => x.rowId - y.rowId);
        a.track(again, step);
      } else {
        // An ack naming some awaiting ids, shuffled, and one unknown.
        const named = [...ref.keys()].filter(() => rnd.int(3) === 0);
        named.push(`L9/1/${next + 5}`);
        for (const id of named) {
          const row = a.rowOf(id);
          expect(row).toBe(ref.get(id));
          if (row !== undefined) {
            a.forget(row);
            ref.delete(id);
          }
        }
      }
      expect(a.size).toBe(ref.size);
    }
  });
});
