import type { AheadTicket } from '../../hal/uplink.js';
import type { Clock, TimerHandle } from '../base/clock.js';
import type { EventDelivery, PublishedEvent } from '../events/delivery.js';
import type { EventBatch, Outbox, QueuedMessage } from '../events/outbox.js';
import type { Logger } from '../log/logger.js';
import type { PublishResult, UplinkClient } from './mqtt-client.js';

/** What the Publisher needs of the client (an UplinkClient, or a fake in tests). */
export type PublishPort = Pick<UplinkClient, 'publish' | 'on' | 'connected'>;

export interface PublisherOptions {
  outbox: Outbox;
  client: PublishPort;
  clock: Clock;
  log: Logger;
  /** Publishes waiting for their PUBACK at once (default 8). */
  inflight?: number;
  /** Events per `events` message (default 100, at most 500). */
  batchSize?: number;
  /** Bytes per `events` message (default 200,000). */
  batchBytes?: number;
  /** After a transient refusal while still connected (server busy, quota): retry after this long. */
  retryMs?: number;
  /** `stop()` waits at most this long for publishes in flight. */
  stopTimeoutMs?: number;
  /**
   * Delivery confirmed by the cloud (src/events/delivery.ts): told of every events PUBACK and
   * refusal, it removes rows on the cloud's ack and asks for resends. Without it a PUBACK removes.
   */
  delivery?: Pick<EventDelivery, 'published' | 'refused' | 'onResend' | 'reconnected' | 'mayPublish' | 'onRoom'>;
  /** After the broker refused events: publish events again after this long, doubling up to `refusedMaxMs`. */
  refusedBaseMs?: number;
  refusedMaxMs?: number;
}

/**
 * What a drain step read of the kind it did not take (null: none queued), still true on the next
 * step while the drain has not yielded: nothing is queued, removed or reset but from another task.
 */
interface Lookahead {
  batch?: EventBatch | null;
  message?: QueuedMessage | null;
}

interface Unit {
  kind: 'events' | 'message';
  ids: number[];
  topic: string;
  payload: string;
  retain: boolean;
  /** For `events`: the event ids, in the order of `ids`. */
  eventIds?: string[];
}

/**
 * A message published ahead of its outbox row (Publisher.publishAhead): hand it to `adopt` with
 * the row's id once the row is queued. Opaque to callers.
 */
interface Ticket extends AheadTicket {
  readonly unit: Unit;
  readonly generation: number;
  /** Until adopted: what the broker said meanwhile. */
  outcome: 'waiting' | 'acknowledged' | 'failed';
  adopted: boolean;
}

export interface PublisherStats {
  /** Outbox rows acknowledged by the broker since start (events count one each). */
  acknowledged: number;
  /** Rows refused for good since start. */
  refused: number;
  inflight: number;
  draining: boolean;
  /** Waiting for a reconnect (or a retry) after a transient failure. */
  halted: boolean;
}

/**
 * Drains the outbox through the client while it is connected: messages and event batches in row
 * order, up to `inflight` publishes waiting for their PUBACK. A row leaves the outbox only when
 * the broker acknowledged it — events, with a delivery record, only when the cloud acknowledged
 * them; a permanent refusal (MQTT 5 PUBACK ≥ 0x80, e.g. 0x87 not authorized) of a message removes
 * and counts it, of events keeps them and backs off; a transient failure (connection lost) stops the drain, and
 * the next 'connected' starts again from the oldest row still queued — so a batch whose PUBACK was
 * lost is published again, and the cloud deduplicates by event id. One drain at a time.
 */
