import { createCipheriv, createDecipheriv, createHash, hkdfSync } from 'node:crypto';
import canonicalize from 'canonicalize';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import type { CommandEnvelope } from '../contract/mqtt-cloud-messages.js';
import { ocraResponse, ocraResponsesEqual, parseOcraSuite } from '../crypto/ocra.js';
import type { Secret } from '../crypto/secret.js';

/**
 * One-time passwords for remote commands (docs/security.md, "Remote commands").
 *
 * The OTP is an RFC 6287 OCRA response, suite `OCRA-1:HOTP-SHA256-8:C-QH64-T30S`: HMAC-SHA-256,
 * 8 digits, with the command counter (C), a 64-hex-digit challenge (QH64) and a 30-second time
 * step (T30S) in the data input. The challenge is the SHA-256 of the command's canonical bytes —
 * RFC 8785 (JCS) of every field except `otp` — so the OTP authorises this exact command: another
 * op, lock, argument, counter, hub or validity window gives another challenge. The time step is
 * that of `issuedAt`, which the canonical bytes cover too.
 */
export const OTP_SUITE = 'OCRA-1:HOTP-SHA256-8:C-QH64-T30S';
export const OTP_STEP_MS = 30_000;
const suite = parseOcraSuite(OTP_SUITE);

export { COMMAND_OPS, type CommandEnvelope, type CommandOp } from '../contract/mqtt-cloud-messages.js';

export type UnsignedCommand = Omit<CommandEnvelope, 'otp'>;

/** RFC 8785 canonical bytes of the command without its `otp`. */
export function canonicalBytes(cmd: UnsignedCommand | CommandEnvelope): Buffer {
  const { otp: _otp, ...rest } = cmd as CommandEnvelope;
  const text = canonicalize(rest);
  if (text === undefined) throw new HubError('otp.canonical', 'the command cannot be canonicalised');
  return Buffer.from(text, 'utf8');
}

/** The OCRA challenge: SHA-256 of the canonical bytes, 64 hex digits. */
export function challengeOf(cmd: UnsignedCommand | CommandEnvelope): string {
  return createHash('sha256').update(canonicalBytes(cmd)).digest('hex');
}

export function timeStepOf(isoTime: string): bigint {
  return BigInt(Math.floor(Date.parse(isoTime) / OTP_STEP_MS));
}

/** The OTP for a command (the cloud's side, and the hub's to compare). */
export function computeOtp(key: Secret, cmd: UnsignedCommand | CommandEnvelope): string {
  return ocraResponse(suite, {
    key: key.reveal(),
    counter: BigInt(cmd.counter),
    question: challengeOf(cmd),
    timestamp: timeStepOf(cmd.issuedAt),
  });
}

/** Constant-time: does `cmd.otp` authorise exactly this command? */
export function otpMatches(key: Secret, cmd: CommandEnvelope): boolean {
  return ocraResponsesEqual(computeOtp(key, cmd), cmd.otp);
}

export function signCommand(key: Secret, cmd: UnsignedCommand): CommandEnvelope {
  return { ...cmd, otp: computeOtp(key, cmd) };
}

/**
 * The setup code in an `attach` command travels sealed: ChaCha20-Poly1305 under a key derived
 * from the hub's OTP key (HKDF-SHA-256, info "iq-hub attach setup code v1"), with the command id
 * as associated data. Base64 of nonce (12) ‖ ciphertext ‖ tag (16).
 */
function setupCodeKey(otpKey: Secret): Buffer {
  return Buffer.from(hkdfSync('sha256', otpKey.reveal(), Buffer.alloc(0), 'iq-hub attach setup code v1', 32));
}

export function sealSetupCode(otpKey: Secret, cmdId: string, setupCode: string, random: Random): string {
  const nonce = Buffer.from(random.bytes(12));
  const c = createCipheriv('chacha20-poly1305', setupCodeKey(otpKey), nonce, { authTagLength: 16 });
  const plain = Buffer.from(setupCode, 'utf8');
  c.setAAD(Buffer.from(cmdId, 'utf8'), { plaintextLength: plain.length });
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64');
}

/**
 * Throws `otp.setup-code` when it is not a sealed setup code or does not open; the command is then
 * refused with the contract's `bad_request` (remote-commands.ts), whose message this one becomes.
 */
export function openSetupCode(otpKey: Secret, cmdId: string, sealed: string): string {
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length < 12 + 16 + 4 || raw.length > 12 + 16 + 64) {
    throw new HubError('otp.setup-code', 'args.setupCode is not a sealed setup code');
  }
  try {
    const d = createDecipheriv('chacha20-poly1305', setupCodeKey(otpKey), raw.subarray(0, 12), { authTagLength: 16 });
    d.setAAD(Buffer.from(cmdId, 'utf8'), { plaintextLength: raw.length - 28 });
    d.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('utf8');
  } catch {
    throw new HubError('otp.setup-code', 'args.setupCode does not open: it was not sealed for this hub and command');
  }
}
