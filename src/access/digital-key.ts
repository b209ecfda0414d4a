import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import canonicalize from 'canonicalize';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { ID_PATTERN } from '../contract/mqtt-topics.js';

/**
 * Digital keys (docs/digital-keys.md has the whole construction).
 *
 * The cloud writes a key body (who, which locks or groups, when, and the phone's two public keys)
 * as RFC 8785 canonical JSON and signs "iq-hub digital key body v1" ‖ 0 ‖ body with its Ed25519
 * key, which the hub pinned at enrollment. It then encrypts the signed key to the phone with HPKE
 * (sim/phone/delivery.ts), so only that phone can read it. At a door the lock gives the phone a
 * fresh 32-byte challenge; the phone answers with the signed key and an Ed25519 signature, by the
 * key named in the body, over "iq-hub door v1" ‖ 0 ‖ challenge ‖ lockId ‖ 0 ‖ keyId. The hub
 * checks the cloud's signature over the exact body bytes, then the body's form, then the phone's
 * proof, then revocation, validity and the lock; the caller checks the schedule in the mirror.
 *
 * Everything here is public-key material: nothing secret is in a body, a presentation, an error
 * or a verdict. Verification is synchronous and uses node:crypto (OpenSSL) for Ed25519.
 */

export const KEY_BODY_VERSION = 1;
export const CHALLENGE_BYTES = 32;
/** Longest body a hub accepts (characters of canonical JSON, all ASCII). */
export const MAX_KEY_BODY_CHARS = 8192;
/** Most lock ids, or group ids, one key may name. */
export const MAX_KEY_TARGETS = 100;

const BODY_SIGNATURE_DOMAIN = 'iq-hub digital key body v1\0';
const DOOR_PROOF_DOMAIN = 'iq-hub door v1\0';
const SIGNATURE_BYTES = 64;
const PUBLIC_KEY_BYTES = 32;
const ID = new RegExp(ID_PATTERN);
/** Exactly what `Date.prototype.toISOString` writes for years 0000-9999: one spelling per instant. */
const ISO_UTC = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$/;
const BODY_FIELDS: ReadonlySet<string> = new Set([
  'v',
  'keyId',
  'userId',
  'lockIds',
  'groupIds',
  'validFrom',
  'validUntil',
  'phonePublicKey',
  'phoneEncryptionKey',
]);

/** What the cloud signs. Exactly one of `lockIds` and `groupIds` is present. */
export interface KeyBody {
  v: typeof KEY_BODY_VERSION;
  keyId: string;
  userId: string;
  /** The locks this key opens, by id. */
  lockIds?: string[];
  /** The access groups whose locks this key opens; the mirror resolves them at the door. */
  groupIds?: string[];
  /** Valid from this instant (inclusive), ISO 8601 UTC with milliseconds, as `toISOString` writes it. */
  validFrom: string;
  /** Valid until this instant (exclusive), same form. */
  validUntil: string;
  /** The phone's Ed25519 public key (32 bytes, base64url without padding): it signs door proofs. */
  phonePublicKey: string;
  /** The phone's X25519 public key (32 bytes, base64url): the cloud encrypts the key to it. Never used at the door. */
  phoneEncryptionKey: string;
}

/** A key as the phone holds it: the body text exactly as signed, and the cloud's signature (base64url). */
export interface SignedKey {
  body: string;
  sig: string;
}

/** What the phone answers to a lock's challenge. */
export interface Presentation {
  signedKey: SignedKey;
  /** The phone's Ed25519 signature over the door proof message (base64url). */
  proof: string;
}

export const DENY_REASONS = [
  'malformed',
  'bad-signature',
  'bad-proof',
  'revoked',
  'not-yet-valid',
  'expired',
  'wrong-lock',
] as const;
export type DigitalKeyDenyReason = (typeof DENY_REASONS)[number];

export type PresentationVerdict =
  | { ok: true; keyId: string; userId: string }
  | { ok: false; reason: DigitalKeyDenyReason };

export interface PresentationCheck {
  /** As received from the lock: untrusted, any shape. */
  presentation: unknown;
  /** The challenge the lock gave the phone for this presentation. */
  challenge: Uint8Array;
  lockId: string;
  /** The instant of the decision, ms since the Unix epoch (the hub's clock). */
  at: number;
  /** The cloud's Ed25519 key pinned at enrollment (`ed25519PublicKey(raw)` once, not per decision). */
  cloudPublicKey: KeyObject;
  /** Whether the mirror lists this key as revoked. */
  revoked: (keyId: string) => boolean;
  /**
   * Whether the mirror lets this key open this lock: it resolves `groupIds`, and may refuse a lock
   * it no longer knows. Asked for every key; a key's `lockIds` list has already been checked.
   */
  lockAllowed: (body: KeyBody, lockId: string) => boolean;
  /**
   * Signed keys already verified under `cloudPublicKey` (the signature and the body's form only):
   * a key seen before skips that work. Revocation, validity, the lock and the phone's proof are
   * checked on every presentation all the same.
   */
  verified?: VerifiedKeys;
}

