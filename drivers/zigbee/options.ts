import type { Clock } from '../../src/base/clock.js';
import { HubError } from '../../src/base/errors.js';
import type { Random } from '../../src/base/random.js';
import type { Sealer } from '../../src/crypto/seal.js';
import type { Logger } from '../../src/log/logger.js';

/**
 * The driver's options, checked once when the bearer is created: a bad option is the one thing
 * that throws, with a message naming it, so everything after construction can be a state or a
 * typed error instead.
 */

export interface ZigbeeBearerOptions {
  /** The coordinator: a serial device (/dev/ttyUSB0, /dev/serial/by-id/…) or tcp://host:port (a network adapter, the emulator). */
  readonly serialPath: string;
  /** Network parameters (sealed), sealed coordinator backups, herdsman's database. Created 0700. */
  readonly dataDir: string;
  /** Seals the network key and the backups under the hub's storage key. */
  readonly sealer: Sealer;
  /** Generates the network key, PAN id and extended PAN id (once per hub). */
  readonly random: Random;
  readonly clock: Clock;
  readonly log: Logger;
  /** The channel for a newly generated network, 11..26. Default 15 (clear of Wi-Fi 1/6/11 on most sites). */
  readonly channel?: number;
  readonly baudRate?: number;
  readonly rtscts?: boolean;
  /**
   * Concurrent links (and connects); beyond it connect() answers 'busy'. Default 32: the 16 locks
   * of a site with room to spare. A link is hub-side state only (docs/zigbee.md, "Link limit").
   */
  readonly maxLinks?: number;
  /** Scheduled coordinator backups, ms. Default 6 h. */
  readonly backupIntervalMs?: number;
  /** Sealed backups kept. Default 5. */
  readonly backupsKept?: number;
  /** How far a restore moves the coordinator's NWK frame counter forward. Default 100000. */
  readonly frameCounterJump?: number;
  /** How often the adapter is asked a cheap question to find a hung one, ms. Default 10000. */
  readonly healthIntervalMs?: number;
  /** How long that question may take, ms. Default 5000. */
  readonly probeTimeoutMs?: number;
  /** First wait before re-opening an unavailable adapter, ms; doubles up to recoverMaxMs. Default 1000. */
  readonly recoverBaseMs?: number;
  readonly recoverMaxMs?: number;
  /** How long one link-cluster command may take to be confirmed by the radio, ms. Default 5000. */
  readonly sendTimeoutMs?: number;
}

/** The 16 locks a hub of a site serves, twice over: a lock re-opening its link never finds the table full. */
export const DEFAULT_MAX_LINKS = 32;

function positive(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isFinite(x) || x <= 0) {
    throw new HubError('zigbee.config', `ZigBee bearer: ${name} must be a positive number, got ${v}`);
  }
  return x;
}

export interface Settings {
  channel: number;
  maxLinks: number;
  backupIntervalMs: number;
  backupsKept: number;
  frameCounterJump: number;
  healthIntervalMs: number;
  probeTimeoutMs: number;
  recoverBaseMs: number;
  recoverMaxMs: number;
  sendTimeoutMs: number;
}

/** Validates the options; every refusal names the option and what it accepts. */
export function checkOptions(o: ZigbeeBearerOptions): Settings {
  if (
    typeof o.serialPath !== 'string' ||
    !(o.serialPath.startsWith('/') || /^tcp:\/\/[^/:]+:\d+$/.test(o.serialPath))
  ) {
    throw new HubError(
      'zigbee.config',
      `ZigBee bearer: serialPath must be a device path (/dev/ttyUSB0) or tcp://host:port, got ${JSON.stringify(o.serialPath)}`,
    );
  }
  if (typeof o.dataDir !== 'string' || o.dataDir.length === 0) {
    throw new HubError('zigbee.config', 'ZigBee bearer: dataDir must name a directory for the network and backups');
  }
  if (!o.sealer || !o.random || !o.clock || !o.log) {
    throw new HubError('zigbee.config', 'ZigBee bearer: sealer, random, clock and log are required');
  }
  const channel = o.channel ?? 15;
  if (!Number.isInteger(channel) || channel < 11 || channel > 26) {
    throw new HubError('zigbee.config', `ZigBee bearer: channel must be an integer 11..26, got ${o.channel}`);
  }
  const maxLinks = o.maxLinks ?? DEFAULT_MAX_LINKS;
  if (!Number.isInteger(maxLinks) || maxLinks < 1) {
    throw new HubError('zigbee.config', `ZigBee bearer: maxLinks must be an integer >= 1, got ${o.maxLinks}`);
  }
  const backupsKept = o.backupsKept ?? 5;
  if (!Number.isInteger(backupsKept) || backupsKept < 1) {
    throw new HubError('zigbee.config', `ZigBee bearer: backupsKept must be an integer >= 1, got ${o.backupsKept}`);
  }
  const frameCounterJump = o.frameCounterJump ?? 100_000;
  if (!Number.isInteger(frameCounterJump) || frameCounterJump < 2_500) {
    throw new HubError(
      'zigbee.config',
      `ZigBee bearer: frameCounterJump must be an integer >= 2500, got ${o.frameCounterJump}`,
    );
  }
  const recoverBaseMs = positive('recoverBaseMs', o.recoverBaseMs, 1_000);
  const recoverMaxMs = positive('recoverMaxMs', o.recoverMaxMs, 30_000);
  if (recoverMaxMs < recoverBaseMs) {
    throw new HubError(
      'zigbee.config',
      `ZigBee bearer: recoverMaxMs (${recoverMaxMs}) must be >= recoverBaseMs (${recoverBaseMs})`,
    );
  }
  return {
    channel,
    maxLinks,
    backupIntervalMs: positive('backupIntervalMs', o.backupIntervalMs, 6 * 3_600_000),
    backupsKept,
    frameCounterJump,
    healthIntervalMs: positive('healthIntervalMs', o.healthIntervalMs, 10_000),
    probeTimeoutMs: positive('probeTimeoutMs', o.probeTimeoutMs, 5_000),
    recoverBaseMs,
    recoverMaxMs,
    sendTimeoutMs: positive('sendTimeoutMs', o.sendTimeoutMs, 5_000),
  };
}
