import { createCipheriv, createDecipheriv, createHash, hkdfSync } from 'node:crypto';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { deriveKeyPair, HpkeError, openBase, sealBase } from '../crypto/hpke.js';
import { Secret } from '../crypto/secret.js';

/**
 * The hub backup's cryptography, both sides (the hub that seals and restores, the cloud that holds
 * the recovery key and approves a restore), so they cannot drift apart (docs/operations.md, "Hub
 * replacement"; docs/security.md).
 *
 * A backup has a fresh 32-byte content key CK. The body (store snapshot, ZigBee state) is sealed
 * with ChaCha20-Poly1305 under HKDF(CK, "body"), with the clear header as associated data; CK itself
 * is sealed with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
 * ChaCha20-Poly1305) to the cloud's recovery public key, the header again as associated data. The
 * secrets inside the snapshot (link key, OTP key, PIN key, ZigBee network key) are sealed once more,
 * under HKDF(CK, "transfer-seal"), in place of the machine's storage key: the body holds no secret
 * in clear even once opened. A restore needs CK, which only the cloud can give, HPKE-sealed to a
 * key the new hub made for this restore, in an approval bound to the backup, the new hub and the
 * hub it revokes.
 */

export const BACKUP_INFO = 'iq-hub hub backup v1';
export const APPROVAL_INFO = 'iq-hub restore approval v1';
const KEY_BYTES = 32;
const NONCE = 12;
const TAG = 16;

const utf8 = (s: string) => new TextEncoder().encode(s);

export const b64u = (u: Uint8Array): string => Buffer.from(u).toString('base64url');

/** base64url of exactly `bytes` bytes (or any length if undefined), else undefined. */
export function fromB64u(v: unknown, bytes?: number, maxChars = 64): Uint8Array | undefined {
  if (typeof v !== 'string' || v.length > maxChars || !/^[A-Za-z0-9_-]*$/.test(v)) return undefined;
  const out = new Uint8Array(Buffer.from(v, 'base64url'));
  if (bytes !== undefined && out.length !== bytes) return undefined;
  if (b64u(out) !== v) return undefined;
  return out;
}

/** A public key's id: the first 16 hex digits of its SHA-256 (safe to show). */
export function keyId(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 16);
}

export function sha256Hex(...parts: (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** An X25519 key pair for HPKE: the recovery key (the cloud's) or a restore key (a new hub's). */
export interface HpkeKeyPair {
  publicKey: Uint8Array;
  privateKey: Secret;
}

export async function generateHpkeKeyPair(random: Random): Promise<HpkeKeyPair> {
  const kp = deriveKeyPair(random.bytes(32));
  const pair = { publicKey: kp.publicKey, privateKey: new Secret(kp.privateKey) };
  kp.privateKey.fill(0);
  return pair;
}

/** HPKE-seal `secret` to `recipient` with `aad` (src/crypto/hpke.ts: RFC 9180 base mode). */
export async function sealTo(
  recipient: Uint8Array,
  info: string,
  aad: string,
  secret: Secret,
  random: Random,
): Promise<{ enc: Uint8Array; ct: Uint8Array }> {
  try {
    return sealBase({
      recipientPublicKey: recipient,
      info: utf8(info),
      aad: utf8(aad),
      plaintext: secret.reveal(),
      ikmE: random.bytes(32),
    });
  } catch (e) {
    if (e instanceof HpkeError)
      throw new HubError('backup.recovery-key', 'the recovery public key is not an X25519 public key');
    throw e;
  }
}

/** Open an HPKE envelope with `privateKey`; undefined (saying nothing more) if it does not open. */
export async function openWith(
  privateKey: Secret,
  info: string,
  aad: string,
  enc: Uint8Array,
  ct: Uint8Array,
): Promise<Secret | undefined> {
  try {
    const pt = openBase({ recipientPrivateKey: privateKey.reveal(), enc, info: utf8(info), aad: utf8(aad), ct });
    const out = new Secret(pt);
    pt.fill(0);
    if (out.length !== KEY_BYTES) {
      out.wipe();
      return undefined;
    }
    return out;
  } catch {
    return undefined;
  }
}

/** The key derived from the content key for one job ("body", "transfer-seal"). */
export function deriveKey(contentKey: Secret, label: 'body' | 'transfer-seal'): Secret {
  return new Secret(
    new Uint8Array(hkdfSync('sha256', contentKey.reveal(), new Uint8Array(0), `iq-hub/hub-backup/${label}/v1`, 32)),
  );
}

/** ChaCha20-Poly1305 of the body under HKDF(CK, "body"); layout nonce (12) ‖ ciphertext ‖ tag (16). */
export function sealBody(contentKey: Secret, aad: string, body: Uint8Array, random: Random): Uint8Array {
  const key = deriveKey(contentKey, 'body');
  try {
    const nonce = random.bytes(NONCE);
    const c = createCipheriv('chacha20-poly1305', key.reveal(), nonce, { authTagLength: TAG });
    c.setAAD(utf8(aad), { plaintextLength: body.length });
    return Buffer.concat([nonce, c.update(body), c.final(), c.getAuthTag()]);
  } finally {
    key.wipe();
  }
}

/** The body, or undefined if it was altered or belongs to another header or key. */
export function openBody(contentKey: Secret, aad: string, sealed: Uint8Array): Uint8Array | undefined {
  if (sealed.length < NONCE + TAG) return undefined;
  const key = deriveKey(contentKey, 'body');
  try {
    const d = createDecipheriv('chacha20-poly1305', key.reveal(), sealed.subarray(0, NONCE), { authTagLength: TAG });
    const body = sealed.subarray(NONCE, sealed.length - TAG);
    d.setAAD(utf8(aad), { plaintextLength: body.length });
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    return Buffer.concat([d.update(body), d.final()]);
  } catch {
    return undefined;
  } finally {
    key.wipe();
  }
}

export const CONTENT_KEY_BYTES = KEY_BYTES;
