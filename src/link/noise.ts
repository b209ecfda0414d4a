import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
} from 'node:crypto';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';

/**
 * The Noise Protocol Framework (revision 34), restricted to what the lock link needs:
 * Noise_{NN,KK,IK,XX}_25519_ChaChaPoly_SHA256. Names follow the specification so that a reader
 * can check each step against it. No PSK, no fallback, no rekey.
 */

export type NoisePattern = 'NN' | 'KK' | 'IK' | 'XX';
type Token = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss';

export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

export const DHLEN = 32;
export const TAGLEN = 16;
/** Every Noise message, handshake or transport, is at most this long (spec §3). */
export const MAX_MESSAGE_LEN = 65535;
/** Written payloads are bounded so that the largest message (e, encrypted s, tag) still fits. */
export const MAX_HANDSHAKE_PAYLOAD = MAX_MESSAGE_LEN - DHLEN - (DHLEN + TAGLEN) - TAGLEN;
/** The prologue both ends of the lock link use (ASCII); another link version fails the handshake. */
export const LINK_PROLOGUE = 'iq-link/1';
/** 2^64-1 is reserved by the spec; a cipher state refuses to use it. */
export const MAX_NONCE = 2n ** 64n - 1n;

interface PatternDef {
  /** Pre-messages: whose static key the other side knows before the first message. */
  readonly preInitiator: boolean;
  readonly preResponder: boolean;
  readonly messages: readonly (readonly Token[])[];
}

const PATTERNS: Readonly<Record<NoisePattern, PatternDef>> = {
  NN: { preInitiator: false, preResponder: false, messages: [['e'], ['e', 'ee']] },
  KK: {
    preInitiator: true,
    preResponder: true,
    messages: [
      ['e', 'es', 'ss'],
      ['e', 'ee', 'se'],
    ],
  },
  IK: {
    preInitiator: false,
    preResponder: true,
    messages: [
      ['e', 'es', 's', 'ss'],
      ['e', 'ee', 'se'],
    ],
  },
  XX: { preInitiator: false, preResponder: false, messages: [['e'], ['e', 'ee', 's', 'es'], ['s', 'se']] },
};

// X25519 through node:crypto (OpenSSL): about 30 times faster than pure JavaScript here, which
// is what a reconnect storm on a large site spends its time on. A raw 32-byte secret key is wrapped
// in its fixed PKCS#8 DER prefix (RFC 8410); the copy is wiped once OpenSSL has read it. Public
// keys go in and out as JWK: OpenSSL 3's DER decoders and encoders cost ~0.2 ms per key here,
// JWK ~0.04 ms (import) and ~0.01 ms (export). Secret keys stay on DER (~0.9 ms): a JWK's `d`
// would be a JavaScript string of the secret, which cannot be wiped. A handshake turns each of its
// secret keys into a KeyObject once (`#keyObjects`), not once per DH.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

function privateKeyObject(secretKey: Uint8Array): KeyObject {
  const der = Buffer.concat([PKCS8_X25519, secretKey]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64url');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
}

function publicKeyOf(privateKey: KeyObject): Uint8Array {
  const { x } = createPublicKey(privateKey).export({ format: 'jwk' });
  const raw = new Uint8Array(Buffer.from(x ?? '', 'base64url'));
  if (raw.length !== DHLEN)
    throw new HubError('noise.config', 'node:crypto gave an X25519 public key of the wrong size');
  return raw;
}

export function keyPairFromSecret(secretKey: Uint8Array): KeyPair {
  if (secretKey.length !== DHLEN) throw new HubError('noise.config', `An X25519 secret key must be ${DHLEN} bytes`);
  return { secretKey: secretKey.slice(), publicKey: publicKeyOf(privateKeyObject(secretKey)) };
}

export function generateKeyPair(random: Random): KeyPair {
  return keyPairFromSecret(random.bytes(DHLEN));
}

function dh(localPrivate: KeyObject, remotePublic: Uint8Array): Uint8Array {
  try {
    const publicKey = publicKeyObject(remotePublic);
    const shared = new Uint8Array(diffieHellman({ privateKey: localPrivate, publicKey }));
    // A low-order public key gives the all-zero output (RFC 7748 §6.1); OpenSSL may return it or throw.
    if (shared.every((b) => b === 0)) throw new Error('all-zero X25519 output');
    return shared;
  } catch (cause) {
    throw new HubError('noise.dh', 'The peer sent an invalid X25519 public key (low-order point)', {
      hint: 'Abort this handshake; the peer is faulty or hostile.',
      cause,
    });
  }
}

// SHA-256 and HMAC through node:crypto (OpenSSL), like the AEAD and X25519 here: @noble/hashes in
// JavaScript cost 3 times as much with V8's JIT and 20-80 times as much interpreted (--jitless,
// --lite-mode: docs/operations.md, "Memory"). Both return a plain Uint8Array of their own: a
// Buffer's slice() is a view, and the callers below copy keys with slice() and then wipe them.

/** Copies a digest out of node's Buffer (then wiped) into a Uint8Array of its own. */
function own(digest: Buffer): Uint8Array {
  const out = new Uint8Array(digest);
  digest.fill(0);
  return out;
}

/** HASH(a || b ...) of the spec (§4.2): SHA-256 over the parts in order. */
function hash(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return own(h.digest());
}

/** HMAC-HASH(key, a || b ...) (§4.3). */
function hmacHash(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return own(h.digest());
}

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);

