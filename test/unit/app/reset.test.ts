import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resetStore } from '../../../src/app/reset.js';
import { SeededRandom } from '../../../src/base/random.js';
import { parseConfig } from '../../../src/config/load.js';
import { openStoreWithKey } from '../../../src/crypto/store-identity.js';
import { refusal } from '../../helpers/refusal.js';
import { tempDir } from '../../helpers/tmp.js';

const random = new SeededRandom('reset');
const now = new Date('2026-12-07T04:20:00.000Z');

function hub(keyFile: string | null) {
  const base = tempDir();
  const dataDir = join(base, 'data');
  const config = parseConfig(
    `dataDir: ${dataDir}\nrunDir: ${base}/run\n${keyFile ? `secrets:\n  storageKeyFile: ${keyFile}\n` : ''}`,
    'config.yaml',
  );
  const o = openStoreWithKey({ dataDir, keyFile, credentialsDirectory: undefined, random });
  mkdirSync(join(dataDir, 'zigbee'));
  mkdirSync(join(dataDir, 'identity'));
  return { dataDir, config, opened: o };
}

describe('iqhub reset', () => {
  it('moves the store, its trace, the key made in the data directory and the ZigBee network aside; deletes nothing', () => {
    const { dataDir, config, opened } = hub(null);
    opened.store.close();
    const key = readFileSync(join(dataDir, 'storage-key'));
    const r = resetStore(config, {}, now);
    expect(r.movedTo).toBe(join(dataDir, 'reset-2026-12-07T04-20-00-000Z'));
    expect(r.moved.sort()).toEqual(['hub.db', 'storage-key', 'store-identity.json', 'zigbee']);
    expect(r.keptKey).toBeNull();
    expect(r.was.keyFingerprint).toBe(opened.fingerprint);
    expect(readFileSync(join(r.movedTo ?? '', 'storage-key')).equals(key)).toBe(true);
    // The certificate stays: the hub keeps its id towards the cloud.
    expect(readdirSync(dataDir).sort()).toEqual(['identity', 'reset-2026-12-07T04-20-00-000Z']);
    // And the next start is a first start.
    const fresh = openStoreWithKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random });
    expect(fresh.identity).toBe('created');
    expect(fresh.fingerprint).not.toBe(opened.fingerprint);
    fresh.store.close();
  });

  it('keeps a key from outside the data directory, and the ZigBee network it sealed', () => {
    const keyFile = join(tempDir(), 'key');
    writeFileSync(keyFile, Buffer.alloc(32, 1), { mode: 0o600 });
    const { dataDir, config, opened } = hub(keyFile);
    opened.store.close();
    const r = resetStore(config, {}, now);
    expect(r.keptKey).toBe(keyFile);
    expect(r.moved.sort()).toEqual(['hub.db', 'store-identity.json']);
    expect(existsSync(join(dataDir, 'zigbee'))).toBe(true);
    const fresh = openStoreWithKey({ dataDir, keyFile, credentialsDirectory: undefined, random });
    expect(fresh.identity).toBe('created');
    expect(fresh.fingerprint).toBe(opened.fingerprint);
    fresh.store.close();
  });

  it('refuses while a daemon holds the store, and moves nothing', () => {
    const { dataDir, config, opened } = hub(null);
    try {
      expect(refusal(() => resetStore(config, {}, now)).code).toBe('reset.daemon-running');
      expect(readdirSync(dataDir).filter((n) => n.startsWith('reset-'))).toEqual([]);
    } finally {
      opened.store.close();
    }
  });
});
