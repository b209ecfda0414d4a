import type { Advertisement, Unsubscribe } from '../../hal/bearer.js';
import { Listeners } from '../../src/base/listeners.js';
import type { Coordinator, HerdsmanDevice } from './coordinator.js';
import { parseModelId } from './link-cluster.js';
import { addLinkCluster } from './link-commands.js';

/**
 * ZigBee has no advertisements, yet the hub finds locks by them: a lock's identity
 * (genBasic.modelId) is reported as one when its interview ends, at every start for the locks
 * already joined, and whenever the lock reports its modelId. Devices that are not iq locks are
 * counted and otherwise ignored.
 */
export class Advertisements {
  readonly #coordinator: Coordinator;
  readonly #listeners = new Listeners<Advertisement>();

  constructor(coordinator: Coordinator) {
    this.#coordinator = coordinator;
  }

  on(listener: (advertisement: Advertisement) => void): Unsubscribe {
    return this.#listeners.add(listener);
  }

  /** A device herdsman knows: a lock whose interview succeeded can be connected to from now on. */
  announce(device: HerdsmanDevice): void {
    if (device.type === 'Coordinator') return;
    if (device.interviewState === 'SUCCESSFUL') addLinkCluster(this.#coordinator, device);
    this.#advertise(device.ieeeAddr, device.modelID);
  }

  /** A genBasic report or read response. */
  report(device: HerdsmanDevice, data: Record<string, unknown>): void {
    // Until its interview succeeded a device cannot be connected to: it is not announced yet.
    if ('modelId' in data && device.interviewState === 'SUCCESSFUL') this.#advertise(device.ieeeAddr, data.modelId);
  }

  #advertise(address: string, modelId: unknown): void {
    const c = this.#coordinator;
    const parsed = parseModelId(modelId);
    if (!parsed) {
      if (modelId !== undefined) c.counters.foreignModelIds++;
      return;
    }
    c.counters.advertisements++;
    const ad: Advertisement = { ...parsed, address, seenAt: c.clock.now() };
    this.#listeners.emit(ad);
  }
}
