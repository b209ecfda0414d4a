import type { Clock } from '../../src/base/clock.js';
import type { Random } from '../../src/base/random.js';
import {
  type CommandEnvelope,
  type CommandOp,
  sealSetupCode,
  signCommand,
  type UnsignedCommand,
} from '../../src/commands/otp.js';
import { REFUSAL_CODES } from '../../src/contract/mqtt-cloud-messages.js';
import type { CmdResultPayload } from '../../src/contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION } from '../../src/contract/mqtt-topics.js';
import type { Secret } from '../../src/crypto/secret.js';

/**
 * Signing commands as a cloud must: each hub's OTP key, its strictly increasing counter, the
 * validity window, and what the hub did with each counter. The counter bookkeeping lives here with
 * the key because a cloud that loses track of either gets every later command refused `replayed`.
 */

export const DEFAULT_COMMAND_TTL_MS = 60_000;

/**
 * A command in the flat form (`{op, lockId, durationMs}`): its fields other than `op` and
 * `lockId` are its `args`. Signed into an envelope when the hub's OTP key is set; without one it
 * goes as it is with `v` and an `id` (the unauthenticated form of contract v1 before OTPs, which
 * a hub with OTP verification refuses).
 */
export type CommandRequest =
  | { op: 'ping' | 'listLocks' | 'syncNow' }
  | { op: 'getState' | 'lock' | 'detach'; lockId: string }
  | { op: 'open'; lockId: string; durationMs?: number }
  | { op: 'setMode'; lockId: string; mode: 'normal' | 'office' | 'locked' }
  | { op: 'attach'; lockId: string; setupCode: string };

/**
 * A command as the caller writes it for a hub with an OTP key: the cloud adds `v`, a fresh
 * `cmdId`, `hubId`, the validity window and the next counter, and signs. For `attach`,
 * `args.setupCode` is given in clear and sent sealed (`sealSetupCode`, bound to the cmdId).
 */
export interface CommandSpec {
  op: CommandOp;
  lockId?: string;
  args?: Record<string, unknown>;
}

export interface OtpKeyOptions {
  /**
   * The counter of the first command (default 1), +1 per command after it. A cloud that starts
   * afresh for a hub that already accepted commands must start above the hub's last accepted one
   * (and within its look-ahead window).
   */
  counter?: number;
  /** How long a command stays valid after it is issued (`expiresAt - issuedAt`). Default 60,000. */
  ttlMs?: number;
}

/** What `envelope()` may set instead of the defaults (for tests of what a hub refuses). */
export interface EnvelopeOverrides {
  cmdId?: string;
  /** The `hubId` field (default: the hub it is sent to). */
  hubId?: string;
  /** Unix ms. Default: now. */
  issuedAt?: number;
  /** Unix ms. Default: issuedAt + ttlMs. */
  expiresAt?: number;
  /** Default: the hub's next counter (which then advances). A given counter does not advance it. */
  counter?: number;
}

/** The fields of one envelope that are not the command itself; times in Unix ms. */
export interface EnvelopeFields {
  cmdId: string;
  hubId: string;
  issuedAt: number;
  expiresAt: number;
  counter: number;
}

export interface OtpState {
  key: Secret;
  next: number;
  ttlMs: number;
  /** Counters of the envelopes sent, by cmdId. */
  counters: Map<string, number>;
  /** The highest counter of a command the hub accepted (any answer but a refusal: REFUSAL_CODES). */
  accepted: number;
}

export class CommandSigner {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #newId: () => string;
  readonly #otp = new Map<string, OtpState>();
  readonly #sent = new Map<string, CommandEnvelope[]>();

  constructor(clock: Clock, random: Random, newId: () => string) {
    this.#clock = clock;
    this.#random = random;
    this.#newId = newId;
  }