export class Publisher {
  readonly #opts: PublisherOptions;
  readonly #outbox: Outbox;
  readonly #client: PublishPort;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #max: number;
  readonly #batchSize: number;
  readonly #batchBytes: number;
  readonly #retryMs: number;
  readonly #stopTimeoutMs: number;
  readonly #inflight = new Set<Promise<void>>();
  /** Rows published ahead and waiting for their PUBACK: a drain skips them. */
  readonly #ahead = new Set<number>();
  readonly #unsubscribe: (() => void)[] = [];
  #afterEvent = 0;
  #afterMessage = 0;
  /** Bumped on every (re)start of publishing: results of an older one do not halt the current one. */
  #generation = 0;
  #draining = false;
  #wanted = false;
  #halted = false;
  #started = false;
  #stopped = false;
  #retry: TimerHandle | undefined;
  #acknowledged = 0;
  #refused = 0;
  /** Events refused by the broker: none published until this timer restarts them (messages go on). */
  #eventsPaused: TimerHandle | undefined;
  #refusedBackoffMs: number;

  constructor(opts: PublisherOptions) {
    this.#opts = opts;
    this.#outbox = opts.outbox;
    this.#client = opts.client;
    this.#clock = opts.clock;
    this.#log = opts.log;
    this.#max = Math.max(1, Math.floor(opts.inflight ?? 8));
    this.#batchSize = Math.max(1, Math.min(500, Math.floor(opts.batchSize ?? 100)));
    this.#batchBytes = opts.batchBytes ?? 200_000;
    this.#retryMs = opts.retryMs ?? 5_000;
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? 5_000;
    this.#refusedBackoffMs = opts.refusedBaseMs ?? 1_000;
  }

