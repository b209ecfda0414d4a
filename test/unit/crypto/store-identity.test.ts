import { existsSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import { Sealer } from '../../../src/crypto/seal.js';
import { Secret } from '../../../src/crypto/secret.js';
import { checkStoreHubId, keyFingerprint, openStoreWithKey } from '../../../src/crypto/store-identity.js';
import { DB_FILE, IDENTITY_FILE } from '../../../src/store/files.js';
import { Store } from '../../../src/store/store.js';
import { refusal } from '../../helpers/refusal.js';
import { tempDir } from '../../helpers/tmp.js';

const random = new SeededRandom('store-identity');

function open(dataDir: string, more: { credentialsDirectory?: string; keyFile?: string } = {}) {
  return openStoreWithKey({
    dataDir,
    keyFile: more.keyFile ?? null,
    credentialsDirectory: more.credentialsDirectory,
    random,
  });
}

/** A hub that ran once: store and key made, a secret sealed in the store, closed. */
function ranOnce(): { dataDir: string; key: Buffer } {
  const dataDir = tempDir();
  const o = open(dataDir);
  expect(o.identity).toBe('created');
  const blob = o.sealer.seal(new Uint8Array([1, 2, 3]), { purpose: 'commands.otp-key', id: 'hub-0001' });
  o.store.db
    .prepare(
      "INSERT INTO sealed_secrets (purpose, id, blob, fingerprint, updated_at) VALUES ('commands.otp-key', 'hub-0001', ?, 'x', 1)",
    )
    .run(blob);
  o.store.close();
  return { dataDir, key: readFileSync(join(dataDir, 'storage-key')) };
}

/** Neither the key's bytes (raw, hex, base64) nor anything but its fingerprint in what a person sees. */
function expectNoKey(e: HubError, ...keys: Buffer[]): void {
  const shown = `${e.message}\n${e.hint}`;
  for (const k of keys) {
    expect(shown).not.toContain(k.toString('hex'));
    expect(shown).not.toContain(k.toString('base64'));
    expect(shown).not.toContain(k.toString('latin1'));
  }
}

describe('the store and its storage key are one identity', () => {
  it('a first start makes both and stamps the store with the key fingerprint, never the key', () => {
    const { dataDir, key } = ranOnce();
    const o = open(dataDir);
    expect(o.identity).toBe('matched');
    expect(o.fingerprint).toBe(keyFingerprint(new Secret(key)));
    expect(o.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    const meta = o.store.db.prepare('SELECT key, value FROM meta').all() as { key: string; value: string }[];
    o.store.close();
    const stored = JSON.stringify(meta) + readFileSync(join(dataDir, IDENTITY_FILE), 'utf8');
    expect(stored).toContain(o.fingerprint);
    expect(stored).not.toContain(key.toString('hex'));
    expect(key.toString('hex')).not.toContain(o.fingerprint);
  });

  it('a deleted hub.db beside an existing key is refused, not replaced by an empty store', () => {
    const { dataDir, key } = ranOnce();
    rmSync(join(dataDir, DB_FILE));
    const e = refusal(() => open(dataDir));
    expect(e.code).toBe('store.missing');
    expect(e.message).toContain(join(dataDir, DB_FILE));
    expect(e.message).toContain('is missing');
    expect(e.hint).toContain('restore');
    expect(e.hint).toContain('iqhub reset --yes');
    expectNoKey(e, key);
    expect(existsSync(join(dataDir, DB_FILE))).toBe(false);
  });

  it('an emptied hub.db (0 bytes) beside an existing key is refused', () => {
    const { dataDir } = ranOnce();
    truncateSync(join(dataDir, DB_FILE), 0);
    const e = refusal(() => open(dataDir));
    expect(e.code).toBe('store.emptied');
    expect(e.message).toContain('is empty (0 bytes)');
  });

  it('a deleted storage key beside an existing store is refused, and no new key is made', () => {
    const { dataDir } = ranOnce();
    rmSync(join(dataDir, 'storage-key'));
    const e = refusal(() => open(dataDir));
    expect(e.code).toBe('store.key-missing');
    expect(e.message).toContain(join(dataDir, 'storage-key'));
    expect(e.message).toContain(join(dataDir, DB_FILE));
    expect(e.hint).toContain('iqhub reset --yes');
    expect(existsSync(join(dataDir, 'storage-key'))).toBe(false);
  });

  it('another key than the store was stamped with is refused, naming both fingerprints and neither key', () => {
    const { dataDir, key } = ranOnce();
    const other = Buffer.alloc(32, 7);
    writeFileSync(join(dataDir, 'storage-key'), other, { mode: 0o600 });
    const e = refusal(() => open(dataDir));
    expect(e.code).toBe('store.key-mismatch');
    expect(e.message).toContain(keyFingerprint(new Secret(other)));
    expect(e.message).toContain(keyFingerprint(new Secret(key)));
    expectNoKey(e, key, other);
  });

  it('a store from before the stamp is adopted when its key opens its sealed records', () => {
    const { dataDir, key } = ranOnce();
    const s = Store.open(dataDir);
    s.db.prepare('DELETE FROM meta').run();
    s.close();
    rmSync(join(dataDir, IDENTITY_FILE));
    const o = open(dataDir);
    expect(o.identity).toBe('adopted');
    expect(o.fingerprint).toBe(keyFingerprint(new Secret(key)));
    o.store.close();
    expect(open(dataDir).identity).toBe('matched');
  });

  it('a store from before the stamp is refused when the key does not open its sealed records', () => {
    const { dataDir, key } = ranOnce();
    const s = Store.open(dataDir);
    s.db.prepare('DELETE FROM meta').run();
    s.close();
    rmSync(join(dataDir, IDENTITY_FILE));
    const other = Buffer.alloc(32, 9);
    writeFileSync(join(dataDir, 'storage-key'), other, { mode: 0o600 });
    const e = refusal(() => open(dataDir));
    expect(e.code).toBe('store.key-mismatch');
    expect(e.message).toContain('sealed commands.otp-key (hub-0001) does not open');
    expectNoKey(e, key, other);
    // Refused, not stamped: the right key still opens it afterwards.
    writeFileSync(join(dataDir, 'storage-key'), key, { mode: 0o600 });
    const o = open(dataDir);
    expect(o.identity).toBe('adopted');
    o.store.close();
  });

  it('with a key outside the data directory, the trace beside the store tells a lost store from a first start', () => {
    const dataDir = tempDir();
    const creds = tempDir();
    writeFileSync(join(creds, 'storage-key'), Buffer.alloc(32, 3), { mode: 0o600 });
    const first = open(dataDir, { credentialsDirectory: creds });
    expect(first.identity).toBe('created');
    expect(first.source.origin).toBe('systemd-credential');
    first.store.close();
    rmSync(join(dataDir, DB_FILE));
    const e = refusal(() => open(dataDir, { credentialsDirectory: creds }));
    expect(e.code).toBe('store.missing');
    expect(e.message).toContain(IDENTITY_FILE);
    // The whole data directory gone (a new installation): a first start again.
    rmSync(dataDir, { recursive: true });
    mkdirSync(dataDir);
    const again = open(dataDir, { credentialsDirectory: creds });
    expect(again.identity).toBe('created');
    again.store.close();
  });

  it('a first start cut short after making its key (still pending) is taken up by the next start', () => {
    const dataDir = tempDir();
    const key = Buffer.alloc(32, 0x42);
    writeFileSync(join(dataDir, 'storage-key.pending'), key, { mode: 0o600 });
    const o = open(dataDir);
    expect(o.identity).toBe('created');
    expect(o.source.path).toBe(join(dataDir, 'storage-key'));
    expect(o.fingerprint).toBe(keyFingerprint(new Secret(key)));
    o.store.close();
    expect(readFileSync(join(dataDir, 'storage-key')).equals(key)).toBe(true);
    expect(existsSync(join(dataDir, 'storage-key.pending'))).toBe(false);
    expect(open(dataDir).identity).toBe('matched');
  });

  it('a first start cut short after making its store, before stamping it, is taken up as well', () => {
    const dataDir = tempDir();
    const key = Buffer.alloc(32, 0x43);
    writeFileSync(join(dataDir, 'storage-key.pending'), key, { mode: 0o600 });
    Store.open(dataDir).close();
    const o = open(dataDir);
    expect(o.identity).toBe('created');
    o.store.close();
    expect(existsSync(join(dataDir, 'storage-key'))).toBe(true);
  });

  it('a pending key is not taken for a store stamped with another key', () => {
    const { dataDir } = ranOnce();
    rmSync(join(dataDir, 'storage-key'));
    writeFileSync(join(dataDir, 'storage-key.pending'), Buffer.alloc(32, 0x44), { mode: 0o600 });
    expect(refusal(() => open(dataDir)).code).toBe('store.key-mismatch');
    expect(existsSync(join(dataDir, 'storage-key'))).toBe(false);
  });

  it('the hub id is recorded once known, and a store of another hub is refused', () => {
    const { dataDir } = ranOnce();
    const o = open(dataDir);
    checkStoreHubId(o.store, 'hub-0001');
    checkStoreHubId(o.store, 'hub-0001');
    const e = refusal(() => checkStoreHubId(o.store, 'hub-0002'));
    o.store.close();
    expect(e.code).toBe('store.hub-mismatch');
    expect(e.message).toContain('belongs to hub hub-0001');
    expect(JSON.parse(readFileSync(join(dataDir, IDENTITY_FILE), 'utf8')).hubId).toBe('hub-0001');
  });

  it('the sealer handed out is the key of the store', () => {
    const { dataDir, key } = ranOnce();
    const o = open(dataDir);
    const blob = o.sealer.seal(new Uint8Array([5]), { purpose: 'p', id: 'i' });
    o.store.close();
    expect(new Sealer(new Secret(key), random).open(blob, { purpose: 'p', id: 'i' }).reveal()).toEqual(
      new Uint8Array([5]),
    );
  });
});
