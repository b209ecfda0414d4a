import type { KeyObject } from 'node:crypto';
import {
  checkSignedKey,
  ed25519PrivateKey,
  ed25519PublicBytes,
  type KeyBody,
  type Presentation,
  parseKeyBody,
  type SignedKey,
  signDoorProof,
  toBase64url,
} from '../../src/access/digital-key.js';
import { HubError } from '../../src/base/errors.js';
import type { Random } from '../../src/base/random.js';
import { deriveKeyPair, type X25519KeyPair } from '../../src/crypto/hpke.js';
import { openKeyOnPhone } from './delivery.js';
import type { PhoneKeys } from './issuer.js';

export interface SimPhoneOptions {
  /** With the cloud's key, the phone also refuses a key whose cloud signature does not verify. */
  cloudPublicKey?: KeyObject;
}

/**
 * The phone's side of a digital key: two key pairs of its own (Ed25519 for door proofs, X25519 to
 * receive keys), a wallet of signed keys it could open, and its answer to a lock's challenge.
 * Its private keys never leave the object.
 */
export class SimPhone {
  readonly #signing: KeyObject;
  readonly #encryption: X25519KeyPair;
  readonly #cloudPublicKey: KeyObject | undefined;
  readonly #wallet = new Map<string, { signedKey: SignedKey; body: KeyBody }>();
  readonly keys: PhoneKeys;

  private constructor(signing: KeyObject, encryption: X25519KeyPair, options: SimPhoneOptions) {
    this.#signing = signing;
    this.#encryption = encryption;
    this.#cloudPublicKey = options.cloudPublicKey;
    this.keys = {
      phonePublicKey: toBase64url(ed25519PublicBytes(signing)),
      phoneEncryptionKey: toBase64url(encryption.publicKey),
    };
  }

  static async create(random: Random, options: SimPhoneOptions = {}): Promise<SimPhone> {
    const signing = ed25519PrivateKey(random.bytes(32));
    return new SimPhone(signing, deriveKeyPair(random.bytes(32)), options);
  }

  /**
   * Open a key the cloud sealed to this phone and keep it. Refused: a key sealed to another phone
   * (it does not open), one relabelled with another key id, one whose body names another phone,
   * and, when the phone knows the cloud's key, one whose cloud signature does not verify.
   */
  async receiveKey(delivery: unknown): Promise<KeyBody> {
    const signedKey = await openKeyOnPhone(delivery, this.#encryption);
    const keyId = (delivery as { keyId: string }).keyId;
    const body = parseKeyBody(signedKey.body);
    if (!body || body.keyId !== keyId) {
      throw new HubError(
        'phone.key-malformed',
        `digital key ${keyId} opened but its body is malformed or names another key`,
      );
    }
    if (body.phonePublicKey !== this.keys.phonePublicKey || body.phoneEncryptionKey !== this.keys.phoneEncryptionKey) {
      throw new HubError('phone.key-not-mine', `digital key ${keyId} was issued to another phone`);
    }
    if (this.#cloudPublicKey && !checkSignedKey(signedKey, this.#cloudPublicKey).ok) {
      throw new HubError('phone.key-signature', `digital key ${keyId} does not carry a valid cloud signature`);
    }
    this.#wallet.set(keyId, { signedKey, body });
    return body;
  }

  keyIds(): string[] {
    return [...this.#wallet.keys()];
  }

  /** A key as held in the wallet (tests copy it to model a key stolen from this phone). */
  signedKey(keyId: string): SignedKey | undefined {
    return this.#wallet.get(keyId)?.signedKey;
  }

  /**
   * The answer to a lock's challenge. Without `keyId`: a key that lists this lock, else the key
   * received last (a group key: the phone cannot tell which locks a group holds).
   */
  present(challenge: Uint8Array, lockId: string, keyId?: string): Presentation {
    const entries = [...this.#wallet.values()];
    const chosen =
      keyId !== undefined
        ? this.#wallet.get(keyId)
        : (entries.find((e) => e.body.lockIds?.includes(lockId)) ?? entries[entries.length - 1]);
    if (!chosen) {
      throw new HubError(
        'phone.no-key',
        keyId === undefined ? 'this phone holds no digital key' : `this phone holds no key ${keyId}`,
      );
    }
    return this.presentKey(chosen.signedKey, challenge, lockId);
  }

  /** Present any signed key with this phone's proof (also one copied from another phone). */
  presentKey(signedKey: SignedKey, challenge: Uint8Array, lockId: string): Presentation {
    const body = parseKeyBody(signedKey.body);
    if (!body) throw new HubError('phone.key-malformed', 'the signed key has a malformed body');
    return { signedKey, proof: signDoorProof(this.#signing, challenge, lockId, body.keyId) };
  }
}
