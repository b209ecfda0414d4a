import type { Clock } from '../base/clock.js';
import { HubError, isHubError } from '../base/errors.js';
import type { LockMode, LockState } from '../contract/link-messages.js';
import { DEFAULT_MAX_MESSAGE_BYTES, maxInboundBytes } from '../contract/mqtt.js';
import type { CommandEnvelope } from '../contract/mqtt-cloud-messages.js';
import { type CmdResultPayload, wireLockState } from '../contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION } from '../contract/mqtt-topics.js';
import { type ContractError, checkUtf8, parseInbound, salvageId } from '../contract/mqtt-validate.js';
import { Secret } from '../crypto/secret.js';
import { failure, idReused, storedAnswer } from '../inbox/answers.js';
import type { Inbox } from '../inbox/inbox.js';
import type { StartedCommand } from '../inbox/inbox-table.js';
import type { LinkManager } from '../link/manager.js';
import type { Logger } from '../log/logger.js';
import { type LockPageArgs, lockPage } from './lock-pages.js';
import { openSetupCode } from './otp.js';
import type { CommandVerifier, Verdict } from './verifier.js';

/** What a command acts on: the part of the LinkManager the cloud may drive. Failures are thrown HubErrors. */
export type CommandTarget = Pick<
  LinkManager,
  'list' | 'lockState' | 'open' | 'lockNow' | 'setMode' | 'attach' | 'detach'
>;

const noRadio = () => Promise.reject(new HubError('lock.unknown', 'this hub has no radio configured'));
/** The target of a hub without a radio: no locks, and every lock command fails `lock.unknown`. */
export const NO_LOCKS: CommandTarget = {
  list: () => [],
  lockState: noRadio,
  open: noRadio,
  lockNow: noRadio,
  setMode: noRadio,
  attach: noRadio,
  detach: noRadio,
};

/** An `open` without `args.durationMs` holds the door open this long. */
export const DEFAULT_OPEN_MS = 5000;

export interface RemoteCommandsDeps {
  inbox: Inbox;
  clock: Clock;
  log: Logger;
  target: CommandTarget;
  /** Decides whether a command may act (verifier.ts). */
  verifier: CommandVerifier;
  /** The hub's OTP key: opens the sealed setup code of an `attach`. */
  otpKey: Secret | undefined;
  /** `listLocks` pages fit this (`uplink.maxMessageBytes`). Default DEFAULT_MAX_MESSAGE_BYTES. */
  maxMessageBytes?: number;
  /**
   * `syncNow`: publish `sync/request` with the mirror's version (id = the cmdId); resolves once the
   * broker took it, rejects (a HubError) if it could not be sent. Without it `syncNow` is refused.
   */
  requestSync?: (requestId: string, reason: 'command' | 'gap') => Promise<{ version: number }>;
}

/**
 * The cloud's remote commands: verify, claim, act, answer, recover. A command is checked against
 * the contract, then by the CommandVerifier (hub id, lockout, OTP, time, counter, lock). A refused
 * one gets `{ok: false, error: {code, message}}` (best effort) and changes nothing; a genuine
 * redelivery of a command already recorded gets the stored answer again and does not act. An
 * accepted one is claimed — the counter advanced and the cmdId 'started' in the inbox, in one
 * transaction — before anything reaches a lock; then it acts and its answer (the lock's own) is
 * published and recorded (Inbox.finish). A command the hub was carrying out when it stopped is
 * never repeated: `recover()` answers it `unknown_outcome` with the lock's state read back.
 *
 * Commands for one lock run one at a time, in arrival order; different locks run concurrently.
 */
export class RemoteCommands {
  readonly #inbox: Inbox;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #target: CommandTarget;
  readonly #verifier: CommandVerifier;
  #otpKey: Secret | undefined;
  readonly #maxMessageBytes: number;
  readonly #requestSync: RemoteCommandsDeps['requestSync'];

  constructor(deps: RemoteCommandsDeps) {
    this.#inbox = deps.inbox;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#target = deps.target;
    this.#verifier = deps.verifier;
    this.#otpKey = deps.otpKey;
    this.#maxMessageBytes = deps.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#requestSync = deps.requestSync;
  }

