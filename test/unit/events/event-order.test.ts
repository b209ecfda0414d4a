import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/base/clock.js';
import { SeededRandom } from '../../../src/base/random.js';
import type { LockEvent } from '../../../src/contract/link-messages.js';
import type { EventsPayload } from '../../../src/contract/mqtt-hub-messages.js';
import { EventDelivery } from '../../../src/events/delivery.js';
import { Outbox } from '../../../src/events/outbox.js';
import type { StoredEvent } from '../../../src/link/pairing.js';
import { silentLogger } from '../../../src/log/logger.js';
import type { PublishResult } from '../../../src/uplink/mqtt-client.js';
import { Publisher, type PublishPort } from '../../../src/uplink/publisher.js';
import { tempStore } from '../../helpers/temp-store.js';

/**
 * The hub's order guarantee (docs/mqtt-api.md, "Event order"): on each connection, no event of a
 * lock is published before every earlier event of that lock still awaiting the cloud's ack has
 * been published on that same connection. A copy the broker lost (no subscriber yet, an outage)
 * is made good only by a resend, so the cloud may receive it after later ones: it orders by seq.
 */

const T0 = Date.UTC(2026, 0, 1);

/** A connection whose publishes wait until the test answers them; it can drop and come back. */
class FakeClient implements PublishPort {
  connected = true;
  /** Publishes of the current connection, not yet answered. */
  readonly waiting: { ids: string[]; answer: (r: PublishResult) => void }[] = [];
  /** Every events publish of each connection, in order (index = connection number). */
  readonly log: string[][] = [[]];
  readonly #listeners = new Set<() => void>();

  publish(topic: string, payload: string | Buffer): Promise<PublishResult> {
    if (!this.connected) return Promise.resolve({ ok: false, permanent: false, code: 'connection-lost' });
    const ids = topic === 'events' ? (JSON.parse(String(payload)) as EventsPayload).events.map((e) => e.id) : [];
    this.log.at(-1)?.push(...ids);
    return new Promise((answer) => this.waiting.push({ ids, answer }));
  }

