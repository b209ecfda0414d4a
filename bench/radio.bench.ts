import { type RadioSite, startRadioSite } from '../sim/emu/site.js';
import type { SimLock } from '../sim/lock/lock.js';
import type { RunningDaemon } from '../src/app/daemon.js';
import type { Hub } from '../src/app/hub.js';
import type { HubConfig } from '../src/config/schema.js';
import { Secret } from '../src/crypto/secret.js';
import type { LinkManager } from '../src/link/manager.js';
import { EMULATED_LINK, startDaemonIn } from '../test/helpers/radio-daemon.js';
import { retrying } from '../test/helpers/radio-rig.js';
import { type Benchmark, benchmarkInTempDir, distribution, round, socatOrSkip } from './lib.js';

const BLE = { deviceId: 'BLE-0001', setupCode: 'BLE1-BNCH-CODE', address: 'aa:bb:cc:00:0b:01', radio: 'ble' } as const;
const ZB = { deviceId: 'ZB-0001', setupCode: 'ZB01-BNCH-CODE', address: 'zb-bench-0001', radio: 'zigbee' } as const;
/** Measured opens per lock, after WARMUP unmeasured ones. */
const OPENS = 200;
const WARMUP = 20;
/** Warm restarts of the daemon against the same emulators (the coordinator keeps its network). */
const RESTARTS = 5;

/**
 * The real radio stacks in one daemon, as issue 5 asks: startDaemon with radios.ble (real noble
 * over a socat PTY to the HCI emulator) and radios.zigbee (real zigbee-herdsman over TCP to the
 * ZNP emulator), an unmodified SimLock on each; no uplink, no simulated radio.
 *
 * - ble.openRoundTrip / zigbee.openRoundTrip: hub.link.open → the lock's answer, one door at a
 *   time (each open after the hub collected the previous one's `opened` event, so it never queues
 *   behind that work). The emulators add no air latency: the figures are our stack plus the real
 *   library, its serial or TCP framing and the emulated controller on the same 2 cores — a floor,
 *   not what a real radio gives (BLE connection intervals, 802.15.4 at 250 kbit/s add to it).
 * - radio.startupToReady.first: startDaemon until both radios report ready, fresh data directory and
 *   blank coordinator (herdsman forms the network, with its fixed ~3 s wait).
 *   radio.startupToReady: the same over RESTARTS warm restarts (same data directory, the coordinator
 *   keeps its network, herdsman resumes).
 *   `.ble` / `.zigbee`: until that radio alone was running; `.daemonStarted`: until startDaemon
 *   resolved (the hub's components started; a radio may still be coming up after it).
 *
 * The process lingers up to a minute after the bench has stopped everything: zigbee-herdsman
 * 10.9.5's zstack adapter starts a 60 s debounce timer per end-device announcement
 * (deviceAnnounceRouteDiscoveryDebouncers) and its stop() does not clear it.
 */
export const radioBench: Benchmark = benchmarkInTempDir(
  'radio',
  'open round trip through real noble / zigbee-herdsman and the emulated controllers (zero air latency), p50/p99; daemon start-up to ready with both radios (first and warm)',
  async (dir, metrics) => {
    const socat = socatOrSkip('radio');
    if (!socat) return;
    began = performance.now();
    let site: RadioSite | undefined;
    let daemon: RunningDaemon | undefined;
    try {
      site = await startRadioSite({ socat, locks: [BLE, ZB], seed: 'radio-bench' });
      const byId = site.locks;
      const start = startWith(dir, site.radios);

      const first = await timedStart(start);
      daemon = first.daemon;
      metrics['radio.startupToReady.first'] = { unit: 'ms', value: round(first.ms), n: 1 };
      metrics['radio.startupToReady.first.ble'] = { unit: 'ms', value: round(first.ble), n: 1 };
      metrics['radio.startupToReady.first.zigbee'] = { unit: 'ms', value: round(first.zigbee), n: 1 };

      const link = needLink(daemon.hub);
      for (const spec of [BLE, ZB]) {
        byId.get(spec.deviceId)?.presentMaintenanceCard();
        await link.attach(spec.deviceId, Secret.fromUtf8(spec.setupCode), 30_000);
      }
      progress('started and attached both locks');
      metrics['ble.openRoundTrip'] = distribution('ms', await openRoundTrips(link, BLE.deviceId, byId));
      progress(`${WARMUP + OPENS} BLE opens`);
      metrics['zigbee.openRoundTrip'] = distribution('ms', await openRoundTrips(link, ZB.deviceId, byId));
      progress(`${WARMUP + OPENS} ZigBee opens`);

      const warm: StartTimes[] = [];
      for (let i = 0; i < RESTARTS; i++) {
        await daemon.shutdown('bench restart');
        daemon = undefined;
        const next = await timedStart(start);
        daemon = next.daemon;
        warm.push(next);
      }
      metrics['radio.startupToReady'] = distribution(
        'ms',
        warm.map((w) => w.ms),
      );
      metrics['radio.startupToReady.daemonStarted'] = distribution(
        'ms',
        warm.map((w) => w.started),
      );
      metrics['radio.startupToReady.ble'] = distribution(
        'ms',
        warm.map((w) => w.ble),
      );
      metrics['radio.startupToReady.zigbee'] = distribution(
        'ms',
        warm.map((w) => w.zigbee),
      );
      progress(`${RESTARTS} warm restarts`);
      // The restarted daemon still reaches both locks: the figures above are of a working hub.
      const again = needLink(daemon.hub);
      for (const spec of [BLE, ZB]) {
        const before = byId.get(spec.deviceId)?.requestCounts().handled.open ?? 0;
        await retrying(() => again.open(spec.deviceId, 1_000), `opening ${spec.deviceId} after the restarts`);
        const after = byId.get(spec.deviceId)?.requestCounts().handled.open ?? 0;
        if (after !== before + 1) throw new Error(`${spec.deviceId} handled ${after - before} opens, not 1`);
      }
      progress('both locks open after the restarts');
    } finally {
      await daemon?.shutdown('bench over');
      await site?.close();
      progress('stopped');
    }
  },
);

