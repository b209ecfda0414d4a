import type { TimerHandle } from '../base/clock.js';
import type { Unsubscribe } from '../base/listeners.js';
import type { LockEvent, LockState } from '../contract/link-messages.js';
import type { Connection } from './connections.js';
import type { LinkContext } from './link-context.js';
import type { LockClient } from './lock-client.js';
import type { LockReports } from './lock-reports.js';
import type { StoredEvent } from './pairing.js';
import type { Quarantine } from './quarantine.js';

/** What set off an event collection, within one turn (EventCollection.soon). */
interface Trigger {
  /** The lock's state, as an answer just carried it. */
  known?: LockState | undefined;
  /** Events the lock pushed or carried in an answer, as they arrived (sealed in the session). */
  pushed: LockEvent[];
}

/** Add what `from` brought to `into`, a collection not yet run: its events, and the newer state if any. Returns `into`. */
function addTo(into: Trigger, from: Trigger): Trigger {
  into.pushed.push(...from.pushed);
  if (from.known) into.known = from.known;
  return into;
}

/**
 * Collecting each connected lock's events into the pairing store: pushed, polled for (a push may be
 * lost on the radio) or pulled in batches; stored durably before they are acknowledged, so the
 * lock deletes only what the hub keeps. One collection at a time per lock; a lock whose numbering
 * went backwards is quarantined instead.
 */
export class EventCollection {
  readonly #ctx: LinkContext;
  readonly #connection: (lockId: string) => Connection | undefined;
  readonly #reports: LockReports;
  readonly #quarantine: Quarantine;
  readonly #eventSink: ((fresh: StoredEvent[]) => void) | undefined;
  readonly #listeners = new Set<(lockId: string, e: LockEvent) => void>();
  readonly #pulling = new Map<string, Promise<void>>();
  /**
   * Collections asked for while one was running, by lock: what set them off (the events pushed
   * meanwhile, a state an answer carried), or undefined for a plain pull (a poll, a connection).
   */
  readonly #pullAgain = new Map<string, Trigger | undefined>();
  /**
   * Collections asked for on the next turn, by lock: the triggers of one turn (the lock's pushed
   * events, an answer that carried its state) make one collection (see #collect).
   */
  readonly #pullSoon = new Map<string, Trigger>();
  /** Sessions on which the events stored before a restart have been acknowledged. */
  readonly #ackedOnConnect = new WeakSet<LockClient>();

  constructor(
    ctx: LinkContext,
    deps: {
      /** The lock's current connection, if any. */
      connection: (lockId: string) => Connection | undefined;
      reports: LockReports;
      quarantine: Quarantine;
      eventSink: ((fresh: StoredEvent[]) => void) | undefined;
    },
  ) {
    this.#ctx = ctx;
    this.#connection = deps.connection;
    this.#reports = deps.reports;
    this.#quarantine = deps.quarantine;
    this.#eventSink = deps.eventSink;
  }

  onLockEvent(l: (lockId: string, e: LockEvent) => void): Unsubscribe {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }

