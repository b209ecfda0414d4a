import type { Clock } from '../base/clock.js';
import { HubError } from '../base/errors.js';
import type { TopicMap } from '../contract/mqtt.js';
import type { CloudEvent, EventsPayload } from '../contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION } from '../contract/mqtt-topics.js';
import { conforms } from '../contract/mqtt-validate.js';
import type { StoredEvent } from '../link/pairing.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import { contractTopic, toCloudEvent } from './cloud-event.js';
import { IdSet } from './id-tables.js';
import { deleteAcknowledged, type OutboxStatements, prepareOutboxStatements } from './outbox-sql.js';

/** The outbox's default disk budget: the sum of the payload bytes of every queued row. */
export const DEFAULT_OUTBOX_MAX_BYTES = 50 * 1024 * 1024;
/** The contract allows at most this many events in one `events` message. */
export const MAX_EVENTS_PER_BATCH = 500;
/** Event types that are access or security records: never dropped under the size limit. */
export const SECURITY_EVENT_TYPES: ReadonlySet<CloudEvent['type']> = new Set(['opened', 'denied', 'tamper']);

/** Counters kept in the `counters` table (they survive restarts). */
export const COUNTER_DROPPED = 'outbox.dropped';
export const COUNTER_REFUSED = 'outbox.refused';
/**
 * Not a counter but a gauge: the bytes queued. It lives in `counters` so that it changes in the
 * same transaction as the rows (a rolled-back enqueue leaves it right); it is recomputed from the
 * rows whenever an Outbox is created.
 */
const GAUGE_BYTES = 'outbox.bytes';

/** `{"v":1,"events":[` … `]}` around the comma-separated events. */
const BATCH_PREFIX = `{"v":${CONTRACT_VERSION},"events":[`;
const BATCH_ENVELOPE_BYTES = `${BATCH_PREFIX}]}`.length;
/** An overflow episode ends when the queue is back under this share of the limit. */
const EPISODE_END_RATIO = 0.9;

export type MessageTopic = Exclude<keyof TopicMap, 'cmd' | 'sync' | 'events' | 'locks/{lockId}/state'>;

export interface OutboxOptions {
  clock: Clock;
  log: Logger;
  /** The size bound in payload bytes (default 50 MiB). */
  maxBytes?: number;
}

export interface EventBatch {
  /** Outbox row ids, ascending: remove or refuse exactly these once the broker answered. */
  ids: number[];
  /** The events' ids (`lockId/epoch/seq`), in the order of `ids`. */
  eventIds: string[];
  /**
   * The `events` message as published: the stored event texts joined into the envelope as they
   * are (no parse and stringify per event: a drain of 100,000 events made that much garbage).
   */
  text: string;
  /** The same message parsed (made on demand: the publisher needs only `text`). */
  readonly payload: EventsPayload;
}

export interface QueuedMessage {
  id: number;
  /** Relative to `ks/hubs/{hubId}/`, e.g. `cmd/result` or `locks/L1/state`. */
  topic: string;
  /** The JSON text to publish. */
  payload: string;
  retain: boolean;
}

export interface OutboxDepth {
  events: number;
  messages: number;
  bytes: number;
}

/** The outbox's size bound, refused unless a positive integer of bytes. */
function checkedLimit(maxBytes: number): number {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new HubError('outbox.bad-limit', `The outbox limit of ${maxBytes} bytes is not a positive integer.`, {
      hint: 'Configure a size in bytes, e.g. 52428800 for 50 MiB.',
    });
  }
  return maxBytes;
}

/**
 * The `events` message around the event texts, as one flat string made by the join (the envelope
 * on the first and last parts): a prefix and a suffix around the joined text would make a rope,
 * which the publish (Buffer.byteLength) flattens into a second copy.
 */
function batchText(texts: string[]): string {
  texts[0] = `${BATCH_PREFIX}${texts[0]}`;
  texts[texts.length - 1] = `${texts[texts.length - 1]}]}`;
  return texts.join(',');
}

function logRefused(log: Logger, gone: readonly { topic: string }[], reason: string): void {
  const topics = [...new Set(gone.map((r) => r.topic))];
  log.error(
    { topic: topics.length === 1 ? topics[0] : topics, rows: gone.length, reason },
    'outbox: the broker refused a publish; removed and counted in outbox.refused (not retried)',
  );
}

