import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { type RadioSite, startRadioSite } from '../../sim/emu/site.js';
import type { SimLock } from '../../sim/lock/lock.js';
import { simFirmwareImage, simVendor } from '../../sim/vendor.js';
import { type RunningDaemon, startDaemon } from '../app/daemon.js';
import { HubError } from '../base/errors.js';
import type { HubConfig } from '../config/schema.js';
import { FIRMWARE_OPERATIONS } from '../contract/link-messages.js';
import { Secret } from '../crypto/secret.js';
import { demoFirmwareConfig } from './firmware-steps.js';
import { check, runSteps, type ScenarioResult, until } from './scenario.js';

const BLE = { deviceId: 'BLE-DEMO1', setupCode: 'BLE1-DEMO-CODE', address: 'aa:bb:cc:00:d0:01', radio: 'ble' } as const;
const ZB = { deviceId: 'ZB-DEMO1', setupCode: 'ZB01-DEMO-CODE', address: 'zb-demo1', radio: 'zigbee' } as const;
const SIZE = 3000;

/** socat puts the BLE controller emulator behind a pseudo-terminal: $SOCAT_BIN, else /usr/bin or /usr/local/bin. */
function findSocat(): string | undefined {
  const candidates = [process.env.SOCAT_BIN, '/usr/bin/socat', '/usr/local/bin/socat'];
  return candidates.find((p): p is string => {
    if (!p) return false;
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function firmwareRequests(lock: SimLock): number {
  const handled = lock.requestCounts().handled;
  return FIRMWARE_OPERATIONS.reduce((n, op) => n + handled[op], 0);
}

/**
 * The demo's part on the real radio stacks: a second daemon with real noble (the HCI emulator
 * behind a socat PTY) and real zigbee-herdsman (the Z-Stack emulator), one BLE and one ZigBee
 * simulated lock. A forged firmware image is refused before any block reaches either; a signed one
 * reaches both, the BLE link dropped and the ZigBee air dead in the middle of each transfer, and
 * each lock resumes from what it holds. Without socat the part is skipped, saying so.
 */
export async function firmwareRadiosPart(base: string, out: (line: string) => void): Promise<ScenarioResult> {
  const socat = findSocat();
  if (!socat) {
    out('  - skipped: socat is not installed (apt-get install socat); the same runs in npm test on CI');
    return { passed: 0, failed: 0 };
  }
  let site: RadioSite | undefined;
  let daemon: RunningDaemon | undefined;
  try {
    site = await startRadioSite({ socat, locks: [BLE, ZB], seed: 'demo-firmware-radios' });
    const radioSite = site;
    const dir = join(base, 'radios');
    daemon = await startDaemon({
      configPath: null,
      logPretty: false,
      handleSignals: false,
      overrides: {
        dataDir: join(dir, 'data'),
        runDir: join(dir, 'run'),
        log: { level: 'fatal', pretty: false } as HubConfig['log'],
        simulation: { enabled: false } as HubConfig['simulation'],
        radios: radioSite.radios,
        firmware: { ...demoFirmwareConfig, attempts: 20 },
      },
      // ZigBee frames take tens of ms each way through herdsman and the emulator.
      linkOptions: { connectTimeoutMs: 5_000, stepTimeoutMs: 1_500, retryMs: 500, requestAttempts: 4, pollMs: 1_000 },
    });
    const hub = daemon.hub;
    const lock = (id: string) => radioSite.locks.get(id) as SimLock;
    return await runSteps(
      [
        {
          name: 'a BLE lock (real noble, HCI emulator) and a ZigBee lock (real zigbee-herdsman, Z-Stack emulator) attached',
          async run() {
            check(hub.link, 'the hub has no link layer');
            for (const spec of [BLE, ZB]) {
              lock(spec.deviceId).presentMaintenanceCard();
              await hub.link.attach(spec.deviceId, Secret.fromUtf8(spec.setupCode), 60_000);
            }
          },
        },
        {
          name: 'on the radios: a firmware image signed by another key is refused before any block is sent',
          run() {
            check(hub.firmware, 'the hub has no firmware relay');
            let code = '';
            try {
              hub.firmware.addImage(simFirmwareImage({ version: '9.9.9', size: SIZE }, simVendor('attacker')));
            } catch (e) {
              code = e instanceof HubError ? e.code : String(e);
            }
            check(code === 'firmware.forged', `expected firmware.forged, got ${code || 'acceptance'}`);
            for (const id of [BLE.deviceId, ZB.deviceId]) check(firmwareRequests(lock(id)) === 0, `${id} heard of it`);
          },
        },
        {
          name: 'on the radios: a signed image reaches the BLE and the ZigBee lock, each cut off mid-transfer and resumed',
          async run() {
            const relay = hub.firmware;
            check(relay, 'the hub has no firmware relay');
            const ble = lock(BLE.deviceId);
            const zb = lock(ZB.deviceId);
            const image = relay.addImage(simFirmwareImage({ version: '1.2.0', size: SIZE }));
            relay.push(image.sha256, [BLE.deviceId, ZB.deviceId], 'demo');
            await until('a third of the image on the BLE lock', () => ble.firmwareStaged() >= SIZE / 3, 60_000);
            check(radioSite.hci.emulator.disconnect(BLE.address) > 0, 'the BLE link was not cut');
            await until('a third of the image on the ZigBee lock', () => zb.firmwareStaged() >= SIZE / 3, 60_000);
            radioSite.znp.setFaults({ dropAir: 1 });
            await new Promise((r) => setTimeout(r, 3_000));
            radioSite.znp.setFaults({ dropAir: 0 });
            const done = (id: string) => ['installed', 'failed'].includes(relay.progress(id)?.state ?? '');
            await until('both locks done', () => done(BLE.deviceId) && done(ZB.deviceId), 180_000);
            for (const [id, l] of [
              [BLE.deviceId, ble],
              [ZB.deviceId, zb],
            ] as const) {
              const p = relay.progress(id);
              check(p?.state === 'installed', `${id}: ${p?.state} ${p?.error ?? ''}`);
              const v = l.firmwareVersion();
              check(v.major === 1 && v.minor === 2 && v.patch === 0, `${id} runs ${v.major}.${v.minor}.${v.patch}`);
              // Resumed, not begun again.
              check(l.requestCounts().handled.fwBegin === 1, `${id} began the transfer more than once`);
            }
          },
        },
      ],
      out,
    );
  } finally {
    await daemon?.shutdown('demo part over');
    await site?.close();
  }
}
