import { simFirmwareImage, simVendor } from '../../sim/vendor.js';
import type { SimWorld } from '../../sim/world.js';
import type { Hub } from '../app/hub.js';
import { HubError } from '../base/errors.js';
import type { HubConfig } from '../config/schema.js';
import { FIRMWARE_OPERATIONS } from '../contract/link-messages.js';
import { check, type Step, until } from './scenario.js';

/** The demo hub's config: the simulated vendor's key pinned (the simulated locks hold it in their boot ROM). */
export const demoFirmwareConfig = {
  vendorKeys: [Buffer.from(simVendor().publicKey).toString('hex')],
  retryDelayMs: 500,
} as HubConfig['firmware'];

const SIZE = 8 * 1024;

/**
 * Lock firmware through the hub, in the demo (on the in-memory radio; test/integration/
 * firmware-radios.test.ts runs the same on the BLE and ZigBee emulators): a forged image is
 * refused before any block is sent; a signed one reaches two locks, the radio link cut in the
 * middle, each lock resuming from what it holds in flash and reporting its new version.
 */
export function firmwareSteps(hub: Hub, world: SimWorld): Step[] {
  const fwRequests = (lockId: string) => {
    const handled = world.lock(lockId).requestCounts().handled;
    return FIRMWARE_OPERATIONS.reduce((n, op) => n + handled[op], 0);
  };
  const targets = () =>
    (hub.link?.list() ?? [])
      .filter((l) => l.state === 'bound')
      .slice(0, 2)
      .map((l) => l.lockId);
  return [
    {
      name: 'a firmware image signed by another key is refused before any block is sent to any lock',
      run() {
        const relay = hub.firmware;
        check(relay, 'the hub has no firmware relay');
        const before = targets().map(fwRequests);
        let code = '';
        try {
          relay.addImage(simFirmwareImage({ version: '6.6.6', size: SIZE }, simVendor('attacker')));
        } catch (e) {
          code = e instanceof HubError ? e.code : String(e);
        }
        check(code === 'firmware.forged', `expected firmware.forged, got ${code || 'acceptance'}`);
        check(JSON.stringify(targets().map(fwRequests)) === JSON.stringify(before), 'a lock heard of the forged image');
      },
    },
    {
      name: 'a signed firmware image reaches two locks, the radio link cut mid-transfer and resumed; each reports 1.1.0',
      async run() {
        const relay = hub.firmware;
        check(relay, 'the hub has no firmware relay');
        const ids = targets();
        check(ids.length === 2, `two bound locks needed, found ${ids.length}`);
        const image = relay.addImage(simFirmwareImage({ version: '1.1.0', size: SIZE }));
        relay.push(image.sha256, ids, 'demo');
        const first = world.lock(ids[0] as string);
        await until('the first lock holds a third of the image', () => first.firmwareStaged() >= SIZE / 3, 30_000);
        const cut = world.radio.disconnect();
        check(cut > 0, 'no link was cut');
        await until(
          'both locks installed the image',
          () => ids.every((id) => relay.progress(id)?.state === 'installed' || relay.progress(id)?.state === 'failed'),
          60_000,
        );
        for (const id of ids) {
          const p = relay.progress(id);
          check(p?.state === 'installed', `${id}: ${p?.state} ${p?.error ?? ''}`);
          const v = world.lock(id).firmwareVersion();
          check(v.major === 1 && v.minor === 1 && v.patch === 0, `${id} runs ${v.major}.${v.minor}.${v.patch}`);
        }
      },
    },
  ];
}
