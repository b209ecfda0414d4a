import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { deliveryCheck } from '../../../src/app/daemon-diag.js';
import { VirtualClock } from '../../../src/base/clock.js';
import type { LockEvent } from '../../../src/contract/link-messages.js';
import type { EventsPayload } from '../../../src/contract/mqtt-hub-messages.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';
import {
  DELIVERY_SECURITY_EVENT,
  type EventAckMode,
  EventDelivery,
  type EventDeliveryOptions,
} from '../../../src/events/delivery.js';
import { Outbox } from '../../../src/events/outbox.js';
import type { StoredEvent } from '../../../src/link/pairing.js';
import { InboundTopics } from '../../../src/uplink/inbound-topics.js';
import type { PublishResult } from '../../../src/uplink/mqtt-client.js';
import { Publisher, type PublishPort } from '../../../src/uplink/publisher.js';
import { tempStore } from '../../helpers/temp-store.js';

const T0 = Date.UTC(2026, 0, 1);

/** A client whose publishes wait until the test answers them. */
class FakeClient implements PublishPort {
  connected = true;
  readonly sent: { topic: string; payload: string; answer: (r: PublishResult) => void }[] = [];
  publish(topic: string, payload: string | Buffer): Promise<PublishResult> {
    return new Promise((answer) => this.sent.push({ topic, payload: String(payload), answer }));
  }
  on(): () => void {
    return () => {};
  }
  /** Answer every waiting publish; returns the event ids they carried. */
  answerAll(r: PublishResult): string[] {
    const ids: string[] = [];
    for (const s of this.sent.splice(0)) {
      if (s.topic === 'events') ids.push(...(JSON.parse(s.payload) as EventsPayload).events.map((e) => e.id));
      s.answer(r);
    }
    return ids;
  }
}

function capturingLogger() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

function events(lockId: string, from: number, to: number): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (let seq = from; seq <= to; seq++) {
    const e = { seq, at: T0 + seq, type: seq % 3 === 0 ? 'tamper' : 'door', open: true } as LockEvent;
    out.push({ lockId, epoch: 1, event: e, receivedAt: T0 + seq });
  }
  return out;
}

const PUBACK: PublishResult = { ok: true };
const REFUSED: PublishResult = { ok: false, permanent: true, code: 0x87 };
const ack = (ids: string[]) => Buffer.from(JSON.stringify({ v: 1, ids }));
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/** An EventDelivery with the timings and topic every rig here shares, and `extra`. */
function newDelivery(
  base: Pick<EventDeliveryOptions, 'store' | 'outbox' | 'clock' | 'log' | 'mode'>,
  extra: Partial<EventDeliveryOptions> = {},
): EventDelivery {
  return new EventDelivery({
    ...base,
    ackTimeoutMs: 30_000,
    faultAfterMs: 60_000,
    eventsTopic: () => 'ks/hubs/hub-1/events',
    ...extra,
  });
}

function rig(mode: EventAckMode = 'required', maxBytes?: number, window?: number, inflight?: number) {
  const link = { up: true };
  const store = tempStore();
  const clock = new VirtualClock(T0);
  const { log, lines } = capturingLogger();
  const outbox = new Outbox(store, { clock, log, ...(maxBytes ? { maxBytes } : {}) });
  const delivery = newDelivery(
    { store, outbox, clock, log, mode },
    { connected: () => link.up, ...(window === undefined ? {} : { window }) },
  );
  const client = new FakeClient();
  const publisher = new Publisher({
    outbox,
    client,
    clock,
    log,
    delivery,
    refusedBaseMs: 1_000,
    ...(inflight === undefined ? {} : { inflight }),
  });
  publisher.start();
  delivery.start();
  const queue = async (lockId: string, from: number, to: number) => {
    store.transaction(() => outbox.enqueueEvents(events(lockId, from, to)));
    publisher.kick();
    await settle();
  };
  const queuedIds = () => outbox.nextEventBatch(500, 10_000_000)?.payload.events.map((e) => e.id) ?? [];
  const securityEvents = () =>
    store.db.prepare('SELECT kind, detail FROM security_events WHERE kind = ?').all(DELIVERY_SECURITY_EVENT) as {
      kind: string;
      detail: string;
    }[];
  return { store, clock, outbox, delivery, client, publisher, queue, queuedIds, securityEvents, lines, link };
}

