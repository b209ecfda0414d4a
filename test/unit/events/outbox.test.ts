import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import type { LockEvent } from '../../../src/contract/link-messages.js';
import type { CloudEvent, LockStatePayload } from '../../../src/contract/mqtt-hub-messages.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';
import { COUNTER_REFUSED, Outbox } from '../../../src/events/outbox.js';
import type { StoredEvent } from '../../../src/link/pairing.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import { pairingWithLock } from '../../helpers/pairing.js';
import { tempDir } from '../../helpers/tmp.js';

const T0 = Date.UTC(2026, 0, 1);
const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

function open(dir = tempDir()): { dir: string; store: Store } {
  const store = Store.open(dir);
  stores.push(store);
  return { dir, store };
}

function event(seq: number, body: Partial<LockEvent> = {}): LockEvent {
  return { seq, at: T0 + seq, type: 'door', open: seq % 2 === 0, ...body } as LockEvent;
}

function stored(lockId: string, events: LockEvent[], epoch = 1): StoredEvent[] {
  return events.map((e) => ({ lockId, epoch, event: e, receivedAt: T0 + 1000 + e.seq }));
}

/** A logger that keeps what it logs at warn and above. */
function capturingLogger(): { log: ReturnType<typeof silentLogger>; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: pino({ level: 'warn' }, sink), lines };
}

/** The stored text's length of L1's door event `seq` (closed, at T0): a unit for the size bound. */
function doorEventBytes(seq: number): number {
  const at = new Date(T0).toISOString();
  return JSON.stringify({
    id: `L1/1/${seq}`,
    lockId: 'L1',
    seq,
    epoch: 1,
    type: 'door',
    at,
    receivedAt: at,
    open: false,
  }).length;
}

function allEvents(outbox: Outbox): CloudEvent[] {
  return outbox.nextEventBatch(500, 10_000_000)?.payload.events ?? [];
}

const state = (lockId: string, lastSeq: number): LockStatePayload => ({
  v: 1,
  lockId,
  pairing: 'bound',
  connected: true,
  lastSeq,
  at: new Date(T0).toISOString(),
});

