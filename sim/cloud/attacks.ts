import type { Random } from '../../src/base/random.js';
import { type CommandEnvelope, signCommand, type UnsignedCommand } from '../../src/commands/otp.js';
import type { CommandSigner, CommandSpec } from './signing.js';

/**
 * Forged, altered, replayed and misdated commands, each built from a correctly signed one so that
 * the hub's verifier is tested against exactly one thing wrong at a time. They are built here, not
 * sent: `sendEnvelope` publishes whatever it is given.
 */

/**
 * Hostile or stale commands, each built from a correctly signed one, for tests of the hub's
 * verifier. The hub must refuse each without acting:
 * - `forgedOtp`: an OTP of random digits (`otp_mismatch`);
 * - `alteredArgs` / `alteredLockId`: signed, then changed (`otp_mismatch`);
 * - `replay`: a sent envelope again, byte for byte (the stored answer or `replayed`; acts once);
 * - `replayNewId`: a sent envelope under a new cmdId with its old counter and OTP (`otp_mismatch`:
 *   the cmdId is covered by the OTP);
 * - `replayResigned`: a sent envelope under a new cmdId, correctly signed, with its old counter
 *   (`replayed`);
 * - `counterBackwards`: a correctly signed command whose counter is below the last one the hub
 *   accepted (default: one below; `replayed`);
 * - `expired`: issued 10 min ago, expired 5 min ago, correctly signed (`expired`);
 * - `futureDated`: issued 10 min from now, correctly signed (`not_yet_valid`);
 * - `otherHub`: addressed and signed to another hub id, sent to this hub (`wrong_hub`).
 */
export type Attack =
  | { kind: 'forgedOtp'; command: CommandSpec }
  | { kind: 'alteredArgs'; command: CommandSpec; args: Record<string, unknown> }
  | { kind: 'alteredLockId'; command: CommandSpec; lockId: string }
  | { kind: 'replay'; of: CommandEnvelope }
  | { kind: 'replayNewId'; of: CommandEnvelope }
  | { kind: 'replayResigned'; of: CommandEnvelope }
  | { kind: 'counterBackwards'; command: CommandSpec; counter?: number }
  | { kind: 'expired'; command: CommandSpec }
  | { kind: 'futureDated'; command: CommandSpec }
  | { kind: 'otherHub'; command: CommandSpec; hubId: string };

export type AttackKind = Attack['kind'];

const MINUTE = 60_000;

export interface AttackContext {
  readonly signer: CommandSigner;
  readonly random: Random;
  readonly now: () => number;
  readonly newId: () => string;
}

export function buildAttack(hubId: string, a: Attack, ctx: AttackContext): CommandEnvelope {
  const { signer } = ctx;
  const otp = signer.need(hubId);
  const now = ctx.now();
  switch (a.kind) {
    case 'forgedOtp': {
      const real = signer.envelope(hubId, a.command);
      let forged = real.otp;
      while (forged === real.otp) forged = String(ctx.random.int(100_000_000)).padStart(8, '0');
      return { ...real, otp: forged };
    }
    case 'alteredArgs': {
      const real = signer.envelope(hubId, a.command);
      return { ...real, args: { ...real.args, ...a.args } };
    }
    case 'alteredLockId':
      return { ...signer.envelope(hubId, a.command), lockId: a.lockId };
    case 'replay':
      return structuredClone(a.of);
    case 'replayNewId':
      return { ...structuredClone(a.of), cmdId: ctx.newId() };
    case 'replayResigned': {
      const { otp: _otp, cmdId: _cmdId, issuedAt: _i, expiresAt: _e, ...rest } = a.of;
      const unsigned: UnsignedCommand = {
        ...structuredClone(rest),
        cmdId: ctx.newId(),
        issuedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + otp.ttlMs).toISOString(),
      };
      return signCommand(otp.key, unsigned);
    }
    case 'counterBackwards': {
      const counter = a.counter ?? otp.accepted - 1;
      if (counter < 1) {
        throw new Error(
          `ReferenceCloud.attack counterBackwards: hub ${hubId} has accepted no command with a counter above 1 yet; send one first or pass a counter`,
        );
      }
      return signer.envelope(hubId, a.command, { counter });
    }
    case 'expired':
      return signer.envelope(hubId, a.command, { issuedAt: now - 10 * MINUTE, expiresAt: now - 5 * MINUTE });
    case 'futureDated':
      return signer.envelope(hubId, a.command, { issuedAt: now + 10 * MINUTE, expiresAt: now + 11 * MINUTE });
    case 'otherHub': {
      // Signed as the other hub's cloud would (with its key when this cloud has it).
      const other = signer.state(a.hubId)?.key ?? otp.key;
      const { otp: _otp, ...unsigned } = signer.envelope(hubId, a.command, { hubId: a.hubId });
      return signCommand(other, unsigned);
    }
  }
}