  /** Follow the client: publish whenever it is connected, from the oldest queued row. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#unsubscribe.push(
      this.#client.on('connected', () => {
        this.#opts.delivery?.reconnected();
        this.#restart();
      }),
    );
    const resend = this.#opts.delivery?.onResend(() => this.#resendEvents());
    if (resend) this.#unsubscribe.push(resend);
    const room = this.#opts.delivery?.onRoom(() => this.kick());
    if (room) this.#unsubscribe.push(room);
    if (this.#client.connected) this.#restart();
  }

  /**
   * Something was enqueued: publish it if connected. Cheap; a drain under way picks it up. The
   * drain starts on a microtask, so a kick from inside a store transaction reads only what that
   * transaction committed.
   */
  kick(): void {
    if (!this.#started || this.#stopped) return;
    this.#wanted = true;
    if (this.#draining) return;
    this.#draining = true;
    queueMicrotask(() => void this.#run());
  }

  /**
   * Publish a message now, before its outbox row is written, when nothing queued is waiting to go
   * ahead of it: connected, not halted, no drain under way (so every queued row is already in
   * flight) and a free in-flight slot. Undefined otherwise (queue it and kick, as usual). The
   * caller then queues the same payload durably and passes the row id to `adopt` (in the same
   * transaction): the broker's PUBACK removes the row, a lost one leaves it for the next drain.
   * A stop between this and the row's commit loses the message; the caller must be able to say
   * that on restart (a command is answered `unknown_outcome`).
   */
  publishAhead(topic: string, payload: string): AheadTicket | undefined {
    if (!this.#started || this.#stopped || this.#halted || this.#draining) return undefined;
    if (!this.#client.connected || this.#inflight.size >= this.#max) return undefined;
    const ticket: Ticket = {
      aheadOf: 'record',
      unit: { kind: 'message', ids: [], topic, payload, retain: false },
      generation: this.#generation,
      outcome: 'waiting',
      adopted: false,
    };
    this.#send(ticket.unit, ticket.generation, ticket);
    return ticket;
  }

  /**
   * The row `id` holds the message of `ticket`. Call it inside the transaction that queued the
   * row. Already acknowledged: the row is removed at once. Already failed: the row waits for the
   * next drain (kicked). Still waiting: its PUBACK removes the row, and no drain publishes it again
   * meanwhile.
   */
  adopt(ahead: AheadTicket, id: number): void {
    // Every ticket is one of ours: publishAhead is the only place that makes them.
    const ticket = ahead as Ticket;
    if (ticket.adopted) return;
    ticket.adopted = true;
    ticket.unit.ids.push(id);
    if (ticket.outcome === 'acknowledged') {
      this.#outbox.removeSoon([id]);
      this.#acknowledged++;
    } else if (ticket.outcome === 'failed' || ticket.generation !== this.#generation) {
      // Failed, or sent on a connection since replaced (whose answer cannot be relied on).
      this.kick();
    } else {
      this.#ahead.add(id);
    }
  }

  stats(): PublisherStats {
    return {
      acknowledged: this.#acknowledged,
      refused: this.#refused,
      inflight: this.#inflight.size,
      draining: this.#draining,
      halted: this.#halted,
    };
  }

  /** Stop publishing; wait (at most `stopTimeoutMs`) for the publishes in flight to be answered. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const u of this.#unsubscribe.splice(0)) u();
    this.#clock.clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#clock.clearTimeout(this.#eventsPaused);
    this.#eventsPaused = undefined;
    if (this.#inflight.size === 0) return;
    await new Promise<void>((resolve) => {
      const t = this.#clock.setTimeout(resolve, this.#stopTimeoutMs);
      void Promise.allSettled([...this.#inflight]).then(() => {
        this.#clock.clearTimeout(t);
        resolve();
      });
    });
  }

  #restart(): void {
    if (this.#stopped) return;
    this.#generation++;
    this.#halted = false;
    this.#afterEvent = 0;
    this.#afterMessage = 0;
    // Published again from the outbox like every other row; a late PUBACK still removes it.
    this.#ahead.clear();
    this.#clock.clearTimeout(this.#retry);
    this.#retry = undefined;
    this.kick();
  }

  /** Publish the queued events again from the oldest (unacknowledged, or refused and backed off). */
  #resendEvents(): void {
    if (this.#stopped || this.#eventsPaused !== undefined) return;
    this.#afterEvent = 0;
    this.kick();
  }

  async #run(): Promise<void> {
    try {
      while (this.#wanted && !this.#stopped) {
        this.#wanted = false;
        await this.#drain();
      }
    } catch (e) {
      this.#log.error({ err: e }, 'uplink: publishing from the outbox failed; retrying on the next kick');
    } finally {
      this.#draining = false;
    }
  }

  async #drain(): Promise<void> {
    const generation = this.#generation;
    let seen: Lookahead = {};
    for (;;) {
      if (this.#stopped || this.#halted || generation !== this.#generation || !this.#client.connected) return;
      if (this.#inflight.size >= this.#max) {
        await Promise.race(this.#inflight);
        seen = {};
        continue;
      }
      const unit = this.#next(seen);
      if (!unit) return;
      this.#send(unit, generation);
    }
  }

  /**
   * The oldest queued row not yet sent: a message, or a batch of events. `seen` holds what the
   * previous step of the same synchronous stretch read of the kind it did not take (the outbox
   * has not changed since: a drain step runs no other task), so each step reads one kind, not two.
   */
  #next(seen: Lookahead): Unit | undefined {
    let batch =
      this.#eventsPaused !== undefined
        ? undefined
        : seen.batch !== undefined
          ? (seen.batch ?? undefined)
          : this.#outbox.nextEventBatch(this.#batchSize, this.#batchBytes, this.#afterEvent);
    // The cloud has the window's worth of events to acknowledge: the next waits for its room.
    if (batch && this.#opts.delivery && !this.#opts.delivery.mayPublish(batch.eventIds)) batch = undefined;
    let msg =
      seen.message !== undefined ? (seen.message ?? undefined) : this.#outbox.nextMessages(1, this.#afterMessage)[0];
    while (msg && this.#ahead.has(msg.id)) {
      this.#afterMessage = msg.id;
      msg = this.#outbox.nextMessages(1, this.#afterMessage)[0];
    }
    const firstEvent = batch?.ids[0];
    if (msg && (firstEvent === undefined || msg.id < firstEvent)) {
      this.#afterMessage = msg.id;
      seen.batch = batch ?? null;
      seen.message = undefined;
      return { kind: 'message', ids: [msg.id], topic: msg.topic, payload: msg.payload, retain: msg.retain };
    }
    seen.message = msg ?? null;
    seen.batch = undefined;
    if (!batch) return undefined;
    this.#afterEvent = batch.ids[batch.ids.length - 1] ?? this.#afterEvent;
    return {
      kind: 'events',
      ids: batch.ids,
      topic: 'events',
      payload: batch.text,
      retain: false,
      eventIds: batch.eventIds,
    };
  }

  #send(unit: Unit, generation: number, ticket?: Ticket): void {
    const p = this.#client.publish(unit.topic, unit.payload, { retain: unit.retain }).then((r) => {
      if (ticket) {
        for (const id of unit.ids) this.#ahead.delete(id);
        if (!ticket.adopted) {
          // Not queued yet: `adopt` acts on the outcome (there is no row to remove or keep).
          ticket.outcome = r.ok ? 'acknowledged' : 'failed';
          return;
        }
      }
      this.#settle(unit, r, generation);
    });
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p));
  }

