import { sha256 } from '@noble/hashes/sha2.js';
import { HubError } from '../base/errors.js';
import type { Result } from '../base/result.js';

/**
 * The application messages carried inside the sealed channel, in a compact binary form.
 * Header: version (u8) ‖ type (u8) ‖ request id (u32 BE); then a body whose layout the type fixes.
 * All integers are big-endian. Decoding checks every field, bounds every length and accepts
 * exactly one encoding per message (no trailing bytes), so decode(x) succeeds only if
 * encode(decode(x)) === x. Input comes from a radio: decoding never throws.
 */

export const MESSAGE_VERSION = 1;
export const MAX_LINK_MESSAGE_LEN = 2048;
export const MAX_OPEN_MS = 600_000;
export const MAX_EVENTS_PER_BATCH = 16;
export const MAX_CREDENTIAL_ID_LEN = 64;

// Wire codes are the index in each list: append only, never reorder.
export const LOCK_MODES = ['normal', 'office', 'locked'] as const;
export const BOLT_STATES = ['locked', 'unlocked'] as const;
export const OPEN_METHODS = ['pin', 'tag', 'digitalKey', 'remote', 'inside', 'mechanical'] as const;
export const DENY_REASONS = [
  'unknown-credential',
  'expired',
  'outside-schedule',
  'locked-mode',
  'bad-signature',
  'lockout',
  'revoked',
  'blocked',
  'not-yet-valid',
  'no-right',
  'not-valid',
  'bad-proof',
  'wrong-lock',
  'replayed',
  'malformed',
  /** The lock could not reach its hub and the credential is not on its offline list. */
  'hub-unreachable',
] as const;
/**
 * The hub's answer to an access request: `granted`, or why not. Every reason but `granted` is
 * also a DENY_REASONS entry, so the lock logs the hub's reason as is.
 */
export const ACCESS_REASONS = [
  'granted',
  'unknown-credential',
  'revoked',
  'blocked',
  'not-yet-valid',
  'expired',
  'no-right',
  'not-valid',
  'outside-schedule',
  'bad-signature',
  'bad-proof',
  'wrong-lock',
  'replayed',
  'lockout',
  'malformed',
] as const;
export const CREDENTIAL_KINDS = ['pin', 'tag', 'digitalKey'] as const;
/** Credential digests on the link: a PIN verifier (HMAC-SHA-256) or a tag hash (SHA-256). */
export const DIGEST_LEN = 32;
export const CHALLENGE_LEN = 32;
/** A phone's presentation (UTF-8 JSON) as the lock forwards it. */
export const MAX_PRESENTATION_LEN = 1800;
/** Offline-list entries per setOffline request, and windows per entry. */
export const MAX_OFFLINE_PER_REQUEST = 4;
export const MAX_OFFLINE_REMOVALS = 24;
export const MAX_OFFLINE_WINDOWS = 16;
export const LOCK_ERROR_CODES = [
  'bad-request',
  'unsupported',
  'busy',
  'jammed',
  'battery-critical',
  'not-attached',
  'internal',
] as const;
/** Request type codes are index + 1; an ok response is 0x80 | request code. */
export const OPERATIONS = [
  'open',
  'lock',
  'setMode',
  'getState',
  'getEvents',
  'ackEvents',
  'setTime',
  'detach',
  'setOffline',
] as const;
const EVENT_TYPES = ['opened', 'denied', 'door', 'battery', 'tamper'] as const;
const TYPE_EVENT = 0x40;
/** Lock → hub: may this credential open me? Answered by TYPE_ACCESS_ANSWER with the same id. */
const TYPE_ACCESS = 0x30;
const TYPE_ACCESS_ANSWER = 0x31;
const TYPE_OK = 0x80;
const TYPE_ERROR = 0xc0;

export type LockMode = (typeof LOCK_MODES)[number];
export type BoltState = (typeof BOLT_STATES)[number];
export type OpenMethod = (typeof OPEN_METHODS)[number];
export type DenyReason = (typeof DENY_REASONS)[number];
export type LockErrorCode = (typeof LOCK_ERROR_CODES)[number];
export type AccessReason = (typeof ACCESS_REASONS)[number];
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

/** What a lock read at the door, as it asks the hub about it. */
export type LinkCredential =
  | { kind: 'pin'; verifier: Uint8Array }
  | { kind: 'tag'; hash: Uint8Array }
  | { kind: 'digitalKey'; challenge: Uint8Array; presentation: Uint8Array };