describe('outbox', () => {
  it('enqueues inside the caller’s transaction: a rollback leaves nothing queued', () => {
    const { store } = open();
    const outbox = new Outbox(store, { clock: new VirtualClock(T0), log: silentLogger() });
    expect(() =>
      store.transaction(() => {
        outbox.enqueueEvents(stored('L1', [event(1), event(2)]));
        expect(outbox.depth().events).toBe(2);
        throw new Error('the pairing store failed after the enqueue');
      }),
    ).toThrow('pairing store failed');
    expect(outbox.depth()).toEqual({ events: 0, messages: 0, bytes: 0 });
    expect(outbox.nextEventBatch(100)).toBeUndefined();

    store.transaction(() => outbox.enqueueEvents(stored('L1', [event(1)])));
    expect(outbox.depth().events).toBe(1);
  });

  it('is fed by PairingStore.storeEvents in the same transaction, once per event', async () => {
    const { store } = open();
    const clock = new VirtualClock(T0);
    const outbox = new Outbox(store, { clock, log: silentLogger() });
    const pairing = pairingWithLock(store, T0);
    const also = (fresh: StoredEvent[]) => outbox.enqueueEvents(fresh);
    await pairing.storeEvents('L1', [event(1), event(2)], T0, also);
    await pairing.storeEvents('L1', [event(2), event(3)], T0, also); // a resent batch: only 3 is new
    expect(allEvents(outbox).map((e) => e.id)).toEqual(['L1/1/1', 'L1/1/2', 'L1/1/3']);
  });

  it('gives each event a stable id and the contract’s shape, and keeps per-lock order', () => {
    const { store } = open();
    const outbox = new Outbox(store, { clock: new VirtualClock(T0), log: silentLogger() });
    store.transaction(() => {
      outbox.enqueueEvents(
        stored('L1', [
          event(1, { type: 'opened', by: 'pin', credentialId: 'c-1' }),
          event(2, { type: 'denied', reason: 'unknown-credential', credentialId: null }),
        ]),
      );
      outbox.enqueueEvents(stored('L2', [event(1, { type: 'battery', percent: 42 }), event(2, { type: 'tamper' })], 3));
      outbox.enqueueEvents(stored('L1', [event(3)]));
    });
    const events = allEvents(outbox);
    expect(events.map((e) => e.id)).toEqual(['L1/1/1', 'L1/1/2', 'L2/3/1', 'L2/3/2', 'L1/1/3']);
    expect(events[0]).toEqual({
      id: 'L1/1/1',
      lockId: 'L1',
      seq: 1,
      epoch: 1,
      type: 'opened',
      at: new Date(T0 + 1).toISOString(),
      receivedAt: new Date(T0 + 1001).toISOString(),
      by: 'pin',
      credentialId: 'c-1',
    });
    expect(events[1]).toMatchObject({ type: 'denied', credentialId: null });
    expect(events[2]).toMatchObject({ type: 'battery', percent: 42, epoch: 3 });
    expect(events[3]).not.toHaveProperty('open');
    expect(events[4]).toMatchObject({ type: 'door', open: false });
    for (const lock of ['L1', 'L2']) {
      const seqs = events.filter((e) => e.lockId === lock).map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
    expect(conforms('events', { v: 1, events })).toBe(true);
  });

  it('clamps a lock clock a Date cannot hold instead of failing the pairing transaction', () => {
    const { store } = open();
    const outbox = new Outbox(store, { clock: new VirtualClock(T0), log: silentLogger() });
    store.transaction(() => outbox.enqueueEvents(stored('L1', [event(1, { at: Number.MAX_SAFE_INTEGER })])));
    const [e] = allEvents(outbox);
    expect(e?.at).toBe('+275760-09-13T00:00:00.000Z');
    expect(conforms('events', { v: 1, events: [e] })).toBe(true);
  });

  it('batches by count and by bytes, in id order, from a cursor', () => {
    const { store } = open();
    const outbox = new Outbox(store, { clock: new VirtualClock(T0), log: silentLogger() });
    store.transaction(() =>
      outbox.enqueueEvents(
        stored(
          'L1',
          Array.from({ length: 250 }, (_, i) => event(i + 1)),
        ),
      ),
    );

    const first = outbox.nextEventBatch(100);
    expect(first?.ids).toHaveLength(100);
    expect(first?.payload.events.map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const second = outbox.nextEventBatch(100, 200_000, first?.ids.at(-1));
    expect(second?.payload.events[0]?.seq).toBe(101);
    expect(outbox.nextEventBatch(100, 200_000, second?.ids.at(-1))?.ids).toHaveLength(50);
    expect(outbox.nextEventBatch(10_000)?.ids).toHaveLength(250); // the contract's 500 cap is above 250
    expect(outbox.nextEventBatch(100, 200_000, 1e9)).toBeUndefined();

    // By bytes: the serialised payload stays within the limit (one event is always taken).
    for (const limit of [1, 500, 1_000, 4_096]) {
      const b = outbox.nextEventBatch(500, limit);
      const size = Buffer.byteLength(JSON.stringify(b?.payload));
      if ((b?.ids.length ?? 0) > 1) expect(size).toBeLessThanOrEqual(limit);
      const plusOne = outbox.nextEventBatch((b?.ids.length ?? 0) + 1, 1e9);
      expect(Buffer.byteLength(JSON.stringify(plusOne?.payload))).toBeGreaterThan(limit);
    }
    expect(outbox.nextEventBatch(500, 1)?.ids).toHaveLength(1);

    // What is published is the stored texts in the envelope, as they are: the very JSON of the
    // payload, within the contract, with the events' ids in row order.
    const b = outbox.nextEventBatch(100, 200_000, first?.ids.at(-1));
    expect(b?.text).toBe(JSON.stringify(b?.payload));
    expect(conforms('events', JSON.parse(b?.text ?? 'null'))).toBe(true);
    expect(b?.eventIds).toEqual(b?.payload.events.map((e) => e.id));
    expect(b?.eventIds[0]).toBe('L1/1/101');
    expect(Buffer.byteLength(b?.text ?? '')).toBeLessThanOrEqual(200_000);

    // Acknowledged rows leave; the rest keep their order.
    expect(outbox.remove(first?.ids ?? [])).toBe(100);
    expect(outbox.remove(first?.ids ?? [])).toBe(0);
    expect(outbox.nextEventBatch(1)?.payload.events[0]?.seq).toBe(101);
    expect(outbox.depth().events).toBe(150);
  });

  it('drops the oldest non-security events beyond the size bound, counts them, never drops security events', () => {
    const { store } = open();
    const { log, lines } = capturingLogger();
    const probe = doorEventBytes(1);
    const outbox = new Outbox(store, { clock: new VirtualClock(T0), log, maxBytes: probe * 20 });
    const security = (seq: number) => event(seq, { type: 'opened', by: 'tag', credentialId: 'tag-1' });
    let seq = 0;
    const mixed: LockEvent[] = [];
    for (let i = 0; i < 60; i++) {
      seq++;
      mixed.push(i % 3 === 0 ? security(seq) : i % 3 === 1 ? event(seq, { type: 'tamper' }) : event(seq));
    }
    for (const e of mixed) store.transaction(() => outbox.enqueueEvents(stored('L1', [e])));

    const kept = allEvents(outbox);
    const keptSecurity = kept.filter((e) => e.type !== 'door');
    expect(keptSecurity).toHaveLength(40); // every opening and tamper alarm is kept…
    expect(outbox.depth().bytes).toBeGreaterThan(outbox.maxBytes); // …even beyond the limit
    expect(kept.filter((e) => e.type === 'door')).toHaveLength(0);
    expect(outbox.dropped()).toBe(20);
    expect(kept.map((e) => e.seq)).toEqual([...kept.map((e) => e.seq)].sort((a, b) => a - b));
    // One warning for the episode, not one per drop.
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);

    // Drain the security events: the episode ends; a new overflow is a new episode, one more warning.
    outbox.remove(outbox.nextEventBatch(500, 1e9)?.ids ?? []);
    expect(outbox.depth().bytes).toBe(0);
    for (let i = 0; i < 25; i++) store.transaction(() => outbox.enqueueEvents(stored('L2', [event(i + 1)])));
    expect(outbox.depth().bytes).toBeLessThanOrEqual(outbox.maxBytes);
    expect(allEvents(outbox)[0]?.seq).toBeGreaterThan(1); // the oldest went first
    expect(outbox.dropped()).toBeGreaterThan(20);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(2);
  });

  it('the size bound keeps the newest non-security events and the gauge follows rollbacks', () => {
    const { store } = open();
    const outbox = new Outbox(store, { clock: new VirtualClock(T0), log: silentLogger(), maxBytes: 2_000 });
    store.transaction(() =>
      outbox.enqueueEvents(
        stored(
          'L1',
          Array.from({ length: 100 }, (_, i) => event(i + 1)),
        ),
      ),
    );
    const left = allEvents(outbox);
    expect(outbox.depth().bytes).toBeLessThanOrEqual(2_000);
    expect(left.at(-1)?.seq).toBe(100);
    expect(outbox.dropped()).toBe(100 - left.length);
    const before = outbox.depth();
    const droppedBefore = outbox.dropped();
    expect(() =>
      store.transaction(() => {
        outbox.enqueueEvents(
          stored(
            'L1',
            Array.from({ length: 50 }, (_, i) => event(i + 101)),
          ),
        );
        throw new Error('rolled back');
      }),
    ).toThrow();
    expect(outbox.depth()).toEqual(before);
    expect(outbox.dropped()).toBe(droppedBefore);
  });

  it('messages: own transaction or the caller’s, contract-checked, and replace for retained topics', () => {
    const { store } = open();
    const clock = new VirtualClock(T0);
    const outbox = new Outbox(store, { clock, log: silentLogger() });
    outbox.enqueueMessage('locks/L1/state', state('L1', 1), { retain: true, replace: true });
    outbox.enqueueMessage('cmd/result', {
      v: 1,
      id: 'c1',
      ok: true,
      result: { pong: true, at: new Date(T0).toISOString() },
    });
    outbox.enqueueMessage('locks/L2/state', state('L2', 1), { retain: true, replace: true });
    outbox.enqueueMessage('locks/L1/state', state('L1', 2), { retain: true, replace: true });
    outbox.enqueueMessage('locks/L1/state', state('L1', 3), { retain: true, replace: true });

    const queued = outbox.nextMessages(10);
    expect(queued.map((m) => [m.topic, m.retain])).toEqual([
      ['cmd/result', false],
      ['locks/L2/state', true],
      ['locks/L1/state', true],
    ]);
    expect(JSON.parse(queued[2]?.payload ?? '{}').lastSeq).toBe(3);
    expect(outbox.nextMessages(10, queued[0]?.id).map((m) => m.topic)).toEqual(['locks/L2/state', 'locks/L1/state']);
    expect(outbox.depth().messages).toBe(3);
    expect(outbox.depth().bytes).toBe(queued.reduce((n, m) => n + Buffer.byteLength(m.payload), 0));

    // Inside a caller's transaction it commits or rolls back with it.
    expect(() =>
      store.transaction(() => {
        outbox.enqueueMessage('sync/ack', { v: 1, id: 's1', ok: false, error: { code: 'x', message: 'y' } });
        throw new Error('inbox write failed');
      }),
    ).toThrow('inbox write failed');
    expect(outbox.depth().messages).toBe(3);

    const refuse = (f: () => void) => {
      try {
        f();
      } catch (e) {
        return e instanceof HubError ? e.code : 'other';
      }
      return 'accepted';
    };
    expect(refuse(() => outbox.enqueueMessage('cmd/result', { v: 1, ok: true }))).toBe('outbox.not-contract');
    expect(refuse(() => outbox.enqueueMessage('cmd', { v: 1, id: 'x', op: 'ping' }))).toBe('outbox.bad-topic');
    expect(refuse(() => outbox.enqueueMessage('locks/a+b/state', state('L1', 1)))).toBe('outbox.bad-topic');
    expect(outbox.depth().messages).toBe(3);
  });

  it('refuse deletes for good and counts; depth, age and counters', async () => {
    const { store } = open();
    const clock = new VirtualClock(T0);
    const outbox = new Outbox(store, { clock, log: silentLogger() });
    expect(outbox.oldestAgeSec()).toBeNull();
    store.transaction(() => outbox.enqueueEvents(stored('L1', [event(1), event(2), event(3)])));
    await clock.advance(90_500);
    outbox.enqueueMessage('cmd/result', { v: 1, id: 'c1', ok: true });
    expect(outbox.oldestAgeSec()).toBe(90);
    const batch = outbox.nextEventBatch(2);
    expect(outbox.refuse(batch?.ids ?? [], 'PUBACK reason 135')).toBe(2);
    expect(outbox.counter(COUNTER_REFUSED)).toBe(2);
    expect(outbox.counter('no.such.counter')).toBe(0);
    expect(outbox.depth()).toMatchObject({ events: 1, messages: 1 });
    expect(outbox.nextEventBatch(10)?.payload.events.map((e) => e.seq)).toEqual([3]);
    const journal = store.db.prepare("SELECT detail FROM journal WHERE kind = 'uplink.refused'").all() as {
      detail: string;
    }[];
    expect(journal.map((j) => JSON.parse(j.detail))).toEqual([
      { topics: ['events'], rows: 2, reason: 'PUBACK reason 135' },
    ]);
  });

  it('removeSoon and acks: rows gone for every reader at once, deleted in the next group commit, published again if a stop comes first', async () => {
    const { dir, store } = open();
    const clock = new VirtualClock(T0);
    const outbox = new Outbox(store, { clock, log: silentLogger() });
    store.transaction(() => outbox.enqueueEvents(stored('L1', [event(1), event(2), event(3)])));
    const m1 = outbox.enqueueMessage('locks/L1/state', state('L1', 1), { retain: true, replace: true });
    const m2 = outbox.enqueueMessage('locks/L2/state', state('L2', 1), { retain: true, replace: true });
    const events = outbox.nextEventBatch(10);
    const [e1, e2, e3] = events?.ids ?? [];
    const before = store.commitCounts();
    const rowsOnDisk = () => (store.db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n;

    outbox.removeSoon([m1]);
    // An ack is checked now: a row that does not hold the event named is not removed.
    expect(outbox.acknowledgeEvents([{ rowId: e1 ?? 0, eventId: 'L1/1/2' }])).toBe(0);
    expect(outbox.acknowledgeEvents([{ rowId: e1 ?? 0, eventId: 'L1/1/1' }])).toBe(1);
    expect(outbox.acknowledgeEvents([{ rowId: e1 ?? 0, eventId: 'L1/1/1' }])).toBe(0);
    // No transaction yet, the rows still in the store, and gone for every reader of the outbox.
    expect(store.commitCounts()).toEqual(before);
    expect(rowsOnDisk()).toBe(5);
    expect(outbox.nextMessages(10).map((m) => m.id)).toEqual([m2]);
    expect(outbox.nextEventBatch(10)?.ids).toEqual([e2, e3]);
    expect(outbox.hasEvent(e1 ?? 0)).toBe(false);
    expect(outbox.hasEvent(e2 ?? 0)).toBe(true);

    // The next group commit (a command's answer) takes the deletes along: one commit.
    await store.commitSoon(() => store.journal('answer', {}, 1));
    expect(rowsOnDisk()).toBe(3);
    const after = store.commitCounts();
    expect([after.durable - before.durable, after.lazy - before.lazy]).toEqual([1, 0]);

    // All rows of a read being removed: the reader goes on to the next ones.
    outbox.removeSoon([e2 ?? 0]);
    expect(outbox.nextEventBatch(1)?.ids).toEqual([e3]);
    outbox.removeSoon([m2]);
    expect(outbox.nextMessages(1)).toEqual([]);
    // Counting settles what waits: depth is what is queued.
    expect(outbox.depth()).toMatchObject({ events: 1, messages: 0 });
    expect(rowsOnDisk()).toBe(1);

    // A stop (the process killed) before the delete committed: the row is there after a restart
    // and is published again (at least once, as a lost PUBACK does).
    outbox.removeSoon([e3 ?? 0]);
    const copy = tempDir();
    for (const f of ['hub.db', 'hub.db-wal']) {
      try {
        copyFileSync(join(dir, f), join(copy, f));
      } catch {
        // no WAL yet
      }
    }
    const restarted = Store.open(copy);
    stores.push(restarted);
    const again = new Outbox(restarted, { clock, log: silentLogger() });
    expect(again.nextEventBatch(10)?.ids).toEqual([e3]);
  });

  it('over the size bound, acknowledged rows waiting for their delete go first and are not counted as dropped', () => {
    const { store } = open();
    const one = doorEventBytes(10);
    const outbox = new Outbox(store, { clock: new VirtualClock(T0), log: silentLogger(), maxBytes: one * 10 });
    store.transaction(() =>
      outbox.enqueueEvents(
        stored(
          'L1',
          Array.from({ length: 10 }, (_, i) => event(i + 10)),
        ),
      ),
    );
    expect(outbox.dropped()).toBe(0);
    // The broker took the oldest five; their delete waits for the next group commit.
    outbox.removeSoon(outbox.nextEventBatch(5)?.ids ?? []);
    store.transaction(() => outbox.enqueueEvents(stored('L1', [event(20), event(21), event(22)])));
    // Room made by the acknowledged rows, not by dropping the unacknowledged ones.
    expect(outbox.dropped()).toBe(0);
    expect(allEvents(outbox).map((e) => e.seq)).toEqual([15, 16, 17, 18, 19, 20, 21, 22]);
  });

  it('a reader past the newest row reads nothing without a query, and sees a row queued after', () => {
    const { store } = open();
    const clock = new VirtualClock(T0);
    const outbox = new Outbox(store, { clock, log: silentLogger() });
    const m1 = outbox.enqueueMessage('locks/L1/state', state('L1', 1), { retain: true });
    store.transaction(() => outbox.enqueueEvents(stored('L1', [event(1)])));
    const e1 = outbox.nextEventBatch(10)?.ids[0] ?? 0;
    expect(outbox.nextMessages(10, m1)).toEqual([]);
    expect(outbox.nextEventBatch(10, 200_000, e1)).toBeUndefined();
    const m2 = outbox.enqueueMessage('locks/L2/state', state('L2', 1), { retain: true });
    store.transaction(() => outbox.enqueueEvents(stored('L1', [event(2)])));
    expect(outbox.nextMessages(10, m1).map((m) => m.id)).toEqual([m2]);
    expect(outbox.nextEventBatch(10, 200_000, e1)?.payload.events.map((e) => e.seq)).toEqual([2]);
    // A new Outbox on the same store knows the rows already queued.
    const other = new Outbox(store, { clock, log: silentLogger() });
    expect(other.nextMessages(10, m1).map((m) => m.id)).toEqual([m2]);
    expect(other.nextEventBatch(10, 200_000, e1)?.ids).toHaveLength(1);
  });

  it('survives reopening the store: rows, order, counters and the byte gauge', () => {
    const { dir, store } = open();
    const outbox = new Outbox(store, { clock: new VirtualClock(T0), log: silentLogger(), maxBytes: 3_000 });
    store.transaction(() =>
      outbox.enqueueEvents(
        stored(
          'L1',
          Array.from({ length: 40 }, (_, i) => event(i + 1)),
        ),
      ),
    );
    outbox.enqueueMessage('locks/L1/state', state('L1', 40), { retain: true, replace: true });
    const before = { depth: outbox.depth(), events: allEvents(outbox), dropped: outbox.dropped() };
    expect(before.dropped).toBeGreaterThan(0);
    store.close();
    stores.splice(stores.indexOf(store), 1);

    const again = open(dir).store;
    const reopened = new Outbox(again, { clock: new VirtualClock(T0), log: silentLogger(), maxBytes: 3_000 });
    expect(reopened.depth()).toEqual(before.depth);
    expect(allEvents(reopened)).toEqual(before.events);
    expect(reopened.dropped()).toBe(before.dropped);
    expect(reopened.nextMessages(5).map((m) => m.topic)).toEqual(['locks/L1/state']);
    // New rows come after the old ones.
    again.transaction(() => reopened.enqueueEvents(stored('L1', [event(41)])));
    expect(allEvents(reopened).at(-1)?.seq).toBe(41);
  });
});
