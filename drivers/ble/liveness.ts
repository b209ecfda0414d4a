import type { Noble } from '@stoprocent/noble';
import type { Clock, TimerHandle } from '../../src/base/clock.js';
import { describeError } from '../../src/base/errors.js';
import type { Logger } from '../../src/log/logger.js';
import type { Adapter } from './adapter.js';
import type { BleCounters } from './bearer.js';
import type { BleConfig } from './options.js';

/**
 * The watchdog, because a pulled UART is not always reported by the serial layer and a hung
 * controller never is: one HCI Read Local Version at a time, the next one livenessIntervalMs after
 * the answer. Read Local Version changes nothing in the controller, and noble (once powered on) only
 * re-emits its answer. No answer within livenessTimeoutMs means the adapter is gone or hung,
 * whatever the serial layer says: the adapter's recovery (drop links, re-open with backoff) follows.
 */

export interface LivenessWatchdogOptions {
  readonly adapter: Adapter;
  readonly cfg: Pick<BleConfig, 'livenessIntervalMs' | 'livenessTimeoutMs'>;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: Pick<BleCounters, 'livenessProbes' | 'livenessFailures'>;
}

export class LivenessWatchdog {
  readonly #adapter: Adapter;
  readonly #cfg: LivenessWatchdogOptions['cfg'];
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #counters: LivenessWatchdogOptions['counters'];
  /** Next liveness question, and the deadline of the one outstanding. */
  #probeTimer: TimerHandle | undefined;
  #probeDeadline: TimerHandle | undefined;
  /** Detaches the watchdog from the HCI layer of the current noble instance. */
  #probeOff: (() => void) | undefined;

  constructor(options: LivenessWatchdogOptions) {
    this.#adapter = options.adapter;
    this.#cfg = options.cfg;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#counters = options.counters;
  }

  /** Starts questioning the adapter's current noble instance, which just powered on. */
  start(generation: number): void {
    const noble = this.#adapter.noble();
    const hci = noble ? hciOf(noble) : undefined;
    if (!hci) {
      this.#log.warn(
        { adapter: this.#adapter.where() },
        "BLE liveness watchdog off: this noble has no HCI layer the driver knows (noble's internals changed?); a hung adapter will not be detected — check the noble version against docs/ble.md",
      );
      return;
    }
    this.#probeOff?.();
    this.#clock.clearTimeout(this.#probeDeadline);
    this.#probeDeadline = undefined;
    const onAnswer = () => {
      if (generation !== this.#adapter.generation || !this.#probeDeadline) return;
      this.#clock.clearTimeout(this.#probeDeadline);
      this.#probeDeadline = undefined;
      this.#scheduleProbe(generation, hci, this.#cfg.livenessIntervalMs);
    };
    hci.on('readLocalVersion', onAnswer);
    this.#probeOff = () => hci.removeListener('readLocalVersion', onAnswer);
    this.#scheduleProbe(generation, hci, this.#cfg.livenessIntervalMs);
  }

  stop(): void {
    this.#clock.clearTimeout(this.#probeTimer);
    this.#clock.clearTimeout(this.#probeDeadline);
    this.#probeTimer = this.#probeDeadline = undefined;
    this.#probeOff?.();
    this.#probeOff = undefined;
  }

  #scheduleProbe(generation: number, hci: HciLayer, delayMs: number): void {
    this.#clock.clearTimeout(this.#probeTimer);
    this.#probeTimer = this.#clock.setTimeout(() => {
      this.#probeTimer = undefined;
      if (generation !== this.#adapter.generation || this.#adapter.state().status !== 'ready') return;
      this.#counters.livenessProbes++;
      const timeoutMs = this.#cfg.livenessTimeoutMs;
      this.#probeDeadline = this.#clock.setTimeout(() => {
        this.#probeDeadline = undefined;
        if (generation !== this.#adapter.generation) return;
        this.#counters.livenessFailures++;
        this.#adapter.unavailable(
          generation,
          `${this.#adapter.where()}: the adapter stopped answering (no answer to an HCI command within ${timeoutMs} ms)`,
        );
      }, timeoutMs);
      try {
        hci.readLocalVersion();
      } catch (e) {
        // A write that throws is no answer either: the deadline decides.
        this.#log.debug({ err: describeError(e) }, 'BLE liveness question not sent');
      }
    }, delayMs);
  }
}

/**
 * The part of noble's HCI layer (`noble._bindings._hci`, noble 2.8 hci-socket bindings) the
 * watchdog uses. Not public API: looked up and checked at run time, absent → watchdog off with a warning.
 */
interface HciLayer {
  readLocalVersion(): void;
  on(event: 'readLocalVersion', listener: () => void): unknown;
  removeListener(event: 'readLocalVersion', listener: () => void): unknown;
}

function hciOf(noble: Noble): HciLayer | undefined {
  const hci = (noble as unknown as { _bindings?: { _hci?: Partial<HciLayer> | null } })._bindings?._hci;
  if (
    hci &&
    typeof hci.readLocalVersion === 'function' &&
    typeof hci.on === 'function' &&
    typeof hci.removeListener === 'function'
  ) {
    return hci as HciLayer;
  }
  return undefined;
}
