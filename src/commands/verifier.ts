import type { Statement } from 'better-sqlite3';
import type { Clock } from '../base/clock.js';
import { HubError } from '../base/errors.js';
import type { HubConfig } from '../config/schema.js';
import type { VerifierStats } from '../contract/control-socket.js';
import type { CommandEnvelope, CommandOp, RefusalCode } from '../contract/mqtt-cloud-messages.js';
import type { Secret } from '../crypto/secret.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import { OTP_STEP_MS, OTP_SUITE, otpMatches } from './otp.js';

/**
 * Refusals that count toward the lockout: only what shows a wrong key or a replay — a forged OTP,
 * or a genuine command again under a used counter. Not what anyone able to publish on the topic
 * can produce without the key (`wrong_hub`, `bad_request`), nor what a genuine command meets when
 * the hub's or the cloud's state is off: `expired`/`not_yet_valid` (a clock; `iqhub diag` says so),
 * `unknown_lock` (a cloud whose lock list is stale), `no_otp_key`. Nor `locked_out`: the lockout
 * does not extend itself, it ends `lockoutSec` after it began.
 */
const COUNTED: ReadonlySet<RefusalCode> = new Set<RefusalCode>(['otp_mismatch', 'replayed']);

/** Ops that act on a lock of the pairing store (attach brings a new one in, so it is not here). */
export const LOCK_OPS: ReadonlySet<CommandOp> = new Set<CommandOp>(['getState', 'open', 'lock', 'setMode', 'detach']);

/** A command is valid for at most this long after its `issuedAt`. */
export const MAX_VALIDITY_MS = 10 * 60_000;

export type Verdict =
  /** Accepted: the caller records the counter and the cmdId in one transaction, then acts. */
  | { ok: true; duplicate: false }
  /**
   * A genuine command (its OTP checks out) whose cmdId the caller already has: a redelivery. The
   * caller answers from its inbox; nothing is counted and nothing acts again.
   */
  | { ok: true; duplicate: true }
  | { ok: false; code: RefusalCode; message: string };

export type VerifierConfig = Pick<
  HubConfig['commands'],
  'lockoutFailures' | 'lockoutWindowSec' | 'lockoutSec' | 'maxSkewSec' | 'counterWindow'
>;

export interface CommandSecurityEvent {
  kind: 'commands.locked-out';
  detail: Record<string, unknown>;
}

export interface VerifierDeps {
  /** This hub's id (the CN of its certificate). */
  hubId: string;
  /** Undefined: no key was installed, and every command is refused `no_otp_key`. */
  otpKey: Secret | undefined;
  config: VerifierConfig;
  store: Store;
  clock: Clock;
  log: Logger;
  /** Whether a lock is in the pairing store. */
  knownLock: (lockId: string) => boolean;
  /** Told of a lockout after it is recorded in security_events. */
  onSecurityEvent?: (e: CommandSecurityEvent) => void;
}

const ISO_UTC = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,9})?Z$/;

/**
 * An ISO 8601 UTC time as the contract writes it, in milliseconds; undefined if it is not one or
 * names no real moment (February 30th, 24:00) — `Date.parse` would quietly roll those over.
 */