let began = performance.now();
/** A phase done, on stderr: where the bench's wall time goes. */
function progress(what: string): void {
  process.stderr.write(`radio: ${what} (${Math.round((performance.now() - began) / 1000)} s)\n`);
}

/** startDaemon with both radios (and nothing else) on the emulators, data in `dir`. */
function startWith(dir: string, radios: HubConfig['radios']): (onBuilt: (hub: Hub) => void) => Promise<RunningDaemon> {
  return (onBuilt) => startDaemonIn(dir, { radios }, { onBuilt, linkOptions: EMULATED_LINK });
}

/** What one start took, ms: until both radios run, and until startDaemon resolved / each radio ran. */
interface StartTimes {
  daemon: RunningDaemon;
  ms: number;
  started: number;
  ble: number;
  zigbee: number;
}

/**
 * From the call to startDaemon until `iqhub status` shows both radios running; each radio's own
 * moment comes from its state changes, watched from before the hub starts.
 */
async function timedStart(start: (onBuilt: (hub: Hub) => void) => Promise<RunningDaemon>): Promise<StartTimes> {
  const t = performance.now();
  const ready: Partial<Record<string, number>> = {};
  const daemon = await start((hub) => {
    for (const radio of hub.radios?.members ?? []) {
      radio.onStateChange((st) => {
        if (st.status === 'ready') ready[radio.kind] ??= performance.now() - t;
      });
    }
  });
  const started = performance.now() - t;
  const running = (name: string) =>
    daemon.hub.status().components.some((c) => c.name === name && c.state === 'running');
  const deadline = Date.now() + 30_000;
  while (!(running('radio.ble') && running('radio.zigbee'))) {
    if (Date.now() > deadline) {
      const components = JSON.stringify(daemon.hub.status().components);
      await daemon.shutdown('bench: radios not ready');
      throw new Error(`radio bench: both radios not ready within 30 s: ${components}`);
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  const ms = performance.now() - t;
  return { daemon, ms, started, ble: ready.ble ?? ms, zigbee: ready.zigbee ?? ms };
}

function needLink(hub: Hub): LinkManager {
  if (!hub.link) throw new Error('radio bench: the daemon built no link layer (no radio enabled?)');
  return hub.link;
}

/**
 * WARMUP + OPENS opens of one lock, one at a time: each waits (unmeasured) for the hub to have
 * collected the previous open's `opened` event. Checks the lock handled every one.
 */
async function openRoundTrips(
  link: LinkManager,
  lockId: string,
  locks: ReadonlyMap<string, SimLock>,
): Promise<number[]> {
  const lock = locks.get(lockId);
  if (!lock) throw new Error(`no lock ${lockId}`);
  let opened = 0;
  const off = link.onLockEvent((id, e) => {
    if (id === lockId && e.type === 'opened') opened++;
  });
  try {
    const handledBefore = lock.requestCounts().handled.open ?? 0;
    const samples: number[] = [];
    for (let i = 0; i < WARMUP + OPENS; i++) {
      const expected = opened + 1;
      const t = performance.now();
      const state = await link.open(lockId, 1_000);
      const ms = performance.now() - t;
      if (state.bolt !== 'unlocked') throw new Error(`${lockId} answered bolt ${state.bolt} to an open`);
      if (i >= WARMUP) samples.push(ms);
      const deadline = Date.now() + 10_000;
      while (opened < expected) {
        if (Date.now() > deadline) throw new Error(`the opened event of ${lockId} open ${i} never reached the hub`);
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    const handled = (lock.requestCounts().handled.open ?? 0) - handledBefore;
    if (handled !== WARMUP + OPENS) throw new Error(`${lockId} handled ${handled} opens, not ${WARMUP + OPENS}`);
    return samples;
  } finally {
    off();
  }
}
