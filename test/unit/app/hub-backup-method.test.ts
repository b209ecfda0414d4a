import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { CoordinatorBackups } from '../../../src/app/control-methods.js';
import { registerHubBackupMethod } from '../../../src/app/hub-backup-method.js';
import { b64u, generateHpkeKeyPair } from '../../../src/backup/envelope.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import { parseConfig } from '../../../src/config/load.js';
import type { HubConfig } from '../../../src/config/schema.js';
import type { ControlServer } from '../../../src/control-socket/socket-server.js';
import { openStoreWithKey } from '../../../src/crypto/store-identity.js';
import { silentLogger } from '../../../src/log/logger.js';
import { tempDir } from '../../helpers/tmp.js';

type Handler = (p: Record<string, unknown>) => Promise<unknown>;

async function method(overrides: Partial<HubConfig>, zigbee?: CoordinatorBackups) {
  const random = new SeededRandom('hub-backup-method');
  const dataDir = tempDir();
  const config = parseConfig('{}', '(test)', { dataDir, ...overrides });
  const opened = openStoreWithKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random });
  const handlers = new Map<string, Handler>();
  const server = { register: (name: string, spec: { handler: Handler }) => handlers.set(name, spec.handler) };
  registerHubBackupMethod(server as unknown as ControlServer, {
    config,
    store: opened.store,
    sealer: opened.sealer,
    random,
    clock: new VirtualClock(Date.UTC(2026, 11, 7)),
    log: silentLogger(),
    zigbee: () => zigbee,
  });
  const handler = handlers.get('hub.backup') as Handler;
  return { call: () => handler({}).finally(() => opened.store.close()), random };
}

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => (e instanceof HubError ? e.code : String(e)),
  );

describe('hub.backup on the control socket', () => {
  it('is refused without a recovery key, and without a hub id, naming the config key', async () => {
    expect(await refusal((await method({})).call())).toBe('backup.no-recovery-key');
    const key = b64u((await generateHpkeKeyPair(new SeededRandom('k'))).publicKey);
    expect(await refusal((await method({ backup: { recoveryPublicKey: key } })).call())).toBe('backup.no-hub-id');
  });

  it('takes a fresh coordinator backup first; a radio that is not ready does not stop the hub backup', async () => {
    const key = b64u((await generateHpkeKeyPair(new SeededRandom('k'))).publicKey);
    let asked = 0;
    const notReady: CoordinatorBackups = {
      backup: async () => {
        asked++;
        throw new HubError('zigbee.unavailable', 'not ready');
      },
      backups: () => [],
      restore: async () => undefined,
    };
    const m = await method(
      { backup: { recoveryPublicKey: key }, provisioning: { hubId: 'hub-1' } as HubConfig['provisioning'] },
      notReady,
    );
    const r = (await m.call()) as { path: string; zigbeeFresh: boolean; hubId: string };
    expect(asked).toBe(1);
    expect(r).toMatchObject({ zigbeeFresh: false, hubId: 'hub-1' });
    expect(existsSync(r.path)).toBe(true);
  });
});