// Ed25519 keys through node:crypto; raw 32-byte private keys and exported public keys use the fixed DER prefixes of RFC 8410.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

/** An Ed25519 private key from its 32-byte seed. */
export function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new HubError('access.ed25519', 'an Ed25519 seed must be 32 bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
}

/**
 * An Ed25519 public key from its 32 raw bytes. Imported as a JWK: on Node 20 that takes about 5 µs,
 * the DER form about 70 µs, and the hub imports one phone key per door decision.
 */
export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== PUBLIC_KEY_BYTES) throw new HubError('access.ed25519', 'an Ed25519 public key must be 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: toBase64url(raw) }, format: 'jwk' });
}

/** The 32 raw bytes of an Ed25519 public key (given the public or the private key). */
export function ed25519PublicBytes(key: KeyObject): Uint8Array {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new HubError('access.ed25519', 'not an Ed25519 key');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(SPKI_ED25519.length));
}

export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url');
}

/**
 * Strict base64url without padding, of exactly `bytes` bytes: one spelling per value (Node's own
 * decoder skips stray characters and ignores trailing bits).
 */
export function fromBase64url(text: unknown, bytes: number): Uint8Array | undefined {
  if (typeof text !== 'string' || text.length !== Math.ceil((bytes * 4) / 3)) return undefined;
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  const out = Buffer.from(text, 'base64url');
  if (out.length !== bytes || out.toString('base64url') !== text) return undefined;
  return new Uint8Array(out);
}

/** A fresh door challenge. */
export function newChallenge(random: Random): Uint8Array {
  return random.bytes(CHALLENGE_BYTES);
}

function isId(x: unknown): x is string {
  return typeof x === 'string' && ID.test(x);
}

function idList(x: unknown): x is string[] {
  return (
    Array.isArray(x) && x.length >= 1 && x.length <= MAX_KEY_TARGETS && x.every(isId) && new Set(x).size === x.length
  );
}

function instant(x: unknown): number | undefined {
  if (typeof x !== 'string' || !ISO_UTC.test(x)) return undefined;
  const ms = Date.parse(x);
  return Number.isFinite(ms) && new Date(ms).toISOString() === x ? ms : undefined;
}

interface ParsedBody {
  body: KeyBody;
  validFromMs: number;
  validUntilMs: number;
  phonePublicKey: Uint8Array;
}

/**
 * A key body from its text, or undefined unless the text is a well-formed v1 body in canonical
 * form: no unknown or duplicate members, ids as the contract defines them, exactly one of lockIds
 * and groupIds, validFrom before validUntil, 32-byte public keys.
 */
function parseBody(text: string): ParsedBody | undefined {
  if (text.length > MAX_KEY_BODY_CHARS) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  if (!Object.keys(o).every((k) => BODY_FIELDS.has(k))) return undefined;
  if (o.v !== KEY_BODY_VERSION || !isId(o.keyId) || !isId(o.userId)) return undefined;
  const hasLocks = o.lockIds !== undefined;
  if (hasLocks === (o.groupIds !== undefined)) return undefined;
  if (hasLocks ? !idList(o.lockIds) : !idList(o.groupIds)) return undefined;
  const validFromMs = instant(o.validFrom);
  const validUntilMs = instant(o.validUntil);
  if (validFromMs === undefined || validUntilMs === undefined || validFromMs >= validUntilMs) return undefined;
  const phonePublicKey = fromBase64url(o.phonePublicKey, PUBLIC_KEY_BYTES);
  if (!phonePublicKey || !fromBase64url(o.phoneEncryptionKey, PUBLIC_KEY_BYTES)) return undefined;
  // Duplicate members (JSON.parse keeps the last), other spacing or member order: not what was meant to be signed.
  if (canonicalize(o) !== text) return undefined;
  return { body: o as unknown as KeyBody, validFromMs, validUntilMs, phonePublicKey };
}

/** A key body from its text, or undefined if it is not a well-formed canonical v1 body. */
export function parseKeyBody(text: string): KeyBody | undefined {
  return typeof text === 'string' ? parseBody(text)?.body : undefined;
}

/** The canonical text of a body (RFC 8785); refuses a body the hub would refuse. */
export function encodeKeyBody(body: KeyBody): string {
  const text = canonicalize(body);
  if (text === undefined || !parseBody(text)) {
    throw new HubError('access.key-body', `digital key body ${String(body.keyId)} is not a well-formed v1 body`, {
      hint: 'ids must match the contract id pattern, exactly one of lockIds/groupIds (1-100 ids), times as toISOString writes them with validFrom < validUntil, public keys 32 bytes base64url',
    });
  }
  return text;
}

