import canonicalize from 'canonicalize';
import {
  fromBase64url,
  MAX_KEY_BODY_CHARS,
  parseKeyBody,
  type SignedKey,
  toBase64url,
} from '../../src/access/digital-key.js';
import { HubError } from '../../src/base/errors.js';
import type { Random } from '../../src/base/random.js';
import { openBase, sealBase, type X25519KeyPair } from '../../src/crypto/hpke.js';

/**
 * How the cloud gets a signed key to one phone and no one else: HPKE (RFC 9180) in base mode with
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305, to the X25519 key the signed body
 * names (`phoneEncryptionKey`); info "iq-hub digital key v1", associated data the key id. The
 * plaintext is the signed key as canonical JSON `{"body":…,"sig":…}`. The hub never sees this
 * envelope: it is the cloud's and the phone's business, and lives beside the simulated phone.
 */
export const KEY_DELIVERY_INFO = 'iq-hub digital key v1';
export const KEY_DELIVERY_VERSION = 1;
const ENC_BYTES = 32;
/** Signature (64) and JSON framing are well under 200 bytes over the body; the AEAD tag is 16. */
const MAX_CT_BYTES = MAX_KEY_BODY_CHARS + 256;

/** What travels from the cloud to the phone (any channel: the phone's app backend, a push message). */
export interface EncryptedKey {
  v: typeof KEY_DELIVERY_VERSION;
  keyId: string;
  /** The HPKE encapsulated key (the sender's ephemeral X25519 public key), base64url. */
  enc: string;
  /** The HPKE ciphertext, base64url. */
  ct: string;
}

const utf8 = (text: string) => new TextEncoder().encode(text);

/**
 * The cloud's side: encrypt a signed key to the phone its body names. The ephemeral key comes from
 * `random` (the system CSPRNG in production; a seeded stream makes a test reproducible).
 */
export async function sealKeyForPhone(signedKey: SignedKey, random: Random): Promise<EncryptedKey> {
  const body = parseKeyBody(signedKey.body);
  const phoneKey = body && fromBase64url(body.phoneEncryptionKey, 32);
  if (!body || !phoneKey)
    throw new HubError('phone.key-seal', 'only a well-formed signed key can be sealed for a phone');
  const plaintext = utf8(canonicalize({ body: signedKey.body, sig: signedKey.sig }) ?? '');
  const { enc, ct } = sealBase({
    recipientPublicKey: phoneKey,
    info: utf8(KEY_DELIVERY_INFO),
    aad: utf8(body.keyId),
    plaintext,
    ikmE: random.bytes(32),
  });
  return {
    v: KEY_DELIVERY_VERSION,
    keyId: body.keyId,
    enc: toBase64url(new Uint8Array(enc)),
    ct: toBase64url(new Uint8Array(ct)),
  };
}

/**
 * The phone's side: open an envelope with the phone's X25519 key pair. Fails, saying only that, for
 * an envelope sealed to another phone, altered, or moved to another key id.
 */
export async function openKeyOnPhone(delivery: unknown, recipient: X25519KeyPair): Promise<SignedKey> {
  const d = (typeof delivery === 'object' && delivery !== null ? delivery : {}) as Record<string, unknown>;
  const enc = fromBase64url(d.enc, ENC_BYTES);
  const ct =
    typeof d.ct === 'string' && d.ct.length <= Math.ceil((MAX_CT_BYTES * 4) / 3) && /^[A-Za-z0-9_-]+$/.test(d.ct)
      ? Buffer.from(d.ct, 'base64url')
      : undefined;
  if (d.v !== KEY_DELIVERY_VERSION || typeof d.keyId !== 'string' || !enc || !ct) {
    throw new HubError('phone.key-malformed', 'the digital key envelope is malformed');
  }
  let plaintext: Uint8Array;
  try {
    plaintext = openBase({
      recipientPrivateKey: recipient.privateKey,
      enc,
      info: utf8(KEY_DELIVERY_INFO),
      aad: utf8(d.keyId),
      ct,
    });
  } catch {
    throw new HubError('phone.key-open', `digital key ${d.keyId} does not open on this phone`, {
      hint: 'it was sealed to another phone, altered, or relabelled with another key id',
    });
  }
  let signed: unknown;
  try {
    signed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext));
  } catch {
    signed = undefined;
  }
  const s = (typeof signed === 'object' && signed !== null ? signed : {}) as Record<string, unknown>;
  if (typeof s.body !== 'string' || typeof s.sig !== 'string' || Object.keys(s).length !== 2) {
    throw new HubError('phone.key-malformed', `digital key ${d.keyId} opened but is not a signed key`);
  }
  return { body: s.body, sig: s.sig };
}
