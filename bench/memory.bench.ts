import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createDevPki, type DevPkiPaths } from '../provisioning/dev-pki.js';
import type { ReferenceCloud } from '../sim/cloud/cloud.js';
import type { SiteLockSpec } from '../sim/emu/site.js';
import { SeededRandom } from '../src/base/random.js';
import type { OfflineListRow } from '../src/contract/control-socket.js';
import { callDaemon } from '../src/control-socket/socket-client.js';
import { Secret } from '../src/crypto/secret.js';
import { connectCloud } from '../test/helpers/cloud-site.js';
import { type Proc, watch } from '../test/helpers/daemon.js';
import { type Mosquitto, requireMosquitto, startMosquitto } from '../test/helpers/mosquitto.js';
import { FakeNotifySocket } from '../test/helpers/notify-socket.js';
import { accessSite } from './access-data.js';
import { type Benchmark, benchmarkInTempDir, distribution, round, socatOrSkip, uplinkConfigLines } from './lib.js';

/**
 * The daemon's memory as a hub of the seed runs it (issue 15, "Memory"):
 *
 * - The daemon in its OWN process, started as production starts it: the systemd unit's ExecStart
 *   (`/usr/bin/iqhub run --config …`), i.e. the launcher's (packaging/iqhub.sh)
 *   `node $IQHUB_NODE_ARGS …/dist/src/cli/main.js run`, with the unit's `Environment=`
 *   (systemd/iq-hub.service, read here: its NODE_OPTIONS and IQHUB_NODE_ARGS are the one place the
 *   daemon's node flags live), a NOTIFY_SOCKET and WATCHDOG_USEC as systemd gives them, an
 *   uplink over mutual TLS to mosquitto (the reference cloud on the other side, in this process).
 * - 16 locks, 8 BLE and 8 ZigBee, each an unmodified SimLock on the emulated controllers (real
 *   noble over a socat PTY to the HCI emulator, real zigbee-herdsman over TCP to the Z-Stack
 *   emulator) in a THIRD process (bench/radio-site-process.ts), attached through the control
 *   socket as an installer would.
 *
 * Figures (MB, from /proc/PID/status; p50 over the runs is the median, n = runs):
 * - daemon.rssIdle: VmRSS 30 s after the 16th lock was attached, the uplink online; .hwm: VmHWM then;
 *   .anon and .file: RssAnon and RssFile (+ RssShmem) then.
 * - daemon.rss10kUsers: the reference cloud then syncs a 10,000-user site (a PIN, a tag and a
 *   digital key each, 100 groups of 4 of the 16 locks, 2 % offline users: bench/access-data.ts)
 *   through the broker; VmRSS 30 s after every lock's offline list was up to date
 *   (`access.offline` on the control socket). .peak: the largest VmRSS sampled every 100 ms from
 *   the sync's publish until the lists were settled; .hwm: VmHWM at the end.
 * - daemon.rss.settle: seconds from the sync's publish until the 16 lists were up to date.
 * - daemon.rss.nodeFloor: VmRSS of `node -e` idling, same flags: what no daemon can go below.
 * - daemon.rss.loadAverage: the 1-minute load average when the first run began (the machine is shared).
 *
 * IQHUB_BENCH_RSS_RUNS (default 3) runs; IQHUB_BENCH_RSS_ENV ("K=V K2=V2", or empty) replaces the
 * unit's environment, e.g. to measure without its NODE_OPTIONS; IQHUB_BENCH_RSS_IDLE_ONLY=1 stops
 * each run after the idle figure; IQHUB_BENCH_RSS_DUMP=DIR writes the idle daemon's smaps and
 * status there, and a heap snapshot when NODE_OPTIONS has --heapsnapshot-signal=SIGUSR2;
 * IQHUB_BENCH_RSS_DURING='shell command' runs on the idle daemon after its figure (its pid in $PID,
 * e.g. gdb's `call malloc_stats()`), before the dump.
 */

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const SITE_PROCESS = fileURLToPath(new URL('./radio-site-process.js', import.meta.url));
const UNIT = fileURLToPath(new URL('../../systemd/iq-hub.service', import.meta.url));
const HUB = 'bench-rss-hub';
const TZ = 'Europe/Madrid';
const SITE_ID = 'bench-rss-site';
const PER_RADIO = 8;
const USERS = 10_000;
const IDLE_MS = 30_000;
const SAMPLE_MS = 100;

