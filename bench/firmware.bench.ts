import { type RadioSite, type SiteLockSpec, startRadioSite } from '../sim/emu/site.js';
import { simFirmwareImage, simVendor } from '../sim/vendor.js';
import type { RunningDaemon } from '../src/app/daemon.js';
import type { HubConfig } from '../src/config/schema.js';
import { Secret } from '../src/crypto/secret.js';
import type { FirmwareRelay } from '../src/firmware/relay.js';
import { EMULATED_LINK, startDaemonIn } from '../test/helpers/radio-daemon.js';
import { type Benchmark, benchmarkInTempDir, round, socatOrSkip } from './lib.js';

/** Bytes of the image sent to one lock over each radio (firmware.throughput.*). */
const THROUGHPUT_BYTES = 16 * 1024;
/** Bytes of the image sent to each of the 16 locks (firmware.update16). */
const SITE_BYTES = 4 * 1024;
const PER_RADIO = 8;

const spec = (radio: 'ble' | 'zigbee', i: number): SiteLockSpec => {
  const n = String(i).padStart(2, '0');
  return radio === 'ble'
    ? { deviceId: `BLE-FW${n}`, setupCode: `BLE${n}-FWBN-CODE`, address: `aa:bb:cc:00:f${i.toString(16)}:01`, radio }
    : { deviceId: `ZB-FW${n}`, setupCode: `ZB${n}-FWBN-CODE`, address: `zb-fw-${n}`, radio };
};

/**
 * Lock firmware updates through one daemon on the real radio stacks (real noble over a socat PTY
 * to the HCI emulator, real zigbee-herdsman to the ZNP emulator), SimLocks on each:
 *
 * - firmware.throughput.ble / .zigbee: payload bytes per second to one lock, from the push of a
 *   verified 16 KiB image to the lock's report of its new version (status, begin, 40-byte blocks,
 *   two in flight, finish: every block a sealed request of one 802.15.4 frame). The emulators add
 *   no air time: a ceiling, not what a real radio gives.
 * - firmware.update16: the time to update 16 locks (8 BLE, 8 ZigBee) with a 4 KiB image at the
 *   default of one lock at a time per radio (both radios work in parallel), from push to the last
 *   install.
 */
export const firmwareBench: Benchmark = benchmarkInTempDir(
  'firmware',
  'firmware bytes/s to one lock over each emulated radio; time to update 16 locks (8 BLE + 8 ZigBee, one at a time per radio)',
  async (dir, metrics) => {
    const socat = socatOrSkip('firmware');
    if (!socat) return;
    const specs = [
      ...Array.from({ length: PER_RADIO }, (_, i) => spec('ble', i + 1)),
      ...Array.from({ length: PER_RADIO }, (_, i) => spec('zigbee', i + 1)),
    ];
    let site: RadioSite | undefined;
    let daemon: RunningDaemon | undefined;
    try {
      // A controller with room for 8 LE links (an nRF52 HCI firmware allows 20; the emulator's default is 4).
      site = await startRadioSite({ socat, locks: specs, seed: 'firmware-bench', bleMaxConnections: PER_RADIO });
      daemon = await startDaemonIn(
        dir,
        {
          radios: { ...site.radios, ble: { ...site.radios.ble, maxConnections: 8 } },
          firmware: { vendorKeys: [Buffer.from(simVendor().publicKey).toString('hex')] } as HubConfig['firmware'],
        },
        { linkOptions: EMULATED_LINK },
      );
      const { link, firmware } = daemon.hub;
      if (!link || !firmware) throw new Error('firmware bench: the daemon built no link layer');
      for (const s of specs) {
        site.locks.get(s.deviceId)?.presentMaintenanceCard();
        await link.attach(s.deviceId, Secret.fromUtf8(s.setupCode), 60_000);
      }
      process.stderr.write(`firmware: ${specs.length} locks attached\n`);

      const big = firmware.addImage(simFirmwareImage({ version: '1.1.0', size: THROUGHPUT_BYTES }));
      for (const radio of ['ble', 'zigbee'] as const) {
        const lockId = spec(radio, 1).deviceId;
        const ms = await timed(firmware, big.sha256, [lockId]);
        metrics[`firmware.throughput.${radio}`] = {
          unit: 'bytes/s',
          value: round((THROUGHPUT_BYTES * 1000) / ms),
          n: 1,
        };
        process.stderr.write(`firmware: ${radio} ${THROUGHPUT_BYTES} bytes in ${Math.round(ms)} ms\n`);
      }
      const small = firmware.addImage(simFirmwareImage({ version: '1.2.0', size: SITE_BYTES }));
      const ms = await timed(
        firmware,
        small.sha256,
        specs.map((s) => s.deviceId),
      );
      metrics['firmware.update16'] = { unit: 'ms', value: round(ms), n: 1 };
      metrics['firmware.update16.perLock'] = { unit: 'ms', value: round(ms / specs.length), n: specs.length };
    } finally {
      await daemon?.shutdown('bench over');
      await site?.close();
    }
  },
);

/** Push and wait until every lock is installed; throws if one failed. Wall time, ms. */
async function timed(relay: FirmwareRelay, sha256: string, lockIds: string[]): Promise<number> {
  const t = performance.now();
  relay.push(sha256, lockIds, 'bench');
  await relay.idle();
  const ms = performance.now() - t;
  const failed = lockIds.filter((id) => relay.progress(id)?.state !== 'installed');
  if (failed.length > 0)
    throw new Error(`firmware bench: not installed on ${failed.join(', ')}: ${relay.progress(failed[0] ?? '')?.error}`);
  return ms;
}