  on(event: 'connected' | 'disconnected', listener: () => void): () => void {
    if (event !== 'connected') return () => {};
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The broker took every waiting publish (PUBACK); returns the event ids. */
  pubackAll(): string[] {
    const ids: string[] = [];
    for (const w of this.waiting.splice(0)) {
      ids.push(...w.ids);
      w.answer({ ok: true });
    }
    return ids;
  }

  drop(): void {
    this.connected = false;
    for (const w of this.waiting.splice(0)) w.answer({ ok: false, permanent: false, code: 'connection-lost' });
  }

  reconnect(): void {
    this.connected = true;
    this.log.push([]);
    for (const l of this.#listeners) l();
  }
}

function events(lockId: string, from: number, to: number): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (let seq = from; seq <= to; seq++) {
    const e = { seq, at: T0 + seq, type: 'tamper' } as LockEvent;
    out.push({ lockId, epoch: 1, event: e, receivedAt: T0 + seq });
  }
  return out;
}

const settle = async () => {
  for (let i = 0; i < 8; i++) await new Promise((r) => setImmediate(r));
};
const ack = (ids: string[]) => Buffer.from(JSON.stringify({ v: 1, ids }));

function rig(batchSize = 2) {
  const store = tempStore();
  const clock = new VirtualClock(T0);
  const log = silentLogger();
  const outbox = new Outbox(store, { clock, log });
  const client = new FakeClient();
  const delivery = new EventDelivery({
    store,
    outbox,
    clock,
    log,
    mode: 'required',
    ackTimeoutMs: 10_000,
    faultAfterMs: 600_000,
    eventsTopic: () => 'ks/hubs/hub-1/events',
    connected: () => client.connected,
  });
  const publisher = new Publisher({ outbox, client, clock, log, delivery, batchSize, inflight: 4 });
  publisher.start();
  delivery.start();
  const next = new Map<string, number>();
  const queue = async (lockId: string, n: number) => {
    const from = next.get(lockId) ?? 1;
    next.set(lockId, from + n);
    store.transaction(() => outbox.enqueueEvents(events(lockId, from, from + n - 1)));
    publisher.kick();
    await settle();
  };
  const queuedIds = () => outbox.nextEventBatch(500, 10_000_000)?.payload.events.map((e) => e.id) ?? [];
  return { store, clock, outbox, client, delivery, publisher, queue, queuedIds };
}

const seqOf = (id: string) => Number(id.split('/')[2]);
const lockOf = (id: string) => id.split('/')[0] as string;

describe('event order across an outage (the demo: events made after the outage, a backlog lost by the broker)', () => {
  it('after the reconnect the unacknowledged backlog is published first, in outbox order, then the events made during the outage', async () => {
    const r = rig();
    await r.queue('L1', 3);
    await r.queue('L2', 2);
    // The broker took them (PUBACK) but the cloud never got them: they await its ack.
    expect(r.client.pubackAll()).toEqual(['L1/1/1', 'L1/1/2', 'L1/1/3', 'L2/1/1', 'L2/1/2']);
    await settle();
    expect(r.delivery.health().unacknowledged).toBe(5);

    // The outage: a publish in flight is lost with the connection; new events wait in the outbox.
    await r.queue('L1', 1);
    r.client.drop();
    await settle();
    await r.queue('L1', 2);
    await r.queue('L2', 1);
    expect(r.client.waiting).toHaveLength(0);

    r.client.reconnect();
    await settle();
    for (let i = 0; i < 10 && r.client.waiting.length > 0; i++) {
      r.client.pubackAll();
      await settle();
    }
    // Everything queued, oldest first: the backlog before anything made during the outage.
    expect(r.client.log[1]).toEqual([
      'L1/1/1',
      'L1/1/2',
      'L1/1/3',
      'L2/1/1',
      'L2/1/2',
      'L1/1/4',
      'L1/1/5',
      'L1/1/6',
      'L2/1/3',
    ]);
    expect(r.queuedIds()).toEqual(r.client.log[1]);
  });

  it('a copy lost after its PUBACK is resent from the oldest after the ack timeout; newer events went on meanwhile (no round trip per event)', async () => {
    const r = rig();
    await r.queue('L1', 2);
    r.client.pubackAll(); // lost by the broker: no ack comes
    await settle();
    await r.queue('L1', 2);
    expect(r.client.pubackAll()).toEqual(['L1/1/3', 'L1/1/4']); // not held back behind the unacknowledged ones
    await settle();
    r.delivery.acknowledge(ack(['L1/1/3', 'L1/1/4']));
    await r.clock.advance(10_000);
    await settle();
    expect(r.client.pubackAll()).toEqual(['L1/1/1', 'L1/1/2']);
  });

  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`on every connection, no event of a lock goes before an earlier unacknowledged one (seed ${seed})`, async () => {
      const r = rig(1 + (seed % 3));
      const random = new SeededRandom(`event-order-${seed}`);
      const locks = ['L1', 'L2', 'L3'];
      /** Events published on the current connection so far. */
      let onThisConnection = new Set<string>();
      let checked = 0;
      const verify = () => {
        const log = r.client.log.at(-1) ?? [];
        const queued = r.queuedIds();
        for (; checked < log.length; checked++) {
          const id = log[checked] as string;
          // Every earlier event of the lock still queued (unacknowledged) went out on this connection before it.
          for (const q of queued) {
            if (lockOf(q) === lockOf(id) && seqOf(q) < seqOf(id)) {
              expect(onThisConnection.has(q), `${id} published before ${q} on this connection`).toBe(true);
            }
          }
          onThisConnection.add(id);
        }
      };
      const reconnect = () => {
        verify();
        onThisConnection = new Set();
        checked = 0;
        r.client.reconnect();
      };
      for (let step = 0; step < 150; step++) {
        const roll = random.int(10);
        if (roll < 4) await r.queue(locks[random.int(locks.length)] as string, 1 + random.int(3));
        else if (roll < 6 && r.client.connected) {
          const n = random.int(r.client.waiting.length + 1);
          for (const w of r.client.waiting.splice(0, n)) w.answer({ ok: true });
        } else if (roll === 6 && r.client.connected) {
          r.client.drop();
        } else if (roll === 7 && !r.client.connected) reconnect();
        else if (roll === 8) {
          // The cloud acknowledges some of what it got (copies lost by the broker are never acked).
          const got = (r.client.log.at(-1) ?? []).filter(() => random.int(3) !== 0);
          if (got.length > 0) r.delivery.acknowledge(ack([...new Set(got)].slice(0, 500)));
        } else await r.clock.advance(random.int(12_000));
        await settle();
        verify();
      }
      // In the end, with the line up and every copy acknowledged, nothing is left.
      if (!r.client.connected) reconnect();
      for (let i = 0; i < 100 && r.queuedIds().length > 0; i++) {
        await settle();
        const sent = r.client.pubackAll();
        await settle();
        verify();
        if (sent.length > 0) r.delivery.acknowledge(ack([...new Set(sent)].slice(0, 500)));
        await r.clock.advance(10_000);
      }
      expect(r.queuedIds()).toEqual([]);
    });
  }
});
