import type { Clock, TimerHandle } from '../base/clock.js';
import { type HeapSettle, processHeapSettle } from '../base/heap-settle.js';
import { Listeners } from '../base/listeners.js';
import { MAX_INBOUND_BYTES } from '../contract/mqtt.js';
import type { DeliveryState, EventDeliveryHealth } from '../contract/mqtt-hub-messages.js';
import { checkUtf8, parseInbound } from '../contract/mqtt-validate.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import { AwaitingAcks, type PublishedEvent } from './awaiting-acks.js';
import type { Outbox } from './outbox.js';

export type { PublishedEvent } from './awaiting-acks.js';

export type EventAckMode = 'required' | 'off';

/**
 * Events published and not yet acknowledged by the cloud, at most (EventDeliveryOptions.window):
 * beyond it no new event is published until acks come back. It keeps the record of what awaits an
 * ack (in memory) bounded whatever the outbox holds — 100,000 queued events for a cloud slow to
 * ack, or not acking at all, held 100,000 entries — and a cloud that is behind is not sent more.
 * 20 batches of the default 100: an ack round trip of 100 ms still allows 20,000 events a second.
 */
export const DEFAULT_UNACKNOWLEDGED_WINDOW = 2_000;

/**
 * Memory of a drain (docs/operations.md, "What a full outbox and a 10k-user site add"). Each
 * event published makes a few hundred bytes that live until the cloud's ack — longer than two
 * scavenges of the unit's 1 MB young generation — so V8 promotes them, and they die in old space.
 * V8 lets old space grow by at least 8 MB above what lived after its last full collection before
 * it collects again (measured: a full collection each time old space was ~8 MB above what lived
 * after the previous one), whatever the outbox holds.
 * So during a drain, every `DRAIN_COLLECT_EVERY` events removed, one full
 * collection (HeapSettle.collectOnce: V8's incremental marking, not one long pause; skipped while
 * one runs) holds old space nearer what lives; once `DRAIN_SETTLE_MIN_EVENTS` or more were removed
 * and none await an ack, the process's HeapSettle returns the pages after its quiet delay.
 */
export const DRAIN_COLLECT_EVERY = 5_000;
/** Events removed since the last settle from which a drain is worth one when it ends. */
export const DRAIN_SETTLE_MIN_EVENTS = 2_000;

export interface EventDeliveryOptions {
  store: Store;
  outbox: Outbox;
  clock: Clock;
  log: Logger;
  /** `required`: events leave the outbox on the cloud's `events/ack`; `off`: on the broker's PUBACK. */
  mode: EventAckMode;
  /** Published events without an ack are published again after this long. */
  ackTimeoutMs: number;
  /** Events without an ack this long after they were first published: the `not-acknowledged` fault. */
  faultAfterMs: number;
  /**
   * Connected to the broker now (default: always). While not, no fault is raised: events wait for
   * the broker, which is the uplink's state, not a delivery fault.
   */
  connected?: () => boolean;
  /** The hub's `events` topic, named in what to check. */
  eventsTopic: () => string;
  /** Events published and awaiting an ack, at most (default DEFAULT_UNACKNOWLEDGED_WINDOW). */
  window?: number;
  /**
   * Collections during and after a drain (default: the process's HeapSettle; false: none).
   * `collectEvery` (default DRAIN_COLLECT_EVERY) events removed between two collections.
   */
  heapSettle?: Pick<HeapSettle, 'soon' | 'collectOnce'> | false;
  collectEvery?: number;
}

/** What an `events/ack` did: events removed, ids this hub has no published event for (ignored). */
export interface AckOutcome {
  ok: boolean;
  removed: number;
  unknown: number;
}

/** The security event recorded on every change of the delivery state. */
export const DELIVERY_SECURITY_EVENT = 'uplink.events-undelivered';

/**
 * Delivery confirmed by the cloud, not by the broker (docs/mqtt-api.md, "Event acknowledgement").
 * The publisher reports what the broker did with each published event; the cloud's `events/ack`
 * names the events it stored, and only those leave the outbox. It keeps, in memory, the events
 * published and not yet acknowledged: an ack naming anything else (an event never published, not
 * this hub's, already removed) changes nothing. Published events without an ack for
 * `ackTimeoutMs` are handed back to the publisher to be sent again (in outbox order); after
 * `faultAfterMs` the hub is in the `not-acknowledged` fault, and a broker refusal (MQTT 5 PUBACK
 * ≥ 0x80) puts it in `refused` at once. Every change of that state is logged, recorded in
 * `security_events` and announced (`onChange`: health at once).
 *
 * After a restart the record starts empty: every queued event is published again, and the cloud
 * deduplicates by id.
 */
