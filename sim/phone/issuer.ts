import type { KeyObject } from 'node:crypto';
import {
  ed25519PrivateKey,
  ed25519PublicBytes,
  ed25519PublicKey,
  KEY_BODY_VERSION,
  type KeyBody,
  type SignedKey,
  signKeyBody,
} from '../../src/access/digital-key.js';
import type { Random } from '../../src/base/random.js';
import { type EncryptedKey, sealKeyForPhone } from './delivery.js';

/** A phone's two public keys, as the phone enrolls them with the cloud (base64url, 32 bytes each). */
export interface PhoneKeys {
  /** Ed25519: signs door proofs. */
  phonePublicKey: string;
  /** X25519: the cloud encrypts keys to it. */
  phoneEncryptionKey: string;
}

export interface KeySpec {
  keyId: string;
  userId: string;
  lockIds?: string[];
  groupIds?: string[];
  /** ms since the epoch, or ISO 8601 UTC. */
  validFrom: number | string;
  validUntil: number | string;
}

const iso = (t: number | string) => new Date(t).toISOString();

/**
 * The cloud's side of digital keys, for tests and the demo: an Ed25519 signing key (the hub pins
 * `publicKeyRaw` at enrollment), and issuing a key to a phone: body → signature → HPKE envelope.
 * `sign` signs any body as given, which is how tests make keys a real cloud would not.
 */
export class CloudKeyIssuer {
  readonly #privateKey: KeyObject;
  readonly #random: Random;
  readonly publicKey: KeyObject;
  readonly publicKeyRaw: Uint8Array;

  constructor(random: Random) {
    this.#random = random;
    this.#privateKey = ed25519PrivateKey(random.bytes(32));
    this.publicKeyRaw = ed25519PublicBytes(this.#privateKey);
    this.publicKey = ed25519PublicKey(this.publicKeyRaw);
  }

  body(spec: KeySpec, phone: PhoneKeys): KeyBody {
    return {
      v: KEY_BODY_VERSION,
      keyId: spec.keyId,
      userId: spec.userId,
      ...(spec.lockIds !== undefined ? { lockIds: spec.lockIds } : {}),
      ...(spec.groupIds !== undefined ? { groupIds: spec.groupIds } : {}),
      validFrom: iso(spec.validFrom),
      validUntil: iso(spec.validUntil),
      phonePublicKey: phone.phonePublicKey,
      phoneEncryptionKey: phone.phoneEncryptionKey,
    };
  }

  sign(body: KeyBody): SignedKey {
    return signKeyBody(body, this.#privateKey);
  }

  /** The signed key in the clear (what the phone holds after opening the envelope). */
  issue(spec: KeySpec, phone: PhoneKeys): SignedKey {
    return this.sign(this.body(spec, phone));
  }

  /** Issue a key and seal it to the phone: what the cloud actually sends. */
  issueTo(spec: KeySpec, phone: PhoneKeys): Promise<EncryptedKey> {
    return sealKeyForPhone(this.issue(spec, phone), this.#random);
  }
}