describe('events leave the outbox only when the cloud acknowledges them', () => {
  it("a broker's PUBACK keeps the events; the cloud's ack of their ids removes exactly those", async () => {
    const r = rig();
    await r.queue('L1', 1, 3);
    const sent = r.client.answerAll(PUBACK);
    await settle();
    expect(sent).toEqual(['L1/1/1', 'L1/1/2', 'L1/1/3']);
    expect(r.queuedIds()).toEqual(sent);
    expect(r.delivery.health().unacknowledged).toBe(3);
    expect(r.delivery.acknowledge(ack(['L1/1/1', 'L1/1/3']))).toEqual({ ok: true, removed: 2, unknown: 0 });
    expect(r.queuedIds()).toEqual(['L1/1/2']);
    expect(r.outbox.depth().bytes).toBeGreaterThan(0);
    // The same ack again is idempotent: nothing left to remove.
    expect(r.delivery.acknowledge(ack(['L1/1/1']))).toEqual({ ok: true, removed: 0, unknown: 1 });
    expect(r.delivery.acknowledge(ack(['L1/1/2']))).toEqual({ ok: true, removed: 1, unknown: 0 });
    expect(r.outbox.depth()).toEqual({ events: 0, messages: 0, bytes: 0 });
  });

  it('the outbox removes a row for an ack only if the row still holds the event named', async () => {
    const r = rig();
    await r.queue('L1', 1, 2);
    const rows = r.outbox.nextEventBatch(500)?.ids ?? [];
    expect(r.outbox.acknowledgeEvents([{ rowId: rows[0] ?? 0, eventId: 'L1/1/2' }])).toBe(0);
    expect(r.outbox.acknowledgeEvents([{ rowId: rows[1] ?? 0, eventId: 'L1/1/1' }])).toBe(0);
    expect(r.queuedIds()).toEqual(['L1/1/1', 'L1/1/2']);
    expect(r.outbox.acknowledgeEvents([{ rowId: rows[1] ?? 0, eventId: 'L1/1/2' }])).toBe(1);
    expect(r.queuedIds()).toEqual(['L1/1/1']);
  });

  it('a forged or malformed ack changes nothing, is logged once, and never throws', async () => {
    const r = rig();
    await r.queue('L1', 1, 2);
    r.client.answerAll(PUBACK);
    await settle();
    const bad: Buffer[] = [
      Buffer.from('not json'),
      Buffer.from(''),
      Buffer.from(JSON.stringify({ v: 2, ids: ['L1/1/1'] })),
      Buffer.from(JSON.stringify({ v: 1, ids: [] })),
      Buffer.from(JSON.stringify({ v: 1, ids: ['L1/1/1'], all: true })),
      Buffer.from(JSON.stringify({ v: 1, ids: ['L1/1/1', 'L1/1/1'] })),
      Buffer.from(JSON.stringify({ v: 1, ids: ['*'] })),
      Buffer.from(JSON.stringify({ v: 1, ids: ['L1/1/1/'] })),
      Buffer.from(JSON.stringify({ v: 1, ids: 'L1/1/1' })),
      Buffer.from(JSON.stringify({ v: 1, upTo: { L1: 99 } })),
      Buffer.from('{"v":1,"ids":["L9/1/1"],"ids":["L1/1/1"]}'),
      Buffer.from([0x7b, 0xff, 0xfe, 0x7d]),
      Buffer.from(`${'['.repeat(40)}${']'.repeat(40)}`),
      Buffer.from(JSON.stringify({ v: 1, ids: ['L1/1/1'], pad: 'x'.repeat(300_000) })),
    ];
    for (const b of bad) expect(r.delivery.acknowledge(b)).toEqual({ ok: false, removed: 0, unknown: 0 });
    expect(r.queuedIds()).toEqual(['L1/1/1', 'L1/1/2']);
    const refused = r.lines.filter((l) => l.msg.startsWith('events/ack refused'));
    expect(refused).toHaveLength(bad.length);
    // The log names the problem, never the content.
    expect(JSON.stringify(refused)).not.toContain('xxxxxxxx');
  });

  it('an ack for an unknown id, or for an event queued but never published, removes nothing', async () => {
    const r = rig();
    await r.queue('L1', 1, 1);
    r.client.answerAll(PUBACK);
    await settle();
    // Queued, not yet published (the drain waits for it: nothing answered yet).
    await r.queue('L1', 2, 2);
    expect(r.delivery.acknowledge(ack(['L1/1/2', 'L2/1/1', 'L1/2/1', 'L1/1/99']))).toEqual({
      ok: true,
      removed: 0,
      unknown: 4,
    });
    expect(r.queuedIds()).toEqual(['L1/1/1', 'L1/1/2']);
    expect(r.lines.some((l) => /not published/.test(l.msg))).toBe(true);
  });

  it("an ack on another hub's topic never reaches this hub; its own does", async () => {
    const topics = new InboundTopics('hub-1', pino({ level: 'silent' }));
    const got: string[] = [];
    topics.add((name) => void got.push(name));
    await topics.deliver('ks/hubs/hub-2/events/ack', ack(['L1/1/1']));
    await topics.deliver('ks/hubs/hub-1/events/ack/x', ack(['L1/1/1']));
    await topics.deliver('ks/hubs/+/events/ack', ack(['L1/1/1']));
    expect(got).toEqual([]);
    await topics.deliver('ks/hubs/hub-1/events/ack', ack(['L1/1/1']));
    expect(got).toEqual(['events/ack']);
    expect(topics.topics).toContain('ks/hubs/hub-1/events/ack');
  });

  it('unacknowledged events are published again after the ack timeout, oldest first, in per-lock order', async () => {
    const r = rig();
    await r.queue('L1', 1, 2);
    await r.queue('L2', 1, 1);
    expect(r.client.answerAll(PUBACK)).toEqual(['L1/1/1', 'L1/1/2', 'L2/1/1']);
    await settle();
    r.delivery.acknowledge(ack(['L1/1/1']));
    await r.clock.advance(10_000);
    expect(r.client.sent).toHaveLength(0);
    await r.clock.advance(25_000);
    await settle();
    expect(r.client.answerAll(PUBACK)).toEqual(['L1/1/2', 'L2/1/1']);
    await settle();
    r.delivery.acknowledge(ack(['L1/1/2', 'L2/1/1']));
    await r.clock.advance(120_000);
    await settle();
    expect(r.client.sent).toHaveLength(0);
    expect(r.outbox.depth().events).toBe(0);
    expect(r.delivery.state).toBe('ok');
  });

  it('events not acknowledged for the fault time raise not-acknowledged once, with what to check; an ack ends it', async () => {
    const r = rig();
    await r.queue('L1', 1, 3);
    r.client.answerAll(PUBACK);
    await settle();
    await r.clock.advance(59_000);
    expect(r.delivery.state).toBe('ok');
    // Resends keep the first publish time: the fault is not postponed by them.
    r.client.answerAll(PUBACK);
    await r.clock.advance(6_000);
    expect(r.delivery.state).toBe('not-acknowledged');
    await r.clock.advance(120_000);
    r.client.answerAll(PUBACK);
    await r.clock.advance(60_000);
    expect(r.securityEvents()).toHaveLength(1);
    const detail = JSON.parse(r.securityEvents()[0]?.detail ?? '{}') as { to: string; check: string };
    expect(detail.to).toBe('not-acknowledged');
    expect(detail.check).toMatch(/broker ACL .*ks\/hubs\/hub-1\/events/);
    const health = r.delivery.health();
    expect(health).toMatchObject({ ack: 'required', state: 'not-acknowledged', unacknowledged: 3 });
    expect(conforms('health', { ...minimalHealth(), delivery: health })).toBe(true);
    const diag = deliveryCheck(r.delivery);
    expect(diag?.verdict).toBe('fail');
    expect(diag?.action).toMatch(/ACL/);
    r.client.answerAll(PUBACK);
    r.delivery.acknowledge(ack(['L1/1/1', 'L1/1/2', 'L1/1/3']));
    expect(r.delivery.state).toBe('ok');
    expect(r.securityEvents().map((e) => (JSON.parse(e.detail) as { to: string }).to)).toEqual([
      'not-acknowledged',
      'ok',
    ]);
    expect(deliveryCheck(r.delivery)?.verdict).toBe('ok');
  });

  it('a broker outage is not a delivery fault: the clock starts again at the reconnect', async () => {
    const r = rig();
    await r.queue('L1', 1, 2);
    r.client.answerAll(PUBACK);
    await settle();
    r.link.up = false;
    await r.clock.advance(300_000);
    expect(r.delivery.state).toBe('ok');
    r.link.up = true;
    r.delivery.reconnected();
    await r.clock.advance(50_000);
    expect(r.delivery.state).toBe('ok');
    await r.clock.advance(15_000);
    expect(r.delivery.state).toBe('not-acknowledged');
  });

  it('a broker refusal (MQTT 5 PUBACK 0x87) drops nothing: kept, backed off, raised at once, then delivered', async () => {
    const r = rig();
    await r.queue('L1', 1, 4);
    r.client.answerAll(REFUSED);
    await settle();
    expect(r.queuedIds()).toEqual(['L1/1/1', 'L1/1/2', 'L1/1/3', 'L1/1/4']);
    expect(r.delivery.state).toBe('refused');
    expect(deliveryCheck(r.delivery)?.verdict).toBe('fail');
    // Backed off: nothing until the first delay, then again; refused again, the delay doubles.
    expect(r.client.sent).toHaveLength(0);
    await r.clock.advance(1_000);
    await settle();
    expect(r.client.answerAll(REFUSED)).toHaveLength(4);
    await settle();
    await r.clock.advance(1_500);
    expect(r.client.sent).toHaveLength(0);
    await r.clock.advance(600);
    await settle();
    // The ACL is fixed: accepted, acknowledged, gone.
    expect(r.client.answerAll(PUBACK)).toEqual(['L1/1/1', 'L1/1/2', 'L1/1/3', 'L1/1/4']);
    await settle();
    r.delivery.acknowledge(ack(['L1/1/1', 'L1/1/2', 'L1/1/3', 'L1/1/4']));
    expect(r.outbox.depth().events).toBe(0);
    expect(r.delivery.state).toBe('ok');
    expect(r.securityEvents().map((e) => (JSON.parse(e.detail) as { to: string }).to)).toEqual(['refused', 'ok']);
  });

  it('a long refusal, once the broker accepts again, starts the wait for the ack then: no spurious not-acknowledged', async () => {
    const r = rig();
    await r.queue('L1', 1, 2);
    r.client.answerAll(REFUSED);
    for (let i = 0; i < 12; i++) {
      await r.clock.advance(10_000);
      await settle();
      r.client.answerAll(REFUSED);
      await settle();
    }
    expect(r.delivery.state).toBe('refused');
    await r.clock.advance(60_000);
    await settle();
    expect(r.client.answerAll(PUBACK)).toEqual(['L1/1/1', 'L1/1/2']);
    await settle();
    expect(r.delivery.state).toBe('ok');
    await r.clock.advance(20_000);
    expect(r.delivery.state).toBe('ok');
    r.delivery.acknowledge(ack(['L1/1/1', 'L1/1/2']));
    expect(r.securityEvents().map((e) => (JSON.parse(e.detail) as { to: string }).to)).toEqual(['refused', 'ok']);
  });

  it('an event dropped under the size limit while awaiting its ack does not hold the fault', async () => {
    const r = rig('required', 2_000);
    // Door events (not security events): the oldest are dropped as the outbox overflows.
    const doors = (from: number, to: number) =>
      events('L1', from, to).map((s) => ({ ...s, event: { ...s.event, type: 'door', open: true } as LockEvent }));
    r.store.transaction(() => r.outbox.enqueueEvents(doors(1, 5)));
    r.publisher.kick();
    await settle();
    expect(r.client.answerAll(PUBACK)).toHaveLength(5);
    await settle();
    r.store.transaction(() => r.outbox.enqueueEvents(doors(6, 40)));
    expect(r.outbox.dropped()).toBeGreaterThanOrEqual(5);
    r.publisher.kick();
    await settle();
    const later = r.client.answerAll(PUBACK);
    await settle();
    r.delivery.acknowledge(ack(later.slice(0, 500)));
    await r.clock.advance(120_000);
    expect(r.delivery.state).toBe('ok');
    expect(r.delivery.health().unacknowledged).toBe(0);
  });

  it('at most the window of events awaits an ack: new events wait for acks, resends still go, the record stays bounded', async () => {
    // One batch of 100 in flight at a time, so that the window is seen batch by batch.
    const r = rig('required', undefined, 300, 1);
    await r.queue('L1', 1, 1000);
    // PUBACKs without any ack from the cloud: publishing stops once 300 await an ack.
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      sent.push(...r.client.answerAll(PUBACK));
      await settle();
    }
    expect(sent).toEqual(events('L1', 1, 300).map((e) => `L1/1/${e.event.seq}`));
    expect(r.delivery.health().unacknowledged).toBe(300);
    expect(r.client.sent).toHaveLength(0);
    // Messages are not held back by the window.
    r.outbox.enqueueMessage('cmd/result', { v: 1, id: 'c1', ok: true });
    r.publisher.kick();
    await settle();
    expect(r.client.sent.map((m) => m.topic)).toEqual(['cmd/result']);
    r.client.answerAll(PUBACK);
    await settle();
    // The ack timeout: the 300 go again (no new room needed), and nothing new.
    await r.clock.advance(31_000);
    await settle();
    const again: string[] = [];
    for (let i = 0; i < 5; i++) {
      again.push(...r.client.answerAll(PUBACK));
      await settle();
    }
    expect(again).toEqual(sent);
    expect(r.delivery.health().unacknowledged).toBe(300);
    // The cloud acknowledges 150: new ones go, in order, until the window is full again.
    r.delivery.acknowledge(ack(sent.slice(0, 150)));
    await settle();
    const next: string[] = [];
    for (let i = 0; i < 5; i++) {
      next.push(...r.client.answerAll(PUBACK));
      await settle();
    }
    expect(next[0]).toBe('L1/1/301');
    expect(next.at(-1)).toBe('L1/1/500');
    expect(r.delivery.health().unacknowledged).toBe(350);
    // Acknowledged as they come, all 1,000 leave the outbox.
    r.delivery.acknowledge(ack([...sent.slice(150), ...next]));
    for (let i = 0; i < 40 && r.outbox.depth().events > 0; i++) {
      await settle();
      const ids = r.client.answerAll(PUBACK);
      await settle();
      if (ids.length > 0) r.delivery.acknowledge(ack(ids));
    }
    expect(r.outbox.depth().events).toBe(0);
  });

  it('events dropped under the size limit while awaiting an ack free their room in the window', async () => {
    const r = rig('required', 4_000, 20, 1);
    const doors = (from: number, to: number) =>
      events('L1', from, to).map((s) => ({ ...s, event: { ...s.event, type: 'door', open: true } as LockEvent }));
    r.store.transaction(() => r.outbox.enqueueEvents(doors(1, 20)));
    r.publisher.kick();
    await settle();
    expect(r.client.answerAll(PUBACK)).toHaveLength(20);
    await settle();
    r.store.transaction(() => r.outbox.enqueueEvents(doors(21, 60)));
    r.publisher.kick();
    await settle();
    // The window is full of events the size limit then dropped: held back until the check sees them gone.
    expect(r.outbox.dropped()).toBeGreaterThanOrEqual(20);
    expect(r.client.sent).toHaveLength(0);
    await r.clock.advance(5_000);
    await settle();
    expect(r.client.answerAll(PUBACK).length).toBeGreaterThan(0);
  });

  it('with uplink.eventAck off the PUBACK removes events (the older contract) and diag warns delivery is not verified', async () => {
    const r = rig('off');
    await r.queue('L1', 1, 2);
    r.client.answerAll(PUBACK);
    await settle();
    expect(r.outbox.depth().events).toBe(0);
    expect(r.delivery.acknowledge(ack(['L1/1/1']))).toEqual({ ok: true, removed: 0, unknown: 0 });
    const diag = deliveryCheck(r.delivery);
    expect(diag?.verdict).toBe('warn');
    expect(diag?.detail).toMatch(/not verified/);
    // A refusal still drops nothing.
    await r.queue('L1', 3, 3);
    r.client.answerAll(REFUSED);
    await settle();
    expect(r.queuedIds()).toEqual(['L1/1/3']);
    expect(r.delivery.state).toBe('refused');
  });
});