export class EventDelivery {
  readonly mode: EventAckMode;
  readonly #o: EventDeliveryOptions;
  readonly #awaiting = new AwaitingAcks();
  readonly #resend = new Listeners<undefined>();
  readonly #change = new Listeners<DeliveryState>();
  readonly #room = new Listeners<undefined>();
  readonly #window: number;
  /** A publish of new events was held back because the window was full: say when there is room. */
  #held = false;
  #state: DeliveryState = 'ok';
  #refusal: string | undefined;
  #lastAckAt: number | null = null;
  #timer: TimerHandle | undefined;
  #stopped = false;
  #invalidAcks = 0;
  #unknownIds = 0;
  #unknownLoggedAt = Number.NEGATIVE_INFINITY;
  /** Since start, for the metrics: events the broker took, and events the cloud acknowledged. */
  #sent = 0;
  #acknowledged = 0;
  readonly #heap: Pick<HeapSettle, 'soon' | 'collectOnce'> | undefined;
  readonly #collectEvery: number;
  /** Events removed since the last collection during a drain, and since the last settle. */
  #sinceCollect = 0;
  #sinceSettle = 0;

  constructor(o: EventDeliveryOptions) {
    this.#o = o;
    this.mode = o.mode;
    this.#window = Math.max(1, Math.floor(o.window ?? DEFAULT_UNACKNOWLEDGED_WINDOW));
    this.#heap = o.heapSettle === false ? undefined : (o.heapSettle ?? processHeapSettle);
    this.#collectEvery = Math.max(1, Math.floor(o.collectEvery ?? DRAIN_COLLECT_EVERY));
  }

