import {
  type BearerError,
  type BearerLink,
  type CloseReason,
  disconnectedError,
  type LinkQuality,
} from '../../hal/bearer.js';
import { WiredLink } from '../../hal/link-listeners.js';
import type { Clock, TimerHandle } from '../../src/base/clock.js';
import type { Random } from '../../src/base/random.js';
import { err, OK, type Result } from '../../src/base/result.js';
import type { MutableCounters, SimFaults } from './faults.js';

/** What a simulated link needs from the radio it runs on. */
export interface Medium {
  readonly clock: Clock;
  readonly random: Random;
  faults(): SimFaults;
  readonly counters: MutableCounters;
}

export interface ConnectionOptions {
  readonly centralAddress: string;
  readonly peripheralAddress: string;
  readonly maxFrameSize: number;
  readonly quality: () => LinkQuality;
}

type Side = 'central' | 'peripheral';

/** Both ends' reasons when a connection ends, since each end sees the same event differently. */
export interface CloseReasons {
  readonly central: CloseReason;
  readonly peripheral: CloseReason;
}

/** Virtual and system clocks can disagree with a sum by a rounding error; nothing closer than this is "later". */
const EPSILON_MS = 1e-6;

/**
 * One connection between a hub's bearer (the central) and a peripheral: an end for each, and a
 * one-way pipe towards each, where the faults are applied.
 */
export class Connection {
  readonly centralAddress: string;
  readonly peripheralAddress: string;
  /** The hub's end: its address is the peripheral's. */
  readonly central: BearerLink;
  /** The peripheral's end: its address is the central's. */
  readonly peripheral: BearerLink;
  readonly #medium: Medium;
  readonly #maxFrameSize: number;
  readonly #ends: Record<Side, WiredLink>;
  readonly #pipes: Record<Side, Pipe>;
  readonly #closedHooks: Array<() => void> = [];
  #reasons: CloseReasons | undefined;

