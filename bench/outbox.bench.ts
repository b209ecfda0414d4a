import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDevPki, type DevPkiPaths } from '../provisioning/dev-pki.js';
import { systemClock } from '../src/base/clock.js';
import { HEAP_SETTLE_DELAY_MS } from '../src/base/heap-settle.js';
import { systemRandom } from '../src/base/random.js';
import { openStoreWithKey } from '../src/crypto/store-identity.js';
import { Outbox } from '../src/events/outbox.js';
import type { StoredEvent } from '../src/link/pairing.js';
import { silentLogger } from '../src/log/logger.js';
import { connectCloud } from '../test/helpers/cloud-site.js';
import { type Proc, watch } from '../test/helpers/daemon.js';
import { requireMosquitto, startMosquitto } from '../test/helpers/mosquitto.js';
import { FakeNotifySocket } from '../test/helpers/notify-socket.js';
import { type Benchmark, benchmarkInTempDir, distribution, round, uplinkConfigLines } from './lib.js';
import { launcherNodeArgs, memoryOf, stopDaemon, unitEnvironment } from './memory.bench.js';

/**
 * The outbox drain of the daemon (issue 15, "The outbox drains 100,000 events without the RSS
 * climbing"), on the daemon in its OWN process, started as the systemd unit starts it:
 *
 * 1. A data directory whose outbox holds 100,000 lock events (door events of one lock, as a hub
 *    that was offline for a long time has them), written with the hub's own store and outbox code
 *    (openStoreWithKey, as the daemon opens it at a first start; Outbox.enqueueEvents, as a lock's
 *    events are queued), in this process, closed before the daemon starts.
 * 2. mosquitto (mutual TLS, sessions persisted) with the reference cloud subscribed (persistent
 *    session; it records every event and answers `events/ack`, so events leave the outbox as in
 *    production: on the cloud's ack). The broker is then stopped.
 * 3. `iqhub run --config` as the launcher (packaging/iqhub.sh) runs it — node with the unit's
 *    IQHUB_NODE_ARGS on its command line — with the unit's `Environment=` lines
 *    (systemd/iq-hub.service, read by bench/memory.bench.ts), a NOTIFY_SOCKET, its uplink to the
 *    broker with the default batch size, in-flight window and event acks. After READY and 5 s of
 *    quiet, its VmRSS is `outbox.drainStartRss`; then the broker starts again and the daemon drains.
 * 4. VmRSS from /proc/PID/status every 50 ms until the daemon reports (health, every 5 s) an empty
 *    outbox: the largest is `outbox.drainPeakRss`; `outbox.drainClimb` is peak minus start.
 *    `outbox.drainRate`: 100,000 over the seconds from the first event's arrival at the cloud
 *    until the cloud had recorded the last one. `outbox.drainEndRss`: VmRSS once the outbox is empty;
 *    `outbox.drainSettledRss`: VmRSS 5 s later (the heap settle after a drain done).
 *    `outbox.drainCpuPer1000`: the daemon's utime + stime from the broker's start to the empty
 *    outbox, ms per 1,000 events.
 *
 * IQHUB_BENCH_DRAIN_RUNS (default 1) runs, each on a fresh data directory; figures are medians.
 * IQHUB_BENCH_DRAIN_NOACK=1: the cloud does not acknowledge events (an older or failing cloud):
 * the daemon is watched for 15 s after the first event arrived (no drainRate then).
 * IQHUB_BENCH_DRAIN_TRACE=1 prints VmRSS, the events at the cloud and the last health every 0.5 s.
 */

/** The compiled CLI next to this bench; IQHUB_BENCH_DRAIN_CLI: another build's (an A/B run). */
const CLI = process.env.IQHUB_BENCH_DRAIN_CLI ?? fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const HUB = 'bench-drain-hub';
const EVENTS = 100_000;
const SAMPLE_MS = 50;
const QUIET_MS = 5_000;
const HEALTH_SEC = 5;
/** IQHUB_BENCH_DRAIN_NOACK=1: a cloud that does not acknowledge events, watched this long. */
const NOACK_MS = 15_000;
/** After the empty outbox: the HeapSettle's quiet delay and its collections. */
const SETTLE_MS = HEAP_SETTLE_DELAY_MS + 2_000;

interface DrainFigures {
  start: number;
  peak: number;
  end: number;
  hwm: number;
  seconds: number;
  /** VmRSS `SETTLE_MS` after the outbox was empty (the heap settle after a drain is done). */
  settled: number;
  /** The daemon's CPU (user + system) from the broker's start to the empty outbox, ms. */
  cpuMs: number;
}

