import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createDevPki, type DevPkiPaths, readDevOtpKey } from '../provisioning/dev-pki.js';
import { ReferenceCloud } from '../sim/cloud/cloud.js';
import { devCloudConnection } from '../sim/cloud/connect.js';
import type { SiteLockSpec } from '../sim/emu/site.js';
import type { HubConfig } from '../src/config/schema.js';
import { topics } from '../src/contract/mqtt-topics.js';
import { callDaemon } from '../src/control-socket/socket-client.js';
import { start } from '../test/helpers/daemon.js';
import {
  type Benchmark,
  benchmarkInTempDir,
  distribution,
  type Metric,
  percentile,
  round,
  socatOrSkip,
  uplinkConfigLines,
} from './lib.js';
import { launcherNodeArgs, unitEnvironment } from './memory.bench.js';
import {
  type Broker,
  broker,
  client,
  PROBE_ANSWER,
  PROBE_REQUEST,
  RTT_REQUEST_BYTES,
  startProbeResponder,
} from './uplink.bench.js';

const HUB = 'bench-hub';
const ZB: SiteLockSpec = {
  deviceId: 'ZB-0001',
  setupCode: 'ZB01-BNCH-CODE',
  address: 'zb-bench-0001',
  radio: 'zigbee',
};
const BLE: SiteLockSpec = {
  deviceId: 'BLE-0001',
  setupCode: 'BLE1-BNCH-CODE',
  address: 'aa:bb:cc:00:0b:01',
  radio: 'ble',
};
/** Unmeasured opens per lock first (JIT, caches, the link established), then measured ones. */
const WARMUP = Number(process.env.IQHUB_OPEN_BENCH_WARMUP ?? 200);
const OPENS = Number(process.env.IQHUB_OPEN_BENCH_OPENS ?? 400);
/** Which radios to measure (comma-separated; both by default): one alone halves a run when only its figures matter. */
const RADIOS = (process.env.IQHUB_OPEN_BENCH_RADIOS ?? 'zigbee,ble').split(',');
/** The production entry point, compiled next to this bench (benchmarks run from dist/). */
const DAEMON = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const EMULATORS = fileURLToPath(new URL('./emulator-process.js', import.meta.url));
/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ: 100 on every Linux we ship on). */
const USER_HZ = 100;

/**
 * What a remote open costs the hub itself, over a real radio stack: the daemon in its own process,
 * started as production starts it (`iqhub run --config`, uplink to mosquitto, OTP-protected
 * commands); the ZNP and HCI emulators with one SimLock each in a second process
 * (bench/emulator-process.ts; no delay: the emulated controllers answer at once); the cloud in this
 * one.
 *
 * Each measured open is signed by the reference cloud, published on the hub's `cmd` topic by a bare
 * MQTT client with the cloud's identity and timed until its `cmd/result` arrives there (as
 * command.remoteOpenBareCloud). They alternate with raw MQTT round trips of the same shape through
 * the same broker to a responder in its own process (as command.mqttRttPaired), so both see the
 * machine in the same state; each open starts once the previous open's `opened` event reached the
 * cloud (one door at a time, not queued behind the previous open's event work).
 *
 * - zigbee.openOwnCost: each open's time minus the median raw round trip of the run
 *   (zigbee.mqttRtt): what is left is the hub's — receiving and verifying the command, its durable
 *   claim, the link layer, zigbee-herdsman and the TCP hop to the emulator and back, publishing the
 *   answer — plus the emulator's turnaround (its process, not the hub's: see
 *   zigbee.emulatorCpuPerOpen for its CPU). Not in it: the broker and the two MQTT hops.
 * - zigbee.cpuPerOpen: the daemon process's CPU (utime + stime from /proc/PID/stat) from just
 *   before the first measured open to just after the last one's `opened` event reached the cloud,
 *   divided by the opens: everything an open sets off in the hub (answer, event, lock state, their
 *   commits and publishes), with the little the hub does idle in that time (zigbee.daemonIdleCpu
 *   gives its rate).
 * - ble.*: the same for the BLE lock (real noble over a socat PTY to the HCI emulator), with a
 *   daemon of its own that has only BLE configured (the ZigBee daemon only ZigBee).
 *
 * IQHUB_OPEN_BENCH_PROF=DIR: the daemon runs with --cpu-prof into DIR, and the bench writes
 * DIR/windows.json (each daemon's pid and measured stretch, in the profile's clock: CLOCK_MONOTONIC µs) for
 * `node dist/bench/profile-window.js` to read the profile of the opens alone (and `zigbee.idle` /
 * `ble.idle`: the 2 s idle stretch before them, per second).
 * IQHUB_OPEN_BENCH_RADIOS=zigbee (or ble): measure that radio only.
 */
