import type { Peripheral } from '@stoprocent/noble';
import type { Advertisement, Unsubscribe } from '../../hal/bearer.js';
import { setBounded } from '../../src/base/bounded-map.js';
import type { Clock, TimerHandle } from '../../src/base/clock.js';
import { describeError } from '../../src/base/errors.js';
import { Listeners } from '../../src/base/listeners.js';
import type { Logger } from '../../src/log/logger.js';
import type { Adapter } from './adapter.js';
import type { BleCounters } from './bearer.js';
import { decodeManufacturerData, LOCK_SERVICE_UUID } from './gatt-frames.js';
import { isBleAddress, validRssi } from './hci-values.js';
import type { BleConfig } from './options.js';

/**
 * Addresses remembered, the longest unheard forgotten first: phones and neighbours rotate random
 * addresses, and one that advertises the lock service under a new address every second must not
 * grow the daemon without end.
 */
export const MAX_HEARD_ADDRESSES = 512;

/**
 * Scanning, which must run whenever the adapter is ready although noble stops it for every
 * connection, and what it hears: lock advertisements become the port's Advertisements, anything else
 * is counted and ignored. The addresses heard are remembered, so that a connect that fails can tell
 * 'timeout' from 'not-found', and a link can report the signal strength noble does not know.
 */

export interface ScannerOptions {
  readonly adapter: Adapter;
  readonly cfg: Pick<BleConfig, 'scanRestartMs'>;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: Pick<BleCounters, 'advertisements' | 'malformedAdvertisements'>;
}

export class Scanner {
  readonly #adapter: Adapter;
  readonly #cfg: ScannerOptions['cfg'];
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #counters: ScannerOptions['counters'];
  readonly #listeners = new Listeners<Advertisement>();
  /** Addresses heard advertising the lock service, with their latest rssi (the latest MAX_HEARD_ADDRESSES). */
  readonly #heard = new Map<string, number | undefined>();
  #timer: TimerHandle | undefined;

  constructor(options: ScannerOptions) {
    this.#adapter = options.adapter;
    this.#cfg = options.cfg;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#counters = options.counters;
  }

  onAdvertisement(listener: (advertisement: Advertisement) => void): Unsubscribe {
    return this.#listeners.add(listener);
  }

  /** Whether `address` was heard advertising the lock service (among the latest MAX_HEARD_ADDRESSES). */
  heard(address: string): boolean {
    return this.#heard.has(address);
  }

  /** The rssi `address` last advertised with, if it was known. */
  lastRssi(address: string): number | undefined {
    return this.#heard.get(address);
  }

  /** Starts scanning after `delayMs`, unless a start is already due or the adapter is not ready. */
  schedule(delayMs = this.#cfg.scanRestartMs): void {
    if (this.#timer || this.#adapter.state().status !== 'ready') return;
    const generation = this.#adapter.generation;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      const noble = this.#adapter.noble();
      if (generation !== this.#adapter.generation || !noble || this.#adapter.state().status !== 'ready') return;
      noble.startScanningAsync([LOCK_SERVICE_UUID], true).catch((e: unknown) => {
        this.#log.debug({ err: describeError(e) }, 'BLE scan start failed');
      });
    }, delayMs);
  }

  cancel(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  discover(p: Peripheral): void {
    const data = decodeManufacturerData(p.advertisement?.manufacturerData);
    if (typeof data === 'string') {
      this.#counters.malformedAdvertisements++;
      return;
    }
    const address = String(p.address).toLowerCase();
    if (!isBleAddress(address)) {
      this.#counters.malformedAdvertisements++;
      return;
    }
    this.#counters.advertisements++;
    const rssi = validRssi(p.rssi);
    setBounded(this.#heard, address, rssi, MAX_HEARD_ADDRESSES);
    const advertisement: Advertisement = {
      deviceId: data.deviceId,
      attachMode: data.attachMode,
      address,
      ...(rssi === undefined ? {} : { rssi }),
      seenAt: this.#clock.now(),
    };
    this.#listeners.emit(advertisement);
  }
}
