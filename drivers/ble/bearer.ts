import type { Characteristic, Peripheral } from '@stoprocent/noble';
import type {
  Advertisement,
  Bearer,
  BearerError,
  BearerLink,
  BearerState,
  ConnectOptions,
  Unsubscribe,
} from '../../hal/bearer.js';
import type { Clock } from '../../src/base/clock.js';
import { err, type Result } from '../../src/base/result.js';
import type { Logger } from '../../src/log/logger.js';
import { Adapter } from './adapter.js';
import { Connector } from './connector.js';
import { stoppedError, unavailableError } from './errors.js';
import { FrameChannel } from './frame-channel.js';
import { type ReassemblyCounters, zeroReassemblyCounters } from './gatt-frames.js';
import { isBleAddress } from './hci-values.js';
import { LivenessWatchdog } from './liveness.js';
import { type BleConfig, checkOptions } from './options.js';
import { Scanner } from './scanner.js';

/**
 * What the rest of the hub sees of the BLE driver: its options, its counters and the Bearer it
 * gets. Each job behind it has its own module beside this one: options.ts (checking the options),
 * adapter.ts (opening noble and recovering the adapter), liveness.ts (the watchdog), scanner.ts
 * (scanning and advertisements), connector.ts (connection attempts), frame-channel.ts (a link's
 * frames over GATT), with gatt-frames.ts for the wire format.
 */

/** Where the BLE controller is: a UART (H4, e.g. a USB dongle or an nRF52 on /dev/ttyACM0), or a Linux HCI socket (hciN). */
export type BleTransport =
  | { readonly kind: 'uart'; readonly path: string; readonly baudRate?: number }
  | { readonly kind: 'hci'; readonly deviceId: number };

export interface BleBearerOptions {
  readonly transport: BleTransport;
  /** Concurrent links and connection attempts; beyond it connect() answers 'busy'. */
  readonly maxConnections: number;
  readonly clock: Clock;
  readonly log: Logger;
  /** The largest frame each link carries (>= BEARER_MIN_FRAME_SIZE); the lock must accept as much. Default 2048. */
  readonly maxFrameSize?: number;
  /** How long the adapter may take to reach poweredOn before it counts as unavailable, ms. Default 5000. */
  readonly readyTimeoutMs?: number;
  /** First wait before re-opening an unavailable adapter, ms; doubles up to recoverMaxMs. Default 500. */
  readonly recoverBaseMs?: number;
  readonly recoverMaxMs?: number;
  /** A frame whose fragments take longer than this to arrive is dropped, ms. Default 5000. */
  readonly reassemblyTimeoutMs?: number;
  /** How long one fragment write may take before the link is declared lost, ms. Default 5000. */
  readonly writeTimeoutMs?: number;
  /** Wait before scanning again after the controller stopped (noble stops it to connect), ms. Default 200. */
  readonly scanRestartMs?: number;
  /**
   * While ready, the driver asks the controller a harmless question (HCI Read Local Version) this
   * often, ms. Default 1000. A pulled UART is not always reported by the serial layer, and a hung
   * controller never is: the answer is the only proof the adapter is alive.
   */
  readonly livenessIntervalMs?: number;
  /** No answer to the liveness question within this → unavailable ("stopped answering"), ms. Default 3000. */
  readonly livenessTimeoutMs?: number;
}

export interface BleCounters {
  advertisements: number;
  /** Advertisements with the lock service but no valid lock manufacturer data: ignored. */
  malformedAdvertisements: number;
  connects: number;
  connectFailures: number;
  framesIn: number;
  framesOut: number;
  /** Times the adapter became unavailable and was re-opened. */
  adapterRecoveries: number;
  /** Liveness questions asked, and those left unanswered past livenessTimeoutMs (each makes the adapter unavailable). */
  livenessProbes: number;
  livenessFailures: number;
  /** Reassembly of frames from the locks: frames, and fragments rejected by reason. */
  reassembly: ReassemblyCounters;
}

export interface BleBearer extends Bearer {
  readonly kind: 'ble';
  counters(): BleCounters;
}

/**
 * The Bearer port over BLE, through real noble (HCI over a UART or a Linux HCI socket). noble is
 * imported when the bearer starts, so a hub without BLE never loads it. Throws HubError for bad
 * options; everything after that is a state or a typed error.
 */
export function createBleBearer(options: BleBearerOptions): BleBearer {
  return new NobleBearer(options, checkOptions(options));
}

/**
 * The bearer put together: the adapter (and the bearer's state with it), the scanner, the liveness
 * watchdog, the connection attempts and the links each do one job; what is left here is what they
 * share: which connects are admitted, the links open, and the counters.
 */
