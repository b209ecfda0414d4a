import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { HubError } from '../base/errors.js';

/**
 * RFC 6287 — OCRA, the OATH Challenge-Response Algorithm.
 *
 *   OCRASuite = Algorithm ":" CryptoFunction ":" DataInput
 *   Algorithm = "OCRA-1"
 *   CryptoFunction = "HOTP-" H "-" t      H ∈ {SHA1, SHA256, SHA512}, t ∈ {0, 4..10}
 *   DataInput = ["C-"] "Q" F xx ["-P" H] ["-S" nnn] ["-T" G]   (in that order)
 *
 *   response = Truncate_t(HMAC-H(K, suite ‖ 0x00 ‖ C ‖ Q ‖ P ‖ S ‖ T))
 *
 * where C is an 8-byte big-endian counter, Q the challenge in 128 bytes (right-padded with
 * zeros), P the hash of the PIN/password, S the session information in nnn bytes (left-padded
 * with zeros, as the RFC's reference implementation does) and T an 8-byte big-endian count of
 * time steps since the Unix epoch. Fields the suite does not name are absent, not zero.
 *
 * The suite is parsed strictly: canonical upper case, every component explicit (no defaults),
 * each data input at most once and in the order above. Nothing secret (key, password hash,
 * session) ever appears in an error message.
 */

export type OcraHash = 'SHA1' | 'SHA256' | 'SHA512';

/** A: alphanumeric (ASCII bytes), N: numeric (decimal → hex), H: hexadecimal. */
export type OcraQuestionFormat = 'A' | 'N' | 'H';

export interface OcraSuite {
  /** The suite string exactly as given; these bytes start the DataInput. */
  readonly text: string;
  readonly version: 1;
  /** Hash of the HMAC. */
  readonly hash: OcraHash;
  /** Truncation: 4-10 decimal digits, or 0 for no truncation (the whole HMAC, in lower-case hex). */
  readonly digits: number;
  /** Whether the DataInput carries an 8-byte counter (C). */
  readonly counter: boolean;
  /** Q{F}{xx}: format and the maximum length of each challenge, in characters. */
  readonly question: { readonly format: OcraQuestionFormat; readonly maxLength: number };
  /** P{H}: the hash of the PIN/password, or undefined when the suite carries none. */
  readonly password: OcraHash | undefined;
  /** S{nnn}: the session information length in bytes, or undefined. */
  readonly sessionLength: number | undefined;
  /** T{G}: the time step in seconds, or undefined when the suite carries no timestamp. */
  readonly timeStepSeconds: number | undefined;
}

export interface OcraInput {
  /** The shared secret (at least 16 bytes). Never logged, never part of an error message. */
  readonly key: Uint8Array;
  /** C: required if and only if the suite has C. 0 ≤ counter < 2^64. */
  readonly counter?: bigint | number;
  /**
   * Q: the challenge in the suite's format. Two challenges (mutual challenge-response: the
   * other party's first, then one's own) are concatenated as text before encoding; each must
   * fit the suite's length.
   */
  readonly question: string | readonly string[];
  /** P: the hash of the PIN/password (see {@link ocraPasswordHash}); required iff the suite has P. */
  readonly passwordHash?: Uint8Array;
  /** S: session information, at most the suite's nnn bytes; required iff the suite has S. */
  readonly session?: Uint8Array;
  /** T: the number of time steps since the Unix epoch (see {@link ocraTimeStep}); required iff the suite has T. */
  readonly timestamp?: bigint | number;
}

const HASH_NAMES: Record<OcraHash, string> = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };
const HASH_LENGTHS: Record<OcraHash, number> = { SHA1: 20, SHA256: 32, SHA512: 64 };
const QUESTION_BYTES = 128;
const MIN_KEY_BYTES = 16;
const MAX_UINT64 = (1n << 64n) - 1n;
const SUITE_HINT = 'an OCRA suite looks like OCRA-1:HOTP-SHA256-8:C-QH64-T30S (RFC 6287 section 6)';

function suiteError(suite: string, what: string): HubError {
  return new HubError('ocra.suite-invalid', `OCRA suite ${quote(suite)} is invalid: ${what}`, { hint: SUITE_HINT });
}

function inputError(suite: OcraSuite, what: string, hint?: string): HubError {
  return new HubError(
    'ocra.input-invalid',
    `OCRA input for suite ${suite.text} is invalid: ${what}`,
    hint === undefined ? {} : { hint },
  );
}

/** Quotes a piece of a suite for a message, shortened so an accident never prints a long string. */
function quote(s: string): string {
  const short = s.length > 48 ? `${s.slice(0, 48)}…` : s;
  return JSON.stringify(short);
}

