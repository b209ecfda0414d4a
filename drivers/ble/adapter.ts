import type { Noble, Peripheral } from '@stoprocent/noble';
import type { BearerError, BearerState, CloseReason, Unsubscribe } from '../../hal/bearer.js';
import type { Clock, TimerHandle } from '../../src/base/clock.js';
import { deferNobleExtras } from '../../src/base/deferred-modules.js';
import { describeError } from '../../src/base/errors.js';
import { Listeners } from '../../src/base/listeners.js';
import { Deduper } from '../../src/log/dedupe.js';
import type { Logger } from '../../src/log/logger.js';
import { scrub } from '../../src/log/scrub.js';
import type { BleCounters, BleTransport } from './bearer.js';
import { stoppedError, unavailableError } from './errors.js';
import type { BleConfig } from './options.js';

/**
 * The controller behind noble, whose state is the bearer's state: noble is loaded and opened on the
 * configured transport, its power states become the port's, and an adapter that never came up,
 * went away or stopped answering is given up and opened again with backoff until it answers. The
 * noble instance is replaced on every recovery, so whatever works through it checks `generation`:
 * callbacks of an instance given up do nothing.
 */

type NobleModule = typeof import('@stoprocent/noble');

/** What the rest of the bearer does when the adapter comes, goes, or hears something. */
export interface AdapterHooks {
  /** The adapter powered on; the state already reads 'ready'. */
  ready(generation: number): void;
  /** The noble instance is being given up: timers that work through it must stop. */
  halt(): void;
  /** Attempts and links end: the adapter is gone or the bearer stopped. */
  drop(error: BearerError, reason: CloseReason): void;
  /** A peripheral heard by the current instance. */
  discover(peripheral: Peripheral): void;
  /** The controller stopped scanning (noble does so to connect). */
  scanStopped(): void;
}

export interface AdapterOptions {
  readonly transport: BleTransport;
  readonly cfg: Pick<BleConfig, 'readyTimeoutMs' | 'recoverBaseMs' | 'recoverMaxMs'>;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: Pick<BleCounters, 'adapterRecoveries'>;
  readonly hooks: AdapterHooks;
}

export class Adapter {
  readonly #transport: BleTransport;
  readonly #cfg: AdapterOptions['cfg'];
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #counters: AdapterOptions['counters'];
  readonly #hooks: AdapterHooks;
  #state: BearerState = { status: 'stopped' };
  readonly #stateListeners = new Listeners<BearerState>();
  #module: NobleModule | undefined;
  #noble: Noble | undefined;
  /** Bumped whenever the noble instance is replaced or the bearer stops: callbacks from an older one do nothing. */
  #generation = 0;
  #readyTimer: TimerHandle | undefined;
  #recoverTimer: TimerHandle | undefined;
  #backoffMs: number;
  /** noble's warnings, once per change (the same one again within ten minutes is only counted). */
  readonly #warnings: Deduper;

  constructor(options: AdapterOptions) {
    this.#transport = options.transport;
    this.#cfg = options.cfg;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#counters = options.counters;
    this.#hooks = options.hooks;
    this.#backoffMs = options.cfg.recoverBaseMs;
    this.#warnings = new Deduper({ now: () => options.clock.now() });
  }

  state(): BearerState {
    return this.#state;
  }

  onStateChange(listener: (state: BearerState) => void): Unsubscribe {
    return this.#stateListeners.add(listener);
  }

  /** The current noble instance; none while stopped or between a loss and the next open. */
  noble(): Noble | undefined {
    return this.#noble;
  }

  get generation(): number {
    return this.#generation;
  }

  /** How logs and reasons name the adapter, so a person can find it: its serial port or HCI device. */
  where(): string {
    const t = this.#transport;
    return t.kind === 'uart' ? `UART ${t.path}` : `hci${t.deviceId}`;
  }

