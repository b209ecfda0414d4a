import { join } from 'node:path';
import type { Bearer } from '../../hal/bearer.js';
import { CompositeBearer } from '../../hal/composite.js';
import type { Clock } from '../base/clock.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import type { HubConfig } from '../config/schema.js';
import type { Sealer } from '../crypto/seal.js';
import type { Logger } from '../log/logger.js';
import { StartingRadio } from './radio-start.js';

type BleModule = typeof import('../../drivers/ble/index.js');
type ZigbeeModule = typeof import('../../drivers/zigbee/index.js');
export type ZigbeeBearer = ReturnType<ZigbeeModule['createZigbeeBearer']>;

/** The radio drivers a config enables, loaded (each library is imported only when its radio is on). */
export interface RadioDrivers {
  ble?: BleModule;
  zigbee?: ZigbeeModule;
}

/**
 * Checks what the schema cannot (a field required by another's value) and imports the drivers of
 * the enabled radios. A radio left off costs nothing: its library is never loaded.
 */
export async function loadDrivers(config: HubConfig['radios']): Promise<RadioDrivers> {
  const { ble, zigbee } = config;
  if (ble.enabled && ble.transport === 'uart' && ble.uartPath === null) {
    throw new HubError('config.radios', 'radios.ble.uartPath is required when radios.ble.transport is uart', {
      hint: 'give the serial HCI controller, e.g. /dev/ttyAMA0, or use transport: hci',
    });
  }
  if (zigbee.enabled && zigbee.port === null) {
    throw new HubError('config.radios', 'radios.zigbee.port is required when radios.zigbee.enabled is true', {
      hint: 'give the coordinator, e.g. /dev/serial/by-id/usb-…CC2652… or tcp://host:6638',
    });
  }
  return {
    ...(ble.enabled ? { ble: await import('../../drivers/ble/index.js') } : {}),
    ...(zigbee.enabled ? { zigbee: await import('../../drivers/zigbee/index.js') } : {}),
  };
}

export interface Radios {
  /** What the link layer talks to: the only radio, or all of them as one. */
  bearer: Bearer;
  /** Each radio, for health and diagnostics. */
  members: readonly Bearer[];
  zigbee: ZigbeeBearer | undefined;
  /** Settles once every real radio's start has (ready, or known unavailable): they start in the background. */
  started(): Promise<void>;
}

/**
 * Builds the bearers: the simulated radio (demo, tests) first, then BLE, then ZigBee. The real
 * radios start concurrently and in the background (StartingRadio): the link layer's start does
 * not wait for noble or herdsman, and a request for a lock on a radio still starting waits for it
 * within its own timeout.
 */
export function buildRadios(
  config: HubConfig,
  drivers: RadioDrivers,
  deps: { sim?: Bearer; sealer: Sealer; random: Random; clock: Clock; log: Logger },
): Radios | undefined {
  const members: Bearer[] = [];
  if (deps.sim) members.push(deps.sim);
  const { ble, zigbee } = config.radios;
  if (drivers.ble) {
    members.push(
      drivers.ble.createBleBearer({
        transport:
          ble.transport === 'uart'
            ? { kind: 'uart', path: ble.uartPath ?? '', baudRate: ble.baudRate }
            : { kind: 'hci', deviceId: ble.hciDevice },
        maxConnections: ble.maxConnections,
        clock: deps.clock,
        log: deps.log.child({ component: 'ble' }),
      }),
    );
  }
  let zigbeeBearer: ZigbeeBearer | undefined;
  if (drivers.zigbee) {
    zigbeeBearer = drivers.zigbee.createZigbeeBearer({
      serialPath: zigbee.port ?? '',
      dataDir: join(config.dataDir, 'zigbee'),
      sealer: deps.sealer,
      random: deps.random,
      clock: deps.clock,
      log: deps.log.child({ component: 'zigbee' }),
      channel: zigbee.channel,
      baudRate: zigbee.baudRate,
      rtscts: zigbee.rtscts,
      maxLinks: zigbee.maxLinks,
      backupIntervalMs: zigbee.backupIntervalMin * 60_000,
    });
    members.push(zigbeeBearer);
  }
  const gated = members.map((m) =>
    m === deps.sim ? m : new StartingRadio(m, deps.clock, deps.log.child({ component: 'radios' })),
  );
  const [only] = gated;
  if (!only) return undefined;
  return {
    bearer: gated.length === 1 ? only : new CompositeBearer(gated),
    members,
    zigbee: zigbeeBearer,
    started: async () => {
      await Promise.all(gated.map((g) => (g instanceof StartingRadio ? g.started : undefined)));
    },
  };
}
