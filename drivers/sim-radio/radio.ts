import { BEARER_MIN_FRAME_SIZE, type BearerLink } from '../../hal/bearer.js';
import type { Clock } from '../../src/base/clock.js';
import { HubError } from '../../src/base/errors.js';
import type { Random } from '../../src/base/random.js';
import {
  checkFaults,
  type MutableCounters,
  NO_FAULTS,
  type SimCounters,
  type SimFaults,
  zeroCounters,
} from './faults.js';
import { type Connection, LOST, type Medium } from './link.js';
import { type AdvertisementData, type Air, type Reachable, SimBearer } from './sim-bearer.js';

export { NO_FAULTS, type SimCounters, type SimFaults } from './faults.js';
export type { AdvertisementData, SimBearer } from './sim-bearer.js';

export interface SimRadioOptions {
  readonly clock: Clock;
  /** Every fault decision draws from it, in send order: a seeded one makes a run reproducible. */
  readonly random: Random;
  readonly faults?: Partial<SimFaults>;
  /** How often a scanning bearer hears each advertising peripheral, ms. */
  readonly advertiseIntervalMs?: number;
  /** The links' maxFrameSize; defaults to the port's minimum, so the link layer is tested against the tightest bearer. */
  readonly maxFrameSize?: number;
}

/** The lock's end of a link: the same contract as the hub's, with `address` naming the hub's adapter. */
export type PeripheralLink = BearerLink;

export interface SimPeripheralOptions {
  readonly address: string;
  /** Signal strength at the hub, dBm, reported in advertisements and linkQuality(). */
  readonly rssi?: number;
  /** Asked at every advertising interval: what the peripheral announces now, or undefined when it is silent. */
  readonly advertisement: () => AdvertisementData | undefined;
  /** A hub connected. Called before the hub's connect() resolves; frames sent at once wait for the hub's listener. */
  readonly onConnect: (link: PeripheralLink) => void;
}

/**
 * Where a simulated lock goes on the air: the in-memory SimRadio, or a controller emulator
 * (sim/emu/) that carries the same lock over a real driver's wire protocol.
 */
export interface PeripheralHost {
  addPeripheral(options: SimPeripheralOptions): SimPeripheral;
}

/** A peripheral's handle on the radio, for the simulated world (and tests) to move it around. */
export interface SimPeripheral {
  readonly address: string;
  inRange(): boolean;
  /** Out of range: it is not heard, connects to it time out, and its open links drop ('lost'). */
  setInRange(inRange: boolean): void;
  /** Leaves the radio for good (powered off, destroyed): its links drop, its address becomes free. */
  remove(): void;
}

class Peripheral implements Reachable {
  readonly address: string;
  readonly rssi: number;
  inRange = true;
  readonly #options: SimPeripheralOptions;

  constructor(options: SimPeripheralOptions) {
    this.#options = options;
    this.address = options.address;
    this.rssi = options.rssi ?? -60;
  }

  advertisement(): AdvertisementData | undefined {
    return this.#options.advertisement();
  }

  onConnect(link: BearerLink): void {
    this.#options.onConnect(link);
  }
}

/**
 * The in-memory radio medium: peripherals (simulated locks) register on it, hubs get bearers from
 * it, and every frame between them crosses it with the configured faults, on the injected clock.
 */
export class SimRadio implements PeripheralHost {
  readonly clock: Clock;
  readonly random: Random;
  readonly advertiseIntervalMs: number;
  readonly maxFrameSize: number;
  #faults: SimFaults;
  readonly #counters: MutableCounters = zeroCounters();
  readonly #peripherals = new Map<string, Peripheral>();
  readonly #connections = new Set<Connection>();
  readonly #air: Air;
  #bearers = 0;

  constructor(options: SimRadioOptions) {
    this.clock = options.clock;
    this.random = options.random;
    this.#faults = checkFaults({ ...NO_FAULTS, ...options.faults });
    this.advertiseIntervalMs = options.advertiseIntervalMs ?? 100;
    this.maxFrameSize = options.maxFrameSize ?? BEARER_MIN_FRAME_SIZE;
    if (!(this.advertiseIntervalMs > 0)) {
      throw new HubError(
        'sim-radio.config',
        `simulated radio: advertiseIntervalMs must be > 0, got ${this.advertiseIntervalMs}`,
      );
    }
    if (!Number.isInteger(this.maxFrameSize) || this.maxFrameSize < 1) {
      throw new HubError(
        'sim-radio.config',
        `simulated radio: maxFrameSize must be a positive integer, got ${this.maxFrameSize}`,
      );
    }
    const medium: Medium = {
      clock: this.clock,
      random: this.random,
      faults: () => this.#faults,
      counters: this.#counters,
    };
    this.#air = {
      medium,
      advertiseIntervalMs: this.advertiseIntervalMs,
      maxFrameSize: this.maxFrameSize,
      peripherals: () => this.#peripherals.values(),
      lookup: (address) => this.#peripherals.get(address),
      track: (connection) => {
        this.#connections.add(connection);
        connection.whenClosed(() => this.#connections.delete(connection));
      },
    };
  }

  faults(): SimFaults {
    return this.#faults;
  }

  /** Changes some faults; frames already in flight keep the fate they were given. */
  setFaults(patch: Partial<SimFaults>): void {
    this.#faults = checkFaults({ ...this.#faults, ...patch });
  }

  counters(): SimCounters {
    return { ...this.#counters };
  }

  /** Puts a peripheral on the air, in range. One peripheral per address. */
  addPeripheral(options: SimPeripheralOptions): SimPeripheral {
    if (this.#peripherals.has(options.address)) {
      throw new HubError(
        'sim-radio.duplicate-address',
        `simulated radio: a peripheral already uses address ${options.address}`,
      );
    }
    const peripheral = new Peripheral(options);
    this.#peripherals.set(peripheral.address, peripheral);
    return {
      address: peripheral.address,
      inRange: () => peripheral.inRange,
      setInRange: (inRange) => {
        peripheral.inRange = inRange;
        if (!inRange) this.disconnect(peripheral.address);
      },
      remove: () => {
        if (this.#peripherals.get(peripheral.address) !== peripheral) return;
        this.#peripherals.delete(peripheral.address);
        this.disconnect(peripheral.address);
      },
    };
  }

  /** A new adapter for a hub on this radio; start() it before use. */
  bearer(options: { address?: string; maxLinks?: number } = {}): SimBearer {
    this.#bearers++;
    return new SimBearer(this.#air, {
      address: options.address ?? `sim-hub-${this.#bearers}`,
      maxLinks: options.maxLinks,
    });
  }

  /** Forced disconnect, now: drops every link to `address` (or every link), both ends see 'lost'. Returns how many. */
  disconnect(address?: string): number {
    let dropped = 0;
    for (const connection of [...this.#connections]) {
      if (address !== undefined && connection.peripheralAddress !== address) continue;
      this.#counters.disconnects++;
      connection.close(LOST);
      dropped++;
    }
    return dropped;
  }
}
