import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { createDevPki, type DevPkiPaths } from '../provisioning/dev-pki.js';
import { startEmbeddedBroker } from '../sim/broker/embedded-broker.js';
import { devUplinkConfig } from '../sim/cloud/connect.js';
import type { SimWorld } from '../sim/world.js';
import { type RunningDaemon, startDaemon } from '../src/app/daemon.js';
import { systemRandom } from '../src/base/random.js';
import type { HubConfig } from '../src/config/schema.js';
import { topics } from '../src/contract/mqtt-topics.js';
import { loadSimulatedSite } from '../src/demo/simulated-site.js';
import { findMosquitto, startMosquitto } from '../test/helpers/mosquitto.js';
import { type Benchmark, distribution, type Metric } from './lib.js';
import type { ResponderArgs } from './rtt-responder.js';

const HUB = 'bench-hub';
const pem = (p: string) => readFileSync(p);
/** The compiled responder next to this compiled bench (benchmarks run from dist/). */
const RESPONDER = fileURLToPath(new URL('./rtt-responder.js', import.meta.url));

export interface Broker {
  url: string;
  kind: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** mosquitto when installed (as in production), else the embedded aedes broker (MQTT 3.1.1). */
export async function broker(pkiDir: string, pki: ReturnType<typeof createDevPki>): Promise<Broker> {
  if (findMosquitto()) {
    const m = await startMosquitto({ pkiDir });
    if (m)
      return {
        url: m.url,
        kind: 'mosquitto (MQTT 5)',
        stop: () => m.stop(),
        start: () => m.start(),
        close: () => m.close(),
      };
  }
  const b = await startEmbeddedBroker({
    ca: pem(pki.ca.cert),
    cert: pem(pki.broker.cert),
    key: pem(pki.broker.key),
    cloudIds: ['cloud'],
  });
  const none = async () => {
    throw new Error('the embedded broker cannot be stopped and restarted in place');
  };
  return { url: b.url, kind: 'aedes (MQTT 3.1.1)', stop: none, start: none, close: () => b.close() };
}

/**
 * A whole daemon in this process (startDaemon) hosting a simulated site, logging only fatal
 * errors, its uplink to `b` with the dev PKI's hub certificate (MQTT 5 with mosquitto, 3.1.1 with
 * aedes); with the simulated site it built (undefined if the simulation is off).
 */
export async function startBenchDaemon(
  b: Broker,
  pki: DevPkiPaths,
  o: {
    dataDir: string;
    runDir: string;
    simulation: Partial<HubConfig['simulation']>;
    access?: Partial<HubConfig['access']>;
  },
): Promise<{ daemon: RunningDaemon; world: SimWorld | undefined }> {
  let world: SimWorld | undefined;
  const daemon = await startDaemon({
    configPath: null,
    logPretty: false,
    overrides: {
      dataDir: o.dataDir,
      runDir: o.runDir,
      log: { level: 'fatal', pretty: false },
      simulation: o.simulation as HubConfig['simulation'],
      ...(o.access === undefined ? {} : { access: o.access as HubConfig['access'] }),
      uplink: devUplinkConfig(b.url, pki, { mqttVersion: b.kind.startsWith('mosquitto') ? '5' : '3.1.1' }),
    },
    simulation: loadSimulatedSite,
    onBuilt: (_h, w) => {
      world = w;
    },
  });
  return { daemon, world };
}

/** A bare MQTT client with the hub's or the cloud's identity; TCP_NODELAY, as the hub's UplinkClient and the reference cloud set it. */
export async function client(
  url: string,
  pki: ReturnType<typeof createDevPki>,
  who: 'hub' | 'cloud',
  v5: boolean,
): Promise<mqtt.MqttClient> {
  const files = pki[who];
  const c = await mqtt.connectAsync(url, {
    ca: pem(pki.ca.cert),
    cert: pem(files.cert),
    key: pem(files.key),
    servername: 'localhost',
    rejectUnauthorized: true,
    protocolVersion: v5 ? 5 : 4,
    clientId: `${who === 'hub' ? HUB : 'cloud'}-bench-${systemRandom.int(1e9)}`,
    reconnectPeriod: 0,
  });
  // Without it, an answer written right after the PUBACK waits for the broker's delayed ACK (~40 ms).
  (c.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
  return c;
}

/** Bytes of the round trip's request and answer: about a signed `open` envelope and its `cmd/result`. */
export const RTT_REQUEST_BYTES = 360;
export const RTT_ANSWER_BYTES = 240;

/**
 * The raw MQTT round trip that a remote command makes, without the hub: the cloud publishes a QoS 1
 * message on the hub's `cmd` topic; a bare MQTT client with the hub's identity receives it and at
 * once publishes a QoS 1 answer on `cmd/result`; the time is from the cloud's publish to the
 * answer's arrival at the cloud (as `command.remoteOpen` is measured). `n` samples after `warmup`.
 * The answering client runs in its own process (bench/rtt-responder.ts), as the hub does, unless
 * `responder: 'in-process'` (how uplink.mqttRtt was first measured: the cloud and the hub's
 * identity in one process, which saves a process wake-up per round trip). With `storeDir`, the
 * responder makes a command's two durable commits in the hub's order, the claim before each answer
 * and the answer's record right after it (see rtt-responder.ts). With
 * `gapMs`, each round trip starts after that long with nothing happening.
 */
export async function mqttRoundTrip(
  b: Broker,
  pki: ReturnType<typeof createDevPki>,
  n: number,
  opts: { warmup?: number; responder?: 'process' | 'in-process'; storeDir?: string; gapMs?: number } = {},
): Promise<number[]> {
  const warmup = opts.warmup ?? 100;
  const v5 = b.kind.startsWith('mosquitto');
  const cloud = await client(b.url, pki, 'cloud', v5);
  let stopResponder: () => Promise<void>;
  if (opts.responder === 'in-process') {
    const hub = await client(b.url, pki, 'hub', v5);
    await hub.subscribeAsync(topics.cmd(HUB), { qos: 1 });
    const answer = Buffer.alloc(RTT_ANSWER_BYTES, 0x61);
    hub.on('message', () => {
      hub.publish(topics.cmdResult(HUB), answer, { qos: 1 });
    });
    stopResponder = async () => {
      await hub.endAsync();
    };
  } else {
    stopResponder = await startResponder({
      url: b.url,
      ca: pki.ca.cert,
      cert: pki.hub.cert,
      key: pki.hub.key,
      hubId: HUB,
      v5,
      answerBytes: RTT_ANSWER_BYTES,
      ...(opts.storeDir ? { storeDir: opts.storeDir } : {}),
    });
  }
  try {
    await cloud.subscribeAsync(topics.cmdResult(HUB), { qos: 1 });
    let arrived: (() => void) | undefined;
    cloud.on('message', () => arrived?.());
    const request = Buffer.alloc(RTT_REQUEST_BYTES, 0x62);
    const samples: number[] = [];
    for (let i = 0; i < n + warmup; i++) {
      if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
      let timer: NodeJS.Timeout | undefined;
      const got = new Promise<void>((resolve, reject) => {
        arrived = resolve;
        timer = setTimeout(() => reject(new Error(`mqttRoundTrip: answer ${i} did not arrive within 10 s`)), 10_000);
      });
      const t = performance.now();
      cloud.publish(topics.cmd(HUB), request, { qos: 1 });
      let ms: number;
      try {
        await got;
        ms = performance.now() - t;
      } finally {
        clearTimeout(timer);
      }
      if (i >= warmup) samples.push(ms);
    }
    return samples;
  } finally {
    await stopResponder();
    await cloud.endAsync();
  }
}

/** The responder (bench/rtt-responder.ts) as a child process; resolves once it is subscribed. */
/** A raw round trip's topics beside a daemon's commands (the cloud's identity may use them; no hub does). */
export const PROBE_REQUEST = 'ks/provisioning/rtt-probe/request';
export const PROBE_ANSWER = 'ks/provisioning/rtt-probe/response';

/**
 * A responder in its own process with the cloud's identity on the probe topics, answering with
 * RTT_ANSWER_BYTES: the raw round trip of a command's shape through the same broker as a daemon
 * (whose own topics are the daemon's).
 */
export function startProbeResponder(url: string, pki: DevPkiPaths, v5: boolean): Promise<() => Promise<void>> {
  return startResponder({
    url,
    ca: pki.ca.cert,
    cert: pki.cloud.cert,
    key: pki.cloud.key,
    hubId: 'rtt-probe',
    v5,
    answerBytes: RTT_ANSWER_BYTES,
    requestTopic: PROBE_REQUEST,
    answerTopic: PROBE_ANSWER,
  });
}

export async function startResponder(args: ResponderArgs): Promise<() => Promise<void>> {
  const child = spawn(process.execPath, [RESPONDER, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('mqttRoundTrip: the responder was not ready within 10 s')), 10_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (!d.includes('ready')) return;
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mqttRoundTrip: the responder exited (${code}) before it was ready`));
    });
  });
  return async () => {
    child.kill('SIGTERM');
    await exited;
  };
}

/**
 * uplink.mqttRtt: the raw MQTT round trip of a command (mqttRoundTrip): cloud → hub identity →
 * cloud, two QoS 1 publishes through the broker — what `command.remoteOpen` is compared with.
 * uplink.mqttOneWay: the figure first reported as mqttRtt (kept under this name so history stays
 * comparable): one QoS 1 publish by the hub's identity, until both its PUBACK and its arrival at
 * the cloud's subscription. uplink.eventToCloud: a simulated lock's event through the whole hub
 * (link, store, outbox, publisher) to the cloud. The outbox drain (outbox.*) is measured on the
 * daemon in its own process: bench/outbox.bench.ts.
 */
export const uplinkBench: Benchmark = {
  name: 'uplink',
  description:
    'MQTT round trip (cloud -> hub identity -> cloud, QoS 1 both ways) and one-way publish, lock event to cloud',
  async run() {
    const dir = mkdtempSync(join(tmpdir(), 'iqhub-bench-uplink-'));
    const pki = createDevPki({ dir: join(dir, 'pki'), hubId: HUB });
    const b = await broker(join(dir, 'pki'), pki);
    const v5 = b.kind.startsWith('mosquitto');
    const metrics: Record<string, Metric> = {};
    try {
      // --- raw round trip, and the one-way publish ---------------------------------------------
      metrics['uplink.mqttRtt'] = distribution('ms', await mqttRoundTrip(b, pki, 2000));
      const hub = await client(b.url, pki, 'hub', v5);
      const cloud = await client(b.url, pki, 'cloud', v5);
      const topic = topics.health(HUB);
      await cloud.subscribeAsync(topic, { qos: 1 });
      const oneWay: number[] = [];
      let resolveMsg: (() => void) | undefined;
      cloud.on('message', () => resolveMsg?.());
      for (let i = 0; i < 2100; i++) {
        const t = performance.now();
        const got = new Promise<void>((r) => {
          resolveMsg = r;
        });
        await hub.publishAsync(topic, Buffer.alloc(64, 1), { qos: 1 });
        await got;
        if (i >= 100) oneWay.push(performance.now() - t);
      }
      metrics['uplink.mqttOneWay'] = distribution('ms', oneWay);
      await hub.endAsync();

      // --- lock event to cloud, through a whole daemon -----------------------------------------
      const received = new Map<string, number>();
      await cloud.subscribeAsync(topics.events(HUB), { qos: 1 });
      cloud.on('message', (t, payload) => {
        if (t !== topics.events(HUB)) return;
        const now = performance.now();
        for (const e of (JSON.parse(payload.toString()) as { events: { lockId: string; seq: number }[] }).events) {
          received.set(`${e.lockId}/${e.seq}`, now);
        }
      });
      const { daemon, world } = await startBenchDaemon(b, pki, {
        dataDir: join(dir, 'data'),
        runDir: join(dir, 'run'),
        simulation: { enabled: true, locks: 1 },
      });
      const sticker = world?.stickers[0];
      if (!world || !sticker) throw new Error('no simulated lock');
      const lock = world.lock(sticker.deviceId);
      lock.presentMaintenanceCard();
      await daemon.hub.link?.attach(
        sticker.deviceId,
        (await import('../src/crypto/secret.js')).Secret.fromUtf8(sticker.setupCode),
      );
      await new Promise((r) => setTimeout(r, 500));
      const e2c: number[] = [];
      for (let i = 0; i < 500; i++) {
        const t = performance.now();
        const e = lock.tamper();
        const k = `${sticker.deviceId}/${e.seq}`;
        const deadline = performance.now() + 5000;
        while (!received.has(k) && performance.now() < deadline) await new Promise((r) => setImmediate(r));
        const at = received.get(k);
        if (at === undefined) throw new Error(`event ${k} did not reach the cloud`);
        if (i >= 20) e2c.push(at - t);
      }
      metrics['uplink.eventToCloud'] = distribution('ms', e2c);
      await daemon.shutdown('bench done');
      await cloud.endAsync();

      return metrics;
    } finally {
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
