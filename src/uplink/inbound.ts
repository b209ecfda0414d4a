import { isUtf8 } from 'node:buffer';
import type { Statement } from 'better-sqlite3';
import type { Clock } from '../base/clock.js';
import { HubError, isHubError } from '../base/errors.js';
import { openSetupCode } from '../commands/otp.js';
import type { CommandVerifier, Verdict } from '../commands/verifier.js';
import type { LockMode, LockState } from '../contract/link-messages.js';
import {
  type CmdResultPayload,
  CONTRACT_VERSION,
  type CommandEnvelope,
  maxInboundBytes,
  type SyncAckPayload,
  type SyncPayload,
} from '../contract/mqtt.js';
import { type ContractError, conforms, parseInbound, salvageId } from '../contract/mqtt-validate.js';
import { Secret } from '../crypto/secret.js';
import type { LinkManager } from '../link/manager.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import type { AheadTicket } from './publisher.js';

/** The topics the cloud sends on (relative to ks/hubs/{hubId}/). */
export type InboundTopic = 'cmd' | 'sync';
/** The topics their answers go on. */
export type ResultTopic = 'cmd/result' | 'sync/ack';

/** What a command acts on: the part of the LinkManager the cloud may drive. Failures are thrown HubErrors. */
export type CommandTarget = Pick<
  LinkManager,
  'list' | 'lockState' | 'open' | 'lockNow' | 'setMode' | 'attach' | 'detach'
>;

export interface ResultSink {
  /**
   * Durable: the payload goes into the outbox and is published until the broker acknowledges it.
   * Called inside the store transaction that records the result in the inbox, so both commit or
   * neither does (the outbox must write to the same Store, synchronously). With `ahead`, the
   * payload was already published by `publishAhead`: the row only waits for that PUBACK.
   */
  enqueueMessage(topic: ResultTopic, payload: object, ahead?: AheadTicket): void;
  /** Best effort, nothing stored: for answers to messages that must change nothing (invalid or refused ones). */
  publishNow(topic: ResultTopic, payload: object): void;
  /**
   * Publish an answer (its JSON text) now, before it is queued, when nothing queued must go
   * first; undefined when it has to wait its turn in the outbox. Optional: without it every
   * answer is recorded first and published after.
   */
  publishAhead?(topic: ResultTopic, text: string): AheadTicket | undefined;
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
  /** Decides whether a command may act (src/commands/verifier.ts). */
  verifier: CommandVerifier;
  /** The hub's OTP key: opens the sealed setup code of an `attach`. */
  otpKey: Secret | undefined;
  sync?: SyncTarget;
}

/** The inbox keeps the newest this many ids... */
export const INBOX_MAX_IDS = 10_000;
/** ...and none older than this (only answered ones are ever removed). */
export const INBOX_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/** An `open` without `args.durationMs` holds the door open this long. */
export const DEFAULT_OPEN_MS = 5000;
/** Rows looked at per pruning by age (the oldest answered ones); a pruning follows every turn that added rows. */
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
  counter: number | null;
  op: string | null;
  lock_id: string | null;
}

interface StartedCommand {
  id: string;
  counter: number | null;
  op: string | null;
  lock_id: string | null;
}

interface RecentRow extends StartedCommand {
  received_at: number;
  state: 'started' | 'done';
  result: string | null;
}

/** A remote command as the inbox recorded it (`iqhub commands`): what was asked and what came of it. */
export interface RecentCommand {
  cmdId: string;
  op: string | null;
  lockId: string | null;
  counter: number | null;
  /** When the hub accepted it (ISO 8601). */
  receivedAt: string;
  /**
   * `answered`: its result was recorded (`ok`, `code`); `acting`: being carried out now;
   * `interrupted`: accepted and never answered (a stop; answered unknown_outcome at the next start).
   */
  state: 'answered' | 'acting' | 'interrupted';
  ok: boolean | null;
  /** The error code of a failed result (`lock.unreachable`, `unknown_outcome`, …). */
  code: string | null;
}

