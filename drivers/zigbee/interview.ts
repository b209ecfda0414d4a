import type { TimerHandle } from '../../src/base/clock.js';
import type { Coordinator, HerdsmanDevice } from './coordinator.js';

const INTERVIEW_RETRIES = 3;
const INTERVIEW_RETRY_MS = 5_000;

/**
 * herdsman interviews a device once, when it joins; a lock whose interview failed (a lost frame)
 * would stay unusable until it rejoins. This asks again a few times, spaced out, and hands a lock
 * whose interview finally succeeded to `interviewed`.
 */
export class InterviewRetry {
  readonly #coordinator: Coordinator;
  readonly #interviewed: (device: HerdsmanDevice) => void;
  readonly #timers = new Set<TimerHandle>();

  constructor(coordinator: Coordinator, interviewed: (device: HerdsmanDevice) => void) {
    this.#coordinator = coordinator;
    this.#interviewed = interviewed;
  }

  retry(device: HerdsmanDevice, generation: number, attempt = 1): void {
    const c = this.#coordinator;
    if (attempt > INTERVIEW_RETRIES) {
      c.log.warn({ ieee: device.ieeeAddr }, 'ZigBee: interview failed; the lock is usable once it rejoins');
      return;
    }
    const timer = c.clock.setTimeout(() => {
      this.#timers.delete(timer);
      if (generation !== c.generation || device.interviewState === 'SUCCESSFUL') return;
      device.interview().then(
        () => this.#interviewed(device),
        () => this.retry(device, generation, attempt + 1),
      );
    }, INTERVIEW_RETRY_MS * attempt);
    this.#timers.add(timer);
  }

  /** The controller is going away: its devices are not asked again. */
  cancel(): void {
    for (const timer of this.#timers) this.#coordinator.clock.clearTimeout(timer);
    this.#timers.clear();
  }
}
