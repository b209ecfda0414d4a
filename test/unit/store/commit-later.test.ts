import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { COMMIT_LATER_MS, Store } from '../../../src/store/store.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * Store.commitLater / flushLater (lazy writes riding the next group commit, or a lazy commit of
 * their own after COMMIT_LATER_MS): ordering against durable commits, close with writes pending,
 * errors of a lazy write, re-entrancy. COMMIT_LATER_MS runs on fake timers; the group commit's
 * moment is fired by hand (StoreOptions.schedule).
 */

function rig() {
  const flushes: (() => void)[] = [];
  const dir = tempDir();
  const store = Store.open(dir, undefined, { schedule: (f) => flushes.push(f) });
  store.db.exec('CREATE TABLE IF NOT EXISTS u (k INTEGER PRIMARY KEY)');
  const kinds = () =>
    (store.db.prepare("SELECT kind FROM journal WHERE kind LIKE 't-%' ORDER BY id").all() as { kind: string }[]).map(
      (r) => r.kind,
    );
  const write = (kind: string) => () => {
    store.journal(kind, {}, 1);
    return kind;
  };
  const fire = () => {
    for (const f of flushes.splice(0)) f();
  };
  const reopenKinds = () => {
    const again = Store.open(dir);
    try {
      return (
        again.db.prepare("SELECT kind FROM journal WHERE kind LIKE 't-%' ORDER BY id").all() as { kind: string }[]
      ).map((r) => r.kind);
    } finally {
      again.close();
    }
  };
  return { store, kinds, write, fire, flushes, reopenKinds };
}

/** Settled state after the pending microtasks: 'pending', 'resolved' or 'rejected'. */
async function state(p: Promise<unknown>): Promise<string> {
  let now = 'pending';
  p.then(
    () => {
      now = 'resolved';
    },
    () => {
      now = 'rejected';
    },
  );
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return now;
}