  #settle(unit: Unit, r: PublishResult, generation: number): void {
    try {
      if (unit.kind === 'events' && (r.ok || r.permanent)) {
        this.#settleEvents(unit, r);
        return;
      }
      if (r.ok) {
        this.#outbox.removeSoon(unit.ids);
        this.#acknowledged += unit.ids.length;
        return;
      }
      if (r.permanent) {
        this.#outbox.refuse(unit.ids, `PUBACK reason ${r.code} on ${unit.topic}`);
        this.#refused += unit.ids.length;
        return;
      }
      if (generation !== this.#generation || this.#halted || this.#stopped) return;
      this.#halted = true;
      if (this.#client.connected) {
        // Refused for now on a live connection (server busy, quota): try again from the oldest row.
        this.#log.warn({ code: r.code, retryInMs: this.#retryMs }, 'uplink: publish deferred by the broker; retrying');
        this.#retry = this.#clock.setTimeout(() => this.#restart(), this.#retryMs);
      } else {
        this.#log.debug({ code: r.code }, 'uplink: publishing paused until the broker is back');
      }
    } catch (e) {
      // The store failed under us (closing): the rows stay queued and go out on the next drain.
      this.#log.error({ err: e }, 'uplink: could not record a publish outcome');
    }
  }

  /**
   * The broker answered an `events` batch. Acknowledged: the delivery record takes it (removed on
   * the cloud's ack), or without one it is removed. Refused for good: nothing is dropped — the
   * events stay queued, events pause (messages go on) and are tried again after a backoff.
   */
  #settleEvents(unit: Unit, r: PublishResult): void {
    const events: PublishedEvent[] = unit.ids.map((rowId, i) => ({ rowId, eventId: unit.eventIds?.[i] ?? '' }));
    const delivery = this.#opts.delivery;
    if (r.ok) {
      this.#refusedBackoffMs = this.#opts.refusedBaseMs ?? 1_000;
      if (delivery) delivery.published(events);
      else this.#outbox.removeSoon(unit.ids);
      this.#acknowledged += unit.ids.length;
      return;
    }
    const reason = `PUBACK reason ${r.code} on events`;
    this.#refused += unit.ids.length;
    delivery?.refused(events, reason);
    if (this.#eventsPaused !== undefined || this.#stopped) return;
    const waitMs = this.#refusedBackoffMs;
    this.#refusedBackoffMs = Math.min(this.#opts.refusedMaxMs ?? 60_000, waitMs * 2);
    this.#log.error(
      { code: r.code, events: unit.ids.length, retryInMs: waitMs },
      'uplink: the broker refused events; they are kept and published again later (check the broker ACL for the events topic)',
    );
    this.#eventsPaused = this.#clock.setTimeout(() => {
      this.#eventsPaused = undefined;
      this.#resendEvents();
    }, waitMs);
  }
}
