import { IdSet } from './id-tables.js';

/** One published event: its outbox row and its stable id (as the publisher reports it). */
export interface PublishedEvent {
  rowId: number;
  eventId: string;
}

/**
 * The events of one publish awaiting the cloud's ack: one record for the whole publish (its clocks
 * are the same for all of its events), not an object per event.
 */
interface Sent {
  /** Ascending (a publish takes rows in outbox order). */
  rowIds: number[];
  eventIds: string[];
  /** When its events were first published (the fault's clock); kept across resends. */
  firstAt: number;
  /** When they were last published (the resend's clock). */
  sentAt: number;
  /** Of its events, how many still await an ack. */
  left: number;
  /** Where the next id is looked for first: acks name a publish's ids in the order it was sent. */
  hint: number;
}

/**
 * The events published and not yet acknowledged by the cloud (EventDelivery's record). Each
 * publish is one record holding its row ids and event ids (the arrays the publish was made of);
 * which rows await an ack is a set of row ids (id-tables.ts: nothing allocated per entry). An
 * event id named by an ack is found by comparing it with the ids of the publishes, from where the
 * previous one was found: an ack names a publish's ids in order, so each costs one comparison.
 *
 * A Map of one object per event made ~15 MB of old-space garbage per 100,000 events drained, and
 * a hash of the id strings in JavaScript cost more CPU than the whole drain's publishing (the unit
 * runs without TurboFan).
 */
export class AwaitingAcks {
  /** Rows awaiting an ack (each in exactly one record). */
  readonly #rows = new IdSet();
  /** Records with events still awaiting an ack, in the order they were made. */
  #records: Sent[] = [];
  /** The record where the last id was found. */
  #last: Sent | undefined;

  get size(): number {
    return this.#rows.size;
  }

  has(eventId: string): boolean {
    return this.rowOf(eventId) !== undefined;
  }

  /**
   * The broker took these events (PUBACK): they await the cloud's ack from now on. A row awaiting
   * one already (a resend) keeps its first-publish time; its resend clock starts again.
   */
  track(events: readonly PublishedEvent[], now: number): void {
    let fresh: Sent | undefined;
    for (const e of events) {
      if (this.#rows.has(e.rowId)) {
        const s = this.#recordOf(e.rowId);
        if (s) s.sentAt = now;
        continue;
      }
      // A record's rows ascend (a publish takes rows in outbox order; any other order starts a new one).
      if (!fresh || e.rowId < (fresh.rowIds[fresh.rowIds.length - 1] as number)) {
        fresh = { rowIds: [], eventIds: [], firstAt: now, sentAt: now, left: 0, hint: 0 };
        this.#records.push(fresh);
      }
      fresh.rowIds.push(e.rowId);
      fresh.eventIds.push(e.eventId);
      fresh.left++;
      this.#rows.add(e.rowId);
    }
  }

  /** The row of an event awaiting its ack, or undefined. */
  rowOf(eventId: string): number | undefined {
    const last = this.#last;
    if (last && last.left > 0) {
      const row = this.#search(last, eventId);
      if (row !== undefined) return row;
    }
    for (const s of this.#records) {
      if (s === last) continue;
      const row = this.#search(s, eventId);
      if (row !== undefined) {
        this.#last = s;
        return row;
      }
    }
    return undefined;
  }

  /** The row awaits nothing any more (acknowledged, or gone). */
  forget(rowId: number): void {
    if (!this.#rows.delete(rowId)) return;
    const s = this.#recordOf(rowId);
    if (!s) return;
    s.left--;
    if (s.left === 0) {
      this.#records.splice(this.#records.indexOf(s), 1);
      if (this.#last === s) this.#last = undefined;
    }
  }

  /** A new connection: the clocks of every event awaiting an ack start again. */
  restartClocks(now: number): void {
    for (const s of this.#records) {
      s.firstAt = now;
      s.sentAt = now;
    }
  }

  /** Whether any event was last published `timeoutMs` ago or more. */
  anyDue(now: number, timeoutMs: number): boolean {
    return this.#records.some((s) => now - s.sentAt >= timeoutMs);
  }

  /** Every event awaiting an ack is published again now. */
  resent(now: number): void {
    for (const s of this.#records) s.sentAt = now;
  }

  /** Forget the events whose rows are gone (`exists` false: dropped under the outbox's size limit). */
  prune(exists: (rowId: number) => boolean): void {
    for (const s of [...this.#records]) for (const rowId of this.#live(s)) if (!exists(rowId)) this.forget(rowId);
  }

  /**
   * When the oldest event still awaiting its ack was first published; events whose rows are gone
   * await nothing and are forgotten on the way. Undefined when none awaits one.
   */
  oldestFirstAt(exists: (rowId: number) => boolean): number | undefined {
    let oldest: number | undefined;
    for (const s of [...this.#records]) {
      if (oldest !== undefined && s.firstAt >= oldest) continue;
      for (const rowId of this.#live(s)) {
        if (exists(rowId)) {
          oldest = s.firstAt;
          break;
        }
        this.forget(rowId);
      }
    }
    return oldest;
  }

  /** The rows of `s` still awaiting an ack. */
  #live(s: Sent): number[] {
    return s.rowIds.filter((rowId) => this.#rows.has(rowId));
  }

  /** The row of `eventId` in `s` if it awaits an ack there, looked for from the record's hint. */
  #search(s: Sent, eventId: string): number | undefined {
    const ids = s.eventIds;
    const n = ids.length;
    for (let k = 0, i = s.hint; k < n; k++, i = i + 1 === n ? 0 : i + 1) {
      if (ids[i] !== eventId) continue;
      const rowId = s.rowIds[i] as number;
      if (!this.#rows.has(rowId)) continue;
      s.hint = i + 1 === n ? 0 : i + 1;
      return rowId;
    }
    return undefined;
  }

  /** The record holding `rowId` (rows ascend in each record). */
  #recordOf(rowId: number): Sent | undefined {
    const last = this.#last;
    if (last && holds(last, rowId)) return last;
    return this.#records.find((s) => s !== last && holds(s, rowId));
  }
}

function holds(s: Sent, rowId: number): boolean {
  const rows = s.rowIds;
  let lo = 0;
  let hi = rows.length - 1;
  if (hi < 0 || rowId < (rows[0] as number) || rowId > (rows[hi] as number)) return false;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = rows[mid] as number;
    if (r === rowId) return true;
    if (r < rowId) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