/** utime + stime of a process, ms (/proc/PID/stat, clock ticks of 10 ms). */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** IQHUB_BENCH_DRAIN_NODE_OPTIONS: added to the unit's NODE_OPTIONS (e.g. `--require` a memory tracer). */
function extraNodeOptions(unitEnv: Record<string, string>): Record<string, string> {
  const extra = process.env.IQHUB_BENCH_DRAIN_NODE_OPTIONS;
  return extra ? { NODE_OPTIONS: `${unitEnv.NODE_OPTIONS ?? ''} ${extra}`.trim() } : {};
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const outboxDrainBench: Benchmark = benchmarkInTempDir(
  'outbox',
  'the daemon (own process, systemd unit environment) drains 100,000 queued events to mosquitto and the reference cloud: VmRSS before, peak (every 50 ms) and after; events per second',
  async (dir, metrics) => {
    if (!requireMosquitto()) {
      process.stderr.write('outbox: skipped: mosquitto is not installed (apt-get install mosquitto)\n');
      return;
    }
    const runs = Math.max(1, Number(process.env.IQHUB_BENCH_DRAIN_RUNS ?? 1));
    const unitEnv = unitEnvironment();
    metrics['outbox.drain.loadAverage'] = { unit: '1-min load', value: round(loadavg()[0] ?? Number.NaN) };
    const pki = createDevPki({ dir: join(dir, 'pki'), hubId: HUB });
    const figures: DrainFigures[] = [];
    for (let i = 0; i < runs; i++) {
      const f = await oneDrain(join(dir, `run-${i}`), dir, pki, unitEnv);
      process.stderr.write(`outbox: run ${i + 1}/${runs}: ${JSON.stringify(f)}\n`);
      figures.push(f);
    }
    const mb = (pick: (f: DrainFigures) => number) => distribution('MB', figures.map(pick));
    metrics['outbox.drainStartRss'] = mb((f) => f.start);
    metrics['outbox.drainPeakRss'] = mb((f) => f.peak);
    metrics['outbox.drainClimb'] = mb((f) => f.peak - f.start);
    metrics['outbox.drainEndRss'] = mb((f) => f.end);
    metrics['outbox.drainHwm'] = mb((f) => f.hwm);
    metrics['outbox.drainSettledRss'] = mb((f) => f.settled);
    metrics['outbox.drainCpuPer1000'] = distribution(
      'ms CPU',
      figures.map((f) => round((f.cpuMs / EVENTS) * 1000)),
    );
    const timed = figures.filter((f) => Number.isFinite(f.seconds));
    if (timed.length > 0)
      metrics['outbox.drainRate'] = distribution(
        'events/s',
        timed.map((f) => round(EVENTS / f.seconds)),
      );
  },
);

/** The data directory of a hub whose outbox holds `EVENTS` door events, written with the hub's own code. */
function prepareDataDir(dataDir: string): void {
  const opened = openStoreWithKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random: systemRandom });
  try {
    const outbox = new Outbox(opened.store, { clock: systemClock, log: silentLogger() });
    const now = Date.now();
    for (let first = 1; first <= EVENTS; first += 1000) {
      const batch: StoredEvent[] = Array.from({ length: Math.min(1000, EVENTS - first + 1) }, (_, i) => ({
        lockId: 'LOCK-DRAIN-01',
        epoch: 1,
        event: { seq: first + i, at: now - (EVENTS - first - i) * 1000, type: 'door', open: (first + i) % 2 === 0 },
        receivedAt: now,
      }));
      opened.store.transaction(() => outbox.enqueueEvents(batch));
    }
    const depth = outbox.depth();
    if (depth.events !== EVENTS) throw new Error(`outbox: prepared ${depth.events} events, not ${EVENTS}`);
  } finally {
    opened.store.close();
  }
}