interface InFlight {
  topic: InboundTopic;
  /** The command's counter (commands only): a different command under the same id is refused. */
  counter?: number | null;
  done: Promise<void>;
}

/**
 * The cloud's commands and syncs. Every message is checked against the contract first; an
 * invalid one gets an error answer (best effort) and changes nothing.
 *
 * A command then goes to the CommandVerifier (hub id, lockout, OTP, time, counter, lock). A
 * refused one gets `{ok: false, error: {code, message}}` (best effort) and changes nothing; a
 * genuine redelivery of a command already recorded gets the stored answer again and does not act.
 * An accepted one is recorded — the counter advanced and the cmdId 'started' in the inbox, in one
 * transaction — before anything reaches a lock; then it acts, publishes the answer (the lock's
 * own) and records it with its outbox row in one transaction (#finish). A command the hub was
 * carrying out when it stopped is never repeated: `recover()` answers it `unknown_outcome` with
 * the lock's state read back.
 *
 * A sync is recorded by id the same way (a redelivery gets the stored answer; one interrupted by a
 * stop is answered `sync.interrupted`).
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
  readonly #verifier: CommandVerifier;
  readonly #otpKey: Secret | undefined;
  readonly #sync: SyncTarget | undefined;
  readonly #inflight = new Map<string, InFlight>();
  /** Tail of the queue per lock id (and one for syncs). */
  readonly #queues = new Map<string, Promise<unknown>>();
  #pruneScheduled = false;
  readonly #sql: {
    get: Statement<[string], InboxRow>;
    claim: Statement<[string, string, number, number | null, string | null, string | null]>;
    done: Statement<[string, string]>;
    started: Statement<[], StartedCommand>;
    recent: Statement<[number], RecentRow>;
    pruneCount: Statement<[number]>;
    pruneAge: Statement<[number, number]>;
  };

  constructor(deps: InboundDeps) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#target = deps.target;
    this.#results = deps.results;
    this.#verifier = deps.verifier;
    this.#otpKey = deps.otpKey;
    this.#sync = deps.sync;
    const db = deps.store.db;
    this.#sql = {
      get: db.prepare<[string], InboxRow>('SELECT topic, state, result, counter, op, lock_id FROM inbox WHERE id = ?'),
      claim: db.prepare<[string, string, number, number | null, string | null, string | null]>(
        "INSERT INTO inbox (id, topic, state, result, received_at, counter, op, lock_id) VALUES (?, ?, 'started', NULL, ?, ?, ?, ?)",
      ),
      done: db.prepare<[string, string]>("UPDATE inbox SET state = 'done', result = ? WHERE id = ?"),
      started: db.prepare<[], StartedCommand>(
        "SELECT id, counter, op, lock_id FROM inbox WHERE topic = 'cmd' AND state = 'started' ORDER BY rowid",
      ),
      recent: db.prepare<[number], RecentRow>(
        "SELECT id, counter, op, lock_id, received_at, state, result FROM inbox WHERE topic = 'cmd' ORDER BY rowid DESC LIMIT ?",
      ),
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

  /**
   * The newest accepted commands, newest first (at most `limit`). Refused ones are never stored:
   * the verifier counts them (CommandVerifier.stats). Nothing secret: ids, op, lock, counter,
   * time and outcome; never arguments (an attach's sealed setup code) or the OTP.
   */
  recent(limit: number): RecentCommand[] {
    return this.#sql.recent.all(limit).map((r) => {
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

  /** Messages being acted on now. */
  get inFlight(): number {
    return this.#inflight.size;
  }

  /** Resolves when every message being acted on has been answered (for an orderly stop). */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight.values()].map((f) => f.done));
  }

  /**
   * Once at start-up, before commands are handled: every command left 'started' by a stop (it
   * may or may not have reached its lock) is answered `unknown_outcome`, with the lock's state
   * read back when it can be, and is never carried out again. Resolves with the number answered;
   * a redelivery that arrives meanwhile waits for its answer.
   */
  async recover(): Promise<number> {
    let rows: StartedCommand[];
    try {
      rows = this.#sql.started.all().filter((r) => !this.#inflight.has(r.id));
    } catch (e) {
      this.#log.error({ err: e }, 'interrupted commands could not be read from the inbox');
      return 0;
    }
    await Promise.all(rows.map((r) => this.#track('cmd', r.id, r.counter, this.#settleInterrupted(r))));
    return rows.length;
  }

  /** Handle one message from the cloud. Resolves once it is answered; never rejects. */
  async handle(topic: InboundTopic, payload: Buffer): Promise<void> {
    try {
      if (topic === 'cmd') await this.#handleCommand(payload);
      else await this.#handleSync(payload);
    } catch (e) {
      this.#log.error({ err: e, topic }, 'inbound message could not be handled');
    }
  }

  // ----- commands ------------------------------------------------------------------------------

  async #handleCommand(payload: Buffer): Promise<void> {
    const parsed = checkUtf8(payload, maxInboundBytes('cmd')) ?? parseInbound('cmd', payload);
    if (!parsed.ok) {
      this.#verifier.countRefusal('bad_request');
      this.#refuse('cmd', salvageId(payload, 'cmdId'), { code: 'bad_request', message: parsed.error.message });
      return;
    }
    const cmd = parsed.value;
    // From here to the claim nothing awaits: no other message can slip in between the verdict
    // (which read the counter and the inbox) and the transaction that advances them.
    let verdict: Verdict;
    try {
      verdict = this.#verifier.verify(cmd, (id) => this.#inflight.has(id) || this.#sql.get.get(id) !== undefined);
    } catch (e) {
      this.#log.error({ err: e, cmdId: cmd.cmdId }, 'command could not be verified; not acting on it');
      this.#publishNow(
        'cmd/result',
        failure(
          cmd.cmdId,
          'store.unavailable',
          `the hub could not check command ${cmd.cmdId} and did not carry it out`,
        ),
      );
      return;
    }
    if (!verdict.ok) {
      this.#publishNow('cmd/result', failure(cmd.cmdId, verdict.code, verdict.message));
      return;
    }
    if (verdict.duplicate) {
      await this.#redelivered(cmd);
      return;
    }

    let setupCode: Secret | undefined;
    if (cmd.op === 'attach') {
      const opened = this.#openSetupCode(cmd);
      if (!opened.ok) {
        this.#verifier.countRefusal('bad_request');
        this.#refuse('cmd', cmd.cmdId, { code: 'bad_request', message: opened.message });
        return;
      }
      setupCode = opened.secret;
    }

    try {
      this.#claimCommand(cmd);
    } catch (e) {
      setupCode?.wipe();
      this.#log.error({ err: e, cmdId: cmd.cmdId }, 'command could not be recorded; not acting on it');
      this.#publishNow(
        'cmd/result',
        failure(
          cmd.cmdId,
          'store.unavailable',
          `the hub could not record command ${cmd.cmdId} and did not carry it out; retry later`,
        ),
      );
      return;
    }
    await this.#track('cmd', cmd.cmdId, cmd.counter, this.#actCommand(cmd, setupCode));
  }

  /** The sealed setup code of an attach, opened with the OTP key and bound to the cmdId. */
  #openSetupCode(cmd: CommandEnvelope): { ok: true; secret: Secret } | { ok: false; message: string } {
    const sealed = cmd.args.setupCode;
    if (!this.#otpKey || typeof sealed !== 'string') return { ok: false, message: 'args.setupCode is missing' };
    try {
      return { ok: true, secret: Secret.fromUtf8(openSetupCode(this.#otpKey, cmd.cmdId, sealed)) };
    } catch (e) {
      return { ok: false, message: isHubError(e) ? e.message : 'args.setupCode does not open' };
    }
  }

  /** The counter advanced and the cmdId recorded as started, in one transaction, before acting. */
  #claimCommand(cmd: CommandEnvelope): void {
    const now = this.#now();
    this.#store.transaction(() => {
      this.#verifier.advanceCounter(cmd.counter, now);
      this.#sql.claim.run(cmd.cmdId, 'cmd', now, cmd.counter, cmd.op, cmd.lockId ?? null);
    });
    this.#schedulePrune();
  }

  /** A genuine command whose cmdId is known: the stored answer again, never a second action. */
  async #redelivered(cmd: CommandEnvelope): Promise<void> {
    const id = cmd.cmdId;
    const running = this.#inflight.get(id);
    if (running) {
      if (running.topic !== 'cmd') return this.#refuseReused(id, idReused(id, running.topic));
      if (running.counter !== cmd.counter) return this.#refuseReused(id, otherCommand(id));
      // A redelivery while the first copy is still being carried out: its answer is on the way.
      this.#log.debug({ cmdId: id }, 'command redelivered while in progress');
      await running.done;
      return;
    }
    const row = this.#sql.get.get(id);
    if (!row) return;
    if (row.topic !== 'cmd') return this.#refuseReused(id, idReused(id, row.topic));
    if (row.counter !== cmd.counter) return this.#refuseReused(id, otherCommand(id));
    const stored = row.state === 'done' ? storedAnswer(row.result) : undefined;
    if (stored) {
      this.#log.info({ cmdId: id }, 'command redelivered: sending the stored answer again');
      this.#results.enqueueMessage('cmd/result', stored);
      return;
    }
    // Started, and not being carried out now: the hub stopped while acting (or could not record
    // the answer). It may or may not have taken effect; acting again could do it twice.
    await this.#track('cmd', id, row.counter, this.#settleInterrupted({ id, ...row }));
  }

  #refuseReused(id: string, error: ContractError): void {
    this.#verifier.countRefusal('bad_request');
    this.#refuse('cmd', id, { code: 'bad_request', message: error.message });
  }

  async #actCommand(cmd: CommandEnvelope, setupCode: Secret | undefined): Promise<void> {
    let answer: CmdResultPayload;
    try {
      answer = await this.#command(cmd, setupCode);
    } catch (e) {
      answer = this.#failed(cmd.cmdId, e);
    } finally {
      setupCode?.wipe();
    }
    const journal = { cmdId: cmd.cmdId, op: cmd.op, lockId: cmd.lockId ?? null };
    await this.#finish('cmd', cmd.cmdId, answer, journal, true);
    // Logged on the next turn of the event loop: the log line (serialised, redacted, written) is
    // never ahead of an answer on its way. The journal entry written with the answer is the
    // durable record.
    const fields = {
      cmdId: cmd.cmdId,
      op: cmd.op,
      lockId: cmd.lockId,
      counter: cmd.counter,
      ok: answer.ok,
      code: answer.error?.code,
    };
    setImmediate(() => this.#log.info(fields, 'command answered'));
  }

  async #command(c: CommandEnvelope, setupCode: Secret | undefined): Promise<CmdResultPayload> {
    const t = this.#target;
    const done = (result: Record<string, unknown>): CmdResultPayload => ({
      v: CONTRACT_VERSION,
      id: c.cmdId,
      ok: true,
      result,
    });
    const onLock = <T>(fn: (lockId: string) => Promise<T>): Promise<T> => {
      const lockId = c.lockId;
      if (lockId === undefined) return Promise.reject(new HubError('bad_request', `${c.op} needs a lockId`));
      return this.#serial(`lock:${lockId}`, () => fn(lockId));
    };
    switch (c.op) {
      case 'ping':
        return done({ pong: true, at: new Date(this.#clock.now()).toISOString() });
      case 'listLocks':
        return done({ locks: t.list() });
      case 'getState':
        return done({ state: await onLock((id) => t.lockState(id)) });
      case 'open': {
        const ms = typeof c.args.durationMs === 'number' ? c.args.durationMs : DEFAULT_OPEN_MS;
        return done({ state: await onLock((id) => t.open(id, ms)) });
      }
      case 'lock':
        return done({ state: await onLock((id) => t.lockNow(id)) });
      case 'setMode':
        return done({ state: await onLock((id) => t.setMode(id, c.args.mode as LockMode)) });
      case 'attach': {
        if (!setupCode) throw new HubError('bad_request', 'args.setupCode is missing');
        return done({ lock: await onLock((id) => t.attach(id, setupCode)) });
      }
      case 'detach':
        return done(await onLock((id) => t.detach(id)));
      case 'syncNow':
        return failure(
          c.cmdId,
          'sync.unavailable',
          'the access mirror is not available in this version of the hub; nothing was synchronised',
        );
    }
  }

  /**
   * A command that was started and never answered: `unknown_outcome`, with the lock's state read
   * back when there is a lock and it answers. The action itself is never repeated.
   */
  async #settleInterrupted(row: StartedCommand): Promise<void> {
    const what = `${row.op ?? 'command'}${row.lock_id ? ` on ${row.lock_id}` : ''}`;
    let state: LockState | undefined;
    let readProblem = '';
    const lockId = row.lock_id;
    if (lockId) {
      try {
        state = await this.#serial(`lock:${lockId}`, () => this.#target.lockState(lockId));
      } catch (e) {
        readProblem = isHubError(e) ? ` (${e.code})` : '';
      }
    }
    const outcome = !lockId
      ? ''
      : state
        ? ": the lock's state, read back since, is in result.state"
        : `: the lock's state could not be read back${readProblem}`;
    this.#log.warn(
      { cmdId: row.id, op: row.op, lockId, stateRead: state !== undefined },
      'command interrupted by a stop: answered unknown_outcome, not carried out again',
    );
    const answer: CmdResultPayload = {
      ...failure(
        row.id,
        'unknown_outcome',
        `the hub stopped while carrying out ${what} (command ${row.id}); it may or may not have taken effect and is not repeated${outcome}`,
      ),
      ...(state ? { result: { state } } : {}),
    };
    await this.#finish('cmd', row.id, answer, { cmdId: row.id, op: row.op, lockId }, true);
  }

  // ----- syncs ---------------------------------------------------------------------------------

  async #handleSync(payload: Buffer): Promise<void> {
    const topic = 'sync';
    const parsed = checkUtf8(payload, maxInboundBytes(topic)) ?? parseInbound(topic, payload);
    if (!parsed.ok) {
      this.#refuse(topic, salvageId(payload, 'id', maxInboundBytes(topic)), parsed.error);
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
      await this.#finish(
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
      const now = this.#now();
      this.#store.transaction(() => {
        this.#sql.claim.run(id, topic, now, null, null, null);
      });
      this.#schedulePrune();
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
    await this.#track(topic, id, undefined, this.#actSync(msg));
  }

  async #actSync(msg: SyncPayload): Promise<void> {
    let answer: SyncAckPayload;
    try {
      answer = await this.#applySync(msg);
    } catch (e) {
      answer = this.#failed(msg.id, e);
    }
    this.#log.info(
      { topic: 'sync', id: msg.id, kind: msg.kind, ok: answer.ok, code: answer.error?.code },
      'inbound message answered',
    );
    // Recorded, then published: a sync's answer is not waited on at a door, so it keeps the
    // plainer order (after a stop, a sync is never acknowledged ok and then interrupted).
    await this.#finish('sync', msg.id, answer);
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

  // ----- shared --------------------------------------------------------------------------------

  /** Whole milliseconds: the store's time columns are integers (a virtual clock may give fractions). */
  #now(): number {
    return Math.floor(this.#clock.now());
  }

  /**
   * Keep the inbox bounded: once per turn of the event loop in which rows were added, off the
   * command's path (a command is answered before the inbox is trimmed). Only answered rows go, so
   * the deletes need not wait for the disk: undone by a power cut, they are simply done again.
   */
  #schedulePrune(): void {
    if (this.#pruneScheduled) return;
    this.#pruneScheduled = true;
    setImmediate(() => {
      this.#pruneScheduled = false;
      if (this.#store.closed) return;
      try {
        const now = this.#now();
        this.#store.lazyTransaction(() => {
          this.#sql.pruneCount.run(INBOX_MAX_IDS);
          this.#sql.pruneAge.run(PRUNE_BATCH, now - INBOX_MAX_AGE_MS);
        });
      } catch (e) {
        // The store is closing or failing: the next message prunes again.
        this.#log.warn({ err: e }, 'the inbox could not be trimmed; trying again with the next message');
      }
    });
  }

  /** Register `done` as the work on `id` until it settles, so a redelivery waits for it. */
  async #track(
    topic: InboundTopic,
    id: string,
    counter: number | null | undefined,
    done: Promise<void>,
  ): Promise<void> {
    this.#inflight.set(id, { topic, ...(topic === 'cmd' ? { counter } : {}), done });
    try {
      await done;
    } finally {
      this.#inflight.delete(id);
    }
  }

  /** A HubError carries a code and a message meant for people; anything else is a bug and stays in the log. */
  #failed(id: string, e: unknown): Failure {
    if (isHubError(e)) return failure(id, e.code, e.message);
    this.#log.error({ err: e, id }, 'inbound message failed unexpectedly');
    return failure(id, 'internal', "the hub failed while carrying this out; the hub's log has the details");
  }

  /**
   * Record the answer (and journal a command's outcome) with its outbox row, in one transaction.
   * The stored text and the queued message are the same JSON: what a redelivery gets from the
   * inbox is what is published now. Resolves once recorded.
   *
   * With `ahead` (a command being acted on, one in #inflight) the answer is published first when
   * nothing queued waits, then recorded: the issue's order — act, publish the result, append the
   * record — so the record's fsync overlaps the answer's way to the cloud instead of preceding it.
   * What that costs: a hub that stops within that one commit has sent an answer it did not record,
   * and on restart answers the command again `unknown_outcome` with the lock's state read back
   * (the cloud keeps the first answer for a cmdId: docs/mqtt-api.md). The action itself is never
   * repeated either way: the claim was durable before anything reached a lock. With other rows
   * still queued (the cloud unreachable, a backlog), the answer is recorded first and published in
   * its turn.
   */
  async #finish(
    topic: InboundTopic,
    id: string,
    answer: Answer,
    journal?: Record<string, unknown>,
    ahead = false,
  ): Promise<void> {
    const resultTopic = RESULT_TOPIC[topic];
    const checked = this.#conforming(resultTopic, id, answer);
    const text = JSON.stringify(checked);
    let sent: AheadTicket | undefined;
    if (ahead) {
      try {
        sent = this.#results.publishAhead?.(resultTopic, text);
      } catch (e) {
        this.#log.warn({ err: e, topic: resultTopic, id }, 'inbound answer could not be published ahead; queueing it');
      }
    }
    // The client hands the bytes to the TLS socket on the next tick, and the socket sends them only
    // once its previous write (often the PUBACK of this very message) has completed, which Node
    // reports in the check phase. Commit after that phase, or the fsync holds the answer back.
    if (sent) await new Promise((resolve) => setImmediate(resolve));
    try {
      this.#store.transaction(() => {
        this.#sql.done.run(text, id);
        if (journal) {
          this.#store.journal(
            'command',
            { ...journal, ok: checked.ok, code: checked.error?.code ?? null },
            this.#now(),
          );
        }
        this.#results.enqueueMessage(resultTopic, checked, sent);
      });
    } catch (e) {
      // The inbox still says 'started': a redelivery is answered as interrupted, never repeated.
      if (sent) {
        this.#log.error({ err: e, topic, id }, 'inbound answer was published but could not be stored');
        return;
      }
      this.#log.error({ err: e, topic, id }, 'inbound answer could not be stored; publishing it without a guarantee');
      this.#publishNow(resultTopic, checked);
    }
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

function otherCommand(id: string): ContractError {
  return {
    code: 'payload.id-reused',
    message: `cmdId ${id} was already used for another command (another counter); every command needs its own cmdId`,
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
function checkUtf8(payload: Buffer, limit: number): { ok: false; error: ContractError } | undefined {
  if (payload.length > limit || isUtf8(payload)) return undefined;
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