export const zigbeeOpenBench: Benchmark = benchmarkInTempDir(
  'zigbee',
  'own cost of a remote open over real zigbee-herdsman / noble and the emulated controllers (daemon, emulators, cloud in three processes), p50/p99, and the daemon CPU per open',
  async (dir, metrics) => {
    const socat = socatOrSkip('zigbee');
    if (!socat) return;
    const pki = createDevPki({ dir: join(dir, 'pki'), hubId: HUB });
    const b = await broker(join(dir, 'pki'), pki);
    const emulators = await startEmulators(socat);
    const windows: Windows = {};
    try {
      // One daemon per radio, only that radio configured: the ZigBee figures carry no BLE scanning
      // (the emulated BLE locks advertise every 50 ms), as a ZigBee-only hub (and the peer) would.
      if (RADIOS.includes('zigbee'))
        await measure(join(dir, 'zigbee'), 'zigbee', ZB, b, pki, emulators, metrics, windows);
      if (RADIOS.includes('ble')) await measure(join(dir, 'ble'), 'ble', BLE, b, pki, emulators, metrics, windows);
      const profDir = process.env.IQHUB_OPEN_BENCH_PROF;
      if (profDir) writeFileSync(join(profDir, 'windows.json'), `${JSON.stringify(windows, null, 2)}\n`);
    } finally {
      await emulators.close();
      await b.close();
    }
  },
);

interface Emulators {
  pid: number;
  radios: HubConfig['radios'];
  ask(m: Record<string, unknown>): Promise<{ ok: boolean; opens?: number; error?: string }>;
  close(): Promise<void>;
}

async function startEmulators(socat: string): Promise<Emulators> {
  const child: ChildProcess = spawn(
    process.execPath,
    [EMULATORS, JSON.stringify({ socat, seed: 'zigbee-open-bench', locks: [ZB, BLE] })],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const next = (what: string) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`emulator process: no answer to ${what} within 30 s`)), 30_000);
      waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  const ready = JSON.parse(await next('start')) as { radios: HubConfig['radios'] };
  return {
    pid: child.pid ?? 0,
    radios: ready.radios,
    async ask(m) {
      const answer = next(JSON.stringify(m));
      child.stdin?.write(`${JSON.stringify(m)}\n`);
      return JSON.parse(await answer) as { ok: boolean; opens?: number; error?: string };
    },
    async close() {
      child.stdin?.end(`${JSON.stringify({ quit: true })}\n`);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** utime + stime of a process so far, ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) in parentheses: utime is the 14th field.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
}

/** CLOCK_MONOTONIC in µs: the clock of a V8 CPU profile's timestamps. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** Each radio's measured stretch, in the daemon's CPU profile clock (CLOCK_MONOTONIC µs), and the daemon's pid. */
type Windows = Record<string, { pid: number; fromUs: number; toUs: number; opens: number }>;