  /**
   * Whether these events may be published now: always with acks `off`; with acks required, while
   * fewer than the window await an ack, or when every one of them awaits one already (a resend
   * takes no more room). False holds them back, and `onRoom` says when acks made room.
   */
  mayPublish(eventIds: readonly string[]): boolean {
    if (this.mode === 'off' || this.#awaiting.size < this.#window) return true;
    if (eventIds.every((id) => this.#awaiting.has(id))) return true;
    this.#held = true;
    return false;
  }

  /** Events held back by the window may be published now (acks came back, or their rows went). */
  onRoom(fn: () => void): () => void {
    return this.#room.add(fn);
  }

  /** Check for resends and for the fault periodically, until `stop()`. */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    const tickMs = Math.max(200, Math.min(5_000, this.#o.ackTimeoutMs / 2, this.#o.faultAfterMs / 4));
    const tick = () => {
      this.check();
      if (!this.#stopped) this.#timer = this.#o.clock.setTimeout(tick, tickMs);
    };
    this.#timer = this.#o.clock.setTimeout(tick, tickMs);
  }

  stop(): void {
    this.#stopped = true;
    this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Published events without an ack are due again: publish from the oldest queued event. */
  onResend(fn: () => void): () => void {
    return this.#resend.add(fn);
  }

  /** The delivery state changed (recorded already). */
  onChange(fn: (state: DeliveryState) => void): () => void {
    return this.#change.add(fn);
  }

  get state(): DeliveryState {
    return this.#state;
  }

  /**
   * A new connection: every queued event is published again from the oldest, so the clocks of
   * those awaiting an ack start again (an outage is not a delivery fault).
   */
  reconnected(): void {
    this.#awaiting.restartClocks(this.#o.clock.now());
  }

  /** The broker acknowledged these events (PUBACK). With acks `off` that is delivery: removed. */
  published(events: readonly PublishedEvent[]): void {
    this.#sent += events.length;
    if (this.mode === 'off') {
      this.#o.outbox.removeSoon(events.map((e) => e.rowId));
      // Gone for the outbox at once (deleted in the next group commit): they count toward a drain's collections.
      this.#removedNow(events.length, false);
      if (this.#state === 'refused') this.#setState('ok', 'the broker accepts events again');
      return;
    }
    // Refused events were never awaiting an ack: their wait starts with this acceptance.
    this.#track(events);
    if (this.#state === 'refused') this.#setState('ok', 'the broker accepts events again');
  }

  /**
   * The broker refused these events (MQTT 5 PUBACK ≥ 0x80): they stay queued (the publisher backs
   * off and publishes them again), and the fault is raised at once. They are not awaiting an ack:
   * the cloud cannot have them.
   */
  refused(_events: readonly PublishedEvent[], reason: string): void {
    this.#refusal = reason;
    this.#setState('refused', reason);
  }

  /**
   * An `events/ack` from the cloud. Invalid: nothing changes and it is logged (one line per
   * message, without its content). Ids this hub has no published, unacknowledged event for are
   * ignored (counted in the outcome). Never throws.
   */
  acknowledge(payload: Uint8Array): AckOutcome {
    // Without acks required the outbox is emptied by PUBACKs: an ack has nothing to remove.
    if (this.mode === 'off') return { ok: true, removed: 0, unknown: 0 };
    const bad = checkUtf8(payload, MAX_INBOUND_BYTES);
    const parsed = bad ?? parseInbound('events/ack', payload);
    if (!parsed.ok) {
      this.#invalidAcks++;
      this.#o.log.warn(
        { code: parsed.error.code, reason: parsed.error.message, invalidAcks: this.#invalidAcks },
        'events/ack refused: it does not match the contract; nothing removed',
      );
      return { ok: false, removed: 0, unknown: 0 };
    }
    const known: PublishedEvent[] = [];
    let unknown = 0;
    for (const eventId of parsed.value.ids) {
      const rowId = this.#awaiting.rowOf(eventId);
      if (rowId !== undefined) known.push({ rowId, eventId });
      else unknown++;
    }
    let removed = 0;
    try {
      removed = this.#o.outbox.acknowledgeEvents(known);
    } catch (e) {
      this.#o.log.error({ err: e }, 'events/ack could not be recorded; the events stay queued and are sent again');
      return { ok: false, removed: 0, unknown };
    }
    for (const k of known) this.#awaiting.forget(k.rowId);
    this.#acknowledged += removed;
    this.#removedNow(removed, this.#awaiting.size === 0);
    this.#roomMade();
    this.#unknownIds += unknown;
    // A repeated ack (the cloud answers each copy of a resent batch) is normal: at most one line a minute.
    if (unknown > 0 && this.#o.clock.now() - this.#unknownLoggedAt >= 60_000) {
      this.#unknownLoggedAt = this.#o.clock.now();
      this.#o.log.warn(
        { ids: parsed.value.ids.length, unknown, unknownSinceStart: this.#unknownIds },
        'events/ack names events this hub has not published or that are already acknowledged; those are ignored',
      );
    }
    if (removed > 0) {
      this.#lastAckAt = this.#o.clock.now();
      this.#refusal = undefined;
      if (this.#state !== 'ok' && !this.#faulty()) this.#setState('ok', 'the cloud acknowledges events again');
    }
    return { ok: true, removed, unknown };
  }

  /** Resends due and the fault state, now (the timer calls it; tests may too). */
  check(): void {
    if (this.mode === 'required' && this.#held) {
      // Entries whose rows are gone (dropped under the outbox's size limit) await nothing: they
      // must not hold the window shut.
      this.#awaiting.prune((rowId) => this.#o.outbox.hasEvent(rowId));
      this.#roomMade();
    }
    if (this.mode === 'required') {
      const now = this.#o.clock.now();
      if (this.#awaiting.anyDue(now, this.#o.ackTimeoutMs)) {
        this.#awaiting.resent(now);
        this.#o.log.info(
          { unacknowledged: this.#awaiting.size, afterSec: Math.round(this.#o.ackTimeoutMs / 1000) },
          'events not acknowledged by the cloud in time: publishing them again',
        );
        this.#emit(() => this.#resend.emit(undefined));
      }
    }
    if (this.#o.connected && !this.#o.connected()) return;
    if (this.#state === 'ok' && this.#faulty()) {
      this.#setState(
        'not-acknowledged',
        `events published ${Math.round(this.#o.faultAfterMs / 1000)} s ago have no events/ack`,
      );
    } else if (this.#state === 'not-acknowledged' && !this.#faulty()) {
      this.#setState('ok', 'every event published that long ago is acknowledged');
    }
  }

  /** Counts since start (the metrics endpoint): published events the broker took, events acknowledged. */
  counts(): { sent: number; acknowledged: number; unacknowledged: number } {
    return { sent: this.#sent, acknowledged: this.#acknowledged, unacknowledged: this.#awaiting.size };
  }

  health(): EventDeliveryHealth {
    const oldest = this.#oldestFirstAt();
    return {
      ack: this.mode,
      state: this.#state,
      unacknowledged: this.#awaiting.size,
      oldestUnacknowledgedSec:
        oldest === undefined ? null : Math.max(0, Math.floor((this.#o.clock.now() - oldest) / 1000)),
      lastAckAt: this.#lastAckAt === null ? null : new Date(this.#lastAckAt).toISOString(),
    };
  }

  /** One line for `iqhub status` and `diag`, with what to check when delivery is at fault. */
  describe(): { state: DeliveryState; detail: string; check?: string } {
    const h = this.health();
    if (this.mode === 'off') {
      return {
        state: this.#state,
        detail: `events leave the outbox on the broker's PUBACK (uplink.eventAck: off): delivery to the cloud is not verified${this.#state === 'refused' ? `; the broker REFUSES events (${this.#refusal ?? '?'})` : ''}`,
        check: `use a cloud that sends events/ack and set uplink.eventAck: required; check the broker ACL lets the hub publish on ${this.#o.eventsTopic()}`,
      };
    }
    const counts = `${h.unacknowledged} published events not acknowledged by the cloud${h.oldestUnacknowledgedSec === null ? '' : `, oldest ${h.oldestUnacknowledgedSec} s`}; last ack ${h.lastAckAt ?? 'none since start'}`;
    if (this.#state === 'refused') {
      return {
        state: this.#state,
        detail: `the broker REFUSES the hub's events (${this.#refusal ?? '?'}); they are kept and retried; ${counts}`,
        check: `the broker ACL must let this hub publish on ${this.#o.eventsTopic()} (mosquitto: pattern readwrite ks/hubs/%u/#)`,
      };
    }
    if (this.#state === 'not-acknowledged') {
      return {
        state: this.#state,
        detail: `EVENTS NOT ACKNOWLEDGED: ${counts}; they are kept and sent again every ${Math.round(this.#o.ackTimeoutMs / 1000)} s`,
        check: `check the broker ACL lets this hub publish on ${this.#o.eventsTopic()} (a broker may accept and drop a denied publish), then that the cloud stores events and answers on events/ack`,
      };
    }
    return { state: this.#state, detail: `events acknowledged by the cloud; ${counts}` };
  }

  #track(events: readonly PublishedEvent[]): void {
    this.#awaiting.track(events, this.#o.clock.now());
  }

  /**
   * When the oldest event still awaiting its ack was first published. An entry whose row is gone
   * (dropped under the outbox's size limit) waits for nothing and is forgotten here.
   */
  #oldestFirstAt(): number | undefined {
    return this.#awaiting.oldestFirstAt((rowId) => this.#o.outbox.hasEvent(rowId));
  }

  /**
   * `n` events left the outbox: a collection every `collectEvery` of them, and a settle once a
   * drain of `DRAIN_SETTLE_MIN_EVENTS` or more is over (`over`: none awaits an ack; with acks
   * off, every removal may be the last — the settle's quiet delay, restarted by each, tells).
   */
  #removedNow(n: number, over: boolean): void {
    if (!this.#heap || n <= 0) return;
    this.#sinceCollect += n;
    this.#sinceSettle += n;
    if (this.#sinceCollect >= this.#collectEvery) {
      this.#sinceCollect = 0;
      void this.#heap.collectOnce();
    }
    if ((over || this.mode === 'off') && this.#sinceSettle >= DRAIN_SETTLE_MIN_EVENTS) {
      // Not the count of the collections: acks that catch up with the publishes empty the record
      // many times during a drain, and each restarts the settle's wait, nothing more.
      this.#sinceSettle = 0;
      this.#heap.soon();
    }
  }

  #roomMade(): void {
    if (!this.#held || this.#awaiting.size >= this.#window) return;
    this.#held = false;
    this.#emit(() => this.#room.emit(undefined));
  }

  #faulty(): boolean {
    if (this.mode === 'off') return false;
    const oldest = this.#oldestFirstAt();
    return oldest !== undefined && this.#o.clock.now() - oldest >= this.#o.faultAfterMs;
  }

  #setState(state: DeliveryState, reason: string): void {
    if (state === this.#state) return;
    const from = this.#state;
    this.#state = state;
    const h = this.health();
    const d = this.describe();
    const detail = { from, to: state, reason, unacknowledged: h.unacknowledged, check: d.check ?? null };
    try {
      this.#o.store.db
        .prepare('INSERT INTO security_events (at, kind, lock_id, detail) VALUES (?, ?, NULL, ?)')
        .run(Math.floor(this.#o.clock.now()), DELIVERY_SECURITY_EVENT, JSON.stringify(detail));
    } catch (e) {
      this.#o.log.error({ err: e }, 'the delivery state could not be recorded in security_events');
    }
    if (state === 'ok')
      this.#o.log.info({ kind: DELIVERY_SECURITY_EVENT, ...detail }, 'security: events delivered again');
    else this.#o.log.error({ kind: DELIVERY_SECURITY_EVENT, ...detail }, `security: events ${state}`);
    this.#emit(() => this.#change.emit(state));
  }

  #emit(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#o.log.error({ err: e }, 'a delivery listener failed');
    }
  }
}
