import {
  constants,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
  type X509Certificate,
} from 'node:crypto';
import { HubError } from '../base/errors.js';
import { openBase, sealBase } from './hpke.js';
import { Secret } from './secret.js';

/**
 * OTP key delivery, both ends (docs/security.md, "OTP key delivery"): the hub's X25519 delivery
 * key, the statement its TLS key signs to name that key, and the HPKE (RFC 9180) seal and open of
 * the OTP key. The suite is base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
 * ChaCha20-Poly1305. The HPKE info binds the hub id, the associated data the delivery id, the
 * generation and the recipient key: a delivery moved to another hub, relabelled with another
 * generation or id, or sealed to another key does not open.
 *
 * HPKE is src/crypto/hpke.ts, on node:crypto (RFC 9180 A.2.1 checked in its test): no library is
 * loaded for it (test/integration/module-loading.test.ts).
 */

export const OTP_KEY_INFO = 'iq-hub otp-key v1';
export const OTP_KEY_REQUEST_STATEMENT = 'iq-hub otp-key request v1';
const KEY_BYTES = 32;

const utf8 = (s: string) => new TextEncoder().encode(s);

/** The HPKE info: the label and the hub id the key is for. */
export function otpKeyInfo(hubId: string): Uint8Array {
  return utf8(`${OTP_KEY_INFO}\n${hubId}`);
}

/** The HPKE associated data: the delivery id, its generation and the recipient key (base64url). */
export function otpKeyAad(d: { deliveryId: string; generation: number; recipient: string }): Uint8Array {
  return utf8(`${d.deliveryId}\n${d.generation}\n${d.recipient}`);
}

/**
 * What the hub's TLS key signs in `otp-key/request`: the label, the hub id, the request id and the
 * X25519 public key (base64url). No field can hold a line break (the schema), so it is unambiguous.
 */
export function otpKeyRequestStatement(d: { hubId: string; requestId: string; publicKey: string }): Uint8Array {
  return utf8(`${OTP_KEY_REQUEST_STATEMENT}\n${d.hubId}\n${d.requestId}\n${d.publicKey}`);
}

/** An X25519 key pair for delivery: the private half as a Secret (32 bytes), the public half raw. */
export interface DeliveryKeyPair {
  privateKey: Secret;
  publicKey: Uint8Array;
}

export function newDeliveryKeyPair(): DeliveryKeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const d = Buffer.from(jwk.d ?? '', 'base64url');
  const pair = { privateKey: new Secret(d), publicKey: new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url')) };
  d.fill(0);
  return pair;
}

/** Sign options for a key: RSA-PSS-SHA256 for RSA, ECDSA-SHA256 for EC, pure Ed25519. */
function scheme(key: KeyObject): { alg: string | null; padding?: number } {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { alg: 'sha256', padding: constants.RSA_PKCS1_PSS_PADDING };
    case 'ec':
      return { alg: 'sha256' };
    case 'ed25519':
      return { alg: null };
    default:
      throw new HubError('otp-key.identity', `a ${key.asymmetricKeyType ?? 'unknown'} certificate key cannot sign`);
  }
}

/** Sign `data` with the hub's TLS private key (PEM). */
export function signWithIdentity(keyPem: Buffer | string, data: Uint8Array): Uint8Array {
  const key = createPrivateKey(keyPem);
  const s = scheme(key);
  return new Uint8Array(sign(s.alg, data, s.padding === undefined ? key : { key, padding: s.padding, saltLength: 32 }));
}

/** Whether `sig` over `data` verifies under the public key of `cert` (parsed already). */
export function verifyIdentitySignature(cert: X509Certificate, data: Uint8Array, sig: Uint8Array): boolean {
  const key = cert.publicKey;
  let s: { alg: string | null; padding?: number };
  try {
    s = scheme(key);
  } catch {
    return false;
  }
  try {
    return verify(s.alg, data, s.padding === undefined ? key : { key, padding: s.padding, saltLength: 32 }, sig);
  } catch {
    return false;
  }
}

export interface SealedOtpKey {
  enc: Uint8Array;
  ct: Uint8Array;
}

/**
 * The cloud's side: seal a 32-byte OTP key to the hub's X25519 key, bound to the hub id (info)
 * and to the delivery id, generation and recipient (associated data). `ekm`: fixed randomness
 * for a reproducible test; the system's CSPRNG otherwise.
 */
export async function sealOtpKey(o: {
  hubId: string;
  recipient: Uint8Array;
  key: Secret;
  deliveryId: string;
  generation: number;
  ekm?: Uint8Array;
}): Promise<SealedOtpKey> {
  if (o.key.length !== KEY_BYTES) throw new HubError('otp-key.malformed', `an OTP key has ${KEY_BYTES} bytes`);
  const recipient = Buffer.from(o.recipient).toString('base64url');
  try {
    return sealBase({
      recipientPublicKey: o.recipient,
      info: otpKeyInfo(o.hubId),
      aad: otpKeyAad({ deliveryId: o.deliveryId, generation: o.generation, recipient }),
      plaintext: o.key.reveal(),
      ...(o.ekm ? { ikmE: o.ekm } : {}),
    });
  } catch {
    throw new HubError('otp-key.malformed', 'an OTP key can only be sealed to a 32-byte X25519 public key');
  }
}

/**
 * The hub's side: open a delivery with its delivery key pair. Throws `otp-key.does-not-open`
 * (sealed to another key or hub, altered, or relabelled) or `otp-key.malformed` (opens, but is
 * not a 32-byte key); the message never holds key material.
 */
export async function openOtpKey(o: {
  hubId: string;
  pair: DeliveryKeyPair;
  deliveryId: string;
  generation: number;
  enc: Uint8Array;
  ct: Uint8Array;
}): Promise<Secret> {
  const recipient = Buffer.from(o.pair.publicKey).toString('base64url');
  let plain: Uint8Array;
  try {
    plain = openBase({
      recipientPrivateKey: o.pair.privateKey.reveal(),
      enc: o.enc,
      info: otpKeyInfo(o.hubId),
      ct: o.ct,
      aad: otpKeyAad({ deliveryId: o.deliveryId, generation: o.generation, recipient }),
    });
  } catch {
    throw new HubError(
      'otp-key.does-not-open',
      `OTP key delivery ${o.deliveryId} does not open with this hub's delivery key`,
    );
  }
  const bytes = plain;
  if (bytes.length !== KEY_BYTES) {
    bytes.fill(0);
    throw new HubError('otp-key.malformed', `OTP key delivery ${o.deliveryId} does not hold a ${KEY_BYTES}-byte key`);
  }
  const key = new Secret(bytes);
  bytes.fill(0);
  return key;
}
