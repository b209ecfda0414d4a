import { createCipheriv, createDecipheriv } from 'node:crypto';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { Secret } from './secret.js';

/**
 * Sealing of secrets at rest: ChaCha20-Poly1305 under the hub storage key, with the record's
 * purpose and id as associated data, so a sealed blob copied to another row or another purpose
 * fails to open. Layout: version (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16).
 *
 * Nonces are random: 96 bits is ample for the number of secrets a hub seals over its life.
 */
const VERSION = 1;
const NONCE = 12;
const TAG = 16;

export interface SealContext {
  /** What the secret is for, e.g. "lock.link-key", "site.pin-key". */
  purpose: string;
  /** The id of the record it belongs to, e.g. a lock id. */
  id: string;
}

function aad({ purpose, id }: SealContext): Buffer {
  if (!purpose || purpose.includes('\0') || id.includes('\0')) {
    throw new HubError(
      'seal.context',
      'seal context needs a non-empty purpose, and neither purpose nor id may hold NUL',
    );
  }
  return Buffer.from(`iq-hub/seal/v${VERSION}\0${purpose}\0${id}`, 'utf8');
}

export class Sealer {
  readonly #key: Secret;
  readonly #random: Random;

  constructor(storageKey: Secret, random: Random) {
    if (storageKey.length !== 32) throw new HubError('seal.key', 'the storage key must be 32 bytes');
    this.#key = storageKey;
    this.#random = random;
  }

  seal(plaintext: Uint8Array | Secret, context: SealContext): Uint8Array {
    const data = plaintext instanceof Secret ? plaintext.reveal() : plaintext;
    const nonce = this.#random.bytes(NONCE);
    const cipher = createCipheriv('chacha20-poly1305', this.#key.reveal(), nonce, { authTagLength: TAG });
    cipher.setAAD(aad(context), { plaintextLength: data.length });
    const body = Buffer.concat([cipher.update(data), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), nonce, body, cipher.getAuthTag()]);
  }

  /** Open a sealed blob. Fails (without saying more) if it was altered, moved or sealed under another key. */
  open(sealed: Uint8Array, context: SealContext): Secret {
    const blob = Buffer.from(sealed);
    if (blob.length < 1 + NONCE + TAG || blob[0] !== VERSION) {
      throw new HubError('seal.malformed', `sealed ${context.purpose} for ${context.id} is malformed`, {
        hint: 'the record is damaged; restore it from the cloud or a backup',
      });
    }
    const nonce = blob.subarray(1, 1 + NONCE);
    const body = blob.subarray(1 + NONCE, blob.length - TAG);
    const tag = blob.subarray(blob.length - TAG);
    try {
      const decipher = createDecipheriv('chacha20-poly1305', this.#key.reveal(), nonce, { authTagLength: TAG });
      decipher.setAAD(aad(context), { plaintextLength: body.length });
      decipher.setAuthTag(tag);
      return new Secret(Buffer.concat([decipher.update(body), decipher.final()]));
    } catch {
      throw new HubError('seal.open', `sealed ${context.purpose} for ${context.id} does not open`, {
        hint: 'it was altered, belongs to another record, or the storage key changed',
      });
    }
  }
}