  /** Open setup codes with `key` from now on (an OTP key delivered over the uplink). */
  replaceKey(key: Secret): void {
    this.#otpKey = key;
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
      rows = this.#inbox.interrupted('cmd');
    } catch (e) {
      this.#log.error({ err: e }, 'interrupted commands could not be read from the inbox');
      return 0;
    }
    await Promise.all(rows.map((r) => this.#inbox.track('cmd', r.id, r.counter, this.#settleInterrupted(r))));
    return rows.length;
  }

  /**
   * Handle one command; resolves once it is answered. `recorded` is called once the command is
   * claimed (or, for a redelivery, once its answer is on its way): until then, the broker has no
   * acknowledgement and delivers it again after a stop.
   */
  async handle(payload: Buffer, recorded: () => void = () => {}): Promise<void> {
    const parsed = checkUtf8(payload, maxInboundBytes('cmd')) ?? parseInbound('cmd', payload);
    if (!parsed.ok) {
      this.#verifier.countRefusal('bad_request');
      this.#inbox.refuse('cmd', salvageId(payload, 'cmdId'), { code: 'bad_request', message: parsed.error.message });
      return;
    }
    const cmd = parsed.value;
    // From here to the claim nothing awaits: no other message can slip in between the verdict
    // (which read the counter and the inbox) and the transaction that advances them.
    let verdict: Verdict;
    try {
      verdict = this.#verifier.verify(cmd, (id) => this.#inbox.known(id));
    } catch (e) {
      this.#log.error({ err: e, cmdId: cmd.cmdId }, 'command could not be verified; not acting on it');
      this.#inbox.publishNow(
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
      this.#inbox.publishNow('cmd/result', failure(cmd.cmdId, verdict.code, verdict.message));
      return;
    }
    if (verdict.duplicate) {
      await this.#redelivered(cmd, recorded);
      return;
    }

    let setupCode: Secret | undefined;
    if (cmd.op === 'attach') {
      const opened = this.#openSetupCode(cmd);
      if (!opened.ok) {
        this.#verifier.countRefusal('bad_request');
        this.#inbox.refuse('cmd', cmd.cmdId, { code: 'bad_request', message: opened.message });
        return;
      }
      setupCode = opened.secret;
    }

    try {
      this.#inbox.claim(
        { id: cmd.cmdId, topic: 'cmd', counter: cmd.counter, op: cmd.op, lockId: cmd.lockId ?? null },
        (now) => this.#verifier.advanceCounter(cmd.counter, now),
      );
    } catch (e) {
      setupCode?.wipe();
      this.#log.error({ err: e, cmdId: cmd.cmdId }, 'command could not be recorded; not acting on it');
      this.#inbox.publishNow(
        'cmd/result',
        failure(
          cmd.cmdId,
          'store.unavailable',
          `the hub could not record command ${cmd.cmdId} and did not carry it out; retry later`,
        ),
      );
      return;
    }
    recorded();
    await this.#inbox.track('cmd', cmd.cmdId, cmd.counter, this.#act(cmd, setupCode));
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