  /** A new connection: collect now, on every push, and now and then while it lasts. */
  watch(lockId: string, conn: Connection): void {
    conn.client.onEvent((e) => this.soon(lockId, { pushed: e }));
    // A pushed event may be lost on the radio: ask for the state now and then, which pulls if needed.
    let poll: TimerHandle | undefined;
    const tick = () => {
      if (this.#connection(lockId) !== conn) return;
      this.#schedulePull(lockId);
      poll = this.#ctx.clock.setTimeout(tick, this.#ctx.opts.pollMs);
    };
    poll = this.#ctx.clock.setTimeout(tick, this.#ctx.opts.pollMs);
    conn.link.onClose(() => this.#ctx.clock.clearTimeout(poll));
    // The first collection waits a request's round trip: a command that opened this connection gets
    // its answer first, and the state (and events) that answer carries spare asking for them.
    this.soon(lockId, {}, this.#ctx.opts.retryMs);
  }

  /**
   * Collect events on the next turn: the caller (a command waiting for its result, a request's
   * answer) finishes its own durable commit and reply first; the events follow a moment later.
   * A trigger brings the lock's state as an answer just gave it, or an event the lock pushed.
   */
  soon(
    lockId: string,
    trigger: { known?: LockState; pushed?: LockEvent; carried?: LockEvent[] } = {},
    delayMs = 0,
  ): void {
    const arrived = {
      known: trigger.known,
      pushed: [...(trigger.pushed ? [trigger.pushed] : []), ...(trigger.carried ?? [])],
    };
    const pending = this.#pullSoon.get(lockId);
    if (pending) {
      addTo(pending, arrived);
      return;
    }
    this.#pullSoon.set(lockId, arrived);
    this.#ctx.clock.setTimeout(() => {
      const t = this.#pullSoon.get(lockId);
      this.#pullSoon.delete(lockId);
      if (this.#connection(lockId)) this.#schedulePull(lockId, t);
    }, delayMs);
  }

  /**
   * An answer carried the lock's state and it reports nothing new: a collection waiting for its turn
   * (the first one of a connection) takes it instead of asking for it.
   */
  noteState(lockId: string, state: LockState): void {
    const pending = this.#pullSoon.get(lockId);
    if (pending) pending.known = state;
  }

  /** Resolves once the collections running now have ended, however they end. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#pulling.values()]);
  }

  /** Collect from every connected lock now: the disk had been full and has room again. */
  collectAll(lockIds: string[]): void {
    for (const lockId of lockIds) if (this.#connection(lockId)) this.#schedulePull(lockId);
  }

  #schedulePull(lockId: string, trigger?: Trigger): void {
    // A full disk: nothing is fetched, stored or acknowledged — the lock keeps its events (it
    // deletes only what the hub acknowledged) until space returns and collectAll runs.
    if (this.#ctx.pairing.space.full) return;
    if (this.#pulling.has(lockId)) {
      // Kept for when it ends: a push that arrived meanwhile can still be stored as it came.
      // A plain pull (no trigger) asked for on either side makes the next one plain: it asks the lock.
      const waiting = this.#pullAgain.get(lockId);
      if (!this.#pullAgain.has(lockId)) this.#pullAgain.set(lockId, trigger && addTo({ pushed: [] }, trigger));
      else if (waiting && trigger) addTo(waiting, trigger);
      else this.#pullAgain.set(lockId, undefined);
      return;
    }
    const run = this.#collect(lockId, trigger)
      .catch((e: unknown) => this.#ctx.log.debug({ lockId, err: e }, 'event collection interrupted'))
      .finally(() => {
        this.#pulling.delete(lockId);
        if (!this.#pullAgain.has(lockId)) return;
        const again = this.#pullAgain.get(lockId);
        this.#pullAgain.delete(lockId);
        if (this.#connection(lockId)) this.#schedulePull(lockId, again);
      });
    this.#pulling.set(lockId, run);
  }

  /**
   * One collection. When the events that arrived sealed in this session — carried in an `open`
   * answer, or pushed — are exactly the ones after what is stored, in sequence, and no answer of the
   * same turn says the lock holds more (an answer's lastSeq, when one came, is the last one's), they
   * are stored as they came (one durable transaction) and their acknowledgement is owed to the lock:
   * it rides on the hub's next request, or goes on its own once the link is idle (LockClient.oweAck)
   * — never a round trip on the open path, and no getState/getEvents/ackEvents for a door, battery
   * or tamper event pushed as it happened. Acknowledgements are cumulative, so one also covers events
   * stored before a restart. Anything else — an answer saying there is more, a gap, a push lost or
   * reordered on the radio (the next push, a state answer or the poll finds it), a poll, a new
   * connection with no event of its turn — is a pull. A push in sequence is no sign of a numbering
   * gone backwards: its number is above what is stored.
   */
  async #collect(lockId: string, trigger?: Trigger): Promise<void> {
    const conn = this.#connection(lockId);
    if (!conn) return;
    const rec = this.#ctx.pairing.get(lockId);
    // Events stored meanwhile (by the collection this one waited for) are not news.
    const arrived = (trigger?.pushed ?? [])
      .filter((e) => rec === undefined || e.seq > rec.lastEventSeq)
      .sort((a, b) => a.seq - b.seq);
    const last = arrived[arrived.length - 1];
    const known = trigger?.known;
    // Pushes only, every one of them stored already: nothing left to do.
    if (last === undefined && known === undefined && (trigger?.pushed.length ?? 0) > 0) return;
    if (rec !== undefined && last === undefined && known !== undefined && known.lastSeq === rec.lastEventSeq) {
      // An answer (a command that opened this connection) says nothing is waiting: nothing to fetch.
      if (rec.lastEventSeq > 0) conn.client.oweAck(rec.lastEventSeq);
      return;
    }
    const inSequence =
      rec !== undefined &&
      last !== undefined &&
      arrived.every((e, i) => e.seq === rec.lastEventSeq + 1 + i) &&
      // An answer's state, when one came, must say these are all.
      (known === undefined || known.lastSeq === last.seq);
    // A state older than an event that arrived with it (an answer sent before the lock logged it)
    // proves nothing about what follows what is stored: the pull asks again.
    if (!inSequence) return this.#pullEvents(lockId, known && last && known.lastSeq < last.seq ? undefined : known);
    await this.#storeEvents(lockId, arrived);
    conn.client.oweAck(last.seq);
  }

  /**
   * Collect the lock's events: fetch those after the last stored sequence number, store them (one
   * transaction with the new sequence), and only then acknowledge them so the lock may delete them.
   * The lock's state comes first (its sequence must not have gone backwards): `known` when an
   * answer from the lock has just carried it, else asked for.
   */
  async #pullEvents(lockId: string, known?: LockState): Promise<void> {
    const conn = this.#connection(lockId);
    if (!conn) return;
    const pairing = this.#ctx.pairing;
    // A known state older than what is stored (another pull stored later events since) proves
    // nothing: ask.
    let lock = known && known.lastSeq >= (pairing.get(lockId)?.lastEventSeq ?? 0) ? known : undefined;
    if (!lock) {
      const state = await conn.client.request({ type: 'getState' });
      if (!state.ok) return;
      lock = state.value.state;
      this.#reports.changed(lockId, lock);
    }
    const rec = pairing.get(lockId);
    if (!rec) return;
    if (lock.lastSeq < rec.lastEventSeq) {
      this.#quarantine.impose(
        lockId,
        'sequence-backwards',
        `the lock's event sequence went backwards (${lock.lastSeq} < ${rec.lastEventSeq}): reset or cloned`,
      );
      return;
    }
    if (rec.lastEventSeq > 0 && !this.#ackedOnConnect.has(conn.client) && conn.client.ackedUpto < rec.lastEventSeq) {
      // Events stored before a restart may never have been acknowledged: acknowledge them now.
      const acked = await conn.client.request({ type: 'ackEvents', uptoSeq: rec.lastEventSeq });
      if (!acked.ok) return;
      this.#ackedOnConnect.add(conn.client);
    }
    // Nothing after what is stored (a poll of an idle lock, most of the time): no getEvents.
    if (lock.lastSeq === rec.lastEventSeq) return;
    for (let round = 0; round < 1000; round++) {
      const since = pairing.get(lockId)?.lastEventSeq ?? 0;
      const batch = await conn.client.request({ type: 'getEvents', sinceSeq: since });
      if (!batch.ok) return;
      const events = batch.value.events.filter((e) => e.seq > since);
      if (events.length > 0) {
        await this.#storeEvents(lockId, events);
        const upto = events.reduce((m, e) => Math.max(m, e.seq), 0);
        const acked = await conn.client.request({ type: 'ackEvents', uptoSeq: upto });
        if (!acked.ok) return;
      }
      if (!batch.value.more) return;
    }
  }

  /** Store a lock's events (durable, before they are acknowledged to it) and tell the listeners of those new to the store. */
  async #storeEvents(lockId: string, events: LockEvent[]): Promise<void> {
    const fresh = await this.#ctx.pairing.storeEvents(lockId, events, this.#ctx.now(), this.#eventSink);
    for (const e of fresh) for (const l of [...this.#listeners]) l(lockId, e);
  }
}
