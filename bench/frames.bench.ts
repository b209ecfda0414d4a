import { type RadioSite, startRadioSite } from '../sim/emu/site.js';
import type { SimLock } from '../sim/lock/lock.js';
import type { RunningDaemon } from '../src/app/daemon.js';
import { Secret } from '../src/crypto/secret.js';
import type { LinkManager } from '../src/link/manager.js';
import {
  type AirCount,
  airCount,
  airDelta,
  airQuiet,
  countedConnectAndOpen,
  countedOpen,
  waitFor,
} from '../test/helpers/air-frames.js';
import { EMULATED_LINK, startDaemonIn } from '../test/helpers/radio-daemon.js';
import { type Benchmark, benchmarkInTempDir, distribution, type Metric, socatOrSkip } from './lib.js';

const BLE = { deviceId: 'BLE-FR01', setupCode: 'BLE1-FRMS-CODE', address: 'aa:bb:cc:00:15:0f', radio: 'ble' } as const;
const ZB = { deviceId: 'ZB-FR01', setupCode: 'ZB01-FRMS-CODE', address: 'zb-frames-01', radio: 'zigbee' } as const;
const OPENS = 20;
/** Opens of a lock whose link was dropped just before (connect + open). */
const CONNECTS = 3;
/** Events pushed by the lock (door changes), each on a quiet link. */
const PUSHES = 5;
/** The idle acknowledgement waits this long; the quiet window that ends an open's count is shorter. */
const ACK_DELAY_MS = 2_000;
const QUIET_MS = 400;

/**
 * Issue 15's air budget (docs/link-protocol.md "Frame budget"), counted at the emulators, not by the
 * hub: real zigbee-herdsman on the ZNP emulator (every ZCL frame to and from the lock, whatever its
 * cluster, the lock's periodic modelId report aside) and real noble on the HCI emulator behind a socat
 * PTY (frame writes out; notifications and ATT write responses back).
 *
 * - zigbee.framesPerOpen / ble.framesPerOpen: the larger of frames out and back per open on an
 *   established link (target 1), with `.out` and `.back` as p50/p99 over OPENS opens, one at a time,
 *   each counted until the hub stored its event and the air was quiet for QUIET_MS.
 * - `.idleAck.out` / `.idleAck.back`: the one exchange that acknowledges the last open's event when
 *   no request follows within ackDelayMs (not part of any open).
 * - `<radio>.framesPerPushedEvent.out/.back`: an event the lock pushes as it happens (a door
 *   change), from its push until the lock was told the hub holds it, p50/p99 of PUSHES, each on a
 *   quiet link (no request for the acknowledgement to ride on: it goes after ackDelayMs).
 * - `<radio>.framesPerConnectAndOpen.out/.back`: an open right after the lock's link dropped: the
 *   bearer's link open (ZigBee link-cluster open/openAck; BLE's connection and GATT discovery are
 *   not frames of the lock characteristic, so not counted), Noise KK, then the open.
 *
 * The daemon runs in this process (as bench/radio.bench.ts); the emulators count what crosses their
 * air, so where the daemon runs does not change the figures.
 */
export const framesBench: Benchmark = benchmarkInTempDir(
  'frames',
  'radio frames per open on an established link, counted at the ZNP and HCI emulators (zigbee/ble.framesPerOpen)',
  async (dir, metrics) => {
    const socat = socatOrSkip('frames');
    if (!socat) return;
    let site: RadioSite | undefined;
    let daemon: RunningDaemon | undefined;
    try {
      site = await startRadioSite({ socat, locks: [BLE, ZB], seed: 'frames-bench' });
      daemon = await startDaemonIn(
        dir,
        { radios: site.radios },
        { linkOptions: { ...EMULATED_LINK, pollMs: 3_600_000, ackDelayMs: ACK_DELAY_MS } },
      );
      const link = daemon.hub.link;
      if (!link) throw new Error('frames bench: the daemon built no link layer');
      for (const spec of [BLE, ZB]) {
        site.locks.get(spec.deviceId)?.presentMaintenanceCard();
        await link.attach(spec.deviceId, Secret.fromUtf8(spec.setupCode), 30_000);
      }
      for (const spec of [ZB, BLE]) {
        const lock = site.locks.get(spec.deviceId);
        if (!lock) throw new Error(`no lock ${spec.deviceId}`);
        Object.assign(metrics, await measure(site, link, lock, spec.radio));
      }
    } finally {
      await daemon?.shutdown('bench over');
      await site?.close();
    }
  },
);

async function measure(
  site: RadioSite,
  link: LinkManager,
  lock: SimLock,
  radio: 'ble' | 'zigbee',
): Promise<Record<string, Metric>> {
  await airQuiet(site, radio, ACK_DELAY_MS + 500, 30_000);
  const opens: AirCount[] = [];
  for (let i = 0; i < OPENS; i++) opens.push(await countedOpen(site, link, lock, radio, QUIET_MS));
  const before = airCount(site, radio);
  await waitFor(() => lock.events().length === 0, 'the idle acknowledgement', ACK_DELAY_MS + 15_000);
  await airQuiet(site, radio, QUIET_MS, 20_000);
  const idle = airDelta(before, airCount(site, radio));
  // Events the lock pushes as they happen (a door opened and closed by hand): each counted from the
  // push until the lock has been told the hub holds it (whatever the hub asks meanwhile), on a quiet link.
  const pushes: AirCount[] = [];
  for (let i = 0; i < PUSHES; i++) {
    await airQuiet(site, radio, ACK_DELAY_MS + 500, 30_000);
    const from = airCount(site, radio);
    if (!lock.setDoor(!lock.state().doorOpen)) throw new Error('frames bench: the door did not change');
    await waitFor(() => lock.events().length === 0, 'the pushed event acknowledged', ACK_DELAY_MS + 15_000);
    await airQuiet(site, radio, QUIET_MS, 20_000);
    pushes.push(airDelta(from, airCount(site, radio)));
  }
  process.stderr.write(`frames: ${radio} pushed events ${JSON.stringify(pushes)}\n`);
  const connects: AirCount[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    await airQuiet(site, radio, ACK_DELAY_MS + 500, 30_000);
    connects.push(await countedConnectAndOpen(site, link, lock, radio, QUIET_MS));
  }
  process.stderr.write(`frames: ${radio} connect and open ${JSON.stringify(connects)}\n`);
  process.stderr.write(`frames: ${radio} ${JSON.stringify(opens)} idle ack ${JSON.stringify(idle)}\n`);
  return {
    [`${radio}.framesPerOpen`]: {
      unit: 'frames each way (max)',
      value: Math.max(...opens.map((c) => Math.max(c.out, c.back))),
      n: OPENS,
    },
    ...eachWay(`${radio}.framesPerOpen`, opens),
    [`${radio}.framesPerOpen.idleAck.out`]: { unit: 'frames', value: idle.out, n: 1 },
    [`${radio}.framesPerOpen.idleAck.back`]: { unit: 'frames', value: idle.back, n: 1 },
    ...eachWay(`${radio}.framesPerPushedEvent`, pushes),
    ...eachWay(`${radio}.framesPerConnectAndOpen`, connects),
  };
}

/** `<key>.out` and `<key>.back`: p50/p99 of the frames each way over the counts. */
function eachWay(key: string, counts: AirCount[]): Record<string, Metric> {
  return {
    [`${key}.out`]: distribution(
      'frames',
      counts.map((c) => c.out),
    ),
    [`${key}.back`]: distribution(
      'frames',
      counts.map((c) => c.back),
    ),
  };
}