async function measure(
  dir: string,
  prefix: 'zigbee' | 'ble',
  lock: SiteLockSpec,
  b: Broker,
  pki: DevPkiPaths,
  emulators: Emulators,
  metrics: Record<string, Metric>,
  windows: Windows,
): Promise<void> {
  const v5 = b.kind.startsWith('mosquitto');
  if (!v5) process.stderr.write(`zigbee: mosquitto is not installed; measured through ${b.kind}\n`);
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'config.yaml');
  const radios = emulators.radios as { ble: { uartPath: string }; zigbee: { port: string } };
  writeFileSync(
    config,
    [
      `dataDir: ${dir}/data`,
      `runDir: ${dir}/run`,
      'log:',
      '  level: info',
      ...uplinkConfigLines(b.url, pki, v5 ? '5' : '3.1.1'),
      'radios:',
      ...(prefix === 'ble'
        ? ['  ble:', '    enabled: true', '    transport: uart', `    uartPath: ${radios.ble.uartPath}`]
        : ['  zigbee:', '    enabled: true', `    port: ${radios.zigbee.port}`]),
      '',
    ].join('\n'),
  );
  const profDir = process.env.IQHUB_OPEN_BENCH_PROF;
  const cloud = new ReferenceCloud();
  // start() takes the daemon's node flags from this process's IQHUB_DAEMON_NODE_ARGS; unset, they
  // are the unit's, as production runs the daemon (its NODE_OPTIONS and IQHUB_NODE_ARGS on node's
  // command line, its other Environment= lines such as MALLOC_ARENA_MAX in the environment).
  const nodeArgs = process.env.IQHUB_DAEMON_NODE_ARGS;
  const unitEnv = unitEnvironment();
  const flags = nodeArgs ?? [unitEnv.NODE_OPTIONS ?? '', ...launcherNodeArgs(unitEnv)].join(' ');
  process.env.IQHUB_DAEMON_NODE_ARGS = profDir ? `${flags} --cpu-prof --cpu-prof-dir=${profDir}` : flags;
  const { NODE_OPTIONS: _n, IQHUB_NODE_ARGS: _a, ...otherUnitEnv } = unitEnv;
  const daemon = start(['run', '--config', config], nodeArgs === undefined ? otherUnitEnv : {}, DAEMON);
  if (nodeArgs === undefined) delete process.env.IQHUB_DAEMON_NODE_ARGS;
  else process.env.IQHUB_DAEMON_NODE_ARGS = nodeArgs;
  const pid = daemon.child.pid ?? 0;
  const bare = await client(b.url, pki, 'cloud', v5);
  let stopProbe: (() => Promise<void>) | undefined;
  try {
    await cloud.connect(devCloudConnection(b.url, pki, v5 ? 5 : 4));
    cloud.setOtpKey(HUB, readDevOtpKey(pki.otpKey));
    await daemon.waitForOutput('iq-hub ready', 60_000);
    const call = (method: string, params: Record<string, unknown> = {}) =>
      callDaemon(join(dir, 'run', 'control.sock'), method, params, 90_000);
    await waitRadio(call, `radio.${prefix}`);
    await emulators.ask({ card: lock.deviceId });
    await call('locks.attach', { deviceId: lock.deviceId, setupCode: lock.setupCode, timeoutMs: 60_000 });
    await cloud.waitFor((c) => c.status(HUB)?.state === 'online', 10_000, 'the hub online');
    stopProbe = await startProbeResponder(b.url, pki, v5);
    const waiting = new Map<string, (payload: Buffer) => void>();
    let probeArrived: (() => void) | undefined;
    bare.on('message', (topic, payload) => {
      if (topic === PROBE_ANSWER) {
        probeArrived?.();
        return;
      }
      const id = (JSON.parse(payload.toString('utf8')) as { id?: unknown }).id;
      if (typeof id === 'string') waiting.get(id)?.(payload);
    });
    await bare.subscribeAsync([topics.cmdResult(HUB), PROBE_ANSWER], { qos: 1 });
    const request = Buffer.alloc(RTT_REQUEST_BYTES, 0x62);
    const probe = async (): Promise<number> => {
      const got = new Promise<void>((resolve) => {
        probeArrived = resolve;
      });
      const t = performance.now();
      bare.publish(PROBE_REQUEST, request, { qos: 1 });
      await got;
      return performance.now() - t;
    };

    // The daemon's CPU while nothing happens (timers, keep-alives), over 2 s.
    const idleFrom = cpuMs(pid);
    const idleFromUs = monotonicUs();
    await new Promise((r) => setTimeout(r, 2000));
    // The idle stretch as a window of its own ("zigbee.idle"): 2 "opens" over its 2 s, so profile-window prints ms per second.
    windows[`${prefix}.idle`] = { pid, fromUs: idleFromUs, toUs: monotonicUs(), opens: 2 };
    metrics[`${prefix}.daemonIdleCpu`] = { unit: 'ms CPU/s', value: round((cpuMs(pid) - idleFrom) / 2) };

    {
      const opened = () => cloud.events(HUB).filter((e) => e.lockId === lock.deviceId && e.type === 'opened').length;
      let done = opened();
      const open = async (): Promise<number> => {
        const envelope = cloud.envelope(HUB, { op: 'open', lockId: lock.deviceId, args: { durationMs: 1000 } });
        const answered = new Promise<Buffer>((resolve) => waiting.set(envelope.cmdId, resolve));
        const t = performance.now();
        bare.publish(topics.cmd(HUB), JSON.stringify(envelope), { qos: 1 });
        const payload = await answered;
        const ms = performance.now() - t;
        waiting.delete(envelope.cmdId);
        const r = JSON.parse(payload.toString('utf8')) as { ok?: boolean; error?: { code?: string } };
        if (r.ok !== true) throw new Error(`${prefix}: remote open refused: ${r.error?.code}`);
        done++;
        await cloud.waitFor(() => opened() >= done, 10_000, `the opened event of ${lock.deviceId} at the cloud`);
        return ms;
      };
      for (let i = 0; i < WARMUP; i++) {
        await open();
        if (i % 2 === 0) await probe();
      }
      const before = (await emulators.ask({ opens: lock.deviceId })).opens ?? 0;
      const opens: number[] = [];
      const rtts: number[] = [];
      const during = whileMeasuring(prefix, pid);
      const fromUs = monotonicUs();
      const cpuFrom = cpuMs(pid);
      const emuFrom = cpuMs(emulators.pid);
      const wallFrom = performance.now();
      for (let i = 0; i < OPENS; i++) {
        opens.push(await open());
        rtts.push(await probe());
      }
      const cpu = cpuMs(pid) - cpuFrom;
      const emuCpu = cpuMs(emulators.pid) - emuFrom;
      const wall = performance.now() - wallFrom;
      windows[prefix] = { pid, fromUs, toUs: monotonicUs(), opens: OPENS };
      await during();
      const handled = ((await emulators.ask({ opens: lock.deviceId })).opens ?? 0) - before;
      if (handled !== OPENS) throw new Error(`${prefix}: the lock handled ${handled} opens, not ${OPENS}`);
      const rtt = percentile(
        [...rtts].sort((x, y) => x - y),
        50,
      );
      metrics[`${prefix}.openOwnCost`] = distribution(
        'ms',
        opens.map((ms) => ms - rtt),
      );
      metrics[`${prefix}.remoteOpen`] = distribution('ms', opens);
      metrics[`${prefix}.mqttRtt`] = distribution('ms', rtts);
      metrics[`${prefix}.cpuPerOpen`] = { unit: 'ms CPU', value: round(cpu / OPENS), n: OPENS };
      metrics[`${prefix}.emulatorCpuPerOpen`] = { unit: 'ms CPU', value: round(emuCpu / OPENS), n: OPENS };
      metrics[`${prefix}.loadAverage`] = { unit: '1-min load', value: round(loadavg()[0] ?? Number.NaN) };
      process.stderr.write(
        `zigbee bench: ${prefix}: ${OPENS} opens in ${Math.round(wall)} ms, daemon CPU ${Math.round(cpu)} ms\n`,
      );
    }
    if (cloud.invalid > 0) throw new Error(`${cloud.invalid} messages at the cloud did not match the contract`);
  } finally {
    await stopProbe?.();
    await bare.endAsync();
    daemon.child.kill('SIGTERM');
    await daemon.exit;
    await cloud.close();
  }
}

/**
 * IQHUB_OPEN_BENCH_DURING='a shell command': run over each measured stretch with PID (the daemon's)
 * and RADIO in its environment, interrupted (SIGINT) at its end — e.g. `perf record -g -p $PID -o
 * /tmp/$RADIO.perf` with IQHUB_DAEMON_NODE_ARGS=--perf-basic-prof. Returns what ends it.
 */
function whileMeasuring(radio: string, pid: number): () => Promise<void> {
  const command = process.env.IQHUB_OPEN_BENCH_DURING;
  if (!command) return async () => {};
  const child = spawn('sh', ['-c', `exec ${command}`], {
    env: { ...process.env, PID: String(pid), RADIO: radio },
    stdio: 'inherit',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return async () => {
    child.kill('SIGINT');
    await exited;
  };
}

/** Until `iqhub status` shows the radio running (herdsman and noble start after READY). */
async function waitRadio(call: (method: string) => Promise<unknown>, name: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = (await call('status')) as { components?: { name: string; state: string }[] };
    if (status.components?.some((c) => c.name === name && c.state === 'running')) return;
    if (Date.now() > deadline)
      throw new Error(`zigbee bench: ${name} not running: ${JSON.stringify(status.components)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
