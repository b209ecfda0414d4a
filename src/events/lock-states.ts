import type { Clock } from '../base/clock.js';
import type { Unsubscribe } from '../base/listeners.js';
import type { LockStatePayload } from '../contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION } from '../contract/mqtt-topics.js';
import type { LinkManager, LockChange } from '../link/manager.js';
import type { Logger } from '../log/logger.js';
import { isDiskFull } from '../store/disk-space.js';
import type { Store } from '../store/store.js';
import type { Outbox } from './outbox.js';

export interface LockStatesDeps {
  link: Pick<LinkManager, 'onLockChange'>;
  outbox: Outbox;
  store: Store;
  clock: Clock;
  log: Logger;
  /** Wake the publisher: something was queued (called after the transaction that queued it). */
  kick: () => void;
}

/**
 * Each lock's retained `locks/{lockId}/state` message, queued in the outbox when the lock's state
 * changes — on the next turn of the event loop, not at once. A remote open changes the state
 * twice in a few hundred microseconds (the lock's answer, then the state read that collects its
 * event): both become one row in one commit, and that commit no longer sits between the lock's
 * answer and the command's result. Only the newest state of a lock matters (retained, older rows
 * are replaced), and it is in the outbox before it is published. Its commit does not wait for the
 * disk (Store.lazyTransaction; the next durable commit — the lock's event, a result — flushes it):
 * a crash of the process does not undo it, and a power cut that does loses only a state the hub
 * reads again from every lock on each connection, never a result or an event.
 */
export class LockStates {
  readonly #d: LockStatesDeps;
  /** Retained lock states not yet queued, newest per lock. */
  readonly #pending = new Map<string, LockStatePayload>();
  #flush: NodeJS.Immediate | undefined;

  constructor(deps: LockStatesDeps) {
    this.#d = deps;
  }

  /** Follow the locks' changes from now on. */
  follow(): Unsubscribe {
    const changes = this.#d.link.onLockChange((c) => this.#changed(c));
    // Space again after a full disk: queue the states that waited.
    const disk = this.#d.store.space.onChange((s) => {
      if (!s.full) this.flush();
    });
    return () => {
      changes();
      disk();
    };
  }

  #changed(c: LockChange): void {
    const s = c.summary;
    const payload: LockStatePayload = {
      v: CONTRACT_VERSION,
      lockId: c.lockId,
      pairing: s ? s.state : 'detached',
      connected: s?.connected ?? false,
      at: new Date(this.#d.clock.now()).toISOString(),
      ...(c.state
        ? {
            bolt: c.state.bolt,
            mode: c.state.mode,
            doorOpen: c.state.doorOpen,
            batteryPercent: c.state.batteryPercent,
            lastSeq: c.state.lastSeq,
          }
        : {}),
    };
    this.#pending.set(c.lockId, payload);
    this.#flush ??= setImmediate(() => this.flush());
  }

  /** Queue the pending lock states in one transaction (older queued ones of each lock replaced), then kick. */
  flush(): void {
    if (this.#flush) clearImmediate(this.#flush);
    this.#flush = undefined;
    // A full disk: the newest state of each lock waits here (one per lock) until space returns; the
    // disk's state change is logged once, not each flush.
    if (this.#pending.size === 0 || this.#d.store.diskFull) return;
    const states = [...this.#pending.values()];
    this.#pending.clear();
    try {
      this.#d.store.lazyTransaction(() => {
        for (const p of states) {
          this.#d.outbox.enqueueMessage(`locks/${p.lockId}/state`, p, { retain: true, replace: true });
        }
      });
    } catch (e) {
      if (isDiskFull(e)) {
        // The disk turned full on this commit: keep them for later, unless a newer state came since.
        for (const p of states) if (!this.#pending.has(p.lockId)) this.#pending.set(p.lockId, p);
        return;
      }
      // The store is closing or failing: the next connection to each lock reports its state again.
      this.#d.log.error({ err: e, locks: states.map((p) => p.lockId) }, 'lock states could not be queued');
      return;
    }
    this.#d.kick();
  }
}
