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
 * changes — in the store's next group commit (Store.commitSoon), not at once. A remote open changes
 * the state twice in a few hundred microseconds (the lock's answer, then the state read that
 * collects its event): both become one row, written in the group commit that also records the
 * command's answer and stores the lock's events, after the answer has left. Only the newest state
 * of a lock matters (retained, older rows are replaced), and it is in the outbox before it is
 * published. It does not ask for the disk (a lazy write: a group of lazy writes only commits
 * without fsync; in a group with durable writes it is on disk with them): a crash of the process
 * does not undo it, and a power cut that does loses only a state the hub reads again from every
 * lock on each connection, never a result or an event.
 */
export class LockStates {
  readonly #d: LockStatesDeps;
  /** Retained lock states not yet queued, newest per lock. */
  readonly #pending = new Map<string, LockStatePayload>();
  /** A write of the pending states waits in the store's group commit. */
  #queued = false;

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
    this.#queue();
  }

  /** Write the pending states in the next group commit (they are read when it runs: the newest then). */
  #queue(): void {
    if (this.#queued || this.#d.store.closed) return;
    this.#queued = true;
    let taken: LockStatePayload[] = [];
    const write = () => {
      taken = this.#take();
      this.#enqueue(taken);
      return taken.length;
    };
    this.#d.store.commitSoon(write, { durable: false }).then(
      (n) => {
        this.#queued = false;
        if (n > 0) this.#d.kick();
      },
      (e: unknown) => {
        this.#queued = false;
        this.#failed(taken, e);
      },
    );
  }

  /**
   * Queue the pending lock states now, in one transaction of their own (older queued ones of each
   * lock replaced), then kick: space again after a full disk.
   */
  flush(): void {
    if (this.#d.store.closed) return;
    const states = this.#take();
    if (states.length === 0) return;
    try {
      this.#d.store.lazyTransaction(() => this.#enqueue(states));
    } catch (e) {
      this.#failed(states, e);
      return;
    }
    this.#d.kick();
  }

  /**
   * The pending states, taken out of the waiting list. A full disk: none — the newest state of each
   * lock waits here (one per lock) until space returns; the disk's state change is logged once,
   * not each write.
   */
  #take(): LockStatePayload[] {
    if (this.#pending.size === 0 || this.#d.store.diskFull) return [];
    const states = [...this.#pending.values()];
    this.#pending.clear();
    return states;
  }

  #enqueue(states: readonly LockStatePayload[]): void {
    for (const p of states) {
      this.#d.outbox.enqueueMessage(`locks/${p.lockId}/state`, p, { retain: true, replace: true });
    }
  }

  #failed(states: readonly LockStatePayload[], e: unknown): void {
    if (isDiskFull(e)) {
      // The disk turned full on this commit: keep them for later, unless a newer state came since.
      for (const p of states) if (!this.#pending.has(p.lockId)) this.#pending.set(p.lockId, p);
      return;
    }
    if (states.length === 0) return;
    // The store is closing or failing: the next connection to each lock reports its state again.
    this.#d.log.error({ err: e, locks: states.map((p) => p.lockId) }, 'lock states could not be queued');
  }
}
