import type { Clock, TimerHandle } from '../base/clock.js';
import type { Random } from '../base/random.js';

/**
 * When the uplink tries the broker again: exponential backoff with full jitter, forever, and a
 * connection that lasted `stableAfterMs` starts the count over (a flapping one does not). One
 * object holds the count and the one pending attempt, so a switch, a stop and a lost connection
 * all see the same schedule.
 */

export interface BackoffSettings {
  clock: Clock;
  random: Random;
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  stableAfterMs: number;
}

export class ReconnectBackoff {
  readonly #o: BackoffSettings;
  #attempt = 0;
  #timer: TimerHandle | undefined;

  constructor(settings: BackoffSettings) {
    this.#o = settings;
  }

  /** Failed attempts since the last stable connection. */
  get attempt(): number {
    return this.#attempt;
  }

  /** Whether an attempt is waiting for its time. */
  get scheduled(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Counts a failure and draws the wait before the next attempt. `connectedAt`: monotonic ms of
   * the ended connection's CONNACK, null when it never got one.
   */
  nextDelay(connectedAt: number | null): number {
    const o = this.#o;
    if (connectedAt !== null && o.clock.monotonic() - connectedAt >= o.stableAfterMs) this.#attempt = 0;
    const ceiling = Math.min(o.reconnectMaxMs, o.reconnectBaseMs * 2 ** Math.min(this.#attempt, 30));
    const delay = Math.floor(o.random.float() * ceiling);
    this.#attempt++;
    return delay;
  }

  /** Runs `attempt` after `delayMs`; it is no longer `scheduled` once it runs. */
  schedule(attempt: () => void, delayMs: number): void {
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = undefined;
      attempt();
    }, delayMs);
  }

  cancel(): void {
    this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