function minimalHealth() {
  return {
    v: 1,
    at: new Date(T0).toISOString(),
    uptimeSec: 1,
    outbox: { depth: 0, oldestAgeSec: null, dropped: 0 },
    radios: [],
    locks: { total: 0, connected: 0, quarantined: 0 },
    certificate: { notAfter: null, daysLeft: null },
  };
}

describe('the memory of a drain: a collection every so many events removed, a settle when it is over', () => {
  /** A HeapSettle stand-in that counts what it is asked for. */
  function counter() {
    const asked = { once: 0, soon: 0 };
    return {
      asked,
      heap: {
        soon: () => {
          asked.soon++;
        },
        collectOnce: async () => {
          asked.once++;
        },
      },
    };
  }

  function drainRig(mode: EventAckMode, heap: ReturnType<typeof counter>['heap'] | false, collectEvery = 500) {
    const store = tempStore();
    const clock = new VirtualClock(T0);
    const { log } = capturingLogger();
    const outbox = new Outbox(store, { clock, log });
    const delivery = newDelivery({ store, outbox, clock, log, mode }, { heapSettle: heap, collectEvery });
    /** Queue `n` events, publish them in batches of 100 and (acks required) acknowledge each batch. */
    const drain = (from: number, n: number, ackThem = true) => {
      store.transaction(() => outbox.enqueueEvents(events('L1', from, from + n - 1)));
      let after = 0;
      for (;;) {
        const b = outbox.nextEventBatch(100, 10_000_000, after);
        if (!b) break;
        after = b.ids.at(-1) ?? after;
        delivery.published(b.ids.map((rowId, i) => ({ rowId, eventId: b.eventIds[i] ?? '' })));
        if (mode === 'required' && ackThem) expect(delivery.acknowledge(ack(b.eventIds)).removed).toBe(b.ids.length);
      }
    };
    return { drain, outbox, delivery };
  }

  it('acks required: one collection per 500 removed while draining, one settle once none awaits an ack', () => {
    const c = counter();
    const r = drainRig('required', c.heap);
    // Acked batch by batch, one still awaiting: the drain is not over.
    r.drain(1, 2_400);
    // Each batch is acked before the next is published: none awaits an ack after each, so the
    // settle is asked for as soon as 2,000 were removed, and the count starts again.
    expect(c.asked.soon).toBe(1);
    expect(c.asked.once).toBe(4);
    expect(r.outbox.depth().events).toBe(0);
  });

  it('acks that catch up with the publishes (the record empty between batches) do not restart the count of collections', () => {
    const c = counter();
    // More than a settle's worth between two collections, as the default is.
    const r = drainRig('required', c.heap, 3_000);
    r.drain(1, 6_500);
    expect(c.asked.once).toBe(2);
    expect(c.asked.soon).toBe(3);
  });

  it('acks required: no settle while events still await their ack, one when the last is acknowledged', () => {
    const c = counter();
    const r = drainRig('required', c.heap);
    r.drain(1, 2_500, false);
    // Published, none acknowledged: nothing left the outbox, nothing to collect.
    expect(c.asked).toEqual({ once: 0, soon: 0 });
    const ids = r.outbox.nextEventBatch(500, 10_000_000)?.eventIds ?? [];
    // Acknowledged in five acks of 500: a collection at each, the settle only with the last.
    let after = 0;
    for (let k = 0; k < 5; k++) {
      const b = r.outbox.nextEventBatch(500, 10_000_000, after);
      after = b?.ids.at(-1) ?? after;
      r.delivery.acknowledge(ack(b?.eventIds ?? []));
      expect(c.asked.soon).toBe(k === 4 ? 1 : 0);
    }
    expect(ids).toHaveLength(500);
    expect(c.asked.once).toBe(5);
    expect(r.outbox.depth().events).toBe(0);
  });

  it('a hub with a few events now and then never collects for them', () => {
    const c = counter();
    const r = drainRig('required', c.heap);
    for (let i = 0; i < 40; i++) r.drain(1 + i * 10, 10);
    expect(r.outbox.depth().events).toBe(0);
    expect(c.asked).toEqual({ once: 0, soon: 0 });
  });

  it('an ack naming nothing this hub awaits, or a forged one, makes no collection', () => {
    const c = counter();
    const r = drainRig('required', c.heap, 1);
    r.drain(1, 5, false);
    expect(r.delivery.acknowledge(ack(['L1/1/999', 'L9/1/1'])).removed).toBe(0);
    expect(r.delivery.acknowledge(Buffer.from('{"v":1,"ids":"L1/1/1"}')).ok).toBe(false);
    expect(c.asked).toEqual({ once: 0, soon: 0 });
  });

  it('acks off: the PUBACK removes, and counts the same way', () => {
    const c = counter();
    const r = drainRig('off', c.heap);
    r.drain(1, 2_100);
    expect(r.outbox.depth().events).toBe(0);
    expect(c.asked.once).toBe(4);
    expect(c.asked.soon).toBe(1);
  });

  it('heapSettle false: nothing is asked for', () => {
    const c = counter();
    const r = drainRig('required', false);
    r.drain(1, 2_500);
    expect(r.outbox.depth().events).toBe(0);
    expect(c.asked).toEqual({ once: 0, soon: 0 });
  });
});