function parseHashName(name: string): OcraHash | undefined {
  return name === 'SHA1' || name === 'SHA256' || name === 'SHA512' ? name : undefined;
}

/** Parses and validates an OCRA suite string; throws a HubError (`ocra.suite-invalid`) naming what is wrong. */
export function parseOcraSuite(text: string): OcraSuite {
  if (typeof text !== 'string') {
    throw new HubError('ocra.suite-invalid', `OCRA suite must be a string, got ${typeof text}`, { hint: SUITE_HINT });
  }
  const parts = text.split(':');
  if (parts.length !== 3) {
    throw suiteError(
      text,
      `it must have three parts, Algorithm:CryptoFunction:DataInput, separated by ':' (found ${parts.length})`,
    );
  }
  const [algorithm, cryptoFunction, dataInput] = parts as [string, string, string];

  const alg = /^OCRA-(\d+)$/.exec(algorithm);
  if (!alg) throw suiteError(text, `the algorithm ${quote(algorithm)} is not of the form OCRA-v`);
  if (alg[1] !== '1') throw suiteError(text, `version ${quote(alg[1] ?? '')} is not supported; only OCRA-1 is defined`);

  const cf = /^HOTP-([A-Z0-9]+)-(\d+)$/.exec(cryptoFunction);
  if (!cf) throw suiteError(text, `the crypto function ${quote(cryptoFunction)} is not of the form HOTP-H-t`);
  const hash = parseHashName(cf[1] ?? '');
  if (!hash) throw suiteError(text, `the HMAC hash ${quote(cf[1] ?? '')} is not one of SHA1, SHA256, SHA512`);
  const digitsText = cf[2] ?? '';
  const digits = Number(digitsText);
  if (!/^(0|[1-9]\d?)$/.test(digitsText) || (digits !== 0 && (digits < 4 || digits > 10))) {
    throw suiteError(text, `the truncation ${quote(digitsText)} must be 0 (none) or 4 to 10 digits`);
  }

  const tokens = dataInput.split('-');
  let i = 0;
  const counter = tokens[i] === 'C';
  if (counter) i++;

  const qToken = tokens[i];
  if (qToken === undefined || !qToken.startsWith('Q')) {
    throw suiteError(
      text,
      `the data input ${quote(dataInput)} must contain the challenge QFxx` + (counter ? ' right after C' : ' first'),
    );
  }
  const q = /^Q([ANH])(\d\d)$/.exec(qToken);
  if (!q) {
    throw suiteError(
      text,
      `the challenge ${quote(qToken)} is not of the form QFxx with F one of A, N, H and two digits`,
    );
  }
  const maxLength = Number(q[2]);
  if (maxLength < 4 || maxLength > 64) {
    throw suiteError(text, `the challenge length ${q[2]} in ${quote(qToken)} must be between 04 and 64`);
  }
  const question = { format: q[1] as OcraQuestionFormat, maxLength };
  i++;

  let password: OcraHash | undefined;
  let sessionLength: number | undefined;
  let timeStepSeconds: number | undefined;
  // Optional fields, each at most once and in this order.
  let order = 0;
  for (; i < tokens.length; i++) {
    const token = tokens[i] ?? '';
    const kind = token.charAt(0);
    const rank = kind === 'P' ? 1 : kind === 'S' ? 2 : kind === 'T' ? 3 : 0;
    if (rank === 0) {
      throw suiteError(
        text,
        `unexpected data input ${quote(token)}; after QFxx only PH, Snnn and TG may follow, in that order` +
          (token === 'C' ? ' (C must come first)' : ''),
      );
    }
    if (rank <= order) {
      throw suiteError(
        text,
        `data input ${quote(token)} is repeated or out of order; the order is [C]-QFxx-[PH]-[Snnn]-[TG]`,
      );
    }
    order = rank;
    if (kind === 'P') {
      const h = parseHashName(token.slice(1));
      if (!h) throw suiteError(text, `the password input ${quote(token)} must be PSHA1, PSHA256 or PSHA512`);
      password = h;
    } else if (kind === 'S') {
      const s = /^S(\d{3})$/.exec(token);
      const n = Number(s?.[1]);
      if (!s || n < 1)
        throw suiteError(text, `the session input ${quote(token)} must be S followed by three digits, 001 to 999`);
      sessionLength = n;
    } else {
      const t = /^T([1-9]\d?)([SMH])$/.exec(token);
      if (!t) {
        throw suiteError(
          text,
          `the timestamp input ${quote(token)} must be T followed by a time step such as 30S, 1M or 24H`,
        );
      }
      const n = Number(t[1]);
      const unit = t[2];
      if (unit === 'H' ? n > 48 : n > 59) {
        throw suiteError(text, `the time step in ${quote(token)} must be 1-59 seconds, 1-59 minutes or 1-48 hours`);
      }
      timeStepSeconds = n * (unit === 'S' ? 1 : unit === 'M' ? 60 : 3600);
    }
  }

  return { text, version: 1, hash, digits, counter, question, password, sessionLength, timeStepSeconds };
}

