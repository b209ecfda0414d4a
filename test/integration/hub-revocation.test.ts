import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevPki } from '../../provisioning/dev-pki.js';
import { startEmbeddedBroker } from '../../sim/broker/embedded-broker.js';
import { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { devCloudConnection } from '../../sim/cloud/connect.js';
import { makeRestoreRequest } from '../../src/backup/restore.js';
import { takeHubBackup } from '../../src/backup/take.js';
import { SeededRandom } from '../../src/base/random.js';
import { Secret } from '../../src/crypto/secret.js';
import { openStoreWithKey } from '../../src/crypto/store-identity.js';
import { PairingStore } from '../../src/link/pairing.js';
import { tempDir } from '../helpers/tmp.js';

const OLD = 'hub-old';
const NEW = 'hub-new';
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('the reference cloud revokes the replaced hub', () => {
  it("after approving a replacement, the cloud refuses every message of the old hub, and the old hub's OTP key signs for the new one from above its last counter", async () => {
    const root = tempDir();
    const pki = createDevPki({ dir: join(root, 'pki'), hubId: OLD });
    const broker = await startEmbeddedBroker({
      ca: readFileSync(pki.ca.cert),
      cert: readFileSync(pki.broker.cert),
      key: readFileSync(pki.broker.key),
      cloudIds: ['cloud'],
    });
    cleanups.push(() => broker.close());
    const random = new SeededRandom('revocation');
    const cloud = new ReferenceCloud({ random });
    await cloud.connect(devCloudConnection(broker.url, pki, 4));
    cleanups.push(() => cloud.close());
    cloud.setOtpKey(OLD, new Secret(random.bytes(32)), { counter: 41 });

    const hub: MqttClient = connect(broker.url, {
      ca: readFileSync(pki.ca.cert),
      cert: readFileSync(pki.hub.cert),
      key: readFileSync(pki.hub.key),
      servername: 'localhost',
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    cleanups.push(() => hub.endAsync());
    await new Promise((resolve, reject) => hub.once('connect', resolve).once('error', reject));
    const status = (at: string) =>
      hub.publishAsync(`ks/hubs/${OLD}/status`, JSON.stringify({ v: 1, state: 'online', at }), { qos: 1 });
    await status('2026-12-07T07:00:00.000Z');
    await cloud.waitFor((c) => c.status(OLD)?.at === '2026-12-07T07:00:00.000Z', 10_000, 'the old hub online');

    // The old hub's backup, and the replacement's request approved by the cloud.
    const recoveryPublicKey = new Uint8Array(Buffer.from(await cloud.recovery.enable(), 'base64url'));
    const dataDir = tempDir();
    const opened = openStoreWithKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random });
    new PairingStore(opened.store).hubIdentity(opened.sealer, random, 0);
    const taken = await takeHubBackup({
      store: opened.store,
      sealer: opened.sealer,
      dataDir,
      hubId: OLD,
      recoveryPublicKey,
      random,
      now: Date.now(),
      hubVersion: 'test',
    });
    opened.store.close();
    const req = await makeRestoreRequest({
      dataDir: tempDir(),
      backupPath: taken.path,
      newHubId: NEW,
      random,
      now: Date.now(),
    });
    const { revocation } = await cloud.approveRestore(readFileSync(req.requestPath, 'utf8'));
    expect(revocation).toMatchObject({ hubId: OLD, replacedBy: NEW });
    expect(cloud.nextCounter(NEW)).toBe(41);

    const refusedBefore = cloud.invalidMessages.length;
    await status('2026-12-07T07:05:00.000Z');
    await cloud.waitFor((c) => c.invalidMessages.length > refusedBefore, 10_000, 'the revoked hub refused');
    expect(cloud.invalidMessages.at(-1)?.reason).toMatch(/revoked: replaced by hub-new/);
    expect(cloud.status(OLD)?.at).toBe('2026-12-07T07:00:00.000Z');
  });
});
