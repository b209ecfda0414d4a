import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type RadioSite, startRadioSite } from '../../sim/emu/site.js';
import type { SimLock } from '../../sim/lock/lock.js';
import type { RunningDaemon } from '../../src/app/daemon.js';
import { Secret } from '../../src/crypto/secret.js';
import type { LinkManager } from '../../src/link/manager.js';
import { airCount, airDelta, airQuiet, countedOpen, waitFor } from '../helpers/air-frames.js';
import { EMULATED_LINK, startDaemonIn } from '../helpers/radio-daemon.js';
import { requireSocat, SOCAT_MISSING } from '../helpers/socat.js';

/**
 * Issue 15's air budget on the real radio stacks (docs/link-protocol.md "Frame budget"): an open on
 * an established link is one frame to the lock and one back — the answer carries the `opened`
 * event, the hub's acknowledgement rides on its next request or goes alone once the link is idle.
 * Counted at the emulators: real zigbee-herdsman against the ZNP emulator (every ZCL frame to and
 * from the lock), real noble against the HCI emulator behind a socat PTY (frame writes,
 * notifications and ATT write responses).
 */

const socat = requireSocat();
if (!socat) process.stderr.write(`air-budget: ${SOCAT_MISSING}\n`);

const BLE = { deviceId: 'BLE-AIR01', setupCode: 'BLE1-AIR0-CODE', address: 'aa:bb:cc:00:15:01', radio: 'ble' } as const;
const ZB = { deviceId: 'ZB-AIR01', setupCode: 'ZB01-AIR0-CODE', address: 'zb-air01', radio: 'zigbee' } as const;
/** Long enough that an idle acknowledgement never falls inside an open's count (quiet window below). */
const ACK_DELAY_MS = 3_000;
const QUIET_MS = 400;
const OPENS = 3;

describe.skipIf(!socat)('the frames of an open, counted at the emulators', () => {
  let base: string;
  let site: RadioSite | undefined;
  let daemon: RunningDaemon | undefined;
  let link: LinkManager;
  const locks: Record<string, SimLock> = {};

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'iqhub-air-'));
    site = await startRadioSite({ socat: socat as string, locks: [BLE, ZB], seed: 'air-budget' });
    for (const [id, lock] of site.locks) locks[id] = lock;
    daemon = await startDaemonIn(
      base,
      { radios: site.radios },
      {
        logLevel: process.env.IQHUB_E2E_LOG,
        // No poll inside the test: every frame counted is the open's.
        linkOptions: { ...EMULATED_LINK, pollMs: 600_000, ackDelayMs: ACK_DELAY_MS },
      },
    );
    const l = daemon.hub.link;
    if (!l) throw new Error('no link layer');
    link = l;
    for (const spec of [BLE, ZB]) {
      (locks[spec.deviceId] as SimLock).presentMaintenanceCard();
      await link.attach(spec.deviceId, Secret.fromUtf8(spec.setupCode), 30_000);
    }
  }, 90_000);

  afterAll(async () => {
    await daemon?.shutdown('test over');
    await site?.close();
    if (base) rmSync(base, { recursive: true, force: true });
  }, 90_000);

  for (const spec of [ZB, BLE]) {
    test(`${spec.radio}: each open on an established link is at most 1 frame out and 1 back`, async () => {
      const s = site as RadioSite;
      const lock = locks[spec.deviceId] as SimLock;
      // Established and idle: the attach's collections and acknowledgements are over.
      await airQuiet(s, spec.radio, ACK_DELAY_MS + 500, 30_000);
      const counts = [];
      for (let i = 0; i < OPENS; i++) counts.push(await countedOpen(s, link, lock, spec.radio, QUIET_MS));
      process.stderr.write(`air-budget ${spec.radio}: frames per open ${JSON.stringify(counts)}\n`);
      for (const c of counts) {
        expect(c.out, `${spec.radio} frames to the lock per open`).toBeLessThanOrEqual(1);
        expect(c.back, `${spec.radio} frames from the lock per open`).toBeLessThanOrEqual(1);
      }
      // Each open's event was stored; each open's request acknowledged the events before it, so the
      // lock holds only the last open's event until the idle acknowledgement (one exchange) comes.
      expect(lock.events().map((e) => e.seq)).toEqual([lock.state().lastSeq]);
      const before = airCount(s, spec.radio);
      await waitFor(() => lock.events().length === 0, 'the idle acknowledgement', ACK_DELAY_MS + 15_000);
      await airQuiet(s, spec.radio, QUIET_MS, 20_000);
      const idle = airDelta(before, airCount(s, spec.radio));
      expect(idle.out).toBeLessThanOrEqual(1);
      expect(idle.back).toBeLessThanOrEqual(1);
    }, 90_000);

    test(`${spec.radio}: a door opened and closed (two pushed events) costs the pushes and one acknowledgement`, async () => {
      const s = site as RadioSite;
      const lock = locks[spec.deviceId] as SimLock;
      await airQuiet(s, spec.radio, ACK_DELAY_MS + 500, 30_000);
      const before = airCount(s, spec.radio);
      // Back to back, so both fall well inside ackDelayMs however slow the machine.
      const opened = lock.setDoor(true);
      const closed = lock.setDoor(false);
      if (!opened || !closed) throw new Error('the door did not change');
      await waitFor(() => lock.events().length === 0, 'both acknowledged', ACK_DELAY_MS + 15_000);
      await airQuiet(s, spec.radio, QUIET_MS, 20_000);
      const passage = airDelta(before, airCount(s, spec.radio));
      process.stderr.write(`air-budget ${spec.radio}: frames of a passage ${JSON.stringify(passage)}\n`);
      // Was 6 out and 8 back: each push set off getState, getEvents and ackEvents.
      expect(passage.out, `${spec.radio} frames to the lock`).toBeLessThanOrEqual(1);
      expect(passage.back, `${spec.radio} frames from the lock (2 pushes, 1 answer)`).toBeLessThanOrEqual(3);
      const stored = link.get(spec.deviceId).lastEventSeq;
      expect(stored).toBe(closed.seq);
    }, 90_000);
  }
});