  /** A genuine command whose cmdId is known: the stored answer again, never a second action. */
  async #redelivered(cmd: CommandEnvelope, recorded: () => void): Promise<void> {
    const id = cmd.cmdId;
    const running = this.#inbox.running(id);
    if (running) {
      if (running.topic !== 'cmd') return this.#refuseReused(id, idReused(id, running.topic));
      if (running.counter !== cmd.counter) return this.#refuseReused(id, otherCommand(id));
      // A redelivery while the first copy is still being carried out: answered once that is done.
      this.#log.debug({ cmdId: id }, 'command redelivered while in progress');
      recorded();
      await this.#inbox.resendWhenDone('cmd', id, running);
      return;
    }
    const row = this.#inbox.row(id);
    if (!row) return;
    if (row.topic !== 'cmd') return this.#refuseReused(id, idReused(id, row.topic));
    if (row.counter !== cmd.counter) return this.#refuseReused(id, otherCommand(id));
    const stored = row.state === 'done' ? storedAnswer(row.result) : undefined;
    if (stored) {
      this.#log.info({ cmdId: id }, 'command redelivered: sending the stored answer again');
      this.#inbox.resend('cmd', stored);
      return;
    }
    // Started, and not being carried out now: the hub stopped while acting (or could not record
    // the answer). It may or may not have taken effect; acting again could do it twice.
    recorded();
    await this.#inbox.track('cmd', id, row.counter, this.#settleInterrupted({ id, ...row }));
  }

  #refuseReused(id: string, error: ContractError): void {
    this.#verifier.countRefusal('bad_request');
    this.#inbox.refuse('cmd', id, { code: 'bad_request', message: error.message });
  }

  async #act(cmd: CommandEnvelope, setupCode: Secret | undefined): Promise<void> {
    let answer: CmdResultPayload;
    try {
      answer = await this.#command(cmd, setupCode);
    } catch (e) {
      answer = this.#inbox.failed(cmd.cmdId, e);
    } finally {
      setupCode?.wipe();
    }
    const journal = { cmdId: cmd.cmdId, op: cmd.op, lockId: cmd.lockId ?? null };
    await this.#inbox.finish('cmd', cmd.cmdId, answer, { journal, ahead: true });
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
    // A malformed command is answered with the contract's `bad_request` (docs/mqtt-api.md), not a
    // HubError: the verifier refuses these before the claim, and these answers keep that code
    // should one ever get this far.
    const onLock = async (act: (lockId: string) => Promise<Record<string, unknown>>): Promise<CmdResultPayload> => {
      const lockId = c.lockId;
      if (lockId === undefined) return failure(c.cmdId, 'bad_request', `${c.op} needs a lockId`);
      return done(await this.#inbox.serial(`lock:${lockId}`, () => act(lockId)));
    };
    switch (c.op) {
      case 'ping':
        return done({ pong: true, at: new Date(this.#clock.now()).toISOString() });
      case 'listLocks':
        return done({ ...lockPage(t.list(), c.args as LockPageArgs, this.#maxMessageBytes) });
      case 'getState':
        return onLock(async (id) => ({ state: wireLockState(await t.lockState(id)) }));
      case 'open': {
        const ms = typeof c.args.durationMs === 'number' ? c.args.durationMs : DEFAULT_OPEN_MS;
        return onLock(async (id) => ({ state: wireLockState(await t.open(id, ms)) }));
      }
      case 'lock':
        return onLock(async (id) => ({ state: wireLockState(await t.lockNow(id)) }));
      case 'setMode':
        return onLock(async (id) => ({ state: wireLockState(await t.setMode(id, c.args.mode as LockMode)) }));
      case 'attach': {
        if (!setupCode) return failure(c.cmdId, 'bad_request', 'args.setupCode is missing');
        return onLock(async (id) => ({ lock: await t.attach(id, setupCode) }));
      }
      case 'detach':
        return onLock((id) => t.detach(id));
      case 'syncNow': {
        // Answered once the request is with the broker: the sync itself comes on `sync` and is
        // acknowledged on `sync/ack` like any other (docs/mqtt-api.md, "syncNow").
        if (!this.#requestSync) {
          return failure(c.cmdId, 'sync.unavailable', 'this hub has no uplink to ask the cloud for a sync');
        }
        const { version } = await this.#requestSync(c.cmdId, 'command');
        return done({ requested: true, requestId: c.cmdId, version });
      }
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
        state = await this.#inbox.serial(`lock:${lockId}`, () => this.#target.lockState(lockId));
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
      ...(state ? { result: { state: wireLockState(state) } } : {}),
    };
    await this.#inbox.finish('cmd', row.id, answer, { journal: { cmdId: row.id, op: row.op, lockId }, ahead: true });
  }
}

function otherCommand(id: string): ContractError {
  return {
    code: 'payload.id-reused',
    message: `cmdId ${id} was already used for another command (another counter); every command needs its own cmdId`,
  };
}