const spec = (radio: 'ble' | 'zigbee', i: number): SiteLockSpec => {
  const n = String(i).padStart(2, '0');
  return radio === 'ble'
    ? { deviceId: `BLE-RS${n}`, setupCode: `BLE${n}-RSSB-CODE`, address: `aa:bb:cc:00:e${i.toString(16)}:01`, radio }
    : { deviceId: `ZB-RS${n}`, setupCode: `ZB${n}-RSSB-CODE`, address: `zb-rss-${n}`, radio };
};
const SPECS = [
  ...Array.from({ length: PER_RADIO }, (_, i) => spec('ble', i + 1)),
  ...Array.from({ length: PER_RADIO }, (_, i) => spec('zigbee', i + 1)),
];

/**
 * The environment the systemd unit gives the daemon: every `Environment=` assignment (quoted or
 * not, several on a line), in order. The bench starts the daemon with what the unit has, not with
 * a copy of it.
 */
export function unitEnvironment(unitText = readFileSync(UNIT, 'utf8')): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of unitText.split('\n')) {
    const m = /^Environment=(.*)$/.exec(line.trim());
    if (!m) continue;
    for (const word of (m[1] ?? '').match(/"[^"]*"|\S+/g) ?? []) {
      const text = word.startsWith('"') ? word.slice(1, -1) : word;
      const eq = text.indexOf('=');
      if (eq > 0) env[text.slice(0, eq)] = text.slice(eq + 1);
    }
  }
  return env;
}

/** The unit's NODE_OPTIONS, '' if none. */
export function unitNodeOptions(unitText = readFileSync(UNIT, 'utf8')): string {
  return unitEnvironment(unitText).NODE_OPTIONS ?? '';
}

