import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDevPki, type DevPkiPaths } from '../../provisioning/dev-pki.js';
import { startEmbeddedBroker } from '../../sim/broker/embedded-broker.js';
import { systemClock } from '../../src/base/clock.js';
import { HubError } from '../../src/base/errors.js';
import { SeededRandom } from '../../src/base/random.js';
import type { LockEvent } from '../../src/contract/link-messages.js';
import type {
  CloudEvent,
  EventsPayload,
  LockStatePayload,
  StatusPayload,
} from '../../src/contract/mqtt-hub-messages.js';
import { conforms } from '../../src/contract/mqtt-validate.js';
import { COUNTER_REFUSED, Outbox } from '../../src/events/outbox.js';
import type { StoredEvent } from '../../src/link/pairing.js';
import { type Logger, silentLogger } from '../../src/log/logger.js';
import { Store } from '../../src/store/store.js';
import { type PublishResult, UplinkClient, type UplinkClientOptions } from '../../src/uplink/mqtt-client.js';
import { Publisher } from '../../src/uplink/publisher.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';

// The hub's uplink (UplinkClient + Outbox + Publisher) against real brokers: the embedded aedes
// broker of `npm start` (MQTT 3.1.1) and mosquitto (MQTT 5). The hub reaches the broker through a
// TCP gate the test controls (cut = a network failure, block = the broker unreachable); the cloud
// is a plain mqtt.js client connected directly.

const HUB = 'hub-a';
const CLOUD = 'cloud';
const STARTED_AT = Date.UTC(2026, 0, 1, 12);
const T0 = Date.UTC(2026, 0, 1);

let root: string;
let pki: DevPkiPaths;
const pem = (p: string) => readFileSync(p);

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'iqhub-uplink-'));
  pki = createDevPki({ dir: join(root, 'pki'), hubId: HUB, cloudId: CLOUD });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

// ----- test plumbing -------------------------------------------------------------------------

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP relay between the hub and the broker: cut (network failure), block (unreachable), freeze (no answers). */
class Gate {
  open = true;
  readonly #pairs = new Set<{ hub: Socket; broker: Socket }>();
  private constructor(
    readonly server: Server,
    public target: number,
  ) {}

