import { describe, expect, it } from 'vitest';
import { HubError } from '../../../src/base/errors.js';
import { Store } from '../../../src/store/store.js';
import { tempDir } from '../../helpers/tmp.js';

/** A store whose group commit waits for the test to say so (`flush`), instead of a timer. */
function manual() {
  const flushes: (() => void)[] = [];
  const store = Store.open(tempDir(), undefined, { schedule: (f) => flushes.push(f) });
  const rows = (kind: string) =>
    (store.db.prepare('SELECT detail FROM journal WHERE kind = ? ORDER BY id').all(kind) as { detail: string }[]).map(
      (r) => JSON.parse(r.detail) as Record<string, unknown>,
    );
  const write = (kind: string, detail: Record<string, unknown>) => () => {
    store.journal(kind, detail, 1);
    return detail;
  };
  /** Run what the store scheduled (the timer firing). */
  const fire = () => {
    for (const f of flushes.splice(0)) f();
  };
  return { store, rows, write, fire, flushes };
}

/** The promise's state after the microtasks and one turn of the event loop: 'pending', 'resolved' or 'rejected'. */
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
  await new Promise((r) => setImmediate(r));
  return now;
}

describe('the group commit', () => {
  it('writes queued together commit in one durable transaction, in queue order, and each caller hears after the commit', async () => {
    const t = manual();
    const before = t.store.commitCounts();
    const results = [1, 2, 3, 4, 5].map((i) => t.store.commitSoon(t.write('grouped', { i })));
    // Nothing runs, nothing is written, nobody is told anything before the group commits.
    expect(t.rows('grouped')).toEqual([]);
    expect(await state(results[0] as Promise<unknown>)).toBe('pending');
    expect(t.flushes).toHaveLength(1);
    t.fire();
    expect(await Promise.all(results)).toEqual([1, 2, 3, 4, 5].map((i) => ({ i })));
    expect(t.rows('grouped')).toEqual([1, 2, 3, 4, 5].map((i) => ({ i })));
    const after = t.store.commitCounts();
    expect(after.durable - before.durable).toBe(1);
    expect(after.groups - before.groups).toBe(1);
    expect(after.groupWrites - before.groupWrites).toBe(5);
    t.store.close();
  });

  it('by default the writes of one turn of the event loop share one commit; a later turn makes another', async () => {
    const store = Store.open(tempDir());
    const before = store.commitCounts().durable;
    const first = [1, 2, 3].map((i) => store.commitSoon(() => store.journal('turn', { i }, 1)));
    await Promise.all(first);
    expect(store.commitCounts().durable - before).toBe(1);
    await store.commitSoon(() => store.journal('turn', { i: 4 }, 1));
    expect(store.commitCounts().durable - before).toBe(2);
    store.close();
  });

  it('a write that throws is undone alone: its caller gets the error, the rest of the group commits', async () => {
    const t = manual();
    const a = t.store.commitSoon(t.write('kept', { n: 'a' }));
    const bad = t.store.commitSoon(() => {
      t.store.journal('undone', { half: true }, 1);
      throw new Error('this write fails');
    });
    const c = t.store.commitSoon(t.write('kept', { n: 'c' }));
    t.fire();
    await expect(bad).rejects.toThrow('this write fails');
    expect(await a).toEqual({ n: 'a' });
    expect(await c).toEqual({ n: 'c' });
    expect(t.rows('kept')).toEqual([{ n: 'a' }, { n: 'c' }]);
    expect(t.rows('undone')).toEqual([]);
    t.store.close();
  });

  it('a commit that fails rejects every write of its group and leaves nothing of them; the next group is unaffected', async () => {
    const t = manual();
    // A deferred foreign key is checked at COMMIT: the commit itself fails, after every write ran.
    t.store.db.exec(`CREATE TABLE parent (id INTEGER PRIMARY KEY);
      CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)`);
    const before = t.store.commitCounts();
    const group = [
      t.store.commitSoon(t.write('lost', { n: 1 })),
      t.store.commitSoon(() => t.store.db.prepare('INSERT INTO child (p) VALUES (42)').run()),
      t.store.commitSoon(t.write('lost', { n: 3 })),
    ];
    t.fire();
    const outcomes = await Promise.allSettled(group);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(String((outcomes[0] as PromiseRejectedResult).reason)).toContain('FOREIGN KEY');
    expect(t.rows('lost')).toEqual([]);
    expect(t.store.db.prepare('SELECT COUNT(*) AS n FROM child').get()).toEqual({ n: 0 });
    expect(t.store.commitCounts().durable).toBe(before.durable);
    const next = t.store.commitSoon(t.write('next', { ok: true }));
    t.fire();
    expect(await next).toEqual({ ok: true });
    expect(t.rows('next')).toEqual([{ ok: true }]);
    t.store.close();
  });

  it('a full disk under the group: every caller gets store.disk-full, nothing is written, the disk turns full', async () => {
    const t = manual();
    const group = [
      t.store.commitSoon(t.write('lost', { n: 1 })),
      t.store.commitSoon(() => {
        t.store.journal('lost', { n: 2 }, 1);
        // What SQLite does on SQLITE_FULL in the middle of a transaction: it rolls all of it back.
        t.store.db.exec('ROLLBACK');
        throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      }),
    ];
    t.fire();
    for (const o of await Promise.allSettled(group)) {
      expect(o.status).toBe('rejected');
      expect(((o as PromiseRejectedResult).reason as HubError).code).toBe('store.disk-full');
    }
    expect(t.rows('lost')).toEqual([]);
    expect(t.store.diskFull).toBe(true);
    t.store.close();
  });

  it('a write of the group that meets a full disk gets store.disk-full and turns the disk full; the others commit', async () => {
    const t = manual();
    const kept = t.store.commitSoon(t.write('kept', { n: 1 }));
    const full = t.store.commitSoon(() => {
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    });
    t.fire();
    await expect(full).rejects.toMatchObject({ code: 'store.disk-full' });
    expect(await kept).toEqual({ n: 1 });
    expect(t.store.diskFull).toBe(true);
    t.store.close();
  });

  it("a durable transaction takes the queued writes along, ahead of its own: one fsync for both (a command's claim)", async () => {
    const t = manual();
    const before = t.store.commitCounts().durable;
    const queued = [t.store.commitSoon(t.write('order', { n: 1 })), t.store.commitSoon(t.write('order', { n: 2 }))];
    const claimed = t.store.transaction(() => {
      t.store.journal('order', { n: 3 }, 1);
      return 'claimed';
    });
    expect(claimed).toBe('claimed');
    // Told at once, without the flush the group was scheduled for.
    expect(await state(Promise.all(queued))).toBe('resolved');
    expect(await Promise.all(queued)).toEqual([{ n: 1 }, { n: 2 }]);
    expect(t.rows('order')).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(t.store.commitCounts().durable - before).toBe(1);
    // The flush scheduled for that group finds nothing left to do.
    t.fire();
    expect(t.store.commitCounts().durable - before).toBe(1);
    t.store.close();
  });

  it('a transaction that throws with writes queued: its own writes are undone, the queued ones commit, its error is thrown', async () => {
    const t = manual();
    const queued = t.store.commitSoon(t.write('queued', { n: 1 }));
    expect(() =>
      t.store.transaction(() => {
        t.store.journal('own', { n: 2 }, 1);
        throw new Error('counter not above');
      }),
    ).toThrow('counter not above');
    expect(await state(queued)).toBe('resolved');
    expect(await queued).toEqual({ n: 1 });
    expect(t.rows('queued')).toEqual([{ n: 1 }]);
    expect(t.rows('own')).toEqual([]);
    t.store.close();
  });

  it('a group of lazy writes only commits without waiting for the disk; one durable write makes the group durable', async () => {
    const t = manual();
    const sync = () => t.store.db.pragma('synchronous', { simple: true });
    const before = t.store.commitCounts();
    const lazy = t.store.commitSoon(
      () => {
        expect(sync()).toBe(1);
        t.store.journal('lazy', {}, 1);
      },
      { durable: false },
    );
    t.fire();
    await lazy;
    expect(sync()).toBe(2);
    const mid = t.store.commitCounts();
    expect([mid.lazy - before.lazy, mid.durable - before.durable]).toEqual([1, 0]);
    const mixed = [
      t.store.commitSoon(() => expect(sync()).toBe(2), { durable: false }),
      t.store.commitSoon(() => t.store.journal('durable', {}, 1)),
    ];
    t.fire();
    await Promise.all(mixed);
    const end = t.store.commitCounts();
    expect([end.lazy - mid.lazy, end.durable - mid.durable]).toEqual([0, 1]);
    t.store.close();
  });

  it('closing the store commits what is queued; a write queued after the close is refused store.closed', async () => {
    const t = manual();
    const queued = t.store.commitSoon(t.write('at-close', { n: 1 }));
    const dir = t.store.info.path;
    t.store.close();
    expect(await queued).toEqual({ n: 1 });
    const late = t.store.commitSoon(() => 1);
    await expect(late).rejects.toBeInstanceOf(HubError);
    await expect(late).rejects.toMatchObject({ code: 'store.closed' });
    // The flush the timer would have run finds the store closed and does nothing.
    t.fire();
    const again = Store.open(dir.replace(/\/[^/]+$/, ''));
    expect(
      again.db.prepare("SELECT COUNT(*) AS n FROM journal WHERE kind = 'at-close'").get() as { n: number },
    ).toEqual({ n: 1 });
    again.close();
  });

  it('commitLater: never in a durable transaction (a claim), rides the next group commit, else commits lazily on its own', async () => {
    const t = manual();
    const before = t.store.commitCounts();
    const later = t.store.commitLater(t.write('later', { n: 1 }));
    // A claim's durable transaction does not take it along: nothing is added to its commit.
    t.store.transaction(() => t.store.journal('claim', {}, 1));
    expect(t.rows('later')).toEqual([]);
    expect(await state(later)).toBe('pending');
    // The next group commit (an answer's record) takes it, ahead of its own writes: one commit.
    const answer = t.store.commitSoon(t.write('answer', { n: 2 }));
    t.fire();
    expect(await later).toEqual({ n: 1 });
    expect(await answer).toEqual({ n: 2 });
    expect(t.rows('later')).toEqual([{ n: 1 }]);
    const mid = t.store.commitCounts();
    // The claim and the group: two durable commits, and no lazy one of its own for the later write.
    expect([mid.durable - before.durable, mid.lazy - before.lazy, mid.groupWrites - before.groupWrites]).toEqual([
      2, 0, 2,
    ]);

    // Alone, it commits lazily after COMMIT_LATER_MS (a real timer here, awaited; that it waits the
    // whole delay is checked on fake timers in commit-later.test.ts: under load a real 500 ms could
    // pass before a look at the promise).
    const alone = t.store.commitLater(t.write('alone', { n: 3 }));
    expect(await alone).toEqual({ n: 3 });
    const end = t.store.commitCounts();
    expect([end.durable - mid.durable, end.lazy - mid.lazy]).toEqual([0, 1]);
    // A write that throws is undone alone and its caller hears; inside a transaction it joins it.
    const failing = t.store.commitLater(() => {
      t.store.journal('undone', {}, 1);
      throw new Error('no');
    });
    const kept = t.store.commitLater(t.write('kept', { n: 4 }));
    t.store.flushLater();
    await expect(failing).rejects.toThrow('no');
    expect(await kept).toEqual({ n: 4 });
    expect(t.rows('undone')).toEqual([]);
    let inside: Promise<unknown> = Promise.resolve();
    t.store.transaction(() => {
      inside = t.store.commitLater(t.write('inside', { n: 5 }));
    });
    expect(t.rows('inside')).toEqual([{ n: 5 }]);
    expect(await inside).toEqual({ n: 5 });
    t.store.close();
  });

  it("commitLater's timer commits the lazy writes alone: a write queued by commitSoon keeps its own moment", async () => {
    const t = manual();
    const soon = t.store.commitSoon(t.write('soon', { n: 1 }));
    const later = t.store.commitLater(t.write('later', { n: 2 }));
    expect(await later).toEqual({ n: 2 });
    expect(t.rows('later')).toEqual([{ n: 2 }]);
    expect(t.rows('soon')).toEqual([]);
    expect(await state(soon)).toBe('pending');
    t.fire();
    expect(await soon).toEqual({ n: 1 });
    t.store.close();
  });

  it('commitLater: closing the store commits it; after the close it is refused store.closed', async () => {
    const t = manual();
    const queued = t.store.commitLater(t.write('at-close', { n: 1 }));
    const dir = t.store.info.path.replace(/\/[^/]+$/, '');
    t.store.close();
    expect(await queued).toEqual({ n: 1 });
    await expect(t.store.commitLater(() => 1)).rejects.toMatchObject({ code: 'store.closed' });
    const again = Store.open(dir);
    expect(
      again.db.prepare("SELECT COUNT(*) AS n FROM journal WHERE kind = 'at-close'").get() as { n: number },
    ).toEqual({ n: 1 });
    again.close();
  });
});
