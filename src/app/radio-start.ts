import type {
  Advertisement,
  Bearer,
  BearerError,
  BearerLink,
  BearerState,
  ConnectOptions,
  Unsubscribe,
} from '../../hal/bearer.js';
import type { Clock } from '../base/clock.js';
import type { Result } from '../base/result.js';
import type { Secret } from '../crypto/secret.js';
import type { Logger } from '../log/logger.js';

/** How long an install code waits for its radio to come up (an attach's own timeout bounds the rest). */
const INSTALL_CODE_WAIT_MS = 30_000;

/**
 * One radio as the link layer sees it during start-up: its start runs in the background (the hub
 * is READY once the store, the control socket and the uplink are up; herdsman and noble take
 * their time), and whatever asks the radio for something while it is `starting` waits for it —
 * a connect within its own timeoutMs (the rest of which it keeps), a join window or an install
 * code likewise — rather than failing because the adapter is not open yet. A radio that fails to
 * start says so in its state (unavailable, with the reason), as before; a caller waiting then gets
 * the radio's own answer.
 */
export class StartingRadio implements Bearer {
  readonly kind: Bearer['kind'];
  readonly #inner: Bearer;
  readonly #clock: Clock;
  readonly #log: Logger;
  #starting: Promise<void> | undefined;
  /** The radio's own start has settled (it resolves once the radio is ready or known unavailable). */
  #settled = false;
  openJoinWindow?: (durationMs: number) => Promise<void>;
  closeJoinWindow?: () => Promise<void>;
  addInstallCode?: (installCode: Secret) => Promise<void>;

  constructor(inner: Bearer, clock: Clock, log: Logger) {
    this.#inner = inner;
    this.kind = inner.kind;
    this.#clock = clock;
    this.#log = log;
    // Only what the radio itself offers: the link layer and the composite test for these.
    if (inner.openJoinWindow) {
      this.openJoinWindow = async (durationMs) => {
        await this.untilStarted(durationMs);
        await inner.openJoinWindow?.(durationMs);
      };
    }
    if (inner.closeJoinWindow) this.closeJoinWindow = () => inner.closeJoinWindow?.() ?? Promise.resolve();
    if (inner.addInstallCode) {
      this.addInstallCode = async (code) => {
        await this.untilStarted(INSTALL_CODE_WAIT_MS);
        await inner.addInstallCode?.(code);
      };
    }
  }

  /** Starts the radio and returns at once; `started` settles when the radio's own start has. */
  start(): Promise<void> {
    this.#starting ??= this.#inner
      .start()
      .catch((e: unknown) => {
        // A bearer's start resolves even without its adapter; a throw is a bug, said and kept out of the way.
        this.#log.error({ err: e, radio: this.kind }, 'radio start failed');
      })
      .finally(() => {
        this.#settled = true;
      });
    return Promise.resolve();
  }

  /** Settles once the radio's start has (resolved at once if it was never started). */
  get started(): Promise<void> {
    return this.#starting ?? Promise.resolve();
  }

  stop(): Promise<void> {
    return this.#inner.stop();
  }

  state(): BearerState {
    return this.#inner.state();
  }

  onStateChange(listener: (state: BearerState) => void): Unsubscribe {
    return this.#inner.onStateChange(listener);
  }

  onAdvertisement(listener: (advertisement: Advertisement) => void): Unsubscribe {
    return this.#inner.onAdvertisement(listener);
  }

  async connect(address: string, options: ConnectOptions): Promise<Result<BearerLink, BearerError>> {
    const began = this.#clock.monotonic();
    await this.untilStarted(options.timeoutMs);
    const left = Math.max(1, options.timeoutMs - (this.#clock.monotonic() - began));
    return this.#inner.connect(address, { ...options, timeoutMs: left });
  }

  /** Starting: its first start has not settled yet, or it says `starting` (a restore, a recovery). */
  starting(): boolean {
    return (this.#starting !== undefined && !this.#settled) || this.#inner.state().status === 'starting';
  }

  /**
   * Resolves once the radio is no longer starting (ready, unavailable, stopped) or after
   * `timeoutMs`, whichever comes first; at once when it is not starting.
   */
  untilStarted(timeoutMs: number): Promise<void> {
    if (!this.starting()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let over = false;
      const done = () => {
        if (over) return;
        over = true;
        off();
        this.#clock.clearTimeout(timer);
        resolve();
      };
      const check = () => {
        if (!this.starting()) done();
      };
      const off = this.#inner.onStateChange(check);
      const timer = this.#clock.setTimeout(done, timeoutMs);
      void this.#starting?.then(check);
    });
  }
}