async function oneDrain(dir: string, pkiBase: string, pki: DevPkiPaths, unitEnv: Record<string, string>) {
  mkdirSync(dir, { recursive: true });
  prepareDataDir(join(dir, 'data'));
  const broker = await startMosquitto({
    pkiDir: join(pkiBase, 'pki'),
    persistence: true,
    extra: ['max_queued_messages 0'],
  });
  if (!broker) throw new Error('outbox: mosquitto did not start');
  const cloud = await connectCloud(broker.url, pki, HUB);
  const noAck = process.env.IQHUB_BENCH_DRAIN_NOACK === '1';
  if (noAck) cloud.setAckEvents(false);
  let daemon: Proc | undefined;
  let notify: FakeNotifySocket | undefined;
  try {
    await broker.stop();
    const config = join(dir, 'config.yaml');
    const lines = uplinkConfigLines(broker.url, pki);
    lines.splice(
      lines.indexOf('commands:'),
      0,
      `  healthIntervalSec: ${HEALTH_SEC}`,
      '  reconnectBaseMs: 100',
      '  reconnectMaxMs: 1000',
    );
    writeFileSync(
      config,
      [`dataDir: ${dir}/data`, `runDir: ${dir}/run`, 'log:', '  level: warn', ...lines, ''].join('\n'),
    );
    notify = new FakeNotifySocket(join(dir, 'notify.sock'));
    const child = spawn(process.execPath, [...launcherNodeArgs(unitEnv), CLI, 'run', '--config', config], {
      env: {
        ...process.env,
        NODE_OPTIONS: '',
        ...unitEnv,
        ...extraNodeOptions(unitEnv),
        NOTIFY_SOCKET: notify.path,
        WATCHDOG_USEC: '30000000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    daemon = watch(child);
    if (process.env.IQHUB_BENCH_DRAIN_TRACE === '1')
      for (const s of [child.stdout, child.stderr]) s?.on('data', (d: string) => process.stderr.write(d));
    const pid = child.pid as number;
    await notify.waitFor('READY=1', 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${daemon?.stderr()}\n${daemon?.stdout().slice(-4000)}`);
    });
    await sleep(QUIET_MS);
    const start = memoryOf(pid).rss;
    let peak = start;
    const trace = process.env.IQHUB_BENCH_DRAIN_TRACE === '1';
    const t00 = performance.now();
    let ticks = 0;
    const sampler = setInterval(() => {
      try {
        const rss = memoryOf(pid).rss;
        peak = Math.max(peak, rss);
        if (trace && ticks++ % 10 === 0) {
          const h = cloud.health(HUB).at(-1);
          process.stderr.write(
            `outbox: t=${((performance.now() - t00) / 1000).toFixed(1)} s rss=${rss.toFixed(1)} MB cloud=${cloud.events(HUB).length} health(depth=${h?.outbox.depth}, unacked=${h?.delivery?.unacknowledged})\n`,
          );
        }
      } catch {
        // The daemon exited: its exit is reported below.
      }
    }, SAMPLE_MS);
    let seconds: number;
    let cpu0 = 0;
    try {
      const healthSeen = cloud.health(HUB).length;
      cpu0 = cpuMsOf(pid);
      await broker.start();
      await cloud.waitFor((c) => c.events(HUB).length > 0, 60_000, 'the first event at the cloud');
      const t0 = performance.now();
      if (noAck) {
        // Without acks only the window's worth goes out: what matters then is that the RSS stays flat.
        await sleep(NOACK_MS);
        seconds = Number.NaN;
        process.stderr.write(
          `outbox: without acks the cloud got ${cloud.events(HUB).length} events in ${NOACK_MS} ms\n`,
        );
      } else {
        await cloud.waitFor((c) => c.events(HUB).length >= EVENTS, 600_000, `${EVENTS} events at the cloud`);
        seconds = (performance.now() - t0) / 1000;
        // Drained: the daemon says its outbox is empty (events leave it on the cloud's ack).
        await cloud.waitFor(
          (c) =>
            c
              .health(HUB)
              .slice(healthSeen)
              .some((h) => h.outbox.depth === 0),
          120_000,
          'an empty outbox in the health',
        );
      }
    } finally {
      clearInterval(sampler);
    }
    if (child.exitCode !== null) throw new Error(`outbox: the daemon exited (${child.exitCode})\n${daemon.stderr()}`);
    const last = memoryOf(pid);
    const cpuMs = cpuMsOf(pid) - cpu0;
    peak = Math.max(peak, last.rss);
    await sleep(SETTLE_MS);
    const settled = memoryOf(pid).rss;
    return {
      start: round(start),
      peak: round(peak),
      end: round(last.rss),
      hwm: round(last.hwm),
      settled: round(settled),
      seconds,
      cpuMs,
    };
  } finally {
    await stopDaemon(daemon);
    notify?.close();
    await cloud.close();
    await broker.close();
  }
}