describe('Store.commitLater', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('queued before a durable group commit: lands in it, ahead of its writes, in queue order', async () => {
    const t = rig();
    const a = t.store.commitLater(t.write('t-lazy-1'));
    const b = t.store.commitSoon(t.write('t-durable'));
    const c = t.store.commitLater(t.write('t-lazy-2'));
    const before = t.store.commitCounts();
    t.fire();
    expect(await Promise.all([a, b, c])).toEqual(['t-lazy-1', 't-durable', 't-lazy-2']);
    expect(t.kinds()).toEqual(['t-lazy-1', 't-lazy-2', 't-durable']);
    const after = t.store.commitCounts();
    expect([after.durable - before.durable, after.lazy - before.lazy]).toEqual([1, 0]);
    // The timer then finds nothing to do.
    vi.advanceTimersByTime(COMMIT_LATER_MS);
    expect(t.store.commitCounts()).toEqual(after);
    t.store.close();
  });

  it('queued before a durable claim (transaction): not in it, committed lazily after COMMIT_LATER_MS', async () => {
    const t = rig();
    const lazy = t.store.commitLater(t.write('t-lazy'));
    t.store.transaction(() => t.store.journal('t-claim', {}, 1));
    expect(t.kinds()).toEqual(['t-claim']);
    vi.advanceTimersByTime(COMMIT_LATER_MS - 1);
    expect(await state(lazy)).toBe('pending');
    vi.advanceTimersByTime(1);
    expect(await lazy).toBe('t-lazy');
    expect(t.kinds()).toEqual(['t-claim', 't-lazy']);
    t.store.close();
  });

  it('close() with lazy writes pending commits them (on disk after a reopen) and leaves no timer', async () => {
    const t = rig();
    const lazy = t.store.commitLater(t.write('t-lazy'));
    expect(vi.getTimerCount()).toBe(1);
    t.store.close();
    expect(await lazy).toBe('t-lazy');
    expect(vi.getTimerCount()).toBe(0);
    expect(t.reopenKinds()).toEqual(['t-lazy']);
    await expect(t.store.commitLater(() => 1)).rejects.toMatchObject({ code: 'store.closed' });
  });

  it('close(): writes queued by the writes it commits (re-entrant commitSoon/commitLater) are committed too, none left hanging', async () => {
    const t = rig();
    let inner: Promise<unknown> | undefined;
    let innerLazy: Promise<unknown> | undefined;
    const lazy = t.store.commitLater(() => {
      t.store.journal('t-lazy', {}, 1);
      inner = t.store.commitSoon(t.write('t-queued-inside'));
      innerLazy = t.store.commitLater(t.write('t-lazy-inside'));
      return 'ok';
    });
    t.store.close();
    expect(await lazy).toBe('ok');
    expect(await state(inner ?? Promise.reject(new Error('never queued')))).toBe('resolved');
    expect(await innerLazy).toBe('t-lazy-inside');
    expect(t.reopenKinds()).toEqual(['t-lazy', 't-lazy-inside', 't-queued-inside']);
  });

  it("a lazy write that throws: undone alone, its caller hears (rejection), the durable group's writes commit", async () => {
    const t = rig();
    const bad = t.store.commitLater(() => {
      t.store.journal('t-undone', {}, 1);
      throw new Error('lazy write failed');
    });
    const durable = t.store.commitSoon(t.write('t-durable'));
    t.fire();
    await expect(bad).rejects.toThrow('lazy write failed');
    expect(await durable).toBe('t-durable');
    expect(t.kinds()).toEqual(['t-durable']);
    t.store.close();
  });

  it('a lazy write that rolls the whole transaction back (OR ROLLBACK): the durable writes of the group still commit', async () => {
    const t = rig();
    t.store.db.exec('INSERT INTO u VALUES (1)');
    const bad = t.store.commitLater(() => t.store.db.exec('INSERT OR ROLLBACK INTO u VALUES (1)'));
    const lazyBefore = t.store.commitLater(t.write('t-lazy-before'));
    const durable = t.store.commitSoon(t.write('t-durable'));
    t.fire();
    await expect(bad).rejects.toThrow(/UNIQUE/);
    // The lazy writes of the failed transaction hear of it; the durable group went on its own.
    await expect(lazyBefore).rejects.toThrow(/UNIQUE/);
    expect(await durable).toBe('t-durable');
    expect(t.kinds()).toEqual(['t-durable']);
    expect(t.store.db.inTransaction).toBe(false);
    t.store.close();
  });

  it('a durable write that rolls the transaction back fails the whole group, lazy writes too, and nothing runs twice', async () => {
    const t = rig();
    t.store.db.exec('INSERT INTO u VALUES (1)');
    let runs = 0;
    const lazy = t.store.commitLater(t.write('t-lazy'));
    const other = t.store.commitSoon(t.write('t-durable'));
    const bad = t.store.commitSoon(() => {
      runs++;
      t.store.db.exec('INSERT OR ROLLBACK INTO u VALUES (1)');
    });
    t.fire();
    await expect(bad).rejects.toThrow(/UNIQUE/);
    await expect(other).rejects.toThrow(/UNIQUE/);
    await expect(lazy).rejects.toThrow(/UNIQUE/);
    expect(runs).toBe(1);
    expect(t.kinds()).toEqual([]);
    t.store.close();
  });

  it('re-entrancy: called inside a transaction it joins it, and settles with it (a rollback rejects it)', async () => {
    const t = rig();
    let joined: Promise<unknown> = Promise.resolve();
    expect(() =>
      t.store.transaction(() => {
        joined = t.store.commitLater(t.write('t-joined'));
        throw new Error('the claim failed');
      }),
    ).toThrow('the claim failed');
    await expect(joined).rejects.toThrow(/rolled back/);
    expect(t.kinds()).toEqual([]);
    let kept: Promise<unknown> = Promise.resolve();
    let undone: Promise<unknown> = Promise.resolve();
    t.store.transaction(() => {
      kept = t.store.commitLater(t.write('t-kept'));
      // A nested transaction (a savepoint) rolled back: what joined it is undone, not what joined the outer one.
      try {
        t.store.transaction(() => {
          undone = t.store.commitLater(t.write('t-undone'));
          throw new Error('inner');
        });
      } catch {}
      expect(t.kinds()).toEqual(['t-kept']);
    });
    await expect(undone).rejects.toMatchObject({ code: 'store.rolled-back' });
    expect(await kept).toBe('t-kept');
    expect(t.kinds()).toEqual(['t-kept']);
    t.store.close();
  });

  it("re-entrancy: called from a lazy write of flushLater's commit, it lands in that commit and settles after it", async () => {
    const t = rig();
    let inner: Promise<unknown> | undefined;
    const before = t.store.commitCounts();
    const outer = t.store.commitLater(() => {
      t.store.journal('t-outer', {}, 1);
      inner = t.store.commitLater(t.write('t-inner'));
      return 'outer';
    });
    t.store.flushLater();
    expect(await outer).toBe('outer');
    expect(await inner).toBe('t-inner');
    expect(t.kinds()).toEqual(['t-outer', 't-inner']);
    expect(t.store.commitCounts().lazy - before.lazy).toBe(1);
    t.store.close();
  });

  it('flushLater inside a transaction does nothing; the writes keep their timer', async () => {
    const t = rig();
    const lazy = t.store.commitLater(t.write('t-lazy'));
    t.store.transaction(() => {
      t.store.flushLater();
      t.store.journal('t-claim', {}, 1);
    });
    expect(t.kinds()).toEqual(['t-claim']);
    vi.advanceTimersByTime(COMMIT_LATER_MS);
    expect(await lazy).toBe('t-lazy');
    t.store.close();
  });
});
