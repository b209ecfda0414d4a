import { constants, createPrivateKey, privateDecrypt } from 'node:crypto';
import type { AccessMirror } from '../access/mirror.js';
import type { IncomingPinKey, PinKeyRing } from '../access/pin-keys.js';
import { toMillis } from '../access/schedule.js';
import { HubError } from '../base/errors.js';
import { PIN_KEY_LEN } from '../contract/link-messages.js';
import type { SyncPayload } from '../contract/mqtt-cloud-messages.js';
import type { SyncPinKey } from '../contract/sync-data.js';
import { Secret } from '../crypto/secret.js';

/**
 * A sync's `pinKey` opened with the hub's private key: the same sealing as the enrollment's
 * secrets (RSA-OAEP, SHA-256, under the public key of the hub's certificate), so only this hub
 * can read it. Refused (`sync.pin-key`, nothing about the bytes in the message) when it does not
 * open or is not 32 bytes. The caller wipes the key.
 */
export function openSyncPinKey(keyPem: Buffer, p: SyncPinKey): IncomingPinKey {
  let plain: Buffer;
  try {
    plain = privateDecrypt(
      { key: createPrivateKey(keyPem), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      Buffer.from(p.key, 'base64'),
    );
  } catch {
    throw new HubError('sync.pin-key', `pinKey version ${p.version} does not open with this hub's key`);
  }
  try {
    if (plain.length !== PIN_KEY_LEN) {
      throw new HubError('sync.pin-key', `pinKey version ${p.version} is not ${PIN_KEY_LEN} bytes once opened`);
    }
    const key = new Secret(plain);
    return {
      version: p.version,
      key,
      ...(p.overlapUntil === undefined ? {} : { overlapUntil: toMillis(p.overlapUntil, 'pinKey.overlapUntil') }),
    };
  } finally {
    plain.fill(0);
  }
}

/**
 * Applies a sync to the mirror with its PIN key, if it has one: the key is opened and installed
 * inside the sync's transaction (after the schema check), so a refused key refuses the whole sync
 * and nothing changes. Committed, the ring's listeners (the delivery to the locks) are told.
 */
export function applyWithPinKey(
  mirror: AccessMirror,
  ring: PinKeyRing,
  p: SyncPayload,
  hubKeyPem: () => Buffer,
): ReturnType<AccessMirror['apply']> {
  // A previous key past its overlap goes now, even on a hub without locks (no delivery to do it).
  ring.expire();
  const pinKey = (p.data as { pinKey?: SyncPinKey }).pinKey;
  if (pinKey === undefined) return mirror.apply(p);
  const applied = mirror.apply(p, () => {
    const keyPem = hubKeyPem();
    let incoming: IncomingPinKey;
    try {
      incoming = openSyncPinKey(keyPem, pinKey);
    } finally {
      keyPem.fill(0);
    }
    try {
      ring.install(incoming);
    } finally {
      incoming.key.wipe();
    }
  });
  ring.changed();
  return applied;
}
