import type { AheadTicket, InboundTopic, ResultSink, ResultTopic } from '../../hal/uplink.js';
import type { Clock } from '../base/clock.js';
import { isHubError } from '../base/errors.js';
import type { RecentCommand } from '../contract/control-socket.js';
import type { ContractError } from '../contract/mqtt-validate.js';
import { conforms } from '../contract/mqtt-validate.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import { type Answer, type Failure, failure, storedAnswer } from './answers.js';
import { type Claim, type InboxRow, InboxTable, type StartedCommand } from './inbox-table.js';

/**
 * What the hub did with every cloud message it accepted, shared by the command and the sync
 * services: a message is claimed by id before it acts, answered with its record in one
 * transaction, and a redelivery finds that record (or the work still running) instead of acting
 * twice. Messages for one lock (or all syncs) run one at a time through `serial`. Records are
 * kept for INBOX_MAX_AGE_MS, trimmed off the message's path (at most once a minute); what was
 * refused is not kept.
 */

/**
 * How long the record of an accepted command or applied sync is kept: a redelivery within this
 * time gets the stored answer (docs/mqtt-api.md). By time, never by count, so no amount of other
 * traffic can push out the record of what was done; only answered rows are ever removed.
 */
export const INBOX_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/** Rows looked at per pruning by age (the oldest answered ones), at least. */
const PRUNE_BATCH = 64;
/**
 * A pruning follows a turn that added rows at most this often: the records age by days, and a
 * pruning per command was a transaction of its own per command for nothing. Each looks at twice
 * as many rows as were claimed since the last (at least PRUNE_BATCH): the inbox stays bounded
 * however fast commands come.
 */
export const PRUNE_INTERVAL_MS = 60_000;

export const RESULT_TOPIC = { cmd: 'cmd/result', sync: 'sync/ack' } as const satisfies Record<
  InboundTopic,
  ResultTopic
>;

export interface InFlight {
  topic: InboundTopic;
  /** The command's counter (commands only): a different command under the same id is refused. */
  counter?: number | null;
  done: Promise<void>;
}

export interface FinishOptions {
  /** A command's outcome, journalled with the answer. */
  journal?: Record<string, unknown>;
  /** Publish ahead of the record when nothing queued waits (a command being acted on). */
  ahead?: boolean;
  /**
   * false: the message changed nothing (a sync the mirror refused): its row goes, and a
   * redelivery is checked again — it meets the same refusal — instead of filling the inbox.
   */
  keep?: boolean;
}

export interface InboxDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  results: ResultSink;
  /**
   * The largest answer the hub publishes (`uplink.maxMessageBytes`): a larger one is replaced by
   * an `answer.too-large` error, never handed to a broker that would drop it. Default: no limit.
   */
  maxMessageBytes?: number;
}

export class Inbox {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #results: ResultSink;
  readonly #table: InboxTable;
  readonly #maxMessageBytes: number;
  readonly #inflight = new Map<string, InFlight>();
  /** Tail of the queue per key (a lock id, or the syncs). */
  readonly #queues = new Map<string, Promise<unknown>>();
  #pruneScheduled = false;
  /** Monotonic time of the last pruning (none yet: the first claim prunes), and claims since. */
  #prunedAt = Number.NEGATIVE_INFINITY;
  #claimsSincePrune = 0;