/** VmRSS and VmHWM of a process, MB; anon and file: RssAnon and RssFile (+ RssShmem), the parts of VmRSS. */
export function memoryOf(pid: number): { rss: number; hwm: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return {
    rss: kb('VmRSS') / 1024,
    hwm: kb('VmHWM') / 1024,
    anon: kb('RssAnon') / 1024,
    file: (kb('RssFile') + kb('RssShmem')) / 1024,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The emulators with the 16 locks in a process of their own (bench/radio-site-process.ts). */
class SiteProcess {
  readonly #child: ChildProcess;
  readonly #waiting: ((line: string) => void)[] = [];
  #err = '';

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.#err = (this.#err + d).slice(-4000);
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => this.#waiting.shift()?.(l));
  }

  static async start(socat: string, seed: string): Promise<{ site: SiteProcess; radios: Record<string, unknown> }> {
    const child = spawn(process.execPath, [SITE_PROCESS, socat, seed, JSON.stringify(SPECS), String(PER_RADIO)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const site = new SiteProcess(child);
    const first = await site.#next(30_000, 'the emulators to start');
    return { site, radios: (JSON.parse(first) as { radios: Record<string, unknown> }).radios };
  }

  #next(timeoutMs: number, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`radio site process: no answer for ${what} within ${timeoutMs} ms\n${this.#err}`)),
        timeoutMs,
      );
      this.#waiting.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  }

  async ask(line: string): Promise<string> {
    const answer = this.#next(10_000, line);
    this.#child.stdin?.write(`${line}\n`);
    const a = await answer;
    if (!a.startsWith('ok ')) throw new Error(`radio site process: ${line}: ${a}`);
    return a;
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((r) => this.#child.once('exit', r));
    this.#child.stdin?.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

interface RunFigures {
  idle: { rss: number; hwm: number; anon: number; file: number };
  users: { rss: number; hwm: number; peak: number; settle: number };
}

/**
 * The node flags the launcher (packaging/iqhub.sh) puts on node's command line: the unit's
 * IQHUB_NODE_ARGS, split on blanks (flags NODE_OPTIONS refuses).
 */
export function launcherNodeArgs(unitEnv: Record<string, string>): string[] {
  return (unitEnv.IQHUB_NODE_ARGS ?? '').split(/[ \t]+/).filter(Boolean);
}

/** Stops a bench's daemon: SIGTERM, SIGKILL if it has not exited within 20 s; nothing if none was started. */
export async function stopDaemon(daemon: Proc | undefined): Promise<void> {
  if (!daemon) return;
  daemon.child.kill('SIGTERM');
  const killer = setTimeout(() => daemon.child.kill('SIGKILL'), 20_000);
  await daemon.exit;
  clearTimeout(killer);
}

export const memoryBench: Benchmark = benchmarkInTempDir(
  'daemon.rss',
  'RSS of the production daemon process (systemd unit flags) with 16 locks (8 BLE + 8 ZigBee on the emulators, another process) after 30 s idle, and with 10,000 users synced: peak while the offline lists settle and 30 s after',
  async (dir, metrics) => {
    const socat = socatOrSkip('daemon.rss');
    if (!socat) return;
    if (!requireMosquitto()) {
      process.stderr.write('daemon.rss: skipped: mosquitto is not installed (apt-get install mosquitto)\n');
      return;
    }
    const runs = Math.max(1, Number(process.env.IQHUB_BENCH_RSS_RUNS ?? 3));
    const override = process.env.IQHUB_BENCH_RSS_ENV;
    const unitEnv = override === undefined ? unitEnvironment() : unitEnvironment(`Environment=${override}`);
    process.stderr.write(`daemon.rss: the unit's environment ${JSON.stringify(unitEnv)}, ${runs} runs\n`);
    metrics['daemon.rss.loadAverage'] = { unit: '1-min load', value: round(loadavg()[0] ?? Number.NaN) };
    const pki = createDevPki({ dir: join(dir, 'pki'), hubId: HUB });
    const broker = await startMosquitto({ pkiDir: join(dir, 'pki'), extra: ['max_queued_messages 0'] });
    if (!broker) throw new Error('daemon.rss: mosquitto did not start');
    const cloud = await connectCloud(broker.url, pki, HUB);
    const figures: RunFigures[] = [];
    try {
      metrics['daemon.rss.nodeFloor'] = { unit: 'MB', value: round(await nodeFloor(unitEnv)) };
      for (let i = 0; i < runs; i++) {
        const f = await oneRun(join(dir, `run-${i}`), socat, broker, cloud, pki, unitEnv, i);
        process.stderr.write(`daemon.rss: run ${i + 1}/${runs}: ${JSON.stringify(f)}\n`);
        figures.push(f);
      }
    } finally {
      await cloud.close();
      await broker.close();
    }
    const mb = (pick: (f: RunFigures) => number) => distribution('MB', figures.map(pick));
    metrics['daemon.rssIdle'] = mb((f) => f.idle.rss);
    metrics['daemon.rssIdle.hwm'] = mb((f) => f.idle.hwm);
    metrics['daemon.rssIdle.anon'] = mb((f) => f.idle.anon);
    metrics['daemon.rssIdle.file'] = mb((f) => f.idle.file);
    metrics['daemon.rss10kUsers'] = mb((f) => f.users.rss);
    metrics['daemon.rss10kUsers.peak'] = mb((f) => f.users.peak);
    metrics['daemon.rss10kUsers.hwm'] = mb((f) => f.users.hwm);
    metrics['daemon.rss.settle'] = distribution(
      's',
      figures.map((f) => f.users.settle),
    );
  },
);

async function nodeFloor(unitEnv: Record<string, string>): Promise<number> {
  const child = spawn(process.execPath, [...launcherNodeArgs(unitEnv), '-e', 'setTimeout(() => {}, 60_000)'], {
    env: { ...process.env, NODE_OPTIONS: '', ...unitEnv },
    stdio: 'ignore',
  });
  try {
    await sleep(3_000);
    return memoryOf(child.pid as number).rss;
  } finally {
    child.kill('SIGKILL');
  }
}

async function oneRun(
  dir: string,
  socat: string,
  broker: Mosquitto,
  cloud: ReferenceCloud,
  pki: DevPkiPaths,
  unitEnv: Record<string, string>,
  run: number,
): Promise<RunFigures> {
  const { site, radios } = await SiteProcess.start(socat, `rss-bench-${run}`);
  let daemon: Proc | undefined;
  let notify: FakeNotifySocket | undefined;
  try {
    const config = join(dir, 'config.yaml');
    const socket = join(dir, 'run', 'control.sock');
    mkdirSync(dir, { recursive: true });
    if (process.env.IQHUB_BENCH_RSS_DUMP) mkdirSync(process.env.IQHUB_BENCH_RSS_DUMP, { recursive: true });
    writeFileSync(config, configText(dir, broker.url, pki, radios));
    notify = new FakeNotifySocket(join(dir, 'notify.sock'));
    const seen = cloud.statusHistory(HUB).length;
    // What systemd's ExecStart runs (the launcher, packaging/iqhub.sh, execs node with the unit's
    // IQHUB_NODE_ARGS on the CLI), with the unit's environment.
    const child = spawn(process.execPath, [...launcherNodeArgs(unitEnv), CLI, 'run', '--config', config], {
      cwd: process.env.IQHUB_BENCH_RSS_DUMP ?? process.cwd(),
      env: {
        ...process.env,
        NODE_OPTIONS: '',
        ...unitEnv,
        NOTIFY_SOCKET: notify.path,
        WATCHDOG_USEC: '30000000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    daemon = watch(child);
    const pid = child.pid as number;
    await notify.waitFor('READY=1', 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${daemon?.stderr()}\n${daemon?.stdout().slice(-4000)}`);
    });
    await cloud.waitForOnline(HUB, seen, 30_000, 'the hub online');

    for (const s of SPECS) await attach(site, socket, s);
    await sleep(IDLE_MS);
    const idle = memoryOf(pid);
    const during = process.env.IQHUB_BENCH_RSS_DURING;
    if (during) await runDuring(during, pid);
    const dump = process.env.IQHUB_BENCH_RSS_DUMP;
    if (dump) {
      mkdirSync(dump, { recursive: true });
      writeFileSync(join(dump, `smaps-${run}.txt`), readFileSync(`/proc/${pid}/smaps`, 'utf8'));
      writeFileSync(join(dump, `status-${run}.txt`), readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (/--heapsnapshot-signal=SIGUSR2/.test(unitEnv.NODE_OPTIONS ?? '')) {
        process.kill(pid, 'SIGUSR2');
        await sleep(15_000);
      }
    }
    if (process.env.IQHUB_BENCH_RSS_IDLE_ONLY === '1') return { idle, users: { ...idle, peak: idle.rss, settle: 0 } };

    // 10,000 users through the broker, as the cloud syncs them.
    const lockIds = SPECS.map((s) => s.deviceId);
    const big = accessSite({
      seed: 'rss-bench',
      users: USERS,
      lockIds,
      groups: 100,
      locksPerGroup: 4,
      siteId: SITE_ID,
      pinKey: new Secret(new SeededRandom('rss bench pin key').bytes(32)),
      offlineShare: 0.02,
    });
    let peak = memoryOf(pid).rss;
    const sampler = setInterval(() => {
      peak = Math.max(peak, memoryOf(pid).rss);
    }, SAMPLE_MS);
    let settle: number;
    try {
      const t0 = performance.now();
      const ack = await cloud.sync(
        HUB,
        { kind: 'snapshot', version: 1, data: big.snapshot as unknown as Record<string, unknown> },
        { timeoutMs: 120_000 },
      );
      if (!ack.ok) throw new Error(`daemon.rss: the 10k-user snapshot was refused: ${JSON.stringify(ack.error)}`);
      // Lists that fail (a link closed under load) are retried by the hub: give them time on a busy machine.
      await settled(socket, lockIds, Date.now() - (performance.now() - t0), 600_000);
      settle = (performance.now() - t0) / 1000;
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, memoryOf(pid).rss);
    await sleep(IDLE_MS);
    const users = memoryOf(pid);
    return { idle, users: { rss: users.rss, hwm: users.hwm, peak, settle } };
  } finally {
    await stopDaemon(daemon);
    notify?.close();
    await site.close();
  }
}

/** IQHUB_BENCH_RSS_DURING: a shell command run on the idle daemon (its pid in $PID), awaited, its output on stderr. */
function runDuring(command: string, pid: number): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], { env: { ...process.env, PID: String(pid) }, stdio: ['ignore', 2, 2] });
    child.on('exit', () => resolve());
    child.on('error', (e) => {
      process.stderr.write(`daemon.rss: IQHUB_BENCH_RSS_DURING: ${e.message}\n`);
      resolve();
    });
  });
}

function configText(dir: string, brokerUrl: string, pki: DevPkiPaths, radios: Record<string, unknown>): string {
  const r = radios as { ble: { uartPath: string }; zigbee: { port: string } };
  return [
    `dataDir: ${dir}/data`,
    `runDir: ${dir}/run`,
    'log:',
    '  level: warn',
    'radios:',
    '  ble:',
    '    enabled: true',
    '    transport: uart',
    `    uartPath: ${r.ble.uartPath}`,
    `    maxConnections: ${PER_RADIO}`,
    '  zigbee:',
    '    enabled: true',
    `    port: ${r.zigbee.port}`,
    'access:',
    `  timeZone: ${TZ}`,
    ...uplinkConfigLines(brokerUrl, pki),
    '',
  ].join('\n');
}

/** The maintenance card on the lock, then `locks.attach` as `iqhub locks attach` sends it; retried once the radio is up. */
async function attach(site: SiteProcess, socket: string, s: SiteLockSpec): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (let attempt = 0; ; attempt++) {
    await site.ask(`card ${s.deviceId}`);
    // On a retry, let the lock advertise its attach mode before asking again.
    if (attempt > 0) await sleep(1_500);
    try {
      await callDaemon(
        socket,
        'locks.attach',
        { deviceId: s.deviceId, setupCode: s.setupCode, timeoutMs: 30_000 },
        35_000,
      );
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`daemon.rss: attaching ${s.deviceId}: ${(e as Error).message}`);
      await sleep(1_000);
    }
  }
}

/** Until every lock's offline list was updated after `since` (ms since the epoch) and is up to date. */
async function settled(socket: string, lockIds: string[], since: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A daemon busy applying the sync may not answer in time: that is not a failure, ask again.
    const rows = (await callDaemon(socket, 'access.offline', {}, 30_000).catch((e: unknown) => {
      if (Date.now() > deadline) throw e;
      return [];
    })) as OfflineListRow[];
    const done = lockIds.every((id) => {
      const r = rows.find((x) => x.lockId === id);
      return r?.upToDate === true && r.lastUpdatedAt !== null && Date.parse(r.lastUpdatedAt) >= since;
    });
    if (done) return;
    if (Date.now() > deadline) throw new Error(`daemon.rss: the offline lists did not settle: ${JSON.stringify(rows)}`);
    await sleep(500);
  }
}
