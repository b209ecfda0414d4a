import { setBounded } from '../../src/base/bounded-map.js';
import type { ZigbeeCounters } from './counters.js';

/** Addresses whose last report is kept, the longest silent forgotten first. */
export const MAX_REPORTING_DEVICES = 512;

import { type DoorLockState, LOCK_STATE_VALUES } from './link-cluster.js';

/**
 * The bolt position each lock reports in the standard Door Lock cluster (attribute reports and
 * read responses of lockState), kept for diagnostics only: those reports are neither sealed nor
 * authenticated, so the sealed link stays the authority on the bolt and nothing here decides
 * anything.
 */
export class DoorLockStates {
  readonly #counters: ZigbeeCounters;
  readonly #states = new Map<string, DoorLockState>();

  constructor(counters: ZigbeeCounters) {
    this.#counters = counters;
  }

  /** A closuresDoorLock report or read response from `address`. */
  report(address: string, data: Record<string, unknown>): void {
    if (typeof data.lockState === 'number') {
      this.#counters.doorLockReports++;
      setBounded(this.#states, address, LOCK_STATE_VALUES[data.lockState] ?? 'undefined', MAX_REPORTING_DEVICES);
    }
  }

  get(address: string): DoorLockState | undefined {
    return this.#states.get(address);
  }
}