  constructor(deps: InboxDeps) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#results = deps.results;
    this.#table = new InboxTable(deps.store);
    this.#maxMessageBytes = deps.maxMessageBytes ?? Number.POSITIVE_INFINITY;
  }

  /** Messages being acted on now. */
  get inFlight(): number {
    return this.#inflight.size;
  }

  /** Resolves when every message being acted on has been answered (for an orderly stop). */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight.values()].map((f) => f.done));
  }

  /** The work running on `id` now, if any. */
  running(id: string): InFlight | undefined {
    return this.#inflight.get(id);
  }

  /** The inbox row of `id`, if the hub ever accepted a message with it. */
  row(id: string): InboxRow | undefined {
    return this.#table.get(id);
  }

  /** Whether `id` is taken: being acted on, or recorded. */
  known(id: string): boolean {
    return this.#inflight.has(id) || this.#table.get(id) !== undefined;
  }

  /** Messages of `topic` accepted and never answered, not being acted on now (left by a stop). */
  interrupted(topic: InboundTopic): StartedCommand[] {
    return this.#table.started(topic).filter((r) => !this.#inflight.has(r.id));
  }

  /**
   * Record `claim` as started, with `alongside` (the command counter's advance) in the same
   * transaction: nothing acts before both are on disk. Throws if the store cannot record it.
   */
  claim(claim: Claim, alongside?: (now: number) => void): void {
    const now = this.#now();
    this.#store.transaction(() => {
      alongside?.(now);
      this.#table.claim(claim, now);
    });
    this.#schedulePrune();
  }

  /**
   * The newest accepted commands, newest first (at most `limit`). Refused ones are never stored:
   * the verifier counts them (CommandVerifier.stats). Nothing secret: ids, op, lock, counter,
   * time and outcome; never arguments (an attach's sealed setup code) or the OTP.
   */
  recentCommands(limit: number): RecentCommand[] {
    return this.#table.recentCommands(limit).map((r) => {
      const answer = r.state === 'done' ? storedAnswer(r.result) : undefined;
      return {
        cmdId: r.id,
        op: r.op,
        lockId: r.lock_id,
        counter: r.counter,
        receivedAt: new Date(r.received_at).toISOString(),
        state: r.state === 'done' ? 'answered' : this.#inflight.has(r.id) ? 'acting' : 'interrupted',
        ok: answer ? answer.ok : null,
        code: answer && !answer.ok ? (answer.error?.code ?? null) : null,
      };
    });
  }

  /** Register `done` as the work on `id` until it settles, so a redelivery waits for it. */
  async track(topic: InboundTopic, id: string, counter: number | null | undefined, done: Promise<void>): Promise<void> {
    this.#inflight.set(id, { topic, ...(topic === 'cmd' ? { counter } : {}), done });
    try {
      await done;
    } finally {
      this.#inflight.delete(id);
    }
  }

  /** Run `fn` after everything queued before it under `key`, whatever their outcome. */
  serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#queues.get(key);
    const run = before ? before.then(fn, fn) : fn();
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(key, tail);
    void tail.then(() => {
      if (this.#queues.get(key) === tail) this.#queues.delete(key);
    });
    return run;
  }

  /** A redelivery of an answered message: its stored answer again, durably queued. */
  resend(topic: InboundTopic, answer: Answer): void {
    this.#results.enqueueMessage(RESULT_TOPIC[topic], answer);
  }

  /**
   * A redelivery that arrived while the first copy was being carried out: once that work is done,
   * this delivery gets the stored answer too (every delivery is answered, not only the first).
   * Nothing when no answer could be stored (the first copy's was published without a record).
   */
  async resendWhenDone(topic: InboundTopic, id: string, running: InFlight): Promise<void> {
    await running.done;
    const row = this.#table.get(id);
    const stored = row?.state === 'done' ? storedAnswer(row.result) : undefined;
    if (stored) this.resend(topic, stored);
  }

  /**
   * Record the answer (and journal a command's outcome) with its outbox row, in one transaction.
   * The stored text and the queued message are the same JSON: what a redelivery gets from the
   * inbox is what is published now. Resolves once recorded.
   *
   * With `ahead` (a command being acted on, one in flight) the answer is published first when
   * nothing queued waits, then recorded: the order — act, publish the result, append the
   * record — so the record's fsync overlaps the answer's way to the cloud instead of preceding it.
   * The record then goes in the store's next group commit (Store.commitSoon), with the lock's
   * state and the events the command set off: one fsync for all of them, about a millisecond after
   * the answer left.
   * What that costs: a hub that stops before that commit has sent an answer it did not record,
   * and on restart answers the command again `unknown_outcome` with the lock's state read back
   * (the cloud keeps the first answer for a cmdId: docs/mqtt-api.md). The action itself is never
   * repeated either way: the claim was durable before anything reached a lock. With other rows
   * still queued (the cloud unreachable, a backlog), the answer is recorded first and published in
   * its turn.
   */
  async finish(topic: InboundTopic, id: string, answer: Answer, o: FinishOptions = {}): Promise<void> {
    const { journal, ahead = false, keep = true } = o;
    const resultTopic = RESULT_TOPIC[topic];
    const conformed = this.#conforming(resultTopic, id, answer);
    const { checked, text } = this.#fitting(resultTopic, id, conformed);
    // Checked against the contract and serialised once: the outbox stores this text as it is.
    const checkedText = checked === conformed ? text : undefined;
    let sent: AheadTicket | undefined;
    if (ahead) {
      try {
        sent = this.#results.publishAhead?.(resultTopic, text);
      } catch (e) {
        this.#log.warn({ err: e, topic: resultTopic, id }, 'inbound answer could not be published ahead; queueing it');
      }
    }
    const at = this.#now();
    const record = () => {
      if (keep) this.#table.done(id, text);
      else this.#table.forget(id);
      if (journal) {
        this.#store.journal('command', { ...journal, ok: checked.ok, code: checked.error?.code ?? null }, at);
      }
      this.#results.enqueueMessage(resultTopic, checked, sent, checkedText);
    };
    try {
      // On its way already: recorded in the store's next group commit, with the lock's state and
      // events of the same turn (one fsync for all). That commit runs in a check phase after the
      // next timers (Store.commitSoon): the client hands the bytes to the TLS socket on the next
      // tick, and the socket sends them only once its previous write (often the PUBACK of this
      // very message) has completed, which Node reports in the check phase — an fsync before that
      // would hold the answer back. Not yet sent: recorded now, then published.
      if (sent) await this.#store.commitSoon(record);
      else this.#store.transaction(record);
    } catch (e) {
      // The inbox still says 'started': a redelivery is answered as interrupted, never repeated.
      if (sent) {
        this.#log.error({ err: e, topic, id }, 'inbound answer was published but could not be stored');
        return;
      }
      this.#log.error({ err: e, topic, id }, 'inbound answer could not be stored; publishing it without a guarantee');
      this.publishNow(resultTopic, checked);
    }
  }

  /** A HubError carries a code and a message meant for people; anything else is a bug and stays in the log. */
  failed(id: string, e: unknown): Failure {
    if (isHubError(e)) return failure(id, e.code, e.message);
    this.#log.error({ err: e, id }, 'inbound message failed unexpectedly');
    return failure(id, 'internal', "the hub failed while carrying this out; the hub's log has the details");
  }

  /** Refuse a message: logged, answered best effort, nothing stored. */
  refuse(topic: InboundTopic, id: string | null, error: ContractError): void {
    this.#log.warn({ topic, id, code: error.code, reason: error.message }, 'inbound message refused');
    this.publishNow(RESULT_TOPIC[topic], failure(id, error.code, error.message));
  }

  /** Best effort, nothing stored (an answer to a message that changed nothing). */
  publishNow(topic: ResultTopic, payload: Answer): void {
    try {
      this.#results.publishNow(topic, payload);
    } catch (e) {
      this.#log.warn({ err: e, topic, id: payload.id }, 'inbound answer could not be published');
    }
  }

  /** The answer and its text, or an `answer.too-large` error in its place if the text exceeds the limit. */
  #fitting(resultTopic: ResultTopic, id: string, answer: Answer): { checked: Answer; text: string } {
    const text = JSON.stringify(answer);
    const bytes = Buffer.byteLength(text);
    if (bytes <= this.#maxMessageBytes) return { checked: answer, text };
    this.#log.error(
      { topic: resultTopic, id, bytes, limit: this.#maxMessageBytes },
      'inbound answer is larger than the message limit; sending answer.too-large instead',
    );
    const checked = failure(
      id,
      'answer.too-large',
      `the answer would be ${bytes} bytes, more than the ${this.#maxMessageBytes} one message may hold (uplink.maxMessageBytes); ask for less (listLocks: a smaller limit)`,
    );
    return { checked, text: JSON.stringify(checked) };
  }

  /** The answer, or an internal error in its place if it does not match the contract (a bug). */
  #conforming(resultTopic: ResultTopic, id: string, answer: Answer): Answer {
    if (conforms(resultTopic, answer)) return answer;
    this.#log.error(
      { topic: resultTopic, id },
      'inbound answer does not match the contract; sending an internal error instead',
    );
    return failure(id, 'internal', 'the hub produced an answer that does not match the contract');
  }

  /** Whole milliseconds: the store's time columns are integers (a virtual clock may give fractions). */
  #now(): number {
    return Math.floor(this.#clock.now());
  }

  /**
   * Keep the inbox bounded: on the turn after one in which rows were added, at most once per
   * PRUNE_INTERVAL_MS, off the message's path (a command is answered before the inbox is trimmed). Only answered rows go, so
   * the deletes need not wait for the disk: undone by a power cut, they are simply done again.
   */
  #schedulePrune(): void {
    this.#claimsSincePrune++;
    if (this.#pruneScheduled || this.#clock.monotonic() - this.#prunedAt < PRUNE_INTERVAL_MS) return;
    this.#pruneScheduled = true;
    setImmediate(() => {
      this.#pruneScheduled = false;
      if (this.#store.closed) return;
      this.#prunedAt = this.#clock.monotonic();
      const batch = Math.max(PRUNE_BATCH, 2 * this.#claimsSincePrune);
      this.#claimsSincePrune = 0;
      try {
        const now = this.#now();
        this.#store.lazyTransaction(() => this.#table.prune(batch, now - INBOX_MAX_AGE_MS));
      } catch (e) {
        // The store is closing or failing: the next message prunes again.
        this.#log.warn({ err: e }, 'the inbox could not be trimmed; trying again with the next message');
      }
    });
  }
}