  setKey(hubId: string, key: Secret, opts: OtpKeyOptions): void {
    const counter = opts.counter ?? this.#otp.get(hubId)?.next ?? 1;
    if (!Number.isSafeInteger(counter) || counter < 1) {
      throw new Error(`ReferenceCloud.setOtpKey: the counter must be a positive safe integer, got ${counter}`);
    }
    const ttlMs = opts.ttlMs ?? DEFAULT_COMMAND_TTL_MS;
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new Error(`ReferenceCloud.setOtpKey: bad ttlMs ${ttlMs}`);
    const before = this.#otp.get(hubId);
    this.#otp.set(hubId, {
      key,
      next: counter,
      ttlMs,
      counters: before?.counters ?? new Map(),
      accepted: before?.accepted ?? 0,
    });
  }

  has(hubId: string): boolean {
    return this.#otp.has(hubId);
  }

  state(hubId: string): OtpState | undefined {
    return this.#otp.get(hubId);
  }

  need(hubId: string): OtpState {
    const otp = this.#otp.get(hubId);
    if (!otp) throw new Error(`ReferenceCloud: no OTP key for hub ${hubId} (call setOtpKey() first)`);
    return otp;
  }

  envelope(hubId: string, cmd: CommandSpec | CommandRequest, overrides: EnvelopeOverrides = {}): CommandEnvelope {
    const otp = this.need(hubId);
    const cmdId = overrides.cmdId ?? this.#newId();
    const issuedAt = overrides.issuedAt ?? this.#clock.now();
    const fields: EnvelopeFields = {
      cmdId,
      hubId: overrides.hubId ?? hubId,
      issuedAt,
      expiresAt: overrides.expiresAt ?? issuedAt + otp.ttlMs,
      counter: overrides.counter ?? otp.next++,
    };
    // Known from signing on, however the envelope is sent (raw bytes too): its answer tells which
    // counters the hub has used.
    if (!otp.counters.has(cmdId)) otp.counters.set(cmdId, fields.counter);
    return signEnvelope(otp.key, toSpec(cmd), fields, this.#random);
  }

  /** An envelope about to go: kept for `sentEnvelopes`, and its counter for when the hub answers. */
  noteSent(hubId: string, cmdId: string, envelope: CommandEnvelope): void {
    let sent = this.#sent.get(hubId);
    if (!sent) {
      sent = [];
      this.#sent.set(hubId, sent);
    }
    sent.push(structuredClone(envelope));
    const otp = this.#otp.get(hubId);
    if (otp && typeof envelope.counter === 'number' && !otp.counters.has(cmdId))
      otp.counters.set(cmdId, envelope.counter);
  }

  /** A command the hub accepted (its counter is now the hub's last accepted one, or below it). */
  noteResult(hubId: string, r: CmdResultPayload): void {
    const otp = this.#otp.get(hubId);
    const counter = r.id === null ? undefined : otp?.counters.get(r.id);
    if (!otp || counter === undefined) return;
    const refused = !r.ok && (REFUSAL_CODES as readonly string[]).includes(r.error?.code ?? '');
    if (!refused) otp.accepted = Math.max(otp.accepted, counter);
  }

  /**
   * Go on from the hub's last accepted counter + 1: the counters of commands the hub refused
   * (`expired`, …) were never used, and after more than `commands.counterWindow` of them the hub
   * would refuse the next counter as too far ahead. Returns the next counter.
   */
  resumeCounter(hubId: string): number {
    const otp = this.need(hubId);
    otp.next = otp.accepted + 1;
    return otp.next;
  }

  sent(hubId: string): readonly CommandEnvelope[] {
    return this.#sent.get(hubId) ?? [];
  }
}

/**
 * Sign `spec` as a command envelope under the hub's OTP key, as a cloud does. An attach's
 * `args.setupCode` is given in clear and sent sealed to the cmdId (`sealSetupCode`), unless
 * `sealSetup` is false (a test sending a clear setup code, as a careless or hostile cloud would).
 */
export function signEnvelope(
  otpKey: Secret,
  spec: CommandSpec,
  f: EnvelopeFields,
  random: Random,
  sealSetup = true,
): CommandEnvelope {
  const args = { ...spec.args };
  if (sealSetup && spec.op === 'attach' && typeof args.setupCode === 'string') {
    args.setupCode = sealSetupCode(otpKey, f.cmdId, args.setupCode, random);
  }
  const unsigned: UnsignedCommand = {
    v: CONTRACT_VERSION,
    cmdId: f.cmdId,
    hubId: f.hubId,
    ...(spec.lockId === undefined ? {} : { lockId: spec.lockId }),
    op: spec.op,
    args,
    issuedAt: new Date(f.issuedAt).toISOString(),
    expiresAt: new Date(f.expiresAt).toISOString(),
    counter: f.counter,
  };
  return signCommand(otpKey, unsigned);
}

/** `{op, lockId, args}` from either that form or the flat one (`{op, lockId, durationMs}`). */
export function toSpec(cmd: CommandSpec | CommandRequest): CommandSpec {
  const { op, lockId, args, ...flat } = cmd as { op: CommandOp; lockId?: string; args?: Record<string, unknown> };
  return {
    op,
    ...(lockId === undefined ? {} : { lockId }),
    args: { ...flat, ...args },
  };
}