  constructor(medium: Medium, options: ConnectionOptions) {
    this.#medium = medium;
    this.#maxFrameSize = options.maxFrameSize;
    this.centralAddress = options.centralAddress;
    this.peripheralAddress = options.peripheralAddress;
    const end = (side: Side, peerAddress: string) =>
      new WiredLink(peerAddress, options.maxFrameSize, {
        send: async (frame) => this.#transmit(side, frame),
        close: async () => this.close(side === 'central' ? LOCAL_CENTRAL : LOCAL_PERIPHERAL),
        quality: options.quality,
      });
    this.#ends = {
      central: end('central', options.peripheralAddress),
      peripheral: end('peripheral', options.centralAddress),
    };
    const deliver = (to: Side) => (frame: Uint8Array) => {
      medium.counters.delivered++;
      this.#ends[to].receive(frame);
    };
    // Each pipe is named for the side that sends into it.
    this.#pipes = {
      central: new Pipe(medium.clock, deliver('peripheral')),
      peripheral: new Pipe(medium.clock, deliver('central')),
    };
    this.central = this.#ends.central;
    this.peripheral = this.#ends.peripheral;
  }

  get open(): boolean {
    return this.#reasons === undefined;
  }

  /** Lets the bearer and the radio forget the connection once it is over. */
  whenClosed(hook: () => void): void {
    this.#closedHooks.push(hook);
  }

  /** Ends the connection: frames in flight are discarded, then each end hears its own reason. */
  close(reasons: CloseReasons): void {
    if (this.#reasons) return;
    this.#reasons = reasons;
    this.#medium.counters.discarded += this.#pipes.central.clear() + this.#pipes.peripheral.clear();
    for (const hook of this.#closedHooks) hook();
    this.#ends.central.closed(reasons.central);
    this.#ends.peripheral.closed(reasons.peripheral);
  }

  #transmit(from: Side, frame: Uint8Array): Result<void, BearerError> {
    const peer = from === 'central' ? this.peripheralAddress : this.centralAddress;
    if (this.#reasons) return err(disconnectedError(peer, this.#reasons[from]));
    if (frame.length > this.#maxFrameSize) {
      return err({
        code: 'frame-too-large',
        message: `frame of ${frame.length} bytes to ${peer} exceeds the link's limit of ${this.#maxFrameSize} bytes`,
        size: frame.length,
        maxFrameSize: this.#maxFrameSize,
      });
    }
    const { counters, random } = this.#medium;
    const faults = this.#medium.faults();
    const chance = (p: number) => p > 0 && (p >= 1 || random.float() < p);
    counters.sent++;
    if (chance(faults.disconnectRate)) {
      counters.disconnects++;
      this.close(LOST);
      return err(disconnectedError(peer, 'lost'));
    }
    if (chance(faults.lossRate)) {
      counters.dropped++;
      return OK;
    }
    const copies = chance(faults.duplicateRate) ? 2 : 1;
    if (copies === 2) counters.duplicated++;
    for (let i = 0; i < copies; i++) {
      const heldBack = chance(faults.reorderRate);
      if (heldBack) counters.reordered++;
      const jitter = faults.jitterMs > 0 ? random.float() * faults.jitterMs : 0;
      const delay = faults.latencyMs + jitter + (heldBack ? faults.reorderDelayMs : 0);
      // A copy, as a radio would take: the sender may reuse its buffer.
      this.#pipes[from].push(frame.slice(), delay, heldBack);
    }
    return OK;
  }
}

export const LOST: CloseReasons = { central: 'lost', peripheral: 'lost' };
const LOCAL_CENTRAL: CloseReasons = { central: 'local', peripheral: 'remote' };
const LOCAL_PERIPHERAL: CloseReasons = { central: 'remote', peripheral: 'local' };

interface InFlight {
  readonly at: number;
  readonly frame: Uint8Array;
}

/**
 * One direction of a connection: frames wait here until their delivery time. First in, first out,
 * except for a frame held back, which later frames may pass.
 */
class Pipe {
  readonly #clock: Clock;
  readonly #deliver: (frame: Uint8Array) => void;
  /** Sorted by delivery time; frames due at the same time keep their sending order. */
  #queue: InFlight[] = [];
  /** Delivery time of the last frame not held back: no later frame may arrive before it. */
  #fifoFloor = Number.NEGATIVE_INFINITY;
  #timer: TimerHandle | undefined;
  #soon = false;

  constructor(clock: Clock, deliver: (frame: Uint8Array) => void) {
    this.#clock = clock;
    this.#deliver = deliver;
  }

  push(frame: Uint8Array, delayMs: number, heldBack: boolean): void {
    let at = this.#clock.monotonic() + delayMs;
    if (!heldBack) {
      at = Math.max(at, this.#fifoFloor);
      this.#fifoFloor = at;
    }
    let i = this.#queue.length;
    while (i > 0 && (this.#queue[i - 1]?.at ?? 0) > at) i--;
    this.#queue.splice(i, 0, { at, frame });
    if (i === 0) this.#arm();
  }

  /** Drops everything in flight; returns how many frames were dropped. */
  clear(): number {
    const n = this.#queue.length;
    this.#queue = [];
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    return n;
  }

  #arm(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const head = this.#queue[0];
    if (!head) return;
    const wait = head.at - this.#clock.monotonic();
    if (wait > EPSILON_MS) {
      this.#timer = this.#clock.setTimeout(() => {
        this.#timer = undefined;
        this.#drain();
      }, wait);
    } else if (!this.#soon) {
      // Due now: a microtask, not a timer, so that a zero-latency radio adds no timer granularity.
      this.#soon = true;
      queueMicrotask(() => {
        this.#soon = false;
        this.#drain();
      });
    }
  }

  #drain(): void {
    try {
      const now = this.#clock.monotonic() + EPSILON_MS;
      for (let head = this.#queue[0]; head && head.at <= now; head = this.#queue[0]) {
        this.#queue.shift();
        this.#deliver(head.frame);
      }
    } finally {
      this.#arm();
    }
  }
}
