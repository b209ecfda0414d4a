import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertKeyPaths,
  createDevPki,
  createForeignCa,
  type DevPkiPaths,
  issueClientCert,
} from '../../provisioning/dev-pki.js';
import { type EmbeddedBroker, filterWithin, startEmbeddedBroker } from '../../sim/broker/embedded-broker.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';

// Mutual TLS and the per-hub topic ACL, against real mosquitto (MQTT 5 and 3.1.1) and against the
// embedded aedes broker of `npm start` (3.1.1 only), with plain mqtt.js clients.

const HUB_A = 'hub-a';
const HUB_B = 'hub-b';
const CLOUD = 'cloud';
/** How long "nothing arrives" is watched, after a positive control has arrived. */
const QUIET_MS = 250;

let root: string;
let pki: DevPkiPaths;
let hubB: CertKeyPaths;
let foreign: CertKeyPaths;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'iqhub-mqtt-tls-'));
  pki = createDevPki({ dir: join(root, 'pki'), hubId: HUB_A, cloudId: CLOUD });
  hubB = issueClientCert({ dir: pki.dir, cn: HUB_B, fileName: 'hub-b' });
  // Another CA's certificate claiming hub A's name: an impersonation attempt.
  foreign = createForeignCa(join(root, 'foreign'), HUB_A).client;
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

const clients: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

function tlsOptions(pair: CertKeyPaths | undefined, extra: IClientOptions = {}): IClientOptions {
  return {
    ca: readFileSync(pki.ca.cert),
    ...(pair ? { cert: readFileSync(pair.cert), key: readFileSync(pair.key) } : {}),
    servername: 'localhost',
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...extra,
  };
}

/** Connect; reject on any error or close before CONNACK. */
function open(url: string, opts: IClientOptions): Promise<MqttClient> {
  const client = connect(url, opts);
  clients.push(client);
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
    client.once('close', () => reject(new Error('connection closed before CONNACK')));
  });
}

/** The error of a connection that must be refused; fails the test if it connects. */
async function refused(url: string, opts: IClientOptions): Promise<NodeJS.ErrnoException> {
  const outcome = await open(url, opts).then(
    () => undefined,
    (e: NodeJS.ErrnoException) => e,
  );
  if (!outcome) throw new Error('the connection was accepted, but should have been refused');
  return outcome;
}

interface Received {
  topic: string;
  payload: string;
}

function inbox(client: MqttClient): Received[] {
  const got: Received[] = [];
  client.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  return got;
}