/**
 * The durable outbox: what the hub must still publish, in SQLite, removed only when the broker
 * acknowledged it (PUBACK). Lock events are rows of kind `event` (published in batches on
 * `events`, in row order, which is per-lock order); anything else is a row of kind `message`
 * carrying its whole payload.
 *
 * **Size policy.** The queued payload bytes are bounded by `maxBytes`. When an enqueue takes the
 * total over it, the oldest non-security event rows (door, battery) are deleted until it fits
 * again, and each is counted in `outbox.dropped` (reported in `health`). Security events
 * (`opened` — an opening is an access record —, `denied`, `tamper`) and messages are **never**
 * dropped, even if they alone exceed the bound: the bound then yields, and the disk pays.
 * One warning is logged per overflow episode (it ends when the queue is back under 90 %).
 */
export class Outbox {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly maxBytes: number;
  readonly #s: OutboxStatements;
  #overflowing = false;
  #droppedThisEpisode = 0;
  /**
   * The highest row id ever inserted of each kind, as far as this Outbox knows (at least that:
   * a rolled-back insert leaves it high, which only costs a query). A drain that has read past it
   * has nothing new to read: nextEventBatch and nextMessages answer without a query (a publish
   * kicked the drain three times per open, each reading both kinds).
   */
  #lastEventId = 0;
  #lastMessageId = 0;
  /**
   * Rows acknowledged whose delete waits for the store's next group commit (Store.commitLater):
   * gone for every reader here already (never published again, not counted), on disk a moment
   * later. Row ids are never reused (AUTOINCREMENT): a row id names the same row until it goes.
   */
  readonly #removing = new IdSet();