function toSuite(suite: OcraSuite | string): OcraSuite {
  return typeof suite === 'string' ? parseOcraSuite(suite) : suite;
}

function uint64(suite: OcraSuite, name: string, value: unknown): Buffer {
  let v: bigint;
  if (typeof value === 'bigint') {
    v = value;
  } else if (typeof value === 'number' && Number.isSafeInteger(value)) {
    v = BigInt(value);
  } else {
    throw inputError(suite, `${name} must be a non-negative integer (a bigint, or a number up to 2^53-1)`);
  }
  if (v < 0n || v > MAX_UINT64) throw inputError(suite, `${name} must be between 0 and 2^64-1`);
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(v);
  return out;
}

function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

/** Encodes the challenge(s) into the 128-byte Q field. */
function encodeQuestion(suite: OcraSuite, question: unknown): Buffer {
  const parts = typeof question === 'string' ? [question] : Array.isArray(question) ? (question as unknown[]) : null;
  if (parts === null || parts.length < 1 || parts.length > 2) {
    throw inputError(suite, 'question must be a string, or two strings for mutual challenge-response');
  }
  const { format, maxLength } = suite.question;
  const pattern = format === 'N' ? /^[0-9]+$/ : format === 'H' ? /^[0-9A-Fa-f]+$/ : /^[0-9A-Za-z]+$/;
  const kind =
    format === 'N' ? 'decimal digits' : format === 'H' ? 'hexadecimal digits' : 'letters and digits (A-Z, a-z, 0-9)';
  for (const [n, part] of parts.entries()) {
    const which = parts.length === 1 ? 'the challenge' : `challenge ${n + 1}`;
    if (typeof part !== 'string' || part.length === 0) throw inputError(suite, `${which} must be a non-empty string`);
    if (part.length > maxLength) {
      throw inputError(suite, `${which} has ${part.length} characters; the suite allows at most ${maxLength}`);
    }
    if (!pattern.test(part)) throw inputError(suite, `${which} must consist of ${kind} only (format Q${format})`);
  }
  const text = (parts as string[]).join('');

  let bytes: Buffer;
  if (format === 'A') {
    bytes = Buffer.from(text, 'latin1');
  } else {
    // N: the decimal number in hexadecimal (BigInt: no precision loss past 2^53). Both N and H
    // are placed as hex digits from the left and padded with '0' to 256 digits, exactly as the
    // RFC's reference implementation does, so an odd number of digits ends in a zero nibble.
    const hex = format === 'N' ? BigInt(text).toString(16) : text;
    if (hex.length > QUESTION_BYTES * 2) {
      throw inputError(suite, `the challenge needs ${Math.ceil(hex.length / 2)} bytes; Q holds at most 128`);
    }
    return Buffer.from(hex.padEnd(QUESTION_BYTES * 2, '0'), 'hex');
  }
  if (bytes.length > QUESTION_BYTES) {
    throw inputError(suite, `the challenge needs ${bytes.length} bytes; Q holds at most 128`);
  }
  const out = Buffer.alloc(QUESTION_BYTES);
  bytes.copy(out);
  return out;
}

/**
 * Builds the DataInput: suite ‖ 0x00 ‖ C ‖ Q ‖ P ‖ S ‖ T, with exactly the fields the suite names.
 * Throws `ocra.input-invalid` when a field the suite names is missing or malformed, or when an
 * input is given that the suite does not use (a binding the caller believes in must not be
 * silently dropped).
 */