class NobleBearer implements BleBearer {
  readonly kind = 'ble' as const;
  readonly #cfg: BleConfig;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #counters: Omit<BleCounters, 'reassembly'> = {
    advertisements: 0,
    malformedAdvertisements: 0,
    connects: 0,
    connectFailures: 0,
    framesIn: 0,
    framesOut: 0,
    adapterRecoveries: 0,
    livenessProbes: 0,
    livenessFailures: 0,
  };
  readonly #reassembly: ReassemblyCounters = zeroReassemblyCounters();
  readonly #links = new Map<string, FrameChannel>();
  readonly #adapter: Adapter;
  readonly #scanner: Scanner;
  readonly #watchdog: LivenessWatchdog;
  readonly #connector: Connector;

  constructor(options: BleBearerOptions, cfg: BleConfig) {
    const { clock, log } = options;
    const counters = this.#counters;
    this.#cfg = cfg;
    this.#clock = clock;
    this.#log = log;
    this.#adapter = new Adapter({
      transport: options.transport,
      cfg,
      clock,
      log,
      counters,
      hooks: {
        ready: (generation) => {
          this.#scanner.schedule(0);
          this.#watchdog.start(generation);
        },
        halt: () => {
          this.#scanner.cancel();
          this.#watchdog.stop();
        },
        drop: (error, reason) => {
          this.#connector.failAll(error);
          for (const channel of [...this.#links.values()]) channel.closed(reason);
        },
        discover: (peripheral) => this.#scanner.discover(peripheral),
        scanStopped: () => this.#scanner.schedule(),
      },
    });
    const adapter = this.#adapter;
    this.#scanner = new Scanner({ adapter, cfg, clock, log, counters });
    this.#watchdog = new LivenessWatchdog({ adapter, cfg, clock, log, counters });
    this.#connector = new Connector({
      adapter,
      scanner: this.#scanner,
      clock,
      counters,
      adopt: (address, peripheral, characteristic) => this.#adopt(address, peripheral, characteristic),
    });
  }

  counters(): BleCounters {
    return { ...this.#counters, reassembly: { ...this.#reassembly } };
  }

  async start(): Promise<void> {
    await this.#adapter.start();
  }

  async stop(): Promise<void> {
    this.#adapter.stop();
  }

  state(): BearerState {
    return this.#adapter.state();
  }

  onStateChange(listener: (state: BearerState) => void): Unsubscribe {
    return this.#adapter.onStateChange(listener);
  }

  onAdvertisement(listener: (advertisement: Advertisement) => void): Unsubscribe {
    return this.#scanner.onAdvertisement(listener);
  }

  async connect(address: string, options: ConnectOptions): Promise<Result<BearerLink, BearerError>> {
    const target = address.toLowerCase();
    const refusal = this.#refusal(target);
    if (refusal) return err(refusal);
    const noble = this.#adapter.noble();
    if (!noble) return err(unavailableError('the adapter is not open'));
    return this.#connector.connect(noble, target, options.timeoutMs);
  }

  #refusal(address: string): BearerError | undefined {
    const s = this.#adapter.state();
    if (s.status === 'stopped' || s.status === 'starting') return stoppedError();
    if (s.status === 'unavailable') return unavailableError(s.reason);
    if (!isBleAddress(address)) {
      return { code: 'not-found', message: `${address} is not a BLE address (aa:bb:cc:dd:ee:ff)`, address };
    }
    if (this.#links.has(address) || this.#connector.isConnecting(address)) {
      return { code: 'busy', message: `already connected or connecting to ${address}; close that link first`, address };
    }
    if (this.#links.size + this.#connector.pending >= this.#cfg.maxConnections) {
      return {
        code: 'busy',
        message: `the BLE adapter's limit of ${this.#cfg.maxConnections} connections is reached; close a link or try again later`,
        address,
        limit: this.#cfg.maxConnections,
      };
    }
    return undefined;
  }

  #adopt(address: string, peripheral: Peripheral, characteristic: Characteristic): BearerLink {
    const channel = new FrameChannel({
      address,
      peripheral,
      characteristic,
      cfg: this.#cfg,
      clock: this.#clock,
      log: this.#log,
      counters: this.#counters,
      reassembly: this.#reassembly,
      heardRssi: (a) => this.#scanner.lastRssi(a),
      onClose: (c) => {
        if (this.#links.get(c.address) === c) this.#links.delete(c.address);
      },
    });
    this.#links.set(address, channel);
    return channel.link;
  }
}