  static async start(target: number): Promise<Gate> {
    const server = createServer();
    const gate = new Gate(server, target);
    server.on('connection', (hub) => gate.#relay(hub));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return gate;
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  #relay(hub: Socket): void {
    if (!this.open) {
      hub.destroy();
      return;
    }
    const broker = tcpConnect(this.target, '127.0.0.1');
    hub.setNoDelay(true);
    broker.setNoDelay(true);
    const pair = { hub, broker };
    this.#pairs.add(pair);
    const kill = () => {
      hub.destroy();
      broker.destroy();
      this.#pairs.delete(pair);
    };
    for (const s of [hub, broker]) {
      s.on('error', kill);
      s.on('close', kill);
    }
    hub.pipe(broker);
    broker.pipe(hub);
  }

  get connections(): number {
    return this.#pairs.size;
  }

  /** Both ends see the connection drop, without an MQTT DISCONNECT: the broker sends the last will. */
  cut(): void {
    for (const p of [...this.#pairs]) {
      p.hub.destroy();
      p.broker.destroy();
    }
    this.#pairs.clear();
  }

  /** Nothing from the broker reaches the hub any more (PUBACKs included); the hub's bytes still flow. */
  freeze(): void {
    for (const p of this.#pairs) {
      p.broker.unpipe(p.hub);
      p.broker.pause();
    }
  }

  block(): void {
    this.open = false;
    this.cut();
  }

  unblock(): void {
    this.open = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((r) => this.server.close(r));
  }
}

interface TestBroker {
  name: string;
  v: 5 | 4;
  port: number;
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function aedesBroker(): Promise<TestBroker> {
  const opts = { ca: pem(pki.ca.cert), cert: pem(pki.broker.cert), key: pem(pki.broker.key), cloudIds: [CLOUD] };
  let b: Awaited<ReturnType<typeof startEmbeddedBroker>> | undefined = await startEmbeddedBroker(opts);
  const port = b.port;
  return {
    name: 'aedes',
    v: 4,
    port,
    url: b.url,
    async stop() {
      await b?.close();
      b = undefined;
    },
    async start() {
      b ??= await startEmbeddedBroker({ ...opts, port });
    },
    async close() {
      await b?.close();
      b = undefined;
    },
  };
}

function mosquittoBroker(m: Mosquitto): TestBroker {
  return { name: 'mosquitto', v: 5, port: m.port, url: m.url, stop: m.stop, start: m.start, close: m.close };
}

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

/** The reference cloud's part in these tests: a plain mqtt.js client with the cloud certificate. */
async function cloudClient(b: TestBroker, filter = `ks/hubs/${HUB}/#`): Promise<{ mc: MqttClient; got: Received[] }> {
  const opts: IClientOptions = {
    ca: pem(pki.ca.cert),
    cert: pem(pki.cloud.cert),
    key: pem(pki.cloud.key),
    servername: 'localhost',
    rejectUnauthorized: true,
    protocolVersion: b.v,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  };
  const mc = connect(b.url, opts);
  cleanups.push(() => mc.endAsync(true));
  mc.on('error', () => {}); // a broker stopped under it: the test notices by what stops arriving
  const got: Received[] = [];
  mc.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
  await new Promise<void>((resolve, reject) => {
    mc.once('connect', () => resolve());
    mc.once('error', reject);
  });
  await mc.subscribeAsync(filter, { qos: 1 });
  return { mc, got };
}

/** Events the cloud received, in arrival order (duplicates included). */
function eventsIn(got: Received[]): CloudEvent[] {
  return got
    .filter((m) => m.topic === `ks/hubs/${HUB}/events`)
    .flatMap((m) => {
      const p = JSON.parse(m.payload) as EventsPayload;
      expect(conforms('events', p)).toBe(true);
      return p.events;
    });
}

/** Deduplicate by id (first arrival wins) and check every lock's events arrived complete and in order. */
function checkDelivered(events: CloudEvent[], expected: Map<string, number>): { unique: number; duplicates: number } {
  const seen = new Set<string>();
  const perLock = new Map<string, number[]>();
  for (const e of events) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    perLock.set(e.lockId, [...(perLock.get(e.lockId) ?? []), e.seq]);
  }
  for (const [lock, n] of expected) {
    expect(perLock.get(lock), `lock ${lock}`).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  }
  return { unique: seen.size, duplicates: events.length - seen.size };
}

function statuses(got: Received[]): (StatusPayload & { retain: boolean })[] {
  return got
    .filter((m) => m.topic === `ks/hubs/${HUB}/status`)
    .map((m) => ({ ...(JSON.parse(m.payload) as StatusPayload), retain: m.retain }));
}

/** Events for `locks` lock ids, numbered from `from`, interleaved round-robin. */
function lockEvents(locks: string[], from: number, perLock: number): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (let i = 0; i < perLock; i++) {
    for (const lockId of locks) {
      const seq = from + i;
      const event: LockEvent =
        seq % 5 === 0
          ? { seq, at: T0 + seq, type: 'opened', by: 'pin', credentialId: `pin-${seq % 7}` }
          : { seq, at: T0 + seq, type: 'door', open: seq % 2 === 0 };
      out.push({ lockId, epoch: 1, event, receivedAt: T0 + seq + 5 });
    }
  }
  return out;
}

function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Hub {
  store: Store;
  outbox: Outbox;
  client: UplinkClient;
  publisher: Publisher;
  events: string[];
  enqueue(events: StoredEvent[]): void;
}

function clientOptions(port: number, v: 5 | 4, over: Partial<UplinkClientOptions> = {}): UplinkClientOptions {
  return {
    url: `mqtts://127.0.0.1:${port}`,
    hubId: HUB,
    ca: pem(pki.ca.cert),
    cert: pem(pki.hub.cert),
    key: pem(pki.hub.key),
    serverName: 'localhost',
    protocolVersion: v,
    keepaliveSec: 10,
    sessionExpirySec: 600,
    reconnectBaseMs: 50,
    reconnectMaxMs: 400,
    clock: systemClock,
    random: new SeededRandom('uplink-test'),
    log: silentLogger(),
    version: '0.1.0-test',
    startedAt: STARTED_AT,
    ...over,
  };
}

function startHub(port: number, v: 5 | 4, over: Partial<UplinkClientOptions> = {}): Hub {
  const store = Store.open(mkdtempSync(join(root, 'hub-')));
  const outbox = new Outbox(store, { clock: systemClock, log: silentLogger() });
  const client = new UplinkClient(clientOptions(port, v, over));
  const publisher = new Publisher({ outbox, client, clock: systemClock, log: silentLogger() });
  const events: string[] = [];
  client.on('connected', () => events.push('connected'));
  client.on('disconnected', () => events.push('disconnected'));
  publisher.start();
  client.start();
  cleanups.push(async () => {
    await publisher.stop();
    await client.stop();
    store.close();
  });
  return {
    store,
    outbox,
    client,
    publisher,
    events,
    enqueue(fresh) {
      store.transaction(() => outbox.enqueueEvents(fresh));
      publisher.kick();
    },
  };
}

// ----- without a broker ----------------------------------------------------------------------

describe('uplink client: refusals and reconnection', () => {
  it('refuses a plaintext or websocket URL and unusable TLS material', () => {
    const code = (over: Partial<UplinkClientOptions>) => {
      try {
        new UplinkClient(clientOptions(8883, 5, over));
        return 'accepted';
      } catch (e) {
        return e instanceof HubError ? e.code : 'other';
      }
    };
    expect(code({ url: 'mqtt://127.0.0.1:1883' })).toBe('uplink.insecure-url');
    expect(code({ url: 'ws://127.0.0.1:8080' })).toBe('uplink.insecure-url');
    expect(code({ url: 'wss://127.0.0.1:8080' })).toBe('uplink.insecure-url');
    expect(code({ url: 'not a url' })).toBe('uplink.bad-url');
    expect(code({ hubId: 'a/b' })).toBe('uplink.bad-hub-id');
    expect(code({ key: pem(pki.cloud.key) })).toBe('uplink.tls-material');
    expect(code({})).toBe('accepted');
  });

  it('keeps retrying with capped, fully jittered exponential backoff, logging codes and no key material', async () => {
    // A port nobody listens on.
    const gate = await Gate.start(1);
    const port = gate.port;
    await gate.close();
    const { log, lines } = capturingLogger();
    const client = new UplinkClient(clientOptions(port, 5, { log, reconnectBaseMs: 20, reconnectMaxMs: 160 }));
    cleanups.push(() => client.stop());
    client.start();
    await until('eight attempts', () => client.state().attempt >= 8);
    const retries = lines.filter((l) => l.msg === 'uplink: cannot connect to the broker; retrying');
    expect(retries.length).toBeGreaterThanOrEqual(8);
    retries.forEach((l, i) => {
      expect(l.level).toBe(40);
      expect(l.code).toBe('ECONNREFUSED');
      expect(l.retryInMs).toBeLessThan(Math.min(160, 20 * 2 ** i));
    });
    const text = JSON.stringify(lines);
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain('BEGIN CERTIFICATE');
    expect(client.state()).toMatchObject({ lastError: 'ECONNREFUSED' });
    expect(['connecting', 'disconnected']).toContain(client.state().state);
    expect(await client.publish('events', '{}')).toEqual({ ok: false, permanent: false, code: 'not-connected' });
  });
});

// ----- against each broker -------------------------------------------------------------------

const mosquittoBin = requireMosquitto();
const brokers: { name: string; skip: boolean; make: () => Promise<TestBroker> }[] = [
  { name: 'embedded aedes, MQTT 3.1.1', skip: false, make: aedesBroker },
  {
    name: mosquittoBin ? 'mosquitto, MQTT 5' : `mosquitto — SKIPPED: ${MOSQUITTO_MISSING}`,
    skip: !mosquittoBin,
    make: async () => {
      const m = await startMosquitto({ pkiDir: pki.dir, cloudIds: [CLOUD] });
      if (!m) throw new Error('mosquitto vanished');
      return mosquittoBroker(m);
    },
  },
];

for (const spec of brokers) {
  describe.skipIf(spec.skip)(`uplink against ${spec.name}`, () => {
    let broker: TestBroker;
    let gate: Gate;
    beforeAll(async () => {
      broker = await spec.make();
      gate = await Gate.start(broker.port);
    });
    afterAll(async () => {
      await gate?.close();
      await broker?.close();
    });
    afterEach(() => gate.unblock());

    it('connects with its certificate, pins the server name, and announces itself online (retained)', async () => {
      const hub = startHub(gate.port, broker.v);
      await until('connected', () => hub.client.connected);
      expect(hub.events).toEqual(['connected']);
      expect(hub.client.state()).toMatchObject({ state: 'connected', lastError: null });

      // A cloud that subscribes later still gets the retained status.
      const cloud = await cloudClient(broker, `ks/hubs/${HUB}/status`);
      await until('retained status', () => cloud.got.length > 0);
      const [status] = statuses(cloud.got);
      expect(status).toMatchObject({
        v: 1,
        state: 'online',
        version: '0.1.0-test',
        startedAt: new Date(STARTED_AT).toISOString(),
        retain: true,
      });
      const { retain: _, ...payload } = status as StatusPayload & { retain: boolean };
      expect(conforms('status', payload)).toBe(true);

      // Commands reach it on its own topic only.
      const inbound: [string, string][] = [];
      hub.client.onMessage((t, p) => {
        inbound.push([t, p.toString()]);
      });
      await cloud.mc.publishAsync(`ks/hubs/${HUB}/cmd`, '{"v":1,"id":"c1","op":"ping"}', { qos: 1 });
      await cloud.mc.publishAsync(`ks/hubs/${HUB}/sync`, '{"v":1}', { qos: 1 });
      await until('inbound', () => inbound.length === 2);
      expect(inbound).toEqual([
        ['cmd', '{"v":1,"id":"c1","op":"ping"}'],
        ['sync', '{"v":1}'],
      ]);

      // Another pinned name: the broker's certificate is refused, and the client keeps trying.
      const wrong = new UplinkClient(clientOptions(gate.port, broker.v, { serverName: 'broker.example.com' }));
      cleanups.push(() => wrong.stop());
      wrong.start();
      await until('refusals', () => wrong.state().attempt >= 2);
      expect(wrong.state()).toMatchObject({ lastError: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      expect(wrong.connected).toBe(false);
    });

    it('a killed connection publishes the last will (offline, connection-lost); the hub comes back online', async () => {
      const cloud = await cloudClient(broker, `ks/hubs/${HUB}/status`);
      const hub = startHub(gate.port, broker.v);
      await until('connected', () => hub.client.connected);
      await until('online', () => statuses(cloud.got).some((s) => s.state === 'online'));
      cloud.got.length = 0;

      gate.block(); // a network failure: the socket is destroyed, no DISCONNECT
      await until('last will', () => statuses(cloud.got).some((s) => s.state === 'offline'));
      expect(statuses(cloud.got)[0]).toMatchObject({ v: 1, state: 'offline', reason: 'connection-lost' });
      await until('disconnected', () => hub.events.includes('disconnected'));
      expect(hub.client.connected).toBe(false);

      gate.unblock();
      await until('back online', () => statuses(cloud.got).some((s) => s.state === 'online'));
      // The online status may reach the cloud before the client reports itself connected (it
      // publishes it first, then finishes its subscriptions): wait for the report too.
      await until('reconnected', () => hub.events.length >= 3);
      expect(hub.events).toEqual(['connected', 'disconnected', 'connected']);

      // A clean stop says why, and leaves no last will behind.
      cloud.got.length = 0;
      await hub.publisher.stop();
      await hub.client.stop();
      await until('shutdown status', () => cloud.got.length > 0);
      await pause(200);
      expect(statuses(cloud.got)).toEqual([
        expect.objectContaining({ state: 'offline', reason: 'shutdown', retain: expect.any(Boolean) }),
      ]);
      expect(hub.client.state().state).toBe('disconnected');
    });

    it('drains 1,000 queued events in per-lock order, each acknowledged row removed', async () => {
      const cloud = await cloudClient(broker);
      const locks = ['L1', 'L2', 'L3', 'L4'];
      const hub = startHub(gate.port, broker.v);
      // Queued before the connection exists, in several transactions, like a backlog.
      for (let from = 1; from <= 250; from += 50) hub.enqueue(lockEvents(locks, from, 50));
      expect(hub.outbox.depth().events).toBe(1_000);
      const t0 = performance.now();
      await until('all delivered', () => hub.outbox.depth().events === 0 && eventsIn(cloud.got).length >= 1_000);
      const ms = performance.now() - t0;
      const delivered = checkDelivered(eventsIn(cloud.got), new Map(locks.map((l) => [l, 250])));
      expect(delivered.unique).toBe(1_000);
      expect(delivered.duplicates).toBe(0);
      expect(hub.publisher.stats()).toMatchObject({ acknowledged: 1_000, refused: 0 });
      // 100 events per message by default.
      expect(cloud.got.filter((m) => m.topic.endsWith('/events'))).toHaveLength(10);
      console.log(`[${spec.name}] 1,000 events drained in ${ms.toFixed(0)} ms`);
    });

    it('while the broker is down rows stay queued; when it is back every event arrives once per id, in order', async () => {
      const locks = ['L1', 'L2', 'L3'];
      let cloud = await cloudClient(broker);
      const hub = startHub(gate.port, broker.v);
      await until('connected', () => hub.client.connected);
      hub.enqueue(lockEvents(locks, 1, 40));
      await until('first part', () => eventsIn(cloud.got).length === 120 && hub.outbox.depth().events === 0);
      const before = eventsIn(cloud.got);

      // The broker stops; the hub cannot reach it even when it is back, until the gate opens.
      gate.block();
      await broker.stop();
      await until('hub disconnected', () => !hub.client.connected);
      for (let from = 41; from <= 200; from += 20) {
        hub.enqueue(lockEvents(locks, from, 20));
        await pause(20);
      }
      await pause(300);
      expect(hub.outbox.depth().events).toBe(480);
      expect(hub.publisher.stats()).toMatchObject({ inflight: 0 });

      await broker.start();
      cloud = await cloudClient(broker); // the cloud is back first (the restarted broker kept no session)
      gate.unblock();
      await until('hub reconnected', () => hub.client.connected, 15_000);
      await until('second part', () => hub.outbox.depth().events === 0 && eventsIn(cloud.got).length >= 480);
      const delivered = checkDelivered([...before, ...eventsIn(cloud.got)], new Map(locks.map((l) => [l, 200])));
      expect(delivered.unique).toBe(600);
    });

    it('a publish waiting for its PUBACK when the connection dies fails as transient; the row is published again', async () => {
      const cloud = await cloudClient(broker);
      const hub = startHub(gate.port, broker.v);
      await until('connected', () => hub.client.connected);

      gate.freeze(); // the broker still receives, but no PUBACK comes back
      const direct = hub.client.publish('cmd/result', JSON.stringify({ v: 1, id: 'r1', ok: true }));
      hub.enqueue(lockEvents(['L1'], 1, 10));
      await until('the broker forwarded them', () => eventsIn(cloud.got).length === 10);
      await pause(100);
      expect(hub.outbox.depth().events).toBe(10); // not acknowledged: still queued
      let settled: PublishResult | undefined;
      void direct.then((r) => {
        settled = r;
      });
      expect(settled).toBeUndefined();

      gate.cut();
      expect(await direct).toEqual({ ok: false, permanent: false, code: 'connection-lost' });
      await until('republished and acknowledged', () => hub.outbox.depth().events === 0, 15_000);
      const delivered = checkDelivered(eventsIn(cloud.got), new Map([['L1', 10]]));
      expect(delivered.unique).toBe(10);
      expect(delivered.duplicates).toBe(10); // at least once: the cloud deduplicates by id
    });
  });
}

// ----- ACL refusal (MQTT 5 PUBACK 0x87: mosquitto only) -------------------------------------------

describe.skipIf(!mosquittoBin)(
  mosquittoBin ? 'uplink against mosquitto: ACL refusal' : `ACL refusal — SKIPPED: ${MOSQUITTO_MISSING}`,
  () => {
    let m: Mosquitto;
    beforeAll(async () => {
      const started = await startMosquitto({ pkiDir: pki.dir, cloudIds: [CLOUD] });
      if (!started) throw new Error('mosquitto vanished');
      m = started;
      // Narrower than the usual `ks/hubs/%u/#`: the hub may not publish the state of lock L9.
      const acl = [
        ...['status', 'events', 'cmd', 'cmd/result', 'sync', 'sync/ack', 'health', 'locks/L1/state'].map(
          (t) => `pattern readwrite ks/hubs/%u/${t}`,
        ),
        '',
        `user ${CLOUD}`,
        'topic readwrite ks/hubs/#',
      ];
      writeFileSync(join(m.dir, 'acl'), `${acl.join('\n')}\n`);
      await m.stop();
      await m.start();
    });
    afterAll(() => m?.close());

    it('a refused publish is removed and counted, not retried; the rest goes on over the same connection', async () => {
      const b = mosquittoBroker(m);
      const cloud = await cloudClient(b);
      const hub = startHub(m.port, 5);
      const state = (lockId: string): LockStatePayload => ({
        v: 1,
        lockId,
        pairing: 'bound',
        connected: true,
        at: new Date(T0).toISOString(),
      });
      hub.store.transaction(() => {
        hub.outbox.enqueueEvents(lockEvents(['L1'], 1, 50));
        hub.outbox.enqueueMessage('locks/L9/state', state('L9'), { retain: true, replace: true });
        hub.outbox.enqueueEvents(lockEvents(['L1'], 51, 50));
        hub.outbox.enqueueMessage('locks/L1/state', state('L1'), { retain: true, replace: true });
      });
      hub.publisher.kick();
      await until('drained', () => {
        const d = hub.outbox.depth();
        return d.events + d.messages === 0 && cloud.got.some((x) => x.topic.endsWith('/locks/L1/state'));
      });
      await until('all events', () => eventsIn(cloud.got).length >= 100);
      expect(checkDelivered(eventsIn(cloud.got), new Map([['L1', 100]])).unique).toBe(100);
      expect(cloud.got.some((x) => x.topic.endsWith('/locks/L9/state'))).toBe(false);
      expect(hub.outbox.counter(COUNTER_REFUSED)).toBe(1);
      expect(hub.publisher.stats()).toMatchObject({ acknowledged: 101, refused: 1 });
      expect(hub.events).toEqual(['connected']); // the connection stayed up
      expect(await hub.client.publish('locks/L9/state', '{}')).toEqual({ ok: false, permanent: true, code: 135 });
    });
  },
);
