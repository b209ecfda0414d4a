import type { Controller } from 'zigbee-herdsman';
import type { BearerError, BearerState, Unsubscribe } from '../../hal/bearer.js';
import type { Clock } from '../../src/base/clock.js';
import { describeError } from '../../src/base/errors.js';
import { Listeners } from '../../src/base/listeners.js';
import type { Logger } from '../../src/log/logger.js';
import { type ZigbeeCounters, zeroCounters } from './counters.js';
import { scrub } from './herdsman-log.js';
import type { NetworkParameters } from './network.js';

/**
 * The coordinator as every part of the driver sees it: the herdsman controller running now and
 * its generation, the bearer's state, and how to call herdsman (bounded in time, its errors
 * counted and scrubbed of secrets). The bearer alone swaps the controller; the parts read it here,
 * so none of them can act on a controller that has been torn down without noticing.
 */

export type HerdsmanModule = typeof import('zigbee-herdsman');
export type HerdsmanDevice = ReturnType<Controller['getDevices']>[number];

export class Coordinator {
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: ZigbeeCounters = zeroCounters();
  /** Between start() and stop(). */
  running = false;
  /** Imported when the bearer first starts, so a hub without ZigBee never loads herdsman. */
  herdsman: HerdsmanModule | undefined;
  network: NetworkParameters | undefined;
  /** Install codes herdsman is handling right now (scrubbed from its log lines like the network key). */
  readonly transientSecrets = new Set<Uint8Array>();
  #controller: Controller | undefined;
  /** Bumped whenever a controller is torn down, so late events of an old one are ignored. */
  #generation = 0;
  #state: BearerState = { status: 'stopped' };
  /** ZCL transaction sequence number of the link cluster's frames (no response is awaited by it). */
  #tsn = 0;
  readonly #stateListeners = new Listeners<BearerState>();

  constructor(clock: Clock, log: Logger) {
    this.clock = clock;
    this.log = log;
  }

  /** herdsman's controller while one exists, ready or not. */
  get controller(): Controller | undefined {
    return this.#controller;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Makes `controller` the live one; returns its generation. */
  use(controller: Controller): number {
    const generation = ++this.#generation;
    this.#controller = controller;
    return generation;
  }

  /** Forgets the live controller (its late events are ignored from now on) and hands it back to be stopped. */
  release(): Controller | undefined {
    const controller = this.#controller;
    this.#controller = undefined;
    this.#generation++;
    return controller;
  }

  /** The controller, when the bearer is ready to use it. */
  ready(): Controller | undefined {
    return this.#state.status === 'ready' ? this.#controller : undefined;
  }

  state(): BearerState {
    return this.#state;
  }

  onStateChange(listener: (state: BearerState) => void): Unsubscribe {
    return this.#stateListeners.add(listener);
  }

  setState(state: BearerState): void {
    const same =
      state.status === this.#state.status &&
      (state.status !== 'unavailable' || (this.#state.status === 'unavailable' && state.reason === this.#state.reason));
    if (same) return;
    this.#state = state;
    this.#stateListeners.emit(state);
  }

  /** Why a radio operation cannot run now, or undefined when it can. */
  unavailable(): BearerError | undefined {
    if (!this.running) return this.stoppedError();
    if (this.#state.status !== 'ready' || !this.#controller) {
      return {
        code: 'adapter-unavailable',
        message: `ZigBee adapter unavailable: ${this.reason()}`,
        reason: this.reason(),
      };
    }
    return undefined;
  }

  stoppedError(): BearerError {
    return { code: 'stopped', message: 'the ZigBee bearer is stopped; start() it first' };
  }

  reason(): string {
    return this.#state.status === 'unavailable' ? this.#state.reason : this.#state.status;
  }

  secrets(): Uint8Array[] {
    return [...(this.network ? [this.network.networkKey] : []), ...this.transientSecrets];
  }

  clean(message: string): string {
    return scrub(message, this.secrets());
  }

  herdsmanError(what: string, e: unknown): void {
    this.counters.herdsmanErrors++;
    this.log.warn({ error: this.clean(describeError(e)) }, `ZigBee: ${what} failed`);
  }

  /** The next ZCL transaction sequence number, 0..255. */
  nextTsn(): number {
    this.#tsn = (this.#tsn + 1) & 0xff;
    return this.#tsn;
  }

  /** Awaits a herdsman promise at most `ms`; its late rejection is swallowed (already reported). */
  bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    promise.catch(() => {});
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      promise.then(
        (v) => {
          this.clock.clearTimeout(timer);
          resolve(v);
        },
        (e) => {
          this.clock.clearTimeout(timer);
          reject(e);
        },
      );
    });
  }
}
