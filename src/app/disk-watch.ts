import type { Clock, TimerHandle } from '../base/clock.js';
import type { Component, ComponentStatus } from '../base/component.js';
import type { Unsubscribe } from '../base/listeners.js';
import type { Logger } from '../log/logger.js';
import type { DiskSpace, DiskState } from '../store/disk-space.js';

/** How often a full disk is looked at for space again (a statfs; nothing while there is room). */
export const DISK_RECHECK_MS = 2000;

/**
 * The data directory's disk as a component of the daemon (`iqhub status` lists it, degraded while
 * full): one log line when the disk turns full, one when space returns — never one per event —
 * and, while full, a look every DISK_RECHECK_MS for room to re-create the reserve. The store turns
 * the disk full on the first write that meets it (src/store/disk-space.ts); the locks keep their
 * events meanwhile, and the link collects them once space returns.
 */
export class DiskWatch implements Component {
  readonly name = 'disk';
  readonly #space: DiskSpace;
  readonly #clock: Clock;
  readonly #log: Logger;
  /** Told of each change (the uplink publishes a health message at once). */
  readonly #changed: () => void;
  #timer: TimerHandle | undefined;
  #unsub: Unsubscribe | undefined;
  #running = false;

  constructor(d: { space: DiskSpace; clock: Clock; log: Logger; changed: () => void }) {
    this.#space = d.space;
    this.#clock = d.clock;
    this.#log = d.log;
    this.#changed = d.changed;
  }

  async start(): Promise<void> {
    this.#running = true;
    this.#unsub = this.#space.onChange((s) => this.#onChange(s));
    // Full from the start (no room for the reserve): said once, like any change.
    const s = this.#space.state();
    if (s.full) this.#onChange(s);
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#unsub?.();
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  status(): ComponentStatus {
    const s = this.#space.state();
    if (s.full) return { name: this.name, state: 'degraded', detail: s.detail };
    return { name: this.name, state: this.#running ? 'running' : 'stopped', detail: `room at ${s.path}` };
  }

  #onChange(s: DiskState): void {
    if (s.full) {
      this.#log.error({ path: s.path, since: new Date(s.since).toISOString() }, s.detail);
      this.#schedule();
    } else {
      this.#log.warn({ path: s.path }, `space again at ${s.path}: the locks' events are being collected`);
    }
    try {
      this.#changed();
    } catch (e) {
      this.#log.error({ err: e }, 'a disk state listener failed');
    }
  }

  #schedule(): void {
    if (!this.#running || this.#timer) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#space.full) return;
      try {
        this.#space.recheck();
      } catch (e) {
        this.#log.error({ err: e, path: this.#space.path }, 'the disk-space reserve could not be re-created');
      }
      if (this.#space.full) this.#schedule();
    }, DISK_RECHECK_MS);
  }
}