  constructor(store: Store, opts: OutboxOptions) {
    this.#store = store;
    this.#clock = opts.clock;
    this.#log = opts.log;
    this.maxBytes = checkedLimit(opts.maxBytes ?? DEFAULT_OUTBOX_MAX_BYTES);
    this.#s = prepareOutboxStatements(store.db);
    this.#lastEventId = (this.#s.lastId.get('event') as { n: number }).n;
    this.#lastMessageId = (this.#s.lastId.get('message') as { n: number }).n;
    // The gauge is derived data: rebuild it from the rows (one scan, at start).
    const total = (this.#s.total.get() as { n: number }).n;
    this.#s.setGauge.run(GAUGE_BYTES, total);
  }

  /**
   * Queue lock events, one row each. Runs no transaction of its own: call it inside the
   * transaction that stores the events (PairingStore.storeEvents' `also`), so an event is in the
   * outbox before the lock is told it was received. Never throws for an odd event (a lock clock
   * out of range is clamped; a payload outside the contract is logged and still queued: an
   * audit record is not discarded for its form).
   */
  enqueueEvents(fresh: readonly StoredEvent[]): void {
    if (fresh.length === 0) return;
    const at = this.#clock.now();
    let added = 0;
    for (const s of fresh) {
      const ce = toCloudEvent(s);
      if (!conforms('events', { v: CONTRACT_VERSION, events: [ce] })) {
        this.#log.error({ eventId: ce.id, type: ce.type }, 'outbox: event does not match the contract; queued anyway');
      }
      const payload = JSON.stringify(ce);
      const bytes = Buffer.byteLength(payload);
      const { lastInsertRowid } = this.#s.insert.run({
        kind: 'event',
        topic: 'events',
        payload,
        retain: 0,
        security: SECURITY_EVENT_TYPES.has(ce.type) ? 1 : 0,
        bytes,
        at,
      });
      this.#lastEventId = Math.max(this.#lastEventId, Number(lastInsertRowid));
      added += bytes;
    }
    this.#enforceBound(this.#addBytes(added));
  }

  /**
   * Queue one whole message for `topic` (relative: `cmd/result`, `sync/ack`, `health`, `status`,
   * `locks/{lockId}/state`). The payload must match the contract for that topic (a mismatch is a
   * programming error: HubError `outbox.not-contract`). `replace` first removes older queued
   * messages of the same topic (retained state: only the newest matters). Joins the caller's
   * transaction if there is one, else runs its own. Returns the row id.
   *
   * `checkedText`: the payload's JSON text, made by a caller that has checked the payload against
   * the contract for this topic already (the inbox's answers: checked and serialised once, not
   * twice); it is stored as it is.
   */
  enqueueMessage(
    topic: string,
    payload: object,
    opts: { retain?: boolean; replace?: boolean; checkedText?: string } = {},
  ): number {
    const key = contractTopic(topic);
    if (!key) {
      throw new HubError('outbox.bad-topic', `The outbox has no outbound contract topic ${JSON.stringify(topic)}.`, {
        hint: "Use a hub → cloud topic relative to ks/hubs/{hubId}/: 'cmd/result', 'sync/ack', 'health', 'locks/{lockId}/state'.",
      });
    }
    if (opts.checkedText === undefined && !conforms(key, payload)) {
      throw new HubError('outbox.not-contract', `The payload for ${topic} does not match the contract (${key}).`, {
        hint: 'Build it from the types in src/contract/mqtt.ts; tests validate with conforms().',
      });
    }
    const text = opts.checkedText ?? JSON.stringify(payload);
    const run = () => {
      let delta = 0;
      if (opts.replace) {
        const gone = this.#s.deleteTopic.all(topic) as { bytes: number }[];
        delta -= gone.reduce((n, r) => n + r.bytes, 0);
      }
      const bytes = Buffer.byteLength(text);
      const id = Number(
        this.#s.insert.run({
          kind: 'message',
          topic,
          payload: text,
          retain: opts.retain ? 1 : 0,
          security: 0,
          bytes,
          at: this.#clock.now(),
        }).lastInsertRowid,
      );
      this.#lastMessageId = Math.max(this.#lastMessageId, id);
      this.#enforceBound(this.#addBytes(delta + bytes));
      return id;
    };
    return this.#tx(run);
  }

  /**
   * The next events to publish: rows of kind `event` with id > `afterId`, in id order, at most
   * `maxEvents` (≤ 500) and, serialised as one `events` payload, at most `maxBytes` (one event is
   * always taken, however large). Undefined when there is none.
   */
  nextEventBatch(maxEvents: number, maxBytes = 200_000, afterId = 0): EventBatch | undefined {
    if (afterId >= this.#lastEventId) return undefined;
    const limit = Math.max(1, Math.min(MAX_EVENTS_PER_BATCH, Math.floor(maxEvents)));
    let rows = this.#s.events.all(afterId, limit) as {
      id: number;
      payload: string;
      bytes: number;
      eventId: string;
    }[];
    if (rows.length === 0) return undefined;
    if (this.#removing.size > 0) {
      const last = rows[rows.length - 1]?.id ?? afterId;
      rows = rows.filter((r) => !this.#removing.has(r.id));
      // Every row read is being removed: the next ones, if any.
      if (rows.length === 0) return this.nextEventBatch(maxEvents, maxBytes, last);
    }
    const ids: number[] = [];
    const eventIds: string[] = [];
    const texts: string[] = [];
    let size = BATCH_ENVELOPE_BYTES;
    for (const r of rows) {
      const grown = size + r.bytes + (ids.length > 0 ? 1 : 0);
      if (ids.length > 0 && grown > maxBytes) break;
      size = grown;
      ids.push(r.id);
      eventIds.push(r.eventId);
      texts.push(r.payload);
    }
    const text = batchText(texts);
    return {
      ids,
      eventIds,
      text,
      get payload() {
        return JSON.parse(text) as EventsPayload;
      },
    };
  }

  /** The next messages to publish (rows of kind `message` with id > `afterId`), in id order. */
  nextMessages(max: number, afterId = 0): QueuedMessage[] {
    if (afterId >= this.#lastMessageId) return [];
    let rows = this.#s.messages.all(afterId, Math.max(1, Math.floor(max))) as {
      id: number;
      topic: string;
      payload: string;
      retain: number;
    }[];
    if (rows.length > 0 && this.#removing.size > 0) {
      const last = rows[rows.length - 1]?.id ?? afterId;
      rows = rows.filter((r) => !this.#removing.has(r.id));
      if (rows.length === 0) return this.nextMessages(max, last);
    }
    return rows.map((r) => ({ id: r.id, topic: r.topic, payload: r.payload, retain: r.retain === 1 }));
  }

  /**
   * The broker acknowledged these rows: delete them. Returns how many were still queued.
   *
   * The delete commits without waiting for the disk (Store.lazyTransaction): it is on the path of
   * every publish, and a delete undone by a power cut only means the rows are published again —
   * which a lost PUBACK already causes, and the cloud deduplicates (event ids, cmdIds). A crash
   * of the process does not undo it; the next durable commit makes it durable.
   */
  remove(ids: readonly number[]): number {
    if (ids.length === 0) return 0;
    return this.#store.lazyTransaction(() => this.#delete(ids).length);
  }

  /**
   * The broker acknowledged these rows: they are gone for this outbox at once (never published
   * again, not counted) and deleted in the store's next group commit (Store.commitLater: no
   * transaction of their own on the path of every publish). Like `remove` the delete need not wait
   * for the disk; a stop before it commits only means the rows are published again.
   */
  removeSoon(ids: readonly number[]): void {
    const fresh = ids.filter((id) => !this.#removing.has(id));
    if (fresh.length === 0) return;
    if (this.#store.db.inTransaction) {
      this.#delete(fresh);
      return;
    }
    this.#removeLater(fresh);
  }

  #removeLater(ids: number[]): void {
    for (const id of ids) this.#removing.add(id);
    const settled = () => {
      for (const id of ids) this.#removing.delete(id);
    };
    this.#store
      .commitLater(() => this.#deleteQuietly(ids))
      .then(settled, (e: unknown) => {
        settled();
        // The store failed under us (closing, full): the rows stay queued and go out again.
        this.#log.warn(
          { err: e, rows: ids.length },
          'outbox: acknowledged rows could not be removed; they stay queued',
        );
      });
  }

  /** Commit the removals still waiting for a group commit (before counting what is queued). */
  #settleRemovals(): void {
    if (this.#removing.size > 0) this.#store.flushLater();
  }

  /**
   * The cloud acknowledged these events (`events/ack`): delete each row that still holds the event
   * named with it. Returns how many were removed. Like `remove`, the delete need not wait for the
   * disk: undone by a power cut, the events are only sent again.
   */
  acknowledgeEvents(rows: readonly { rowId: number; eventId: string }[]): number {
    if (rows.length === 0) return 0;
    if (!this.#store.db.inTransaction) {
      // Checked now (a read), deleted in the store's next group commit (removeSoon).
      const held: number[] = [];
      for (const r of rows) {
        if (!this.#removing.has(r.rowId) && this.#s.holdsEvent.get(r.rowId, r.eventId) !== undefined)
          held.push(r.rowId);
      }
      if (held.length > 0) this.#removeLater(held);
      return held.length;
    }
    return this.#store.lazyTransaction(() => {
      const gone: { bytes: number; topic: string }[] = [];
      for (const r of rows) {
        const row = this.#s.deleteAcked.get(r.rowId, r.eventId) as { bytes: number; topic: string } | undefined;
        if (row) gone.push(row);
      }
      this.#noteBelowLimit(this.#addBytes(-gone.reduce((n, r) => n + r.bytes, 0)));
      return gone.length;
    });
  }

  /** The event row `rowId` is still queued (not acknowledged, nor dropped under the size limit). */
  hasEvent(rowId: number): boolean {
    return !this.#removing.has(rowId) && this.#s.hasEvent.get(rowId) !== undefined;
  }

  /**
   * The broker refused these rows for good (an ACL refusal, PUBACK 0x87): delete them, count them
   * in `outbox.refused`, and say so at error level. They are not retried: a refusal does not go
   * away by repeating the publish, and would block everything behind it.
   */
  refuse(ids: readonly number[], reason: string): number {
    if (ids.length === 0) return 0;
    const gone = this.#tx(() => {
      const rows = this.#delete(ids);
      if (rows.length > 0) {
        this.#s.addCounter.run(COUNTER_REFUSED, rows.length);
        this.#store.journal(
          'uplink.refused',
          { topics: [...new Set(rows.map((r) => r.topic))], rows: rows.length, reason },
          this.#clock.now(),
        );
      }
      return rows;
    });
    if (gone.length > 0) logRefused(this.#log, gone, reason);
    return gone.length;
  }

  depth(): OutboxDepth {
    this.#settleRemovals();
    return {
      events: (this.#s.count.get('event') as { n: number }).n,
      messages: (this.#s.count.get('message') as { n: number }).n,
      bytes: this.#bytes(),
    };
  }

  /** Seconds since the oldest queued row was queued; null when the outbox is empty. */
  oldestAgeSec(): number | null {
    this.#settleRemovals();
    const at = (this.#s.oldest.get() as { at: number | null }).at;
    return at === null ? null : Math.max(0, Math.floor((this.#clock.now() - at) / 1000));
  }

  /** Events dropped under the size limit, ever (survives restarts). */
  dropped(): number {
    return this.counter(COUNTER_DROPPED);
  }

  counter(name: string): number {
    this.#settleRemovals();
    return (this.#s.getCounter.get(name) as { value: number } | undefined)?.value ?? 0;
  }

  /** Join the caller's transaction, or run one. */
  #tx<T>(fn: () => T): T {
    return this.#store.db.inTransaction ? fn() : this.#store.transaction(fn);
  }

  #bytes(): number {
    return this.counter(GAUGE_BYTES);
  }

  /** Add `delta` to the bytes gauge; the bytes queued now (read only when it changed). */
  #addBytes(delta: number): number | undefined {
    if (delta === 0) return undefined;
    return (this.#s.addGauge.get(GAUGE_BYTES, delta) as { value: number }).value;
  }

  /** `#delete` for rows acknowledged (the group commit's): no object per row (deleteAcknowledged). */
  #deleteQuietly(ids: readonly number[]): void {
    this.#noteBelowLimit(this.#addBytes(-deleteAcknowledged(this.#s, ids).bytes));
  }

  #delete(ids: readonly number[]): { bytes: number; topic: string }[] {
    const out: { bytes: number; topic: string }[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      out.push(...(this.#s.deleteReturning(chunk.length).all(...chunk) as { bytes: number; topic: string }[]));
    }
    this.#noteBelowLimit(this.#addBytes(-out.reduce((n, r) => n + r.bytes, 0)));
    return out;
  }

  /** Drop the oldest non-security events while the queue is over the limit. Inside the caller's transaction. */
  #enforceBound(queued?: number): void {
    let total = queued ?? this.#bytes();
    if (total > this.maxBytes && this.#removing.size > 0) {
      // Acknowledged rows still waiting for their delete (removeSoon) go first, and are no drops.
      this.#deleteQuietly(this.#removing.values());
      total = this.#bytes();
    }
    if (total <= this.maxBytes) {
      this.#noteBelowLimit(total);
      return;
    }
    let dropped = 0;
    let after = 0;
    while (total > this.maxBytes) {
      const candidates = this.#s.droppable.all(after) as { id: number; bytes: number }[];
      if (candidates.length === 0) break;
      const ids: number[] = [];
      for (const c of candidates) {
        if (total <= this.maxBytes) break;
        ids.push(c.id);
        total -= c.bytes;
        after = c.id;
      }
      const gone = this.#delete(ids);
      dropped += gone.length;
    }
    if (dropped > 0) this.#s.addCounter.run(COUNTER_DROPPED, dropped);
    this.#droppedThisEpisode += dropped;
    if (!this.#overflowing) {
      this.#overflowing = true;
      const over = total > this.maxBytes;
      this.#log.warn(
        { maxBytes: this.maxBytes, queuedBytes: total, dropped },
        over
          ? 'outbox: size limit reached and only security events and messages are left; they are kept beyond the limit'
          : 'outbox: size limit reached; dropping the oldest non-security events (counted in outbox.dropped; security events are kept)',
      );
    }
  }

  /** Outside an overflow episode nothing is read: every remove and ack calls this. */
  #noteBelowLimit(queued?: number): void {
    if (!this.#overflowing) return;
    const total = queued ?? this.#bytes();
    if (total >= this.maxBytes * EPISODE_END_RATIO) return;
    this.#overflowing = false;
    this.#log.info(
      { dropped: this.#droppedThisEpisode, queuedBytes: total },
      'outbox: back under its size limit; overflow episode over',
    );
    this.#droppedThisEpisode = 0;
  }
}
