import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { devUplinkConfig } from '../../sim/cloud/connect.js';
import { simFirmwareImage, simVendor } from '../../sim/vendor.js';
import type { SimWorld } from '../../sim/world.js';
import type { RunningDaemon } from '../../src/app/daemon.js';
import type { HubConfig } from '../../src/config/schema.js';
import { FIRMWARE_OPERATIONS } from '../../src/contract/link-messages.js';
import { conforms } from '../../src/contract/mqtt-validate.js';
import { Secret } from '../../src/crypto/secret.js';
import { loadSimulatedSite } from '../../src/demo/simulated-site.js';
import { openSite } from '../helpers/cloud-site.js';
import type { Mosquitto } from '../helpers/mosquitto.js';
import { MOSQUITTO_MISSING, requireMosquitto } from '../helpers/mosquitto.js';
import { startDaemonIn } from '../helpers/radio-daemon.js';

/**
 * The cloud's side of a firmware update, through a real mosquitto: the reference cloud announces
 * an image, the hub fetches it in chunks that fit its message limit, verifies it and installs it
 * on two simulated locks, reporting progress on `firmware/progress`; a forged image announced the
 * same way is refused (`refused`, `firmware.forged`) before any lock hears of it.
 */

const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`firmware-mqtt: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-fw-mqtt';
/** The smallest message limit the config allows: the image needs several chunks. */
const MAX_MESSAGE = 16_384;
const SIZE = 24_000;

describe.skipIf(!haveMosquitto)('firmware announced by the cloud over MQTT', () => {
  let base: string;
  let broker: Mosquitto | undefined;
  let cloud: ReferenceCloud | undefined;
  let daemon: RunningDaemon | undefined;
  let world: SimWorld | undefined;
  let ids: string[] = [];

  beforeAll(async () => {
    const site = await openSite('fw-mqtt', HUB);
    ({ base, broker, cloud } = site);
    daemon = await startDaemonIn(
      base,
      {
        simulation: { enabled: true, locks: 2, seed: 'fw-mqtt' } as HubConfig['simulation'],
        uplink: devUplinkConfig(site.broker.url, site.pki, {
          reconnectBaseMs: 200,
          reconnectMaxMs: 1000,
          maxMessageBytes: MAX_MESSAGE,
        }),
        commands: { otpKeyFile: site.pki.otpKey } as HubConfig['commands'],
        firmware: {
          vendorKeys: [Buffer.from(simVendor().publicKey).toString('hex')],
          retryDelayMs: 300,
        } as HubConfig['firmware'],
      },
      {
        logLevel: process.env.IQHUB_E2E_LOG,
        simulation: loadSimulatedSite,
        onBuilt: (_hub, w) => {
          world = w as SimWorld;
        },
      },
    );
    const w = world as SimWorld;
    ids = w.stickers.map((s) => s.deviceId);
    for (const s of w.stickers) {
      w.lock(s.deviceId).presentMaintenanceCard();
      await daemon.hub.link?.attach(s.deviceId, Secret.fromUtf8(s.setupCode), 15_000);
    }
    await site.cloud.waitFor((c) => c.status(HUB)?.state === 'online', 15_000, 'the hub online');
  }, 60_000);

  afterAll(async () => {
    await daemon?.shutdown('test over');
    await cloud?.close();
    await broker?.close();
    if (base) rmSync(base, { recursive: true, force: true });
  }, 90_000);

  test('a forged image announced by the cloud is refused before any lock hears of it', async () => {
    const c = cloud as ReferenceCloud;
    const file = simFirmwareImage({ version: '7.0.0', size: SIZE }, simVendor('attacker'));
    await c.firmware.announce(HUB, file, ids, { announceId: 'fw-forged' });
    await c.waitFor(
      (x) => x.firmware.progress(HUB).some((p) => p.announceId === 'fw-forged' && p.state === 'refused'),
      20_000,
      'the refusal',
    );
    const refused = c.firmware.progress(HUB).find((p) => p.announceId === 'fw-forged' && p.state === 'refused');
    expect(refused?.error?.code).toBe('firmware.forged');
    expect(refused?.lockId).toBeNull();
    for (const id of ids) {
      const handled = (world as SimWorld).lock(id).requestCounts().handled;
      expect(FIRMWARE_OPERATIONS.reduce((n, op) => n + handled[op], 0)).toBe(0);
    }
  }, 90_000);

  test('a signed image is fetched in chunks within the message limit, installed on both locks, its progress reported', async () => {
    const c = cloud as ReferenceCloud;
    const file = simFirmwareImage({ version: '1.3.0', size: SIZE });
    await c.firmware.announce(HUB, file, ids, { announceId: 'fw-130' });
    await c.waitFor(
      (x) =>
        ids.every((id) =>
          x.firmware.progress(HUB).some((p) => p.announceId === 'fw-130' && p.lockId === id && p.state === 'installed'),
        ),
      90_000,
      'both locks installed',
    );
    const progress = c.firmware.progress(HUB).filter((p) => p.announceId === 'fw-130');
    for (const p of progress) expect(conforms('firmware/progress', p)).toBe(true);
    expect(progress[0]?.state).toBe('fetching');
    expect(progress.some((p) => p.state === 'queued')).toBe(true);
    // Fetched in several chunks, each answer within the hub's limit of 16 KiB.
    const chunk = Math.floor(((MAX_MESSAGE - 512) * 3) / 4 / 3) * 3;
    expect(c.firmware.served.get(HUB)).toBeGreaterThanOrEqual(Math.ceil(file.length / chunk));
    for (const id of ids)
      expect((world as SimWorld).lock(id).firmwareVersion()).toEqual({ major: 1, minor: 3, patch: 0 });
  }, 120_000);
});
