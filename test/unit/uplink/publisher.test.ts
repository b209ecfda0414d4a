import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/base/clock.js';
import { Outbox } from '../../../src/events/outbox.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import type { PublishResult } from '../../../src/uplink/client.js';
import type { CmdResultPayload } from '../../../src/uplink/contract.js';
import { type AheadTicket, Publisher, type PublishPort } from '../../../src/uplink/publisher.js';
import { tempDir } from '../../helpers/tmp.js';

/** A client whose publishes wait until the test answers them, in order. */
class FakeClient implements PublishPort {
  connected = true;
  readonly sent: { topic: string; payload: string; answer: (r: PublishResult) => void }[] = [];
  readonly #listeners = new Set<() => void>();

  publish(topic: string, payload: string | Buffer): Promise<PublishResult> {
    return new Promise((answer) => this.sent.push({ topic, payload: String(payload), answer }));
  }

  on(_event: 'connected' | 'disconnected', listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The connection dropped (every waiting publish fails) and came back. */
  reconnect(): void {
    for (const s of this.sent.splice(0)) s.answer({ ok: false, permanent: false, code: 'connection-lost' });
    for (const l of this.#listeners) l();
  }
}

const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

async function rig() {
  const store = Store.open(tempDir());
  stores.push(store);
  const outbox = new Outbox(store, { clock: systemClock, log: silentLogger() });
  const client = new FakeClient();
  const publisher = new Publisher({ outbox, client, clock: systemClock, log: silentLogger() });
  publisher.start();
  const answer = (id: string): CmdResultPayload => ({ v: 1, id, ok: true, result: {} });
  /** What Inbound does: publish ahead, then queue the row and adopt it, in one transaction. */
  const ahead = (id: string): AheadTicket | undefined =>
    publisher.publishAhead('cmd/result', JSON.stringify(answer(id)));
  const record = (id: string, ticket: AheadTicket | undefined) =>
    store.transaction(() => {
      const row = outbox.enqueueMessage('cmd/result', answer(id));
      if (ticket) publisher.adopt(ticket, row);
      else publisher.kick();
    });
  const queued = () => outbox.nextMessages(100).map((m) => (JSON.parse(m.payload) as { id: string }).id);
  const settle = () => new Promise((r) => setImmediate(r));
  /** The client was sent exactly `id` (since the last reconnect); acknowledging it empties the outbox. */
  const sentOnceThenAcked = async (id: string) => {
    expect(client.sent.map((s) => (JSON.parse(s.payload) as { id: string }).id)).toEqual([id]);
    client.sent[0]?.answer({ ok: true });
    await settle();
    expect(queued()).toEqual([]);
  };
  await settle(); // the drain that start() began (an empty outbox)
  return { outbox, client, publisher, ahead, record, queued, settle, sentOnceThenAcked };
}

describe('publisher: an answer published ahead of its outbox row', () => {
  it('goes out at once, is not published again by a drain, and its PUBACK removes the row', async () => {
    const r = await rig();
    const ticket = r.ahead('c1');
    expect(ticket).toBeDefined();
    expect(r.client.sent.map((s) => s.topic)).toEqual(['cmd/result']);
    r.record('c1', ticket);
    r.publisher.kick();
    await r.settle();
    expect(r.client.sent).toHaveLength(1);
    expect(r.queued()).toEqual(['c1']);
    r.client.sent[0]?.answer({ ok: true });
    await r.settle();
    expect(r.queued()).toEqual([]);
    expect(r.publisher.stats().acknowledged).toBe(1);
  });

  it('acknowledged before its row was queued: the row is removed as it is queued', async () => {
    const r = await rig();
    const ticket = r.ahead('c1');
    r.client.sent[0]?.answer({ ok: true });
    await r.settle();
    r.record('c1', ticket);
    expect(r.queued()).toEqual([]);
    expect(r.publisher.stats().acknowledged).toBe(1);
  });

  it('failed before its row was queued: the row is published from the outbox after the reconnect', async () => {
    const r = await rig();
    const ticket = r.ahead('c1');
    r.client.connected = false;
    r.client.sent[0]?.answer({ ok: false, permanent: false, code: 'connection-lost' });
    await r.settle();
    r.record('c1', ticket);
    await r.settle();
    expect(r.client.sent).toHaveLength(1);
    expect(r.queued()).toEqual(['c1']);
    r.client.connected = true;
    r.client.reconnect();
    await r.settle();
    await r.sentOnceThenAcked('c1');
  });

  it('its PUBACK lost with the connection after the row was queued: published again on the reconnect', async () => {
    const r = await rig();
    r.record('c1', r.ahead('c1'));
    r.client.reconnect();
    await r.settle();
    await r.sentOnceThenAcked('c1');
  });

  it('sent on a connection replaced before its row was queued: the row goes out on the new one', async () => {
    const r = await rig();
    const ticket = r.ahead('c1');
    // The connection is replaced; the publish on the old one has not been answered yet.
    const old = r.client.sent.splice(0);
    r.client.reconnect();
    await r.settle();
    r.record('c1', ticket);
    await r.settle();
    old[0]?.answer({ ok: false, permanent: false, code: 'connection-lost' });
    await r.sentOnceThenAcked('c1');
  });

  it('never jumps the queue: with rows waiting or a drain under way, or offline, it is refused', async () => {
    const r = await rig();
    r.record('c1', undefined);
    // The kick started a drain: c2 must wait its turn behind c1.
    expect(r.ahead('c2')).toBeUndefined();
    await r.settle();
    expect(r.client.sent.map((s) => JSON.parse(s.payload).id)).toEqual(['c1']);
    r.client.connected = false;
    expect(r.ahead('c2')).toBeUndefined();
    r.client.connected = true;
    r.client.sent[0]?.answer({ ok: true });
    await r.publisher.stop();
    expect(r.ahead('c2')).toBeUndefined();
  });

  it('a permanent refusal after the row was queued removes the row and counts it', async () => {
    const r = await rig();
    r.record('c1', r.ahead('c1'));
    r.client.sent[0]?.answer({ ok: false, permanent: true, code: 0x87 });
    await r.settle();
    expect(r.queued()).toEqual([]);
    expect(r.publisher.stats().refused).toBe(1);
  });
});
