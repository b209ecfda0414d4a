import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ed25519PublicBytes, toBase64url } from '../../../src/access/digital-key.js';
import { loadCloudKey } from '../../../src/app/cloud-key-file.js';
import { HubError } from '../../../src/base/errors.js';
import { tempDir } from '../../helpers/tmp.js';

function file(content: string | Buffer): string {
  const path = join(tempDir(), 'cloud-signing.pub');
  writeFileSync(path, content);
  return path;
}

function refusal(path: string): string {
  try {
    loadCloudKey(path);
  } catch (e) {
    if (e instanceof HubError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'accepted';
}

describe('the cloud signing key (access.cloudKeyFile)', () => {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = ed25519PublicBytes(publicKey);

  it('reads a PEM public key and 32 raw bytes as base64url, to the same key', () => {
    const fromPem = loadCloudKey(file(publicKey.export({ type: 'spki', format: 'pem' }) as string));
    const fromRaw = loadCloudKey(file(`${toBase64url(raw)}\n`));
    expect(ed25519PublicBytes(fromPem)).toEqual(raw);
    expect(ed25519PublicBytes(fromRaw)).toEqual(raw);
  });

  it('refuses, naming the file: another key type, garbage, a short key, a huge file, a missing file', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' });
    expect(refusal(file(rsa as string))).toMatch(/^access\.cloud-key: .*cloud-signing\.pub: is a rsa key, not Ed25519/);
    expect(refusal(file('-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n'))).toMatch(
      /not a PEM public key/,
    );
    expect(refusal(file(toBase64url(raw.slice(0, 31))))).toMatch(/neither PEM nor 32 bytes/);
    expect(refusal(file(Buffer.alloc(10_000, 0x41)))).toMatch(/larger than 4096 bytes/);
    expect(refusal(join(tempDir(), 'absent.pub'))).toMatch(/cannot be read \(ENOENT\)/);
  });
});