/** HKDF as the spec defines it (§4.3), with two outputs: HMAC-SHA256 chaining key and key. */
function hkdf2(chainingKey: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const temp = hmacHash(chainingKey, ikm);
  const out1 = hmacHash(temp, ONE);
  const out2 = hmacHash(temp, out1, TWO);
  temp.fill(0);
  return [out1, out2];
}

/** Spec §5.1. The key never leaves the object; `encryptAt`/`decryptAt` serve the transport's explicit counters. */
export class CipherState {
  readonly #k: Uint8Array | undefined;
  #n = 0n;

  constructor(key?: Uint8Array) {
    if (key !== undefined && key.length !== 32) throw new HubError('noise.config', 'A cipher key must be 32 bytes');
    this.#k = key?.slice();
  }

  hasKey(): boolean {
    return this.#k !== undefined;
  }

  get nonce(): bigint {
    return this.#n;
  }

  setNonce(n: bigint): void {
    this.#n = n;
  }

  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (this.#k === undefined) return plaintext.slice();
    const out = this.encryptAt(this.#n, ad, plaintext);
    this.#n += 1n;
    return out;
  }

  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (this.#k === undefined) return ciphertext.slice();
    const out = this.decryptAt(this.#n, ad, ciphertext);
    if (out === undefined) {
      throw new HubError('noise.decrypt', 'A Noise message failed authentication', {
        hint: 'The message was altered, or the peer holds different keys; abort this session.',
      });
    }
    this.#n += 1n;
    return out;
  }

  /** ENCRYPT(k, n, ad, plaintext) at an explicit nonce; does not touch the internal nonce. */
  encryptAt(n: bigint, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (this.#k === undefined) throw new HubError('noise.state', 'This cipher state has no key yet');
    if (n < 0n || n >= MAX_NONCE) {
      throw new HubError('noise.nonce', 'The cipher state has used every nonce', { hint: 'Run a new handshake.' });
    }
    const c = createCipheriv('chacha20-poly1305', this.#k, nonceBytes(n), { authTagLength: TAGLEN });
    c.setAAD(ad, { plaintextLength: plaintext.length });
    const body = c.update(plaintext);
    c.final();
    const out = new Uint8Array(body.length + TAGLEN);
    out.set(body);
    out.set(c.getAuthTag(), body.length);
    return out;
  }

  /** DECRYPT at an explicit nonce; `undefined` when authentication fails (no exception for the caller to catch). */
  decryptAt(n: bigint, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array | undefined {
    if (this.#k === undefined || n < 0n || n >= MAX_NONCE || ciphertext.length < TAGLEN) return undefined;
    const end = ciphertext.length - TAGLEN;
    try {
      const d = createDecipheriv('chacha20-poly1305', this.#k, nonceBytes(n), { authTagLength: TAGLEN });
      d.setAAD(ad, { plaintextLength: end });
      d.setAuthTag(ciphertext.subarray(end));
      const body = d.update(ciphertext.subarray(0, end));
      d.final();
      return new Uint8Array(body.buffer, body.byteOffset, body.length).slice();
    } catch {
      return undefined;
    }
  }
}

/** ChaChaPoly nonce: 32 bits of zeros, then n as 64-bit little-endian (spec §12.3). */
function nonceBytes(n: bigint): Uint8Array {
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setBigUint64(4, n, true);
  return nonce;
}

/** Spec §5.2. */
class SymmetricState {
  #ck: Uint8Array;
  #h: Uint8Array;
  #cs = new CipherState();

  constructor(protocolName: string) {
    const name = new TextEncoder().encode(protocolName);
    this.#h = name.length <= 32 ? concatBytes(name, new Uint8Array(32 - name.length)) : hash(name);
    this.#ck = this.#h.slice();
  }

  get h(): Uint8Array {
    return this.#h.slice();
  }

  hasKey(): boolean {
    return this.#cs.hasKey();
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, k] = hkdf2(this.#ck, ikm);
    this.#ck = ck;
    this.#cs = new CipherState(k);
    k.fill(0);
  }

  mixHash(data: Uint8Array): void {
    this.#h = hash(this.#h, data);
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.#cs.encryptWithAd(this.#h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.#cs.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Returns (initiator → responder, responder → initiator) and forgets the chaining key. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf2(this.#ck, new Uint8Array(0));
    this.#ck.fill(0);
    const pair: [CipherState, CipherState] = [new CipherState(k1), new CipherState(k2)];
    k1.fill(0);
    k2.fill(0);
    return pair;
  }
}

export interface HandshakeOptions {
  pattern: NoisePattern;
  initiator: boolean;
  prologue?: Uint8Array;
  /** Local static key pair (KK, IK, XX). */
  s?: KeyPair;
  /** Remote static public key known in advance (KK both sides, IK initiator). */
  rs?: Uint8Array;
  /** Fixed ephemeral key pair, for known-answer tests only; otherwise drawn from `random`. */
  e?: KeyPair;
  random: Random;
}

/** The two directions of the session, from this side's point of view. */
export interface TransportCiphers {
  send: CipherState;
  receive: CipherState;
}

/** Spec §5.3. One object per handshake; any failure poisons it. */
export class Handshake {
  readonly pattern: NoisePattern;
  readonly initiator: boolean;
  readonly #def: PatternDef;
  readonly #ss: SymmetricState;
  readonly #random: Random;
  readonly #s: KeyPair | undefined;
  #e: KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #index = 0;
  #failed = false;
  #split = false;
  /** The KeyObject of each local secret key (s, e), made on its first DH. */
  readonly #keyObjects = new WeakMap<Uint8Array, KeyObject>();

  constructor(options: HandshakeOptions) {
    const { pattern, initiator } = options;
    const def = PATTERNS[pattern];
    if (def === undefined) throw new HubError('noise.config', `Unsupported Noise pattern: ${String(pattern)}`);
    const needS = pattern !== 'NN';
    const needRs = initiator ? def.preResponder : def.preInitiator;
    if (needS !== (options.s !== undefined)) {
      throw new HubError('noise.config', `Noise ${pattern} ${needS ? 'needs' : 'takes no'} local static key`);
    }
    if (needRs !== (options.rs !== undefined)) {
      throw new HubError('noise.config', `Noise ${pattern} ${needRs ? 'needs' : 'takes no'} remote static key here`);
    }
    for (const key of [options.s?.publicKey, options.s?.secretKey, options.rs, options.e?.publicKey]) {
      if (key !== undefined && key.length !== DHLEN) throw new HubError('noise.config', `Keys must be ${DHLEN} bytes`);
    }
    this.pattern = pattern;
    this.initiator = initiator;
    this.#def = def;
    this.#random = options.random;
    this.#s = options.s && { publicKey: options.s.publicKey.slice(), secretKey: options.s.secretKey.slice() };
    this.#e = options.e && keyPairFromSecret(options.e.secretKey);
    this.#rs = options.rs?.slice();
    this.#ss = new SymmetricState(`Noise_${pattern}_25519_ChaChaPoly_SHA256`);
    this.#ss.mixHash(options.prologue ?? new Uint8Array(0));
    const initiatorStatic = initiator ? this.#s?.publicKey : this.#rs;
    const responderStatic = initiator ? this.#rs : this.#s?.publicKey;
    if (def.preInitiator && initiatorStatic) this.#ss.mixHash(initiatorStatic);
    if (def.preResponder && responderStatic) this.#ss.mixHash(responderStatic);
  }

  get isComplete(): boolean {
    return this.#index >= this.#def.messages.length;
  }

  /** True when the next step is `writeMessage`, false when it is `readMessage` or the handshake is over. */
  get isMyTurn(): boolean {
    return !this.isComplete && this.#index % 2 === (this.initiator ? 0 : 1);
  }

  /** The peer's static public key once known (pre-message or received), for the caller to check. */
  get remoteStatic(): Uint8Array | undefined {
    return this.#rs?.slice();
  }

  /** h after the last message: a unique, secret-free id of this session for channel binding. */
  get handshakeHash(): Uint8Array {
    this.#require(this.isComplete, 'The handshake hash is final only once the handshake completes');
    return this.#ss.h;
  }

  writeMessage(payload: Uint8Array = new Uint8Array(0)): Uint8Array {
    this.#require(this.isMyTurn, 'writeMessage() was called out of turn');
    if (payload.length > MAX_HANDSHAKE_PAYLOAD) {
      throw new HubError('noise.size', `A handshake payload is limited to ${MAX_HANDSHAKE_PAYLOAD} bytes`);
    }
    return this.#guard(() => {
      const parts: Uint8Array[] = [];
      for (const token of this.#tokens()) {
        if (token === 'e') {
          this.#e ??= generateKeyPair(this.#random);
          parts.push(this.#e.publicKey);
          this.#ss.mixHash(this.#e.publicKey);
        } else if (token === 's') {
          parts.push(this.#ss.encryptAndHash(this.#need(this.#s).publicKey));
        } else {
          this.#ss.mixKey(this.#dh(token));
        }
      }
      parts.push(this.#ss.encryptAndHash(payload));
      this.#advance();
      return concatBytes(...parts);
    });
  }

  /** Returns the peer's payload; throws HubError (`noise.*`) and poisons the handshake on any failure. */
  readMessage(message: Uint8Array): Uint8Array {
    this.#require(!this.isComplete && !this.isMyTurn, 'readMessage() was called out of turn');
    return this.#guard(() => {
      if (message.length > MAX_MESSAGE_LEN) throw new HubError('noise.size', 'A Noise message exceeded 65535 bytes');
      let offset = 0;
      const take = (n: number): Uint8Array => {
        if (offset + n > message.length)
          throw new HubError('noise.truncated', 'A Noise handshake message was too short');
        offset += n;
        return message.subarray(offset - n, offset);
      };
      for (const token of this.#tokens()) {
        if (token === 'e') {
          this.#re = take(DHLEN).slice();
          this.#ss.mixHash(this.#re);
        } else if (token === 's') {
          this.#rs = this.#ss.decryptAndHash(take(this.#ss.hasKey() ? DHLEN + TAGLEN : DHLEN));
        } else {
          this.#ss.mixKey(this.#dh(token));
        }
      }
      const payload = this.#ss.decryptAndHash(message.subarray(offset));
      this.#advance();
      return payload;
    });
  }

  /** The transport cipher states; callable once, after the last handshake message. */
  split(): TransportCiphers {
    this.#require(this.isComplete && !this.#split, 'split() needs a completed handshake and may run only once');
    this.#split = true;
    const [c1, c2] = this.#ss.split();
    return this.initiator ? { send: c1, receive: c2 } : { send: c2, receive: c1 };
  }

  #tokens(): readonly Token[] {
    return this.#def.messages[this.#index] ?? [];
  }

  #advance(): void {
    this.#index += 1;
    if (!this.isComplete) return;
    // The ephemeral secret is wiped and its KeyObject let go (OpenSSL frees it when V8 collects it).
    if (this.#e) this.#keyObjects.delete(this.#e.secretKey);
    if (this.#s) this.#keyObjects.delete(this.#s.secretKey);
    this.#e?.secretKey.fill(0);
  }

  #dh(token: Exclude<Token, 'e' | 's'>): Uint8Array {
    switch (token) {
      case 'ee':
        return dh(this.#private(this.#e), this.#need(this.#re));
      case 'es':
        return this.initiator
          ? dh(this.#private(this.#e), this.#need(this.#rs))
          : dh(this.#private(this.#s), this.#need(this.#re));
      case 'se':
        return this.initiator
          ? dh(this.#private(this.#s), this.#need(this.#re))
          : dh(this.#private(this.#e), this.#need(this.#rs));
      case 'ss':
        return dh(this.#private(this.#s), this.#need(this.#rs));
    }
  }

  #private(pair: KeyPair | undefined): KeyObject {
    const { secretKey } = this.#need(pair);
    let key = this.#keyObjects.get(secretKey);
    if (key === undefined) {
      key = privateKeyObject(secretKey);
      this.#keyObjects.set(secretKey, key);
    }
    return key;
  }

  #need<T>(value: T | undefined): T {
    if (value === undefined) throw new HubError('noise.state', 'A key the pattern needs is missing');
    return value;
  }

  #require(condition: boolean, message: string): void {
    if (this.#failed) throw new HubError('noise.state', 'This handshake has failed; start a new one');
    if (!condition) throw new HubError('noise.state', message);
  }

  #guard<T>(step: () => T): T {
    try {
      return step();
    } catch (e) {
      this.#failed = true;
      throw e;
    }
  }
}

export function createHandshake(options: HandshakeOptions): Handshake {
  return new Handshake(options);
}
