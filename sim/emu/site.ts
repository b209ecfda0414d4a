import { systemClock } from '../../src/base/clock.js';
import { HubError } from '../../src/base/errors.js';
import { SeededRandom } from '../../src/base/random.js';
import type { HubConfig } from '../../src/config/schema.js';
import { generateKeyPair } from '../../src/link/noise.js';
import { SimLock } from '../lock/lock.js';
import { simVendor } from '../vendor.js';
import { type EmulatedAdapter, startEmulatedAdapter } from './hci/rig.js';
import { ZnpEmulator } from './znp/emulator.js';

/** One simulated lock to put on the air of the emulated radio named by `radio`. */
export interface SiteLockSpec {
  readonly deviceId: string;
  readonly setupCode: string;
  readonly address: string;
  readonly radio: 'ble' | 'zigbee';
  /**
   * ZigBee only: the lock's install code, hex with its CRC (as on its label). Such a lock joins
   * only after the hub registered the same code (Bearer.addInstallCode, `<ieee>|<code>`).
   */
  readonly installCode?: string;
}

export interface RadioSiteOptions {
  /** The socat binary that puts the HCI emulator behind a PTY (test/helpers/socat.ts requireSocat). */
  readonly socat: string;
  readonly locks: readonly SiteLockSpec[];
  /**
   * Seeds the locks' shared Random (`seed`) and each lock's factory key pair (`seed/deviceId`),
   * so a site is the same from run to run and two sites with different seeds differ.
   */
  readonly seed: string;
  /** How long each lock's attach mode lasts after the maintenance card, ms. Default 60 000: attach over a real stack is slow. */
  readonly attachWindowMs?: number;
  /** The vendor keys in the locks' boot ROM (default: the simulated vendor's, sim/vendor.ts). */
  readonly firmwareVendorKeys?: readonly Uint8Array[];
  /** Concurrent LE connections the HCI emulator allows (default 4, as many small controllers). */
  readonly bleMaxConnections?: number;
  /** The ZNP emulator's air time per data request, ms (ZnpEmulatorOptions.airDelayMs; default 3, 0: none). */
  readonly zigbeeAirDelayMs?: number;
}

/**
 * Both emulated controllers of a site, each hosting unmodified SimLocks: the HCI emulator behind a
 * socat PTY (real noble sees a UART) and the ZNP emulator on TCP (real zigbee-herdsman sees a
 * coordinator). `radios` is what the daemon's config needs to reach them.
 */
export interface RadioSite {
  readonly hci: EmulatedAdapter;
  readonly znp: ZnpEmulator;
  /** The booted locks, by device id. */
  readonly locks: ReadonlyMap<string, SimLock>;
  /** The daemon's `radios` section: BLE over the PTY, ZigBee over the emulator's tcp:// URL. */
  readonly radios: HubConfig['radios'];
  /** Crashes the locks still running, then closes both emulators. Stop the daemon first. */
  close(): Promise<void>;
}

/**
 * Starts both emulators with the advertising and join pace the tests and benches share (BLE every
 * 50 ms; ZigBee every 300 ms, joins retried every 100 ms) and boots one SimLock per spec.
 */
export async function startRadioSite(options: RadioSiteOptions): Promise<RadioSite> {
  const hci = await startEmulatedAdapter(options.socat, {
    advertiseIntervalMs: 50,
    ...(options.bleMaxConnections === undefined ? {} : { maxConnections: options.bleMaxConnections }),
  });
  let znp: ZnpEmulator;
  try {
    znp = await ZnpEmulator.start({
      advertiseIntervalMs: 300,
      joinRetryMs: 100,
      ...(options.zigbeeAirDelayMs === undefined ? {} : { airDelayMs: options.zigbeeAirDelayMs }),
    });
  } catch (e) {
    await hci.close();
    throw e;
  }
  const hosts = { ble: hci.emulator, zigbee: znp } as const;
  const random = new SeededRandom(options.seed);
  const locks = new Map<string, SimLock>();
  try {
    for (const spec of options.locks) {
      if (spec.installCode === undefined) continue;
      if (spec.radio !== 'zigbee') {
        throw new HubError('sim-site.config', `site lock ${spec.deviceId}: install codes are for ZigBee locks only`);
      }
      znp.setInstallCode(spec.address, Buffer.from(spec.installCode, 'hex'));
    }
  } catch (e) {
    await hci.close();
    await znp.close();
    throw e;
  }
  for (const spec of options.locks) {
    const lock = new SimLock({
      deviceId: spec.deviceId,
      keyPair: generateKeyPair(new SeededRandom(`${options.seed}/${spec.deviceId}`)),
      setupCode: spec.setupCode,
      radio: hosts[spec.radio],
      address: spec.address,
      clock: systemClock,
      random,
      attachWindowMs: options.attachWindowMs ?? 60_000,
      firmware: { vendorKeys: options.firmwareVendorKeys ?? [simVendor().publicKey] },
    });
    lock.boot();
    locks.set(spec.deviceId, lock);
  }
  return {
    hci,
    znp,
    locks,
    radios: {
      ble: { enabled: true, transport: 'uart', uartPath: hci.path },
      zigbee: { enabled: true, port: znp.url },
    } as HubConfig['radios'],
    async close() {
      for (const lock of locks.values()) if (lock.running) lock.crash();
      await hci.close();
      await znp.close();
    },
  };
}
