import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { ed25519PublicKey, fromBase64url } from '../access/digital-key.js';
import { HubError } from '../base/errors.js';

const MAX_BYTES = 4096;

/**
 * The cloud's Ed25519 public key that signs digital keys (`access.cloudKeyFile`): a PEM public
 * key, or its 32 raw bytes as base64url on one line. Anything else stops the daemon with a
 * HubError `access.cloud-key` naming the file; a hub that cannot check digital keys must say so
 * at start, not refuse every phone at the door in silence.
 */
export function loadCloudKey(path: string): KeyObject {
  const fail = (why: string) =>
    new HubError('access.cloud-key', `access.cloudKeyFile ${path}: ${why}`, {
      hint: 'give the cloud signing key from enrollment (iqhub pki dev writes cloud-signing.pub), or set access.cloudKeyFile to null',
    });
  let text: string;
  try {
    if (statSync(path).size > MAX_BYTES) throw fail(`larger than ${MAX_BYTES} bytes: not a public key`);
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    if (e instanceof HubError) throw e;
    throw fail(`cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (text.startsWith('-----BEGIN')) {
    let key: KeyObject;
    try {
      key = createPublicKey(text);
    } catch {
      throw fail('is not a PEM public key');
    }
    if (key.asymmetricKeyType !== 'ed25519') throw fail(`is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
    return key;
  }
  const raw = fromBase64url(text, 32);
  if (!raw) throw fail('is neither PEM nor 32 bytes of base64url');
  try {
    return ed25519PublicKey(raw);
  } catch {
    throw fail('is not a valid Ed25519 public key');
  }
}