/** The bytes the cloud signs: "iq-hub digital key body v1" ‖ 0 ‖ body text (ASCII). */
export function keyBodySignatureMessage(bodyText: string): Buffer {
  return Buffer.from(BODY_SIGNATURE_DOMAIN + bodyText, 'utf8');
}

/** The cloud's side: the canonical body and its signature. */
export function signKeyBody(body: KeyBody, cloudPrivateKey: KeyObject): SignedKey {
  const text = encodeKeyBody(body);
  return { body: text, sig: toBase64url(sign(null, keyBodySignatureMessage(text), cloudPrivateKey)) };
}

/**
 * The bytes the phone signs at a door: "iq-hub door v1" ‖ 0 ‖ challenge (32) ‖ lockId ‖ 0 ‖ keyId.
 * Ids cannot hold NUL, so the encoding is unambiguous.
 */
export function doorProofMessage(challenge: Uint8Array, lockId: string, keyId: string): Buffer {
  if (challenge.length !== CHALLENGE_BYTES || !isId(lockId) || !isId(keyId)) {
    throw new HubError(
      'access.door-proof',
      `a door proof needs a ${CHALLENGE_BYTES}-byte challenge, a lock id and a key id`,
    );
  }
  return Buffer.concat([Buffer.from(DOOR_PROOF_DOMAIN, 'utf8'), challenge, Buffer.from(`${lockId}\0${keyId}`, 'utf8')]);
}

/** The phone's side: its proof for one challenge at one lock. */
export function signDoorProof(
  phonePrivateKey: KeyObject,
  challenge: Uint8Array,
  lockId: string,
  keyId: string,
): string {
  return toBase64url(sign(null, doorProofMessage(challenge, lockId, keyId), phonePrivateKey));
}

