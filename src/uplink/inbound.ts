import { isUtf8 } from 'node:buffer';
import type { Statement } from 'better-sqlite3';
import type { Clock } from '../base/clock.js';
import { isHubError } from '../base/errors.js';
import type { LinkManager } from '../link/manager.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import {
  type CmdResultPayload,
  CONTRACT_VERSION,
  type Command,
  MAX_INBOUND_BYTES,
  type SyncAckPayload,
  type SyncPayload,
} from './contract.js';
import { type ContractError, conforms, parseInbound, salvageId } from './validate.js';

/** The topics the cloud sends on (relative to ks/hubs/{hubId}/). */
export type InboundTopic = 'cmd' | 'sync';
/** The topics their answers go on. */
export type ResultTopic = 'cmd/result' | 'sync/ack';

/** What a command acts on: the part of the LinkManager the cloud may drive. Failures are thrown HubErrors. */
export type CommandTarget = Pick<LinkManager, 'list' | 'lockState' | 'open' | 'lockNow' | 'setMode'>;

export interface ResultSink {
  /**
   * Durable: the payload goes into the outbox and is published until the broker acknowledges it.
   * Called inside the store transaction that records the result in the inbox, so both commit or
   * neither does (the outbox must write to the same Store, synchronously).
   */
  enqueueMessage(topic: ResultTopic, payload: object): void;
  /** Best effort, nothing stored: for answers to messages that must change nothing (invalid ones). */
  publishNow(topic: ResultTopic, payload: object): void;
}

/** The access mirror (a later issue): applies a snapshot or delta and returns its version after. */
export interface SyncTarget {
  apply(p: SyncPayload): Promise<{ version: number }>;
}

export interface InboundDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  target: CommandTarget;
  results: ResultSink;
  sync?: SyncTarget;
}

/** The inbox keeps the newest this many ids... */
export const INBOX_MAX_IDS = 10_000;
/** ...and none older than this (only answered ones are ever removed). */
export const INBOX_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/** Rows looked at per insert by the age-based pruning (the oldest answered ones). */
const PRUNE_BATCH = 64;
const MAX_CODE = 64;
const MAX_MESSAGE = 1024;

const RESULT_TOPIC = { cmd: 'cmd/result', sync: 'sync/ack' } as const satisfies Record<InboundTopic, ResultTopic>;

type Answer = CmdResultPayload | SyncAckPayload;
/** An error answer: valid on either result topic. */
type Failure = { v: 1; id: string | null; ok: false; error: { code: string; message: string } };

interface InboxRow {
  topic: string;
  state: 'started' | 'done';
  result: string | null;
}

interface InFlight {
  topic: InboundTopic;
  done: Promise<void>;
}

/**
 * The cloud's commands and syncs. Every message is checked against the contract first; an
 * invalid one gets an error answer (best effort) and changes nothing. A valid one is recorded in
 * the inbox by its id before anything is done, so a redelivery (QoS 1 is at-least-once) returns
 * the stored answer instead of acting again, and a command the hub was carrying out when it
 * stopped is answered `cmd.interrupted`, never repeated. The answer is recorded and queued for
 * publishing in one transaction.
 *
 * Commands for one lock run one at a time, in arrival order; different locks run concurrently.
 * Syncs run one at a time, in arrival order. `handle` never rejects.
 */
