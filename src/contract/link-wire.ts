import { MAX_CREDENTIAL_ID_LEN, MAX_LINK_MESSAGE_LEN } from './link-messages.js';

/**
 * The field-level reader and writer of link messages. Every body layout (link-bodies.ts,
 * link-offline.ts) goes through these, so bounds checks, big-endian order and the one typed error
 * for malformed input live in one place instead of one copy per message type.
 */

export type FrameErrorCode = 'truncated' | 'oversize' | 'version' | 'unknown-type' | 'invalid-field' | 'trailing-bytes';
export interface FrameError {
  code: FrameErrorCode;
  /** Which field and why, for logs; never echoes the offending bytes. */
  message: string;
}

/** Raised only inside the codec: encoding turns it into HubError `frame.invalid`, decoding into a FrameError result. */
export class Malformed extends Error {
  constructor(
    readonly code: FrameErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Throws `invalid-field` naming the field unless `ok`; a computed reason is built only then. */
export function check(ok: boolean, field: string, why: string | (() => string)): void {
  if (!ok) throw new Malformed('invalid-field', `${field}: ${typeof why === 'string' ? why : why()}`);
}

function isUint(v: number, min: number, max: number): boolean {
  return Number.isSafeInteger(v) && v >= min && v <= max;
}

function isCredentialId(s: string): boolean {
  return s.length >= 1 && s.length <= MAX_CREDENTIAL_ID_LEN && /^[\x21-\x7e]+$/.test(s);
}

/** Bytes written into a buffer that grows as needed; a failed check names the field (the message is built only then). */
export class Writer {
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

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  finish(limit = MAX_LINK_MESSAGE_LEN): Uint8Array {
    if (this.#len > limit) throw new Malformed('oversize', 'message exceeds the frame limit');
    return this.#buf.slice(0, this.#len);
  }
}

/** Untrusted bytes read field by field: running past the end or out of a field's range is a Malformed naming the field. */
export class Reader {
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