  async start(): Promise<void> {
    if (this.#state.status !== 'stopped') return;
    this.#setState({ status: 'starting' });
    this.#backoffMs = this.#cfg.recoverBaseMs;
    await this.#open();
  }

  stop(): void {
    if (this.#state.status === 'stopped') return;
    this.#generation++;
    this.#clearTimers();
    this.#setState({ status: 'stopped' });
    this.#hooks.drop(stoppedError(), 'stopped');
    this.#dispose(this.#noble);
    this.#noble = undefined;
  }

  /** The adapter went away or never came: report it, drop everything, re-open with backoff. */
  unavailable(generation: number, reason: string): void {
    if (generation !== this.#generation || this.#state.status === 'stopped') return;
    this.#generation++;
    this.#clearTimers();
    const wasUsable = this.#state.status === 'ready';
    if (!(this.#state.status === 'unavailable' && this.#state.reason === reason)) {
      this.#log.warn({ adapter: this.where(), retryInMs: this.#backoffMs }, `BLE adapter unavailable: ${reason}`);
      this.#setState({ status: 'unavailable', reason });
    }
    this.#hooks.drop(unavailableError(reason), 'adapter-unavailable');
    const old = this.#noble;
    this.#noble = undefined;
    // Later, not now: noble's serial layer is still inside its close handler and would undo a stop made from here.
    setTimeout(() => this.#dispose(old), 0);
    if (wasUsable) this.#counters.adapterRecoveries++;
    const wait = this.#backoffMs;
    this.#backoffMs = Math.min(this.#cfg.recoverMaxMs, this.#backoffMs * 2);
    this.#recoverTimer = this.#clock.setTimeout(() => {
      this.#recoverTimer = undefined;
      void this.#open();
    }, wait);
  }

  async #open(): Promise<void> {
    const generation = ++this.#generation;
    let noble: Noble;
    try {
      if (!this.#module) deferNobleExtras();
      this.#module ??= await import('@stoprocent/noble');
      if (generation !== this.#generation) return;
      const mod = this.#module as NobleModule & { default?: { withBindings?: NobleModule['withBindings'] } };
      const withBindings = mod.withBindings ?? mod.default?.withBindings;
      const t = this.#transport;
      noble =
        t.kind === 'uart'
          ? withBindings('hci', {
              hciDriver: 'uart',
              bindParams: { uart: { port: t.path, baudRate: t.baudRate ?? 1_000_000 } },
            })
          : withBindings('hci', { deviceId: t.deviceId });
    } catch (e) {
      this.unavailable(generation, `the BLE library could not be loaded: ${describeError(e)}`);
      return;
    }
    this.#noble = noble;
    noble.on('stateChange', (s: string) => this.#onAdapterState(generation, s));
    noble.on('discover', (p: Peripheral) => {
      if (generation === this.#generation) this.#hooks.discover(p);
    });
    noble.on('scanStop', () => {
      if (generation === this.#generation) this.#hooks.scanStopped();
    });
    // noble reports its own troubles as warnings on the console; keep them in our log instead.
    noble.removeAllListeners('warning');
    noble.on('warning', (message: string) => {
      const text = scrub(String(message));
      const admitted = this.#warnings.admit(text);
      if (admitted)
        this.#log.debug(
          admitted.repeated ? { message: text, repeated: admitted.repeated } : { message: text },
          'noble warning',
        );
    });
    this.#readyTimer = this.#clock.setTimeout(() => {
      this.#readyTimer = undefined;
      this.unavailable(
        generation,
        `the BLE adapter (${this.where()}) did not power on within ${this.#cfg.readyTimeoutMs} ms`,
      );
    }, this.#cfg.readyTimeoutMs);
  }

  #onAdapterState(generation: number, s: string): void {
    if (generation !== this.#generation) return;
    if (s === 'poweredOn') {
      this.#clock.clearTimeout(this.#readyTimer);
      this.#readyTimer = undefined;
      this.#backoffMs = this.#cfg.recoverBaseMs;
      this.#log.info({ adapter: this.where() }, 'BLE adapter ready');
      this.#setState({ status: 'ready' });
      this.#hooks.ready(generation);
      return;
    }
    // noble says poweredOff while its UART waits for the answer to HCI Reset: only the ready timeout
    // decides that an adapter that never came up is unavailable.
    if (s === 'unknown' || s === 'resetting' || (s === 'poweredOff' && this.#state.status !== 'ready')) return;
    const why: Record<string, string> = {
      poweredOff: 'the adapter is powered off or was unplugged',
      unsupported: 'the adapter is missing or does not support Bluetooth LE',
      unauthorized:
        'no permission to use the adapter (CAP_NET_ADMIN/CAP_NET_RAW for an HCI socket, the dialout group for a UART)',
    };
    this.unavailable(generation, `${this.where()}: ${why[s] ?? `adapter state ${s}`}`);
  }

  #dispose(noble: Noble | undefined): void {
    if (!noble) return;
    noble.removeAllListeners('stateChange');
    noble.removeAllListeners('discover');
    noble.removeAllListeners('scanStop');
    try {
      noble.stop();
    } catch (e) {
      this.#log.debug({ err: describeError(e) }, 'noble stop failed');
    }
  }

  #clearTimers(): void {
    this.#clock.clearTimeout(this.#readyTimer);
    this.#clock.clearTimeout(this.#recoverTimer);
    this.#readyTimer = this.#recoverTimer = undefined;
    this.#hooks.halt();
  }

  #setState(state: BearerState): void {
    this.#state = state;
    this.#stateListeners.emit(state);
  }
}
