import type { TimerHandle } from '../../src/base/clock.js';
import type { Coordinator } from './coordinator.js';

/**
 * Joining is closed except while an attach looks for its lock, so a stranger's device cannot join
 * the hub's network at any other time. The window opens the coordinator's permit-join and closes
 * it explicitly when it ends; the admission policy is the second layer, for devices the stack
 * admits anyway (a trust-center rejoin): outside a window only locks already on the network may
 * come back.
 */
export class JoinWindow {
  readonly #coordinator: Coordinator;
  #until = 0;
  #timer: TimerHandle | undefined;

  constructor(coordinator: Coordinator) {
    this.#coordinator = coordinator;
  }

  async open(durationMs: number): Promise<void> {
    if (!(durationMs > 0)) return;
    const c = this.#coordinator;
    const controller = c.ready();
    if (!controller) {
      c.log.warn({ state: c.state() }, 'ZigBee: join window not opened, the adapter is not ready');
      return;
    }
    const seconds = Math.min(254, Math.ceil(durationMs / 1000));
    this.#until = c.clock.monotonic() + durationMs;
    c.clock.clearTimeout(this.#timer);
    this.#timer = c.clock.setTimeout(() => {
      this.#until = 0;
      void this.#permitNone();
    }, durationMs);
    try {
      await controller.permitJoin(seconds);
      c.log.info({ durationMs }, 'ZigBee: join window open');
    } catch (e) {
      c.herdsmanError('opening the join window', e);
    }
  }

  /** Ends a join window early (the attach it was opened for is over). */
  async close(): Promise<void> {
    if (this.#until === 0) return;
    this.#until = 0;
    this.#coordinator.clock.clearTimeout(this.#timer);
    await this.#permitNone();
    this.#coordinator.log.info('ZigBee: join window closed');
  }

  isOpen(): boolean {
    return this.#coordinator.clock.monotonic() < this.#until;
  }

  /** The bearer stopped: the window ends without asking the coordinator, which is going away. */
  reset(): void {
    this.#coordinator.clock.clearTimeout(this.#timer);
    this.#until = 0;
  }

  /** Admission policy: newcomers only inside a join window; locks already on the network may rejoin. */
  accept(ieee: string): boolean {
    const c = this.#coordinator;
    const known = c.controller?.getDeviceByIeeeAddr(ieee);
    if (this.isOpen() || (known && known.interviewState === 'SUCCESSFUL')) return true;
    c.counters.joinsRefused++;
    c.log.warn({ ieee }, 'ZigBee: refused a device that joined outside a join window');
    return false;
  }

  async #permitNone(): Promise<void> {
    try {
      await this.#coordinator.controller?.permitJoin(0);
    } catch (e) {
      this.#coordinator.herdsmanError('closing the join window', e);
    }
  }
}