export function ocraDataInput(suite: OcraSuite | string, input: Omit<OcraInput, 'key'>): Buffer {
  const s = toSuite(suite);
  const fields: Buffer[] = [Buffer.from(s.text, 'latin1'), Buffer.alloc(1)];

  if (s.counter) {
    if (input.counter === undefined) throw inputError(s, 'the suite has C but no counter was given');
    fields.push(uint64(s, 'counter', input.counter));
  } else if (input.counter !== undefined) {
    throw inputError(s, 'a counter was given but the suite has no C');
  }

  fields.push(encodeQuestion(s, input.question));

  if (s.password !== undefined) {
    const p = input.passwordHash;
    if (p === undefined) throw inputError(s, `the suite has P${s.password} but no password hash was given`);
    if (!isBytes(p)) throw inputError(s, 'the password hash must be a Uint8Array');
    const want = HASH_LENGTHS[s.password];
    if (p.length !== want) {
      throw inputError(
        s,
        `the password hash has ${p.length} bytes; P${s.password} needs ${want}`,
        'pass the hash of the PIN (ocraPasswordHash), not the PIN itself',
      );
    }
    fields.push(Buffer.from(p));
  } else if (input.passwordHash !== undefined) {
    throw inputError(s, 'a password hash was given but the suite has no P');
  }

  if (s.sessionLength !== undefined) {
    const v = input.session;
    if (v === undefined) throw inputError(s, 'the suite has S but no session information was given');
    if (!isBytes(v)) throw inputError(s, 'the session information must be a Uint8Array');
    if (v.length > s.sessionLength) {
      throw inputError(s, `the session information has ${v.length} bytes; the suite allows at most ${s.sessionLength}`);
    }
    const field = Buffer.alloc(s.sessionLength);
    field.set(v, s.sessionLength - v.length);
    fields.push(field);
  } else if (input.session !== undefined) {
    throw inputError(s, 'session information was given but the suite has no S');
  }

  if (s.timeStepSeconds !== undefined) {
    if (input.timestamp === undefined) throw inputError(s, 'the suite has T but no timestamp was given');
    fields.push(uint64(s, 'timestamp (time steps since the epoch)', input.timestamp));
  } else if (input.timestamp !== undefined) {
    throw inputError(s, 'a timestamp was given but the suite has no T');
  }

  return Buffer.concat(fields);
}

/** Computes the OCRA response: decimal digits, or lower-case hex of the whole HMAC when the suite truncates to 0. */
export function ocraResponse(suite: OcraSuite | string, input: OcraInput): string {
  const s = toSuite(suite);
  const key: unknown = input.key;
  if (!isBytes(key)) throw inputError(s, 'the key must be a Uint8Array');
  if (key.length < MIN_KEY_BYTES) {
    throw inputError(s, `the key is too short (${key.length} bytes; at least ${MIN_KEY_BYTES} are required)`);
  }
  const data = ocraDataInput(s, input);
  const mac = createHmac(HASH_NAMES[s.hash], key).update(data).digest();
  if (s.digits === 0) return mac.toString('hex');
  // Dynamic truncation (RFC 4226 section 5.3), on the last byte of whichever HMAC.
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return (binary % 10 ** s.digits).toString().padStart(s.digits, '0');
}

/**
 * Compares two responses in constant time. Responses of different length are unequal; the
 * comparison still runs (against itself) so that neither content nor position of a difference
 * shows in the timing. Only the length, which the suite makes public anyway, can.
 */
export function ocraResponsesEqual(expected: string, candidate: string): boolean {
  if (typeof expected !== 'string' || typeof candidate !== 'string') return false;
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(candidate, 'utf8');
  if (a.length !== b.length) {
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/**
 * Verifies a response against the inputs, in constant time. Returns false for a wrong or
 * malformed response; throws `ocra.suite-invalid` / `ocra.input-invalid` for bad suites or
 * inputs (those are the caller's mistakes, not the peer's).
 */
export function verifyOcraResponse(suite: OcraSuite | string, input: OcraInput, response: string): boolean {
  const expected = ocraResponse(suite, input);
  return ocraResponsesEqual(expected, response);
}

/** The time-step count T for a moment (milliseconds since the Unix epoch): floor(seconds / step). */
export function ocraTimeStep(suite: OcraSuite | string, unixMs: number): bigint {
  const s = toSuite(suite);
  if (s.timeStepSeconds === undefined) throw inputError(s, 'the suite has no T, so it has no time step');
  if (!Number.isFinite(unixMs) || unixMs < 0) {
    throw inputError(s, 'the time must be a finite, non-negative number of milliseconds since the epoch');
  }
  return BigInt(Math.floor(unixMs)) / BigInt(s.timeStepSeconds * 1000);
}

/** Hashes a PIN/password (UTF-8) with the suite's P hash, giving the P field. */
export function ocraPasswordHash(suite: OcraSuite | string, password: string): Buffer {
  const s = toSuite(suite);
  if (s.password === undefined) throw inputError(s, 'the suite has no P, so no password hash is used');
  if (typeof password !== 'string') throw inputError(s, 'the password must be a string');
  return createHash(HASH_NAMES[s.password]).update(password, 'utf8').digest();
}