function ed25519Verifies(message: Buffer, key: KeyObject, signature: Uint8Array): boolean {
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

export type SignedKeyCheck =
  | { ok: true; body: KeyBody; validFromMs: number; validUntilMs: number; phonePublicKey: Uint8Array }
  | { ok: false; reason: 'malformed' | 'bad-signature' };

/** The cloud's signature and the body's form; what a phone checks on receipt, and the hub's first step. */
export function checkSignedKey(signedKey: unknown, cloudPublicKey: KeyObject): SignedKeyCheck {
  if (typeof signedKey !== 'object' || signedKey === null || Array.isArray(signedKey)) {
    return { ok: false, reason: 'malformed' };
  }
  const s = signedKey as Record<string, unknown>;
  if (
    Object.keys(s).length !== 2 ||
    !Object.hasOwn(s, 'body') ||
    !Object.hasOwn(s, 'sig') ||
    typeof s.body !== 'string' ||
    s.body.length > MAX_KEY_BODY_CHARS
  ) {
    return { ok: false, reason: 'malformed' };
  }
  const sig = fromBase64url(s.sig, SIGNATURE_BYTES);
  if (!sig) return { ok: false, reason: 'malformed' };
  // The signature first, over the exact bytes received: nothing of an unsigned body is parsed.
  if (!ed25519Verifies(keyBodySignatureMessage(s.body), cloudPublicKey, sig)) {
    return { ok: false, reason: 'bad-signature' };
  }
  const parsed = parseBody(s.body);
  return parsed ? { ok: true, ...parsed } : { ok: false, reason: 'malformed' };
}

/** A signed key whose cloud signature and body checked out, with the phone's key ready to verify proofs. */
type VerifiedKey = Extract<SignedKeyCheck, { ok: true }> & { phoneKey: KeyObject };

/** The cloud signature, the body and the phone's key, done afresh. */
function verifySignedKey(
  signedKey: unknown,
  cloudPublicKey: KeyObject,
): VerifiedKey | { ok: false; reason: 'malformed' | 'bad-signature' } {
  const key = checkSignedKey(signedKey, cloudPublicKey);
  if (!key.ok) return key;
  try {
    return { ...key, phoneKey: ed25519PublicKey(key.phonePublicKey) };
  } catch {
    return { ok: false, reason: 'malformed' };
  }
}

/** Default size of a VerifiedKeys cache: a busy site's keys of a day, a few hundred bytes each. */
export const VERIFIED_KEYS_DEFAULT = 2048;

/**
 * Signed keys (body and cloud signature, exactly as presented) that verified under one cloud key,
 * so that a key presented again costs one signature check (the phone's proof) instead of two, and
 * no parse. Bounded (least recently used goes first); bound to the cloud key it was filled under
 * (another key empties it); the owner empties it whenever the mirror changes. It holds only what
 * the signature proves — never whether a key is revoked, expired or allowed at a lock: those are
 * asked on every presentation. Indexed by SHA-256 of the signature (length-prefixed) and the body,
 * so an entry costs the same whatever the body's length, and a body or signature that differs in
 * one byte is a miss, verified afresh.
 */
export class VerifiedKeys {
  readonly #max: number;
  readonly #entries = new Map<string, VerifiedKey>();
  #cloudKey: KeyObject | undefined;
  #hits = 0;
  #misses = 0;

  constructor(maxEntries: number = VERIFIED_KEYS_DEFAULT) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new HubError(
        'access.config',
        `verified digital keys: the cache size must be a positive integer, got ${maxEntries}`,
      );
    }
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  stats(): { hits: number; misses: number; size: number } {
    return { hits: this.#hits, misses: this.#misses, size: this.#entries.size };
  }

  clear(): void {
    this.#entries.clear();
  }

  check(signedKey: unknown, cloudPublicKey: KeyObject): ReturnType<typeof verifySignedKey> {
    if (cloudPublicKey !== this.#cloudKey) {
      this.#entries.clear();
      this.#cloudKey = cloudPublicKey;
    }
    const s = signedKey as Record<string, unknown> | null;
    // Anything but two strings is not worth an index: the full check refuses it.
    if (typeof s !== 'object' || s === null || typeof s.body !== 'string' || typeof s.sig !== 'string') {
      return verifySignedKey(signedKey, cloudPublicKey);
    }
    // Length-prefixed, so that no other split of the same characters between sig and body gives the same index.
    const index = createHash('sha256').update(`${s.sig.length}:`).update(s.sig).update(s.body).digest('base64');
    const hit = this.#entries.get(index);
    if (hit && Object.keys(s).length === 2 && Object.hasOwn(s, 'body') && Object.hasOwn(s, 'sig')) {
      this.#hits++;
      this.#entries.delete(index);
      this.#entries.set(index, hit);
      return hit;
    }
    this.#misses++;
    const fresh = verifySignedKey(signedKey, cloudPublicKey);
    if (fresh.ok) {
      this.#entries.set(index, fresh);
      if (this.#entries.size > this.#max) {
        const oldest = this.#entries.keys().next();
        if (!oldest.done) this.#entries.delete(oldest.value);
      }
    }
    return fresh;
  }
}

function assertCloudKey(key: KeyObject): void {
  if (key?.type !== 'public' || key.asymmetricKeyType !== 'ed25519') {
    throw new HubError('access.cloud-key', 'the pinned cloud key must be an Ed25519 public KeyObject', {
      hint: 'import the raw key once with ed25519PublicKey()',
    });
  }
}

const deny = (reason: DigitalKeyDenyReason): PresentationVerdict => ({ ok: false, reason });

/**
 * The hub's decision on a phone's presentation, in this order: form → cloud signature → body →
 * phone proof → revocation → validity → lock. Cryptography comes before policy, so a policy
 * reason (revoked, expired, wrong lock) is only ever given for a presentation made by the key's
 * own phone for this challenge at this lock; anything else is `bad-proof` or `bad-signature`.
 * The schedule is the caller's check, with the mirror. A throwing callback propagates (no grant).
 */
export function verifyPresentation(check: PresentationCheck): PresentationVerdict {
  assertCloudKey(check.cloudPublicKey);
  const { presentation, challenge, lockId, at } = check;
  if (
    !(challenge instanceof Uint8Array) ||
    challenge.length !== CHALLENGE_BYTES ||
    !isId(lockId) ||
    !Number.isFinite(at)
  ) {
    return deny('malformed');
  }
  if (typeof presentation !== 'object' || presentation === null || Array.isArray(presentation)) {
    return deny('malformed');
  }
  const p = presentation as Record<string, unknown>;
  if (Object.keys(p).length !== 2 || !Object.hasOwn(p, 'signedKey') || !Object.hasOwn(p, 'proof')) {
    return deny('malformed');
  }
  const proof = fromBase64url(p.proof, SIGNATURE_BYTES);
  if (!proof) return deny('malformed');

  const key = check.verified
    ? check.verified.check(p.signedKey, check.cloudPublicKey)
    : verifySignedKey(p.signedKey, check.cloudPublicKey);
  if (!key.ok) return deny(key.reason);
  const { body } = key;

  if (!ed25519Verifies(doorProofMessage(challenge, lockId, body.keyId), key.phoneKey, proof)) return deny('bad-proof');

  if (check.revoked(body.keyId)) return deny('revoked');
  if (at < key.validFromMs) return deny('not-yet-valid');
  if (at >= key.validUntilMs) return deny('expired');
  if (body.lockIds !== undefined && !body.lockIds.includes(lockId)) return deny('wrong-lock');
  if (!check.lockAllowed(body, lockId)) return deny('wrong-lock');
  return { ok: true, keyId: body.keyId, userId: body.userId };
}
