import type { Advertisement } from '../../hal/bearer.js';
import { setBounded } from '../base/bounded-map.js';
import type { Unsubscribe } from '../base/listeners.js';
import { Listeners } from '../base/listeners.js';

/**
 * Devices remembered, the longest unheard forgotten first: a site's locks and those being attached
 * fit many times over; a neighbour advertising made-up device ids does not grow the daemon.
 */
export const MAX_HEARD_DEVICES = 512;

/**
 * The latest advertisement of every device the radio has heard: where a lock is now (its address
 * may change), whether it is in attach mode, and who wants to know when it is heard next. Attach,
 * reconnects and the installer's discovery list all read the same record.
 */
export class HeardLocks {
  readonly #latest = new Map<string, Advertisement>();
  readonly #listeners = new Listeners<Advertisement>();

  /** Records an advertisement, then tells the listeners. */
  heard(a: Advertisement): void {
    setBounded(this.#latest, a.deviceId, a, MAX_HEARD_DEVICES);
    this.#listeners.emit(a);
  }

  get(deviceId: string): Advertisement | undefined {
    return this.#latest.get(deviceId);
  }

  onHeard(listener: (a: Advertisement) => void): Unsubscribe {
    return this.#listeners.add(listener);
  }

  /** Devices in attach mode heard within the last 10 s (at `now`, wall-clock ms). */
  inAttachMode(now: number): { deviceId: string; address: string; rssi: number | null }[] {
    return [...this.#latest.values()]
      .filter((a) => a.attachMode && now - a.seenAt < 10_000)
      .map((a) => ({ deviceId: a.deviceId, address: a.address, rssi: a.rssi ?? null }));
  }
}
