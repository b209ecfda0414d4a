import type { TimerHandle } from '../../src/base/clock.js';
import { describeError } from '../../src/base/errors.js';
import type { Coordinator } from './coordinator.js';

/**
 * A hung adapter (stuck firmware, a network adapter whose connection stays half-open) sends no
 * disconnect event: herdsman would keep waiting on it. Only a question it fails to answer gives it
 * away, so one is asked every healthIntervalMs and a missing answer counts as losing the adapter.
 */
export class HealthProbe {
  readonly #coordinator: Coordinator;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #lost: (reason: string) => void;
  #timer: TimerHandle | undefined;
  #probing = false;

  constructor(coordinator: Coordinator, intervalMs: number, timeoutMs: number, lost: (reason: string) => void) {
    this.#coordinator = coordinator;
    this.#intervalMs = intervalMs;
    this.#timeoutMs = timeoutMs;
    this.#lost = lost;
  }

  /** Probes the controller of `generation` until it is torn down. */
  schedule(generation: number): void {
    const c = this.#coordinator;
    this.#timer = c.clock.setTimeout(() => {
      if (generation !== c.generation) return;
      void this.#probe(generation).finally(() => {
        if (generation === c.generation) this.schedule(generation);
      });
    }, this.#intervalMs);
  }

  cancel(): void {
    this.#coordinator.clock.clearTimeout(this.#timer);
  }

  /** Asks the coordinator for its own node descriptor: cheap, and only a live firmware answers. */
  async #probe(generation: number): Promise<void> {
    const c = this.#coordinator;
    const controller = c.controller;
    if (!controller || this.#probing) return;
    this.#probing = true;
    try {
      const { Zdo } = c.herdsman!;
      const coordinator = controller.getDevicesByType('Coordinator')[0];
      await c.bounded(
        controller.sendRaw({
          profileId: Zdo.ZDO_PROFILE_ID,
          ieeeAddress: coordinator?.ieeeAddr ?? '0x0000000000000000',
          networkAddress: 0,
          clusterKey: Zdo.ClusterId.NODE_DESCRIPTOR_REQUEST,
          zdoParams: [0],
        }),
        this.#timeoutMs,
        'the health probe',
      );
    } catch (e) {
      if (generation === c.generation) {
        this.#lost(`the adapter stopped answering (${c.clean(describeError(e))})`);
      }
    } finally {
      this.#probing = false;
    }
  }
}
