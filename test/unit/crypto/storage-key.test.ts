import { chmodSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../src/base/random.js';
import { loadStorageKey } from '../../../src/crypto/storage-key.js';
import { refusal } from '../../helpers/refusal.js';
import { tempDir } from '../../helpers/tmp.js';

const random = new SeededRandom('key');

describe('storage key', () => {
  it('is created on first run with mode 0600 and read back on the next', () => {
    const dataDir = tempDir();
    const first = loadStorageKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random });
    expect(first.origin).toBe('key-file-created');
    expect(statSync(first.path).mode & 0o777).toBe(0o600);
    const second = loadStorageKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random });
    expect(second.origin).toBe('key-file');
    expect(Buffer.from(second.key.reveal()).equals(Buffer.from(first.key.reveal()))).toBe(true);
  });

  it('a key file with mode 0644 is refused with a clear message', () => {
    const dataDir = tempDir();
    const { path } = loadStorageKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random });
    chmodSync(path, 0o644);
    const e = refusal(() => loadStorageKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random }));
    expect(e.code).toBe('storage-key.permissions');
    expect(e.message).toContain(`${path} has mode 0644`);
    expect(e.hint).toContain(`chmod 600 ${path}`);
  });

  it('a group-readable key file (0640) is refused too', () => {
    const dataDir = tempDir();
    const { path } = loadStorageKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random });
    chmodSync(path, 0o640);
    expect(
      refusal(() => loadStorageKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random })).code,
    ).toBe('storage-key.permissions');
  });

  it('a key file that is a symbolic link is refused', () => {
    const dataDir = tempDir();
    const real = join(dataDir, 'elsewhere');
    writeFileSync(real, Buffer.alloc(32, 1), { mode: 0o600 });
    symlinkSync(real, join(dataDir, 'storage-key'));
    expect(
      refusal(() => loadStorageKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random })).code,
    ).toBe('storage-key.unreadable');
  });

  it('a key file of the wrong length is refused without showing its content', () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'storage-key'), 'short-secret-material', { mode: 0o600 });
    const e = refusal(() => loadStorageKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random }));
    expect(e.code).toBe('storage-key.format');
    expect(`${e.message} ${e.hint}`).not.toContain('short-secret-material');
  });

  it('64 hex digits with a newline are accepted', () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'storage-key'), `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const k = loadStorageKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random });
    expect(Buffer.from(k.key.reveal()).toString('hex')).toBe('ab'.repeat(32));
  });

  it('a systemd credential is preferred over the key file', () => {
    const dataDir = tempDir();
    const creds = join(dataDir, 'creds');
    mkdirSync(creds);
    // systemd makes credential files read-only for the service; their mode is not ours to judge.
    writeFileSync(join(creds, 'storage-key'), Buffer.alloc(32, 7), { mode: 0o440 });
    const k = loadStorageKey({ dataDir, keyFile: null, credentialsDirectory: creds, random });
    expect(k.origin).toBe('systemd-credential');
    expect(Buffer.from(k.key.reveal()).equals(Buffer.alloc(32, 7))).toBe(true);
  });

  it('a configured key file that does not exist is an error, not silently created', () => {
    const dataDir = tempDir();
    const e = refusal(() =>
      loadStorageKey({ dataDir, keyFile: join(dataDir, 'nope'), credentialsDirectory: undefined, random }),
    );
    expect(e.code).toBe('storage-key.missing');
  });
});