export class Inbound {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #target: CommandTarget;
  readonly #results: ResultSink;
  readonly #sync: SyncTarget | undefined;
  readonly #inflight = new Map<string, InFlight>();
  /** Tail of the queue per lock id (and one for syncs). */
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #sql: {
    get: Statement<[string], InboxRow>;
    claim: Statement<[string, string, number]>;
    done: Statement<[string, string]>;
    pruneCount: Statement<[number]>;
    pruneAge: Statement<[number, number]>;
  };

  constructor(deps: InboundDeps) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#target = deps.target;
    this.#results = deps.results;
    this.#sync = deps.sync;
    const db = deps.store.db;
    this.#sql = {
      get: db.prepare<[string], InboxRow>('SELECT topic, state, result FROM inbox WHERE id = ?'),
      claim: db.prepare<[string, string, number]>(
        "INSERT INTO inbox (id, topic, state, result, received_at) VALUES (?, ?, 'started', NULL, ?)",
      ),
      done: db.prepare<[string, string]>("UPDATE inbox SET state = 'done', result = ? WHERE id = ?"),
      // Rowids grow with every insert (the newest row is never removed), so both deletes are
      // rowid-range scans from the oldest end: cheap on every insert, never a full scan.
      pruneCount: db.prepare<[number]>(
        "DELETE FROM inbox WHERE rowid <= (SELECT MAX(rowid) FROM inbox) - ? AND state = 'done'",
      ),
      pruneAge: db.prepare<[number, number]>(
        "DELETE FROM inbox WHERE rowid IN (SELECT rowid FROM inbox WHERE state = 'done' ORDER BY rowid LIMIT ?) AND received_at < ?",
      ),
    };
  }

  /** Messages being acted on now. */
  get inFlight(): number {
    return this.#inflight.size;
  }

  /** Resolves when every message being acted on has been answered (for an orderly stop). */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight.values()].map((f) => f.done));
  }

  /** Handle one message from the cloud. Resolves once it is answered; never rejects. */
  async handle(topic: InboundTopic, payload: Buffer): Promise<void> {
    try {
      await this.#handle(topic, payload);
    } catch (e) {
      this.#log.error({ err: e, topic }, 'inbound message could not be handled');
    }
  }

  async #handle(topic: InboundTopic, payload: Buffer): Promise<void> {
    const parsed = checkUtf8(payload) ?? parseInbound(topic, payload);
    if (!parsed.ok) {
      this.#refuse(topic, salvageId(payload), parsed.error);
      return;
    }
    const msg = parsed.value;
    const id = msg.id;

    const running = this.#inflight.get(id);
    if (running) {
      if (running.topic !== topic) {
        this.#refuse(topic, id, idReused(id, running.topic));
        return;
      }
      // A redelivery while the first copy is still being carried out: its answer is on the way.
      this.#log.debug({ topic, id }, 'inbound message redelivered while in progress');
      await running.done;
      return;
    }

    const row = this.#sql.get.get(id);
    if (row) {
      if (row.topic !== topic) {
        this.#refuse(topic, id, idReused(id, row.topic));
        return;
      }
      const stored = row.state === 'done' ? storedAnswer(row.result) : undefined;
      if (stored) {
        this.#log.info({ topic, id }, 'inbound message redelivered: sending the stored answer again');
        this.#results.enqueueMessage(RESULT_TOPIC[topic], stored);
        return;
      }
      // Started and never finished: the hub stopped while acting. It may or may not have taken
      // effect, and acting again could do it twice.
      this.#log.warn({ topic, id }, 'inbound message was interrupted by a stop; not acting again');
      this.#finish(
        topic,
        id,
        failure(
          id,
          `${topic}.interrupted`,
          `the hub stopped while carrying out ${topic} ${id}; it may or may not have taken effect and is not repeated: check the state and send a new ${topic} with a new id`,
        ),
      );
      return;
    }

    try {
      this.#claim(id, topic);
    } catch (e) {
      this.#log.error({ err: e, topic, id }, 'inbound message could not be recorded; not acting on it');
      this.#publishNow(
        RESULT_TOPIC[topic],
        failure(
          id,
          'store.unavailable',
          `the hub could not record ${topic} ${id} and did not carry it out; retry later`,
        ),
      );
      return;
    }
    const done = this.#act(topic, msg);
    this.#inflight.set(id, { topic, done });
    try {
      await done;
    } finally {
      this.#inflight.delete(id);
    }
  }

  /** Record the id as started (durably, before acting) and keep the inbox bounded. */
  #claim(id: string, topic: InboundTopic): void {
    const now = this.#clock.now();
    this.#store.transaction(() => {
      this.#sql.claim.run(id, topic, now);
      this.#sql.pruneCount.run(INBOX_MAX_IDS);
      this.#sql.pruneAge.run(PRUNE_BATCH, now - INBOX_MAX_AGE_MS);
    });
  }

  async #act(topic: InboundTopic, msg: Command | SyncPayload): Promise<void> {
    let answer: Answer;
    try {
      answer = 'op' in msg ? await this.#command(msg) : await this.#applySync(msg);
    } catch (e) {
      answer = this.#failed(msg.id, e);
    }
    this.#log.info(
      {
        topic,
        id: msg.id,
        ...('op' in msg ? { op: msg.op } : { kind: msg.kind }),
        ok: answer.ok,
        code: answer.error?.code,
      },
      'inbound message answered',
    );
    this.#finish(topic, msg.id, answer);
  }

  async #command(c: Command): Promise<CmdResultPayload> {
    const t = this.#target;
    const done = (result: Record<string, unknown>): CmdResultPayload => ({
      v: CONTRACT_VERSION,
      id: c.id,
      ok: true,
      result,
    });
    switch (c.op) {
      case 'ping':
        return done({ pong: true, at: new Date(this.#clock.now()).toISOString() });
      case 'listLocks':
        return done({ locks: t.list() });
      case 'getState':
        return done({ state: await this.#serial(`lock:${c.lockId}`, () => t.lockState(c.lockId)) });
      case 'open':
        return done({ state: await this.#serial(`lock:${c.lockId}`, () => t.open(c.lockId, c.durationMs)) });
      case 'lock':
        return done({ state: await this.#serial(`lock:${c.lockId}`, () => t.lockNow(c.lockId)) });
      case 'setMode':
        return done({ state: await this.#serial(`lock:${c.lockId}`, () => t.setMode(c.lockId, c.mode)) });
    }
  }

  async #applySync(p: SyncPayload): Promise<SyncAckPayload> {
    const target = this.#sync;
    if (!target) {
      return failure(
        p.id,
        'sync.unavailable',
        'the access mirror is not available in this version of the hub; the sync was not applied',
      );
    }
    const { version } = await this.#serial('sync', () => target.apply(p));
    return { v: CONTRACT_VERSION, id: p.id, ok: true, version };
  }

  /** A HubError carries a code and a message meant for people; anything else is a bug and stays in the log. */
  #failed(id: string, e: unknown): Failure {
    if (isHubError(e)) return failure(id, e.code, e.message);
    this.#log.error({ err: e, id }, 'inbound message failed unexpectedly');
    return failure(id, 'internal', "the hub failed while carrying this out; the hub's log has the details");
  }

  /** Record the answer and queue it for publishing, in one transaction. */
  #finish(topic: InboundTopic, id: string, answer: Answer): void {
    const resultTopic = RESULT_TOPIC[topic];
    if (!conforms(resultTopic, answer)) {
      this.#log.error({ topic, id }, 'inbound answer does not match the contract; sending an internal error instead');
      answer = failure(id, 'internal', 'the hub produced an answer that does not match the contract');
    }
    const text = JSON.stringify(answer);
    // What is queued now is exactly what a redelivery will get from the inbox.
    const payload = JSON.parse(text) as Answer;
    try {
      this.#store.transaction(() => {
        this.#sql.done.run(text, id);
        this.#results.enqueueMessage(resultTopic, payload);
      });
    } catch (e) {
      // The inbox still says 'started': a redelivery is answered as interrupted, never repeated.
      this.#log.error({ err: e, topic, id }, 'inbound answer could not be stored; publishing it without a guarantee');
      this.#publishNow(resultTopic, payload);
    }
  }

  #refuse(topic: InboundTopic, id: string | null, error: ContractError): void {
    this.#log.warn({ topic, id, code: error.code, reason: error.message }, 'inbound message refused');
    this.#publishNow(RESULT_TOPIC[topic], failure(id, error.code, error.message));
  }

  #publishNow(topic: ResultTopic, payload: Answer): void {
    try {
      this.#results.publishNow(topic, payload);
    } catch (e) {
      this.#log.warn({ err: e, topic, id: payload.id }, 'inbound answer could not be published');
    }
  }

  /** Run `fn` after everything queued before it under `key`, whatever their outcome. */
  #serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
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
}

function failure(id: string | null, code: string, message: string): Failure {
  return {
    v: CONTRACT_VERSION,
    id,
    ok: false,
    error: { code: clip(code, MAX_CODE), message: clip(message, MAX_MESSAGE) },
  };
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

function idReused(id: string, other: string): ContractError {
  return {
    code: 'payload.id-reused',
    message: `id ${id} was already used for a ${other} message; every cmd and sync needs its own id`,
  };
}

function storedAnswer(text: string | null): Answer | undefined {
  if (text === null) return undefined;
  try {
    return JSON.parse(text) as Answer;
  } catch {
    return undefined;
  }
}

/** Payloads must be UTF-8: a lossy decode would let a mangled message through as a different one. */
function checkUtf8(payload: Buffer): { ok: false; error: ContractError } | undefined {
  if (payload.length > MAX_INBOUND_BYTES || isUtf8(payload)) return undefined;
  return {
    ok: false,
    error: {
      code: 'payload.not-utf8',
      message: `payload is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(payload)})`,
    },
  };
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629), or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i] ?? 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    const n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    if (n === 0 || i + n >= b.length) return i;
    for (let k = 1; k <= n; k++) if (((b[i + k] ?? 0) & 0xc0) !== 0x80) return i;
    const c1 = b[i + 1] ?? 0;
    // Overlong forms, UTF-16 surrogates, and code points above U+10FFFF.
    if (
      (c === 0xe0 && c1 < 0xa0) ||
      (c === 0xed && c1 > 0x9f) ||
      (c === 0xf0 && c1 < 0x90) ||
      (c === 0xf4 && c1 > 0x8f)
    ) {
      return i;
    }
    i += n + 1;
  }
  return -1;
}
