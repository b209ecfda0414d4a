import type { Clock, TimerHandle } from '../../src/base/clock.js';
import type { LockMemory } from './memory.js';

/**
 * The relock after an open in normal mode. It is RAM only (a crash loses it; boot then relocks
 * anyway), and the bolt moves whatever the flash says, so the one timer and its fail-secure
 * fallback are kept in one place for every path that draws the bolt back.
 */
export class Relock {
  readonly #memory: LockMemory;
  readonly #clock: Clock;
  #timer: TimerHandle | undefined;

  constructor(memory: LockMemory, clock: Clock) {
    this.#memory = memory;
    this.#clock = clock;
  }

  /** Relock in `durationMs`, replacing a pending relock; only a bolt still unlocked in normal mode moves. */
  arm(durationMs: number): void {
    this.cancel();
    const generation = this.#memory.generation;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#memory.alive(generation)) return;
      const p = this.#memory.running();
      if (p.bolt !== 'unlocked' || p.mode !== 'normal') return;
      try {
        this.#memory.change((d) => {
          d.bolt = 'locked';
        });
      } catch {
        // The bolt moved whatever the flash says; boot relocks anyway (fail-secure).
        this.#memory.keepInRam({ ...p, bolt: 'locked' });
      }
    }, durationMs);
  }

  cancel(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