/**
 * One credential a lock may accept on its own, with the absolute intervals [from, until) in which
 * it may (the hub expands schedules in the site's time zone, so the lock needs no zone rules).
 */
export interface OfflineItem {
  kind: 'pin' | 'tag';
  credentialId: string;
  digest: Uint8Array;
  windows: { from: number; until: number }[];
}
export type Operation = (typeof OPERATIONS)[number];

export interface LockState {
  bolt: BoltState;
  mode: LockMode;
  doorOpen: boolean;
  batteryPercent: number;
  /** Sequence number of the lock's newest event (0 when none). */
  lastSeq: number;
  /** The lock's clock, Unix milliseconds. */
  time: number;
}

export type LockEventBody =
  | { type: 'opened'; by: OpenMethod; credentialId: string | null }
  | { type: 'denied'; reason: DenyReason; credentialId: string | null }
  | { type: 'door'; open: boolean }
  | { type: 'battery'; percent: number }
  | { type: 'tamper' };
/** `seq`: per-lock sequence number (u32); `at`: the lock's clock, Unix milliseconds. */
export type LockEvent = { seq: number; at: number } & LockEventBody;

export type Request =
  | { type: 'open'; id: number; durationMs: number }
  | { type: 'lock'; id: number }
  | { type: 'setMode'; id: number; mode: LockMode }
  | { type: 'getState'; id: number }
  | { type: 'getEvents'; id: number; sinceSeq: number }
  | { type: 'ackEvents'; id: number; uptoSeq: number }
  | { type: 'setTime'; id: number; unixMs: number }
  | { type: 'detach'; id: number }
  /**
   * Changes the lock's offline list in one step: with `reset`, the list is emptied first; then
   * `remove` (credential ids), then `upsert` (replacing an entry of the same id).
   */
  | { type: 'setOffline'; id: number; reset: boolean; remove: string[]; upsert: OfflineItem[] };

export type OpResult =
  | { op: 'open'; state: LockState }
  | { op: 'lock'; state: LockState }
  | { op: 'setMode'; state: LockState }
  | { op: 'getState'; state: LockState }
  | { op: 'getEvents'; events: LockEvent[]; more: boolean }
  | { op: 'ackEvents' }
  | { op: 'setTime' }
  | { op: 'detach' }
  /** `held`: entries on the list now; `capacity`: how many it can hold. */
  | { op: 'setOffline'; held: number; capacity: number; digest: Uint8Array };
export type OpResultFor<O extends Operation> = Extract<OpResult, { op: O }>;

export type Response =
  | { type: 'ok'; id: number; result: OpResult }
  | { type: 'error'; id: number; code: LockErrorCode };
/** Pushed by the lock, unsolicited; its request id on the wire is 0. */
export type EventPush = { type: 'event'; event: LockEvent };
/** Lock → hub, with the lock's own id (never 0); the lock resends it under the same id until answered. */
export type AccessRequest = { type: 'access'; id: number; credential: LinkCredential };
/** Hub → lock: the decision. `credentialId` names what was recognised (null when nothing was). */
export type AccessAnswer = {
  type: 'accessAnswer';
  id: number;
  grant: boolean;
  reason: AccessReason;
  credentialId: string | null;
};
export type LinkMessage = Request | Response | EventPush | AccessRequest | AccessAnswer;

export type FrameErrorCode = 'truncated' | 'oversize' | 'version' | 'unknown-type' | 'invalid-field' | 'trailing-bytes';
export interface FrameError {
  code: FrameErrorCode;
  /** Which field and why, for logs; never echoes the offending bytes. */
  message: string;
}
export type DecodeResult = Result<LinkMessage, FrameError>;