export function parseUtc(s: string): number | undefined {
  const m = ISO_UTC.exec(s);
  if (!m) return undefined;
  const ms = Date.parse(s);
  if (!Number.isFinite(ms)) return undefined;
  const d = new Date(ms);
  const same =
    d.getUTCFullYear() === Number(m[1]) &&
    d.getUTCMonth() + 1 === Number(m[2]) &&
    d.getUTCDate() === Number(m[3]) &&
    d.getUTCHours() === Number(m[4]) &&
    d.getUTCMinutes() === Number(m[5]) &&
    d.getUTCSeconds() === Number(m[6]);
  return same ? ms : undefined;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Decides whether a remote command may act (docs/security.md, "Remote commands"). The caller has
 * checked the command against the contract's schema; then, in this order:
 *
 *  1. `issuedAt` and `expiresAt` are real UTC times                        → `bad_request`
 *  2. `hubId` is this hub's                                                 → `wrong_hub`
 *  3. no lockout is running                                                 → `locked_out`
 *  4. the hub has an OTP key                                                → `no_otp_key`
 *  5. the OTP authorises exactly this command (constant-time compare)       → `otp_mismatch`
 *  6. the cmdId is new; a known one is a redelivery (`duplicate`), answered from the inbox
 *  7. the OTP's time step (that of `issuedAt`) is within ±1 of the hub's    → `expired` / `not_yet_valid`
 *     `expiresAt` has not passed                                            → `expired`
 *     `issuedAt` is not ahead of the hub's clock by more than maxSkewSec    → `not_yet_valid`
 *     `expiresAt` is after `issuedAt`, by at most 10 minutes                → `bad_request`
 *  8. the counter is above the last accepted one                            → `replayed`
 *     and at most counterWindow above it                                    → `bad_request`
 *  9. a lock op names a lock of the pairing store                           → `unknown_lock`
 *
 * Every refusal is counted by code; the ones in COUNTED also count toward the lockout:
 * `lockoutFailures` of them within `lockoutWindowSec` refuse every command for `lockoutSec` and
 * record a security event. The counted failures and the lockout's end are stored (command_lockout)
 * at each change, so a restart resumes them (#resume). Otherwise the verifier only reads the store
 * (the counter), except through `advanceCounter`, which the caller runs in the transaction that
 * records the command.
 * Nothing secret (the key, the expected OTP) appears in a verdict or a log line.
 */
export class CommandVerifier {
  readonly #d: VerifierDeps;
  /** The OTP key in use: the one at start, replaced when the cloud delivers another (`replaceKey`). */
  #key: Secret | undefined;
  readonly #refused = new Map<RefusalCode, number>();
  /** Monotonic times of the counted refusals within the window. */
  #failures: number[] = [];
  /** Monotonic end of the running lockout. */
  #lockedUntil: number | undefined;
  #lockedUntilWall: number | undefined;
  /** Wall minus monotonic time when the lockout was last stored: a change means the wall clock jumped. */
  #storedOffset: number | undefined;
  #accepted = 0;
  #lockouts = 0;
  readonly #sql: {
    last: Statement<[], { last_counter: number }>;
    advance: Statement<[number, number]>;
    security: Statement<[number, string, string]>;
    lockoutGet: Statement<[], { failures: string; locked_until: number | null }>;
    lockoutPut: Statement<[string, number | null, number]>;
  };

  constructor(deps: VerifierDeps) {
    this.#d = deps;
    this.#key = deps.otpKey;
    const db = deps.store.db;
    this.#sql = {
      last: db.prepare<[], { last_counter: number }>('SELECT last_counter FROM command_counter WHERE id = 1'),
      advance: db.prepare<[number, number]>(
        `INSERT INTO command_counter (id, last_counter, updated_at) VALUES (1, ?, ?)
         ON CONFLICT (id) DO UPDATE SET last_counter = excluded.last_counter, updated_at = excluded.updated_at
         WHERE command_counter.last_counter < excluded.last_counter`,
      ),
      security: db.prepare<[number, string, string]>(
        'INSERT INTO security_events (at, kind, lock_id, detail) VALUES (?, ?, NULL, ?)',
      ),
      lockoutGet: db.prepare<[], { failures: string; locked_until: number | null }>(
        'SELECT failures, locked_until FROM command_lockout WHERE id = 1',
      ),
      lockoutPut: db.prepare<[string, number | null, number]>(
        `INSERT INTO command_lockout (id, failures, locked_until, updated_at) VALUES (1, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until,
           updated_at = excluded.updated_at`,
      ),
    };
    this.#resume();
  }

  /**
   * Take up the lockout where the last run left it (command_lockout). On disk the times are wall
   * times; here they become monotonic ones, so a clock jump while the daemon runs changes nothing.
   * Across a restart only the wall clock links the two runs: the remaining time is capped at
   * lockoutSec and each failure's age at zero, so a clock set back cannot stretch the lockout
   * beyond one full lockoutSec, nor keep old failures counting.
   */
  #resume(): void {
    const d = this.#d;
    const row = this.#sql.lockoutGet.get();
    if (!row) return;
    const wall = d.clock.now();
    const mono = d.clock.monotonic();
    const lockoutMs = d.config.lockoutSec * 1000;
    this.#storedOffset = wall - mono;
    if (row.locked_until !== null && row.locked_until > wall) {
      const left = Math.min(row.locked_until - wall, lockoutMs);
      this.#lockedUntil = mono + left;
      this.#lockedUntilWall = Math.floor(wall + left);
      d.log.warn(
        { until: iso(this.#lockedUntilWall), leftSec: Math.ceil(left / 1000) },
        'remote commands: a lockout from before the restart is still running',
      );
    }
    const windowMs = d.config.lockoutWindowSec * 1000;
    let times: unknown;
    try {
      times = JSON.parse(row.failures);
    } catch {
      times = [];
    }
    this.#failures = (Array.isArray(times) ? times : [])
      .filter((t): t is number => typeof t === 'number' && Number.isFinite(t))
      .map((t) => Math.max(0, wall - t))
      .filter((age) => age < windowMs)
      .map((age) => mono - age)
      .sort((a, b) => a - b)
      .slice(-Math.max(0, d.config.lockoutFailures - 1));
  }

  /**
   * Write the lockout's state (synchronous=FULL, like every autocommit of the store): a restart
   * must not forget a counted failure or a running lockout. The monotonic times become wall times.
   * A store that cannot be written (a full disk) keeps the lockout in memory and says so.
   */
  #persist(): void {
    const d = this.#d;
    const wall = Math.floor(d.clock.now());
    const mono = d.clock.monotonic();
    const failures = this.#failures.map((t) => Math.floor(wall - (mono - t)));
    const until = this.#lockedUntil === undefined ? null : Math.floor(wall + (this.#lockedUntil - mono));
    this.#storedOffset = wall - mono;
    this.#lockedUntilWall = until ?? undefined;
    try {
      // Through the store's transaction: a full disk met here turns the disk's state like any write.
      d.store.transaction(() => this.#sql.lockoutPut.run(JSON.stringify(failures), until, wall));
    } catch (e) {
      d.log.error({ err: e }, 'the lockout state could not be stored: a restart now would forget it');
    }
  }

  get hubId(): string {
    return this.#d.hubId;
  }

  get hasKey(): boolean {
    return this.#key !== undefined;
  }

  /**
   * Verify with `key` from now on: an OTP key delivered over the uplink, already stored sealed.
   * The counter is the hub's and carries on (docs/security.md, "OTP key delivery").
   */
  replaceKey(key: Secret): void {
    this.#key = key;
  }

  /** The counter of the last accepted command (0 before the first). */
  lastCounter(): number {
    return this.#sql.last.get()?.last_counter ?? 0;
  }

  /**
   * Record `counter` as the last accepted one. Run it inside the transaction that records the
   * command; throws (rolling that back) if the counter is not above the stored one.
   */
  advanceCounter(counter: number, now = Math.floor(this.#d.clock.now())): void {
    if (this.#sql.advance.run(counter, now).changes !== 1) {
      throw new HubError('counter.not-above', `counter ${counter} is not above the last accepted one`);
    }
  }

  /** Count a refusal decided before the verifier (a command that failed the schema): `bad_request`. */
  countRefusal(code: RefusalCode): void {
    this.#refused.set(code, (this.#refused.get(code) ?? 0) + 1);
  }

  /** Whether every command is being refused `locked_out` now. */
  get lockedOut(): boolean {
    return this.#lockoutRunning();
  }

  stats(): VerifierStats {
    const running = this.#lockoutRunning();
    return {
      accepted: this.#accepted,
      refused: Object.fromEntries(this.#refused),
      lockouts: this.#lockouts,
      lockedOutUntil: running && this.#lockedUntilWall !== undefined ? iso(this.#lockedUntilWall) : null,
    };
  }

  /**
   * The verdict on a command that matched the contract's schema. `seen(cmdId)`: whether the
   * caller has already recorded a command with this id (its inbox, or one in progress).
   */
  verify(cmd: CommandEnvelope, seen: (cmdId: string) => boolean = () => false): Verdict {
    const d = this.#d;
    const issued = parseUtc(cmd.issuedAt);
    const expires = parseUtc(cmd.expiresAt);
    if (issued === undefined || expires === undefined) {
      const field = issued === undefined ? 'issuedAt' : 'expiresAt';
      return this.#refuse(cmd, 'bad_request', `${field} is not a valid ISO 8601 UTC time`);
    }
    if (cmd.hubId !== d.hubId) {
      return this.#refuse(cmd, 'wrong_hub', `command ${cmd.cmdId} is addressed to hub ${cmd.hubId}, not to this hub`);
    }
    if (this.#lockoutRunning()) {
      const left = Math.ceil(((this.#lockedUntil ?? 0) - d.clock.monotonic()) / 1000);
      return this.#refuse(
        cmd,
        'locked_out',
        `remote commands are locked out for another ${left} s after ${d.config.lockoutFailures} refused commands within ${d.config.lockoutWindowSec} s`,
      );
    }
    const key = this.#key;
    if (!key) {
      return this.#refuse(
        cmd,
        'no_otp_key',
        "this hub has no OTP key for remote commands (commands.otpKeyFile, enrollment, or the cloud's otp-key delivery): every command is refused until one is installed",
      );
    }
    if (!otpMatches(key, cmd)) {
      return this.#refuse(
        cmd,
        'otp_mismatch',
        `the OTP does not authorise this command: it was computed with another key, or for another command, counter or time (${OTP_SUITE})`,
      );
    }
    if (seen(cmd.cmdId)) return { ok: true, duplicate: true };

    const now = d.clock.now();
    const stepNow = Math.floor(now / OTP_STEP_MS);
    const step = Math.floor(issued / OTP_STEP_MS);
    if (step < stepNow - 1) {
      return this.#refuse(
        cmd,
        'expired',
        `command ${cmd.cmdId} was issued at ${cmd.issuedAt}, more than one ${OTP_STEP_MS / 1000} s time step before the hub's time ${iso(now)}`,
      );
    }
    if (step > stepNow + 1) {
      return this.#refuse(
        cmd,
        'not_yet_valid',
        `command ${cmd.cmdId} is issued at ${cmd.issuedAt}, more than one ${OTP_STEP_MS / 1000} s time step after the hub's time ${iso(now)}`,
      );
    }
    if (now > expires) {
      return this.#refuse(cmd, 'expired', `command ${cmd.cmdId} expired at ${cmd.expiresAt} (hub time ${iso(now)})`);
    }
    if (issued > now + d.config.maxSkewSec * 1000) {
      return this.#refuse(
        cmd,
        'not_yet_valid',
        `command ${cmd.cmdId} is issued at ${cmd.issuedAt}, more than ${d.config.maxSkewSec} s after the hub's time ${iso(now)}`,
      );
    }
    if (expires <= issued || expires - issued > MAX_VALIDITY_MS) {
      return this.#refuse(
        cmd,
        'bad_request',
        `expiresAt must be after issuedAt and at most ${MAX_VALIDITY_MS / 1000} s after it (got ${Math.round((expires - issued) / 1000)} s)`,
      );
    }

    const last = this.lastCounter();
    if (cmd.counter <= last) {
      return this.#refuse(
        cmd,
        'replayed',
        `counter ${cmd.counter} is not above the last accepted counter ${last}: a replay, or a command delivered after a newer one`,
      );
    }
    if (cmd.counter - last > d.config.counterWindow) {
      return this.#refuse(
        cmd,
        'bad_request',
        `counter ${cmd.counter} is more than ${d.config.counterWindow} above the last accepted counter ${last}`,
      );
    }

    if (LOCK_OPS.has(cmd.op)) {
      const lockId = cmd.lockId;
      if (lockId === undefined) return this.#refuse(cmd, 'bad_request', `${cmd.op} needs a lockId`);
      if (!d.knownLock(lockId)) {
        return this.#refuse(cmd, 'unknown_lock', `no lock ${lockId} is attached to this hub`);
      }
    }
    this.#accepted++;
    return { ok: true, duplicate: false };
  }

  #lockoutRunning(): boolean {
    if (this.#lockedUntil === undefined) return false;
    const mono = this.#d.clock.monotonic();
    if (mono < this.#lockedUntil) {
      // The wall clock jumped (NTP, an operator): the lockout runs on, on monotonic time; its end
      // on disk moves with the wall clock, so a restart after the jump resumes the same remaining time.
      const offset = this.#d.clock.now() - mono;
      if (this.#storedOffset !== undefined && Math.abs(offset - this.#storedOffset) > 1000) this.#persist();
      return true;
    }
    this.#lockedUntil = undefined;
    this.#lockedUntilWall = undefined;
    // Cleared on disk too: a wall clock set back meanwhile must not revive it at the next start.
    this.#persist();
    this.#d.log.info('remote commands: the lockout is over');
    return false;
  }

  #refuse(cmd: CommandEnvelope, code: RefusalCode, message: string): Verdict {
    const d = this.#d;
    this.countRefusal(code);
    const fields = { cmdId: cmd.cmdId, op: cmd.op, lockId: cmd.lockId, counter: cmd.counter, code };
    // During a lockout every command is refused; the lockout itself was reported once.
    if (code === 'locked_out') d.log.debug(fields, 'remote command refused');
    else d.log.warn({ ...fields, reason: message }, 'remote command refused');
    if (COUNTED.has(code)) this.#countFailure(code);
    return { ok: false, code, message };
  }

  #countFailure(code: RefusalCode): void {
    const d = this.#d;
    const now = d.clock.monotonic();
    const windowMs = d.config.lockoutWindowSec * 1000;
    this.#failures = this.#failures.filter((t) => now - t < windowMs);
    this.#failures.push(now);
    if (this.#failures.length < d.config.lockoutFailures) {
      this.#persist();
      return;
    }
    const failures = this.#failures.length;
    this.#failures = [];
    this.#lockouts++;
    this.#lockedUntil = now + d.config.lockoutSec * 1000;
    const wall = Math.floor(d.clock.now());
    this.#lockedUntilWall = wall + d.config.lockoutSec * 1000;
    const detail = {
      failures,
      windowSec: d.config.lockoutWindowSec,
      lockoutSec: d.config.lockoutSec,
      lastCode: code,
      until: iso(this.#lockedUntilWall),
    };
    this.#persist();
    try {
      this.#sql.security.run(wall, 'commands.locked-out', JSON.stringify(detail));
    } catch (e) {
      d.log.error({ err: e }, 'the lockout could not be recorded in security_events');
    }
    d.log.warn({ kind: 'commands.locked-out', ...detail }, 'security: commands.locked-out');
    try {
      d.onSecurityEvent?.({ kind: 'commands.locked-out', detail });
    } catch (e) {
      d.log.error({ err: e }, 'a security event listener failed');
    }
  }
}