async function until(what: string, cond: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const quiet = () => new Promise((r) => setTimeout(r, QUIET_MS));

/**
 * Hub A connects with a last will on `willTopic`, then drops without DISCONNECT. Returns the
 * payloads a cloud observer on `ks/hubs/#` saw, after a positive control from hub B.
 */
async function willSeenByCloud(url: string, willTopic: string, protocolVersion: 4 | 5): Promise<string[]> {
  const cloud = await open(url, tlsOptions(pki.cloud, { protocolVersion }));
  const seen = inbox(cloud);
  await cloud.subscribeAsync('ks/hubs/#', { qos: 1 });
  const will = { topic: willTopic, payload: Buffer.from('offline'), qos: 1 as const, retain: false };
  const a = await open(url, tlsOptions(pki.hub, { protocolVersion, will })).catch(() => undefined);
  a?.stream.destroy();
  await new Promise((r) => setTimeout(r, 50));
  const b = await open(url, tlsOptions(hubB, { protocolVersion }));
  await b.publishAsync(`ks/hubs/${HUB_B}/health`, 'control', { qos: 1 });
  await until('the positive control', () => seen.some((m) => m.payload === 'control'));
  await quiet();
  return seen.map((m) => `${m.topic} ${m.payload}`);
}

/**
 * The cloud, subscribed to every hub's events, gets both hubs' events, and each hub gets the
 * command the cloud sent to its own topic (the same contract on both brokers).
 */
async function expectCloudReachesEveryHub(url: string, versions: { cloud: 4 | 5; a: 4 | 5; b: 4 | 5 }): Promise<void> {
  const cloud = await open(url, tlsOptions(pki.cloud, { protocolVersion: versions.cloud }));
  const cloudGot = inbox(cloud);
  await cloud.subscribeAsync('ks/hubs/+/events', { qos: 1 });
  const a = await open(url, tlsOptions(pki.hub, { protocolVersion: versions.a }));
  const b = await open(url, tlsOptions(hubB, { protocolVersion: versions.b }));
  const aGot = inbox(a);
  const bGot = inbox(b);
  await a.subscribeAsync(`ks/hubs/${HUB_A}/cmd`, { qos: 1 });
  await b.subscribeAsync(`ks/hubs/${HUB_B}/cmd`, { qos: 1 });
  await a.publishAsync(`ks/hubs/${HUB_A}/events`, 'from-a', { qos: 1 });
  await b.publishAsync(`ks/hubs/${HUB_B}/events`, 'from-b', { qos: 1 });
  await cloud.publishAsync(`ks/hubs/${HUB_A}/cmd`, 'to-a', { qos: 1 });
  await cloud.publishAsync(`ks/hubs/${HUB_B}/cmd`, 'to-b', { qos: 1 });
  await until('all four', () => cloudGot.length === 2 && aGot.length === 1 && bGot.length === 1);
  expect(cloudGot.map((m) => m.payload).sort()).toEqual(['from-a', 'from-b']);
  expect([aGot[0]?.payload, bGot[0]?.payload]).toEqual(['to-a', 'to-b']);
}

const mosquittoBin = requireMosquitto();
if (!mosquittoBin) console.warn(`mqtt-tls.test.ts: ${MOSQUITTO_MISSING}`);

describe.skipIf(!mosquittoBin)(
  mosquittoBin ? 'real mosquitto: mutual TLS and per-hub ACL' : `real mosquitto — SKIPPED: ${MOSQUITTO_MISSING}`,
  () => {
    let broker: Mosquitto;
    beforeAll(async () => {
      const b = await startMosquitto({ pkiDir: pki.dir, cloudIds: [CLOUD] });
      if (!b) throw new Error('mosquitto vanished');
      broker = b;
    });
    afterAll(() => broker?.close());

    it.each([5, 4] as const)(
      'the hub connects with its certificate over MQTT %i and uses its own topics',
      async (v) => {
        const hub = await open(broker.url, tlsOptions(pki.hub, { protocolVersion: v }));
        const got = inbox(hub);
        await hub.subscribeAsync(`ks/hubs/${HUB_A}/cmd`, { qos: 1 });
        await hub.publishAsync(`ks/hubs/${HUB_A}/cmd`, 'own', { qos: 1 });
        await until('own message', () => got.length === 1);
        expect(got[0]).toEqual({ topic: `ks/hubs/${HUB_A}/cmd`, payload: 'own' });
      },
    );

    it('refuses a client without a certificate', async () => {
      const err = await refused(broker.url, tlsOptions(undefined, { protocolVersion: 5 }));
      expect(err.code).toMatch(/CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE/);
    });

    it("refuses a certificate from another CA, even one carrying the hub's CN", async () => {
      const err = await refused(broker.url, tlsOptions(foreign, { protocolVersion: 5 }));
      expect(err.code).toBe('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA');
    });

    it('a client pinning another server name refuses the broker', async () => {
      const err = await refused(broker.url, tlsOptions(pki.hub, { servername: 'broker.example.com' }));
      expect(err.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    });

    it('a client pinning another CA refuses the broker', async () => {
      const ca = readFileSync(join(root, 'foreign/foreign-ca.crt'));
      const err = await refused(broker.url, tlsOptions(pki.hub, { ca }));
      // mosquitto (OpenSSL) sends its CA with its certificate, so the chain ends in an untrusted root.
      expect(err.code).toMatch(/^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/);
    });

    it("MQTT 5: hub A publishing to hub B's topic gets PUBACK 0x87 and the message goes nowhere", async () => {
      const cloud = await open(broker.url, tlsOptions(pki.cloud, { protocolVersion: 5 }));
      const seen = inbox(cloud);
      await cloud.subscribeAsync('ks/hubs/#', { qos: 1 });
      const a = await open(broker.url, tlsOptions(pki.hub, { protocolVersion: 5 }));
      const denied = await a.publishAsync(`ks/hubs/${HUB_B}/events`, 'forged', { qos: 1 }).then(
        () => undefined,
        (e: { code?: number }) => e,
      );
      expect(denied?.code).toBe(135);
      // The connection stays up; a marker on its own topic arrives after anything it sent before.
      await a.publishAsync(`ks/hubs/${HUB_A}/events`, 'marker', { qos: 1 });
      await until('marker', () => seen.some((m) => m.payload === 'marker'));
      expect(seen.map((m) => m.payload)).toEqual(['marker']);
    });

    it("MQTT 3.1.1: hub A's cross-hub publish is acknowledged and dropped", async () => {
      const cloud = await open(broker.url, tlsOptions(pki.cloud, { protocolVersion: 4 }));
      const seen = inbox(cloud);
      await cloud.subscribeAsync('ks/hubs/#', { qos: 1 });
      const a = await open(broker.url, tlsOptions(pki.hub, { protocolVersion: 4 }));
      await a.publishAsync(`ks/hubs/${HUB_B}/cmd/result`, 'forged', { qos: 1 });
      await a.publishAsync(`ks/hubs/${HUB_A}/events`, 'marker', { qos: 1 });
      await until('marker', () => seen.some((m) => m.payload === 'marker'));
      expect(seen.map((m) => m.payload)).toEqual(['marker']);
    });

    it.each([5, 4] as const)(
      "hub A reads nothing of hub B's topics over MQTT %i, whatever filter or user name it tries",
      async (v) => {
        // The user name it sends is ignored: the certificate's CN is the identity.
        const a = await open(broker.url, tlsOptions(pki.hub, { protocolVersion: v, username: CLOUD }));
        const aGot = inbox(a);
        await a.subscribeAsync([`ks/hubs/${HUB_B}/#`, 'ks/hubs/+/events', '#', `ks/hubs/${HUB_A}/#`], { qos: 1 });
        const cloud = await open(broker.url, tlsOptions(pki.cloud, { protocolVersion: v }));
        const cloudGot = inbox(cloud);
        await cloud.subscribeAsync(`ks/hubs/${HUB_B}/#`, { qos: 1 });
        const b = await open(broker.url, tlsOptions(hubB, { protocolVersion: v }));
        await b.publishAsync(`ks/hubs/${HUB_B}/events`, 'secret-of-b', { qos: 1 });
        await until('the positive control', () => cloudGot.length === 1);
        await quiet();
        expect(aGot).toEqual([]);
        await cloud.publishAsync(`ks/hubs/${HUB_A}/cmd`, 'for-a', { qos: 1 });
        await until('its own topic', () => aGot.length > 0);
        await quiet();
        // MQTT 5 delivers one copy per matching subscription ('#' and its own filter).
        expect(new Set(aGot.map((m) => `${m.topic} ${m.payload}`))).toEqual(new Set([`ks/hubs/${HUB_A}/cmd for-a`]));
      },
    );

    it("a hub's last will goes to its own topics only", async () => {
      expect(await willSeenByCloud(broker.url, `ks/hubs/${HUB_A}/status`, 5)).toContain(
        `ks/hubs/${HUB_A}/status offline`,
      );
      expect(await willSeenByCloud(broker.url, `ks/hubs/${HUB_B}/status`, 5)).toEqual([
        `ks/hubs/${HUB_B}/health control`,
      ]);
    });

    it("the cloud reads and writes every hub's topics", async () => {
      // Hub B on MQTT 3.1.1: both versions are served side by side.
      await expectCloudReachesEveryHub(broker.url, { cloud: 5, a: 5, b: 4 });
    });

    it('can be stopped and started again on the same port (outage tests); the hub reconnects', async () => {
      const hub = await open(broker.url, tlsOptions(pki.hub, { protocolVersion: 5, reconnectPeriod: 50 }));
      const offline = new Promise<void>((resolve) => hub.once('offline', () => resolve()));
      await broker.stop();
      await offline;
      const back = new Promise<void>((resolve) => hub.once('connect', () => resolve()));
      await broker.start();
      await back;
      await hub.publishAsync(`ks/hubs/${HUB_A}/health`, 'ok', { qos: 1 });
    });
  },
);

describe('mosquitto policy when it is missing', () => {
  const saved = { bin: process.env.MOSQUITTO_BIN, ci: process.env.CI };
  afterEach(() => {
    for (const [k, v] of [
      ['MOSQUITTO_BIN', saved.bin],
      ['CI', saved.ci],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('fails loudly in CI and skips elsewhere', () => {
    process.env.MOSQUITTO_BIN = join(tmpdir(), 'no-such-dir', 'mosquitto');
    process.env.CI = 'true';
    expect(() => requireMosquitto()).toThrow(/mosquitto is not installed.*CI must install it/);
    process.env.CI = 'false';
    expect(requireMosquitto()).toBeUndefined();
  });
});

describe('embedded aedes broker (npm start): mutual TLS and per-hub ACL, MQTT 3.1.1', () => {
  let broker: EmbeddedBroker;
  beforeAll(async () => {
    broker = await startEmbeddedBroker({
      ca: readFileSync(pki.ca.cert),
      cert: readFileSync(pki.broker.cert),
      key: readFileSync(pki.broker.key),
      cloudIds: [CLOUD],
    });
  });
  afterAll(() => broker?.close());

  const v4 = { protocolVersion: 4 } as const;

  it('judges a filter by every topic it could match', () => {
    const hub = ['ks', 'hubs', HUB_A, '#'];
    const cloud = ['ks', 'hubs', '#'];
    const within = (filter: string, acl: string[]) => filterWithin(filter.split('/'), acl);
    for (const f of [`ks/hubs/${HUB_A}`, `ks/hubs/${HUB_A}/#`, `ks/hubs/${HUB_A}/+/state`, `ks/hubs/${HUB_A}/cmd`]) {
      expect(within(f, hub), f).toBe(true);
    }
    for (const f of [
      '#',
      'ks/#',
      'ks/hubs/#',
      'ks/hubs/+/cmd',
      `ks/hubs/${HUB_B}/cmd`,
      `ks/hubs/${HUB_A}x/cmd`,
      'ks/+',
    ]) {
      expect(within(f, hub), f).toBe(false);
    }
    expect(within('ks/hubs/+/events', cloud)).toBe(true);
    expect(within('ks/hubs/#', cloud)).toBe(true);
    expect(within('ks/#', cloud)).toBe(false);
    expect(within('+/hubs/x', cloud)).toBe(false);
  });

  it('the hub connects with its certificate and uses its own topics', async () => {
    expect(broker.url).toBe(`mqtts://127.0.0.1:${broker.port}`);
    const hub = await open(broker.url, tlsOptions(pki.hub, v4));
    const got = inbox(hub);
    await hub.subscribeAsync(`ks/hubs/${HUB_A}/#`, { qos: 1 });
    await hub.publishAsync(`ks/hubs/${HUB_A}/status`, 'online', { qos: 1 });
    await until('own message', () => got.length === 1);
    expect(got[0]).toEqual({ topic: `ks/hubs/${HUB_A}/status`, payload: 'online' });
  });

  it('refuses a client without a certificate', async () => {
    await refused(broker.url, tlsOptions(undefined, v4));
  });

  it("refuses a certificate from another CA, even one carrying the hub's CN", async () => {
    await refused(broker.url, tlsOptions(foreign, v4));
  });

  it('a client pinning another server name refuses the broker', async () => {
    const err = await refused(broker.url, tlsOptions(pki.hub, { ...v4, servername: 'broker.example.com' }));
    expect(err.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('refuses MQTT 5 (aedes speaks 3.1.1)', async () => {
    await refused(broker.url, tlsOptions(pki.hub, { protocolVersion: 5 }));
  });

  it("hub A's publish to hub B's topic is not delivered, and A is disconnected", async () => {
    const cloud = await open(broker.url, tlsOptions(pki.cloud, v4));
    const seen = inbox(cloud);
    await cloud.subscribeAsync('ks/hubs/#', { qos: 1 });
    const a = await open(broker.url, tlsOptions(pki.hub, v4));
    const closed = new Promise<void>((resolve) => a.once('close', () => resolve()));
    a.publish(`ks/hubs/${HUB_B}/events`, 'forged', { qos: 1 });
    await closed;
    const b = await open(broker.url, tlsOptions(hubB, v4));
    await b.publishAsync(`ks/hubs/${HUB_B}/events`, 'genuine', { qos: 1 });
    await until('the positive control', () => seen.length > 0);
    await quiet();
    expect(seen.map((m) => m.payload)).toEqual(['genuine']);
  });

  it("hub A cannot subscribe to hub B's topics, whatever user name it sends", async () => {
    const a = await open(broker.url, tlsOptions(pki.hub, { ...v4, username: CLOUD }));
    const aGot = inbox(a);
    // mqtt.js rejects a subscribe whose SUBACK holds 0x80; the connection stays up.
    for (const filter of [`ks/hubs/${HUB_B}/#`, 'ks/hubs/+/events', '#', 'ks/#', 'ks/hubs/#']) {
      const outcome = await a.subscribeAsync(filter, { qos: 1 }).then(
        () => 'granted',
        (e: Error) => e.message,
      );
      expect(outcome, filter).toMatch(/Subscribe error/);
    }
    const [own] = await a.subscribeAsync(`ks/hubs/${HUB_A}/#`, { qos: 1 });
    expect(own?.qos).toBe(1);
    const b = await open(broker.url, tlsOptions(hubB, v4));
    const bGot = inbox(b);
    await b.subscribeAsync(`ks/hubs/${HUB_B}/events`, { qos: 1 });
    await b.publishAsync(`ks/hubs/${HUB_B}/events`, 'secret-of-b', { qos: 1 });
    await until('the positive control', () => bGot.length === 1);
    await quiet();
    expect(aGot).toEqual([]);
  });

  it("a hub's last will goes to its own topics only", async () => {
    expect(await willSeenByCloud(broker.url, `ks/hubs/${HUB_A}/status`, 4)).toContain(
      `ks/hubs/${HUB_A}/status offline`,
    );
    expect(await willSeenByCloud(broker.url, `ks/hubs/${HUB_B}/status`, 4)).toEqual([
      `ks/hubs/${HUB_B}/health control`,
    ]);
  });

  it("the cloud reads and writes every hub's topics", async () => {
    await expectCloudReachesEveryHub(broker.url, { cloud: 4, a: 4, b: 4 });
  });

  it('a client id in use by one identity cannot be taken over by another (no session hijack)', async () => {
    const b = await open(broker.url, tlsOptions(hubB, { ...v4, clientId: 'hub-b-uplink', clean: false }));
    const err = await refused(broker.url, tlsOptions(pki.hub, { ...v4, clientId: 'hub-b-uplink', clean: false }));
    expect(err.message).toMatch(/Identifier rejected/i);
    expect(b.connected).toBe(true);
  });
});