class Malformed extends Error {
  constructor(
    readonly code: FrameErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Throws `invalid-field` naming the field unless `ok`; a computed reason is built only then. */
function check(ok: boolean, field: string, why: string | (() => string)): void {
  if (!ok) throw new Malformed('invalid-field', `${field}: ${typeof why === 'string' ? why : why()}`);
}

function isUint(v: number, min: number, max: number): boolean {
  return Number.isSafeInteger(v) && v >= min && v <= max;
}

function isCredentialId(s: string): boolean {
  return s.length >= 1 && s.length <= MAX_CREDENTIAL_ID_LEN && /^[\x21-\x7e]+$/.test(s);
}

/** Bytes written into a buffer that grows as needed; a failed check names the field (the message is built only then). */
class Writer {
  #buf = new Uint8Array(128);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }

  #byte(v: number): void {
    this.#room(1);
    this.#buf[this.#len++] = v;
  }

  u8(v: number, field: string): void {
    check(isUint(v, 0, 0xff), field, 'must be an integer from 0 to 255');
    this.#byte(v);
  }

  u32(v: number, field: string, min = 0, max = 0xffff_ffff): void {
    check(isUint(v, min, max), field, () => `must be an integer from ${min} to ${max}`);
    this.#room(4);
    const b = this.#buf;
    b[this.#len++] = v >>> 24;
    b[this.#len++] = (v >>> 16) & 0xff;
    b[this.#len++] = (v >>> 8) & 0xff;
    b[this.#len++] = v & 0xff;
  }

  /** A u64 on the wire, limited to safe integers so it maps to a JS number exactly. */
  u64(v: number, field: string): void {
    check(isUint(v, 0, Number.MAX_SAFE_INTEGER), field, 'must be a non-negative safe integer');
    this.u32(Math.floor(v / 2 ** 32), field);
    this.u32(v % 2 ** 32, field);
  }

  bool(v: boolean, field: string): void {
    check(typeof v === 'boolean', field, 'must be a boolean');
    this.#byte(v ? 1 : 0);
  }

  choice<T extends string>(list: readonly T[], v: T, field: string): void {
    const code = list.indexOf(v);
    check(code >= 0, field, () => `must be one of ${list.join(', ')}`);
    this.#byte(code);
  }

  credentialId(v: string | null, field: string): void {
    if (v === null) {
      this.#byte(0);
      return;
    }
    check(typeof v === 'string' && isCredentialId(v), field, 'must be 1-64 printable ASCII characters or null');
    this.#room(1 + v.length);
    this.#buf[this.#len++] = v.length;
    for (let i = 0; i < v.length; i++) this.#buf[this.#len++] = v.charCodeAt(i);
  }

  bytes(v: Uint8Array, length: number, field: string): void {
    check(v instanceof Uint8Array && v.length === length, field, () => `must be ${length} bytes`);
    this.#room(length);
    this.#buf.set(v, this.#len);
    this.#len += length;
  }

  u16(v: number, field: string, min = 0, max = 0xffff): void {
    check(isUint(v, min, max), field, () => `must be an integer from ${min} to ${max}`);
    this.#room(2);
    this.#buf[this.#len++] = v >>> 8;
    this.#buf[this.#len++] = v & 0xff;
  }

  finish(limit = MAX_LINK_MESSAGE_LEN): Uint8Array {
    if (this.#len > limit) throw new Malformed('oversize', 'message exceeds the frame limit');
    return this.#buf.slice(0, this.#len);
  }
}

class Reader {
  readonly #b: Uint8Array;
  #pos = 0;

  constructor(bytes: Uint8Array) {
    this.#b = bytes;
  }

  u8(): number {
    const v = this.#b[this.#pos];
    if (v === undefined) throw new Malformed('truncated', `message ends at byte ${this.#pos}`);
    this.#pos += 1;
    return v;
  }

  u32(field: string, min = 0, max = 0xffff_ffff): number {
    const v = ((this.u8() << 24) | (this.u8() << 16) | (this.u8() << 8) | this.u8()) >>> 0;
    check(v >= min && v <= max, field, () => `must be from ${min} to ${max}`);
    return v;
  }

  u16(field: string, min = 0, max = 0xffff): number {
    const v = (this.u8() << 8) | this.u8();
    check(v >= min && v <= max, field, () => `must be from ${min} to ${max}`);
    return v;
  }

  bytes(length: number, field: string): Uint8Array {
    if (this.#pos + length > this.#b.length) throw new Malformed('truncated', `${field}: message ends early`);
    const v = this.#b.slice(this.#pos, this.#pos + length);
    this.#pos += length;
    return v;
  }

  u64(field: string): number {
    const hi = this.u32(field);
    const lo = this.u32(field);
    check(hi <= 0x1f_ffff, field, 'exceeds 2^53-1');
    return hi * 2 ** 32 + lo;
  }

  bool(field: string): boolean {
    const v = this.u8();
    check(v <= 1, field, 'must be 0 or 1');
    return v === 1;
  }

  choice<T extends string>(list: readonly T[], field: string): T {
    const v = list[this.u8()];
    check(v !== undefined, field, 'unknown code');
    return v as T;
  }

  credentialId(field: string): string | null {
    const length = this.u8();
    if (length === 0) return null;
    check(length <= MAX_CREDENTIAL_ID_LEN, field, () => `longer than ${MAX_CREDENTIAL_ID_LEN}`);
    let s = '';
    for (let i = 0; i < length; i++) {
      const c = this.u8();
      check(c >= 0x21 && c <= 0x7e, field, 'must be printable ASCII');
      s += String.fromCharCode(c);
    }
    return s;
  }

  end(): void {
    if (this.#pos !== this.#b.length)
      throw new Malformed('trailing-bytes', `${this.#b.length - this.#pos} unexpected bytes`);
  }
}

function writeState(w: Writer, s: LockState): void {
  w.choice(BOLT_STATES, s.bolt, 'state.bolt');
  w.choice(LOCK_MODES, s.mode, 'state.mode');
  w.bool(s.doorOpen, 'state.doorOpen');
  w.u8(s.batteryPercent, 'state.batteryPercent');
  check(s.batteryPercent <= 100, 'state.batteryPercent', 'must be at most 100');
  w.u32(s.lastSeq, 'state.lastSeq');
  w.u64(s.time, 'state.time');
}

function readState(r: Reader): LockState {
  const bolt = r.choice(BOLT_STATES, 'state.bolt');
  const mode = r.choice(LOCK_MODES, 'state.mode');
  const doorOpen = r.bool('state.doorOpen');
  const batteryPercent = r.u8();
  check(batteryPercent <= 100, 'state.batteryPercent', 'must be at most 100');
  return { bolt, mode, doorOpen, batteryPercent, lastSeq: r.u32('state.lastSeq'), time: r.u64('state.time') };
}

function writeEvent(w: Writer, e: LockEvent): void {
  w.choice(EVENT_TYPES, e.type, 'event.type');
  w.u32(e.seq, 'event.seq', 1);
  w.u64(e.at, 'event.at');
  switch (e.type) {
    case 'opened':
      w.choice(OPEN_METHODS, e.by, 'event.by');
      w.credentialId(e.credentialId, 'event.credentialId');
      break;
    case 'denied':
      w.choice(DENY_REASONS, e.reason, 'event.reason');
      w.credentialId(e.credentialId, 'event.credentialId');
      break;
    case 'door':
      w.bool(e.open, 'event.open');
      break;
    case 'battery':
      check(e.percent <= 100, 'event.percent', 'must be at most 100');
      w.u8(e.percent, 'event.percent');
      break;
    case 'tamper':
      break;
  }
}

function readEvent(r: Reader): LockEvent {
  const type = r.choice(EVENT_TYPES, 'event.type');
  const seq = r.u32('event.seq', 1);
  const at = r.u64('event.at');
  switch (type) {
    case 'opened':
      return {
        seq,
        at,
        type,
        by: r.choice(OPEN_METHODS, 'event.by'),
        credentialId: r.credentialId('event.credentialId'),
      };
    case 'denied': {
      const reason = r.choice(DENY_REASONS, 'event.reason');
      return { seq, at, type, reason, credentialId: r.credentialId('event.credentialId') };
    }
    case 'door':
      return { seq, at, type, open: r.bool('event.open') };
    case 'battery': {
      const percent = r.u8();
      check(percent <= 100, 'event.percent', 'must be at most 100');
      return { seq, at, type, percent };
    }
    case 'tamper':
      return { seq, at, type };
  }
}

function writeRequest(w: Writer, m: Request): void {
  switch (m.type) {
    case 'open':
      w.u32(m.durationMs, 'durationMs', 1, MAX_OPEN_MS);
      break;
    case 'setMode':
      w.choice(LOCK_MODES, m.mode, 'mode');
      break;
    case 'getEvents':
      w.u32(m.sinceSeq, 'sinceSeq');
      break;
    case 'ackEvents':
      w.u32(m.uptoSeq, 'uptoSeq');
      break;
    case 'setTime':
      w.u64(m.unixMs, 'unixMs');
      break;
    case 'setOffline':
      writeOffline(w, m);
      break;
    case 'lock':
    case 'getState':
    case 'detach':
      break;
  }
}

function writeOffline(w: Writer, m: Extract<Request, { type: 'setOffline' }>): void {
  w.bool(m.reset, 'reset');
  check(
    Array.isArray(m.remove) && m.remove.length <= MAX_OFFLINE_REMOVALS,
    'remove',
    `at most ${MAX_OFFLINE_REMOVALS}`,
  );
  w.u8(m.remove.length, 'remove.length');
  for (const id of m.remove) {
    check(id !== null, 'remove', 'a credential id');
    w.credentialId(id, 'remove');
  }
  check(
    Array.isArray(m.upsert) && m.upsert.length <= MAX_OFFLINE_PER_REQUEST,
    'upsert',
    `at most ${MAX_OFFLINE_PER_REQUEST}`,
  );
  w.u8(m.upsert.length, 'upsert.length');
  for (const item of m.upsert) writeOfflineItem(w, item);
}

/** One offline item as it travels in a setOffline upsert (and is hashed by offlineListDigest). */
function writeOfflineItem(w: Writer, item: OfflineItem): void {
  w.choice(['pin', 'tag'] as const, item.kind, 'upsert.kind');
  check(item.credentialId !== null, 'upsert.credentialId', 'required');
  w.credentialId(item.credentialId, 'upsert.credentialId');
  w.bytes(item.digest, DIGEST_LEN, 'upsert.digest');
  check(
    Array.isArray(item.windows) && item.windows.length >= 1 && item.windows.length <= MAX_OFFLINE_WINDOWS,
    'upsert.windows',
    `1 to ${MAX_OFFLINE_WINDOWS}`,
  );
  w.u8(item.windows.length, 'upsert.windows.length');
  for (const win of item.windows) {
    w.u64(win.from, 'window.from');
    w.u64(win.until, 'window.until');
    check(win.until > win.from, 'window', 'until must be after from');
  }
}

/**
 * SHA-256 of an offline list: its items in credential-id order, each encoded as in a setOffline
 * upsert. A lock answers every setOffline with the digest of what it then holds; the hub compares
 * it with the digest of the list it wants, so after a restart (when it does not know what a lock
 * holds) it sends nothing to a lock that is already up to date. Throws HubError `frame.invalid`
 * for an item that could not be sent.
 */
export function offlineListDigest(items: readonly OfflineItem[]): Uint8Array {
  const sorted = [...items].sort((a, b) =>
    a.credentialId < b.credentialId ? -1 : a.credentialId > b.credentialId ? 1 : 0,
  );
  const w = new Writer();
  try {
    for (const item of sorted) writeOfflineItem(w, item);
  } catch (e) {
    if (e instanceof Malformed) throw new HubError('frame.invalid', `Cannot hash the offline list: ${e.message}`);
    throw e;
  }
  return sha256(w.finish(Number.POSITIVE_INFINITY));
}

function readOffline(r: Reader, id: number): Request {
  const reset = r.bool('reset');
  const removals = r.u8();
  check(removals <= MAX_OFFLINE_REMOVALS, 'remove', () => `at most ${MAX_OFFLINE_REMOVALS}`);
  const remove: string[] = [];
  for (let i = 0; i < removals; i++) {
    const c = r.credentialId('remove');
    check(c !== null, 'remove', 'a credential id');
    remove.push(c as string);
  }
  const count = r.u8();
  check(count <= MAX_OFFLINE_PER_REQUEST, 'upsert', () => `at most ${MAX_OFFLINE_PER_REQUEST}`);
  const upsert: OfflineItem[] = [];
  for (let i = 0; i < count; i++) {
    const kind = r.choice(['pin', 'tag'] as const, 'upsert.kind');
    const credentialId = r.credentialId('upsert.credentialId');
    check(credentialId !== null, 'upsert.credentialId', 'required');
    const digest = r.bytes(DIGEST_LEN, 'upsert.digest');
    const n = r.u8();
    check(n >= 1 && n <= MAX_OFFLINE_WINDOWS, 'upsert.windows', () => `1 to ${MAX_OFFLINE_WINDOWS}`);
    const windows: { from: number; until: number }[] = [];
    for (let j = 0; j < n; j++) {
      const from = r.u64('window.from');
      const until = r.u64('window.until');
      check(until > from, 'window', 'until must be after from');
      windows.push({ from, until });
    }
    upsert.push({ kind, credentialId: credentialId as string, digest, windows });
  }
  return { type: 'setOffline', id, reset, remove, upsert };
}

function writeCredential(w: Writer, c: LinkCredential): void {
  w.choice(CREDENTIAL_KINDS, c.kind, 'credential.kind');
  switch (c.kind) {
    case 'pin':
      w.bytes(c.verifier, DIGEST_LEN, 'credential.verifier');
      break;
    case 'tag':
      w.bytes(c.hash, DIGEST_LEN, 'credential.hash');
      break;
    case 'digitalKey':
      w.bytes(c.challenge, CHALLENGE_LEN, 'credential.challenge');
      check(c.presentation instanceof Uint8Array, 'credential.presentation', 'must be bytes');
      w.u16(c.presentation.length, 'credential.presentation.length', 1, MAX_PRESENTATION_LEN);
      w.bytes(c.presentation, c.presentation.length, 'credential.presentation');
      break;
  }
}

function readCredential(r: Reader): LinkCredential {
  const kind = r.choice(CREDENTIAL_KINDS, 'credential.kind');
  switch (kind) {
    case 'pin':
      return { kind, verifier: r.bytes(DIGEST_LEN, 'credential.verifier') };
    case 'tag':
      return { kind, hash: r.bytes(DIGEST_LEN, 'credential.hash') };
    case 'digitalKey': {
      const challenge = r.bytes(CHALLENGE_LEN, 'credential.challenge');
      const length = r.u16('credential.presentation.length', 1, MAX_PRESENTATION_LEN);
      return { kind, challenge, presentation: r.bytes(length, 'credential.presentation') };
    }
  }
}

function readRequest(r: Reader, type: Operation, id: number): Request {
  switch (type) {
    case 'open':
      return { type, id, durationMs: r.u32('durationMs', 1, MAX_OPEN_MS) };
    case 'setMode':
      return { type, id, mode: r.choice(LOCK_MODES, 'mode') };
    case 'getEvents':
      return { type, id, sinceSeq: r.u32('sinceSeq') };
    case 'ackEvents':
      return { type, id, uptoSeq: r.u32('uptoSeq') };
    case 'setTime':
      return { type, id, unixMs: r.u64('unixMs') };
    case 'setOffline':
      return readOffline(r, id);
    case 'lock':
    case 'getState':
    case 'detach':
      return { type, id };
  }
}

function writeResult(w: Writer, result: OpResult): void {
  switch (result.op) {
    case 'open':
    case 'lock':
    case 'setMode':
    case 'getState':
      writeState(w, result.state);
      break;
    case 'getEvents':
      check(Array.isArray(result.events), 'events', 'must be an array');
      w.u8(result.events.length, 'events.length');
      check(result.events.length <= MAX_EVENTS_PER_BATCH, 'events', () => `at most ${MAX_EVENTS_PER_BATCH} per batch`);
      w.bool(result.more, 'more');
      for (const e of result.events) writeEvent(w, e);
      break;
    case 'setOffline':
      w.u16(result.held, 'held');
      w.u16(result.capacity, 'capacity');
      check(result.held <= result.capacity, 'held', 'must not exceed capacity');
      w.bytes(result.digest, DIGEST_LEN, 'digest');
      break;
    case 'ackEvents':
    case 'setTime':
    case 'detach':
      break;
  }
}

function readResult(r: Reader, op: Operation): OpResult {
  switch (op) {
    case 'open':
    case 'lock':
    case 'setMode':
    case 'getState':
      return { op, state: readState(r) };
    case 'getEvents': {
      const count = r.u8();
      check(count <= MAX_EVENTS_PER_BATCH, 'events', () => `at most ${MAX_EVENTS_PER_BATCH} per batch`);
      const more = r.bool('more');
      const events: LockEvent[] = [];
      for (let i = 0; i < count; i++) events.push(readEvent(r));
      return { op, events, more };
    }
    case 'setOffline': {
      const held = r.u16('held');
      const capacity = r.u16('capacity');
      check(held <= capacity, 'held', 'must not exceed capacity');
      return { op, held, capacity, digest: r.bytes(DIGEST_LEN, 'digest') };
    }
    case 'ackEvents':
    case 'setTime':
    case 'detach':
      return { op };
  }
}

function opCode(op: Operation): number {
  const index = OPERATIONS.indexOf(op);
  check(index >= 0, 'type', 'unknown operation');
  return index + 1;
}

/** Encodes one message. Throws HubError `frame.invalid` for a value out of range: a bug in the caller. */
/**
 * Requests and access answers travel hub → lock; responses, events and access requests lock → hub.
 * Each side refuses the other direction.
 */
export function isFromLock(m: LinkMessage): m is Response | EventPush | AccessRequest {
  return m.type === 'ok' || m.type === 'error' || m.type === 'event' || m.type === 'access';
}

export function encodeMessage(m: LinkMessage): Uint8Array {
  const w = new Writer();
  try {
    w.u8(MESSAGE_VERSION, 'version');
    if (m.type === 'event') {
      w.u8(TYPE_EVENT, 'type');
      w.u32(0, 'id');
      writeEvent(w, m.event);
    } else if (m.type === 'access') {
      w.u8(TYPE_ACCESS, 'type');
      w.u32(m.id, 'id', 1);
      writeCredential(w, m.credential);
    } else if (m.type === 'accessAnswer') {
      w.u8(TYPE_ACCESS_ANSWER, 'type');
      w.u32(m.id, 'id', 1);
      w.bool(m.grant, 'grant');
      w.choice(ACCESS_REASONS, m.reason, 'reason');
      check(m.grant === (m.reason === 'granted'), 'reason', 'granted exactly when grant is true');
      w.credentialId(m.credentialId, 'credentialId');
    } else if (m.type === 'ok') {
      w.u8(TYPE_OK | opCode(m.result.op), 'type');
      w.u32(m.id, 'id', 1);
      writeResult(w, m.result);
    } else if (m.type === 'error') {
      w.u8(TYPE_ERROR, 'type');
      w.u32(m.id, 'id', 1);
      w.choice(LOCK_ERROR_CODES, m.code, 'code');
    } else {
      w.u8(opCode(m.type), 'type');
      w.u32(m.id, 'id', 1);
      writeRequest(w, m);
    }
    return w.finish();
  } catch (e) {
    if (e instanceof Malformed) throw new HubError('frame.invalid', `Cannot encode link message: ${e.message}`);
    throw e;
  }
}

/** Decodes one message from untrusted bytes; never throws. */
export function decodeMessage(bytes: Uint8Array): DecodeResult {
  try {
    if (!(bytes instanceof Uint8Array)) throw new Malformed('invalid-field', 'input is not bytes');
    if (bytes.length > MAX_LINK_MESSAGE_LEN)
      throw new Malformed('oversize', `longer than ${MAX_LINK_MESSAGE_LEN} bytes`);
    const r = new Reader(bytes);
    const version = r.u8();
    if (version !== MESSAGE_VERSION) throw new Malformed('version', `version ${version} is not ${MESSAGE_VERSION}`);
    const type = r.u8();
    const id = r.u32('id');
    let message: LinkMessage;
    const op = OPERATIONS[(type & 0x3f) - 1];
    if (type === TYPE_EVENT) {
      check(id === 0, 'id', 'must be 0 for a pushed event');
      message = { type: 'event', event: readEvent(r) };
    } else if (type === TYPE_ACCESS) {
      check(id !== 0, 'id', 'must not be 0 in an access request');
      message = { type: 'access', id, credential: readCredential(r) };
    } else if (type === TYPE_ACCESS_ANSWER) {
      check(id !== 0, 'id', 'must not be 0 in an access answer');
      const grant = r.bool('grant');
      const reason = r.choice(ACCESS_REASONS, 'reason');
      check(grant === (reason === 'granted'), 'reason', 'granted exactly when grant is true');
      message = { type: 'accessAnswer', id, grant, reason, credentialId: r.credentialId('credentialId') };
    } else if (type === TYPE_ERROR) {
      check(id !== 0, 'id', 'must not be 0 in a response');
      message = { type: 'error', id, code: r.choice(LOCK_ERROR_CODES, 'code') };
    } else if (op !== undefined && (type & 0xc0) === TYPE_OK) {
      check(id !== 0, 'id', 'must not be 0 in a response');
      message = { type: 'ok', id, result: readResult(r, op) };
    } else if (op !== undefined && (type & 0xc0) === 0) {
      check(id !== 0, 'id', 'must not be 0 in a request');
      message = readRequest(r, op, id);
    } else {
      throw new Malformed('unknown-type', `unknown message type 0x${type.toString(16).padStart(2, '0')}`);
    }
    r.end();
    return { ok: true, value: message };
  } catch (e) {
    if (e instanceof Malformed) return { ok: false, error: { code: e.code, message: e.message } };
    return { ok: false, error: { code: 'invalid-field', message: 'undecodable message' } };
  }
}
