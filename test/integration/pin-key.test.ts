import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SiteAdmin } from '../../sim/cloud/admin.js';
import { wrapForKey } from '../../sim/cloud/ca.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { simulatedSiteSecrets } from '../../sim/world.js';
import { SeededRandom } from '../../src/base/random.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { Secret } from '../../src/crypto/secret.js';
import { attachSiteLocks, closeSite, openSite, startHubOnline, writeSiteConfig } from '../helpers/cloud-site.js';
import { type Proc, requireBuild, runCli } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`pin-key: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-pinkey';
const SEED = 'pin-key-it';

/**
 * The site PIN key end to end (docs/digital-keys.md, "PIN key delivery and rotation"): the cloud
 * seals it to the hub in a sync over mosquitto, the daemon delivers it to its simulated locks over
 * the sealed link (the locks have no other source), a rotation's overlap, and the key nowhere in
 * the daemon's output, the CLI's or what the cloud received.
 */
describe.skipIf(!haveMosquitto)(`the site PIN key${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`, () => {
  let base: string;
  let broker: Mosquitto;
  let cloud: ReferenceCloud;
  let daemon: Proc | undefined;
  let admin: SiteAdmin;
  let socket: string;
  let locks: string[] = [];
  const site = simulatedSiteSecrets(SEED);
  const k2 = new Secret(new SeededRandom('pin key v2').bytes(32));
  const secrets = [site.pinKey, k2].flatMap((k) => [
    Buffer.from(k.reveal()).toString('hex'),
    Buffer.from(k.reveal()).toString('base64'),
  ]);
  const held = async (deviceId: string) => {
    const all = (await callDaemon(socket, 'sim.locks', {})) as { deviceId: string; pinKey: unknown }[];
    return all.find((l) => l.deviceId === deviceId)?.pinKey;
  };
  const pin = async (deviceId: string, digits: string) =>
    (await callDaemon(socket, 'sim.pin', { deviceId, pin: digits }, 30_000)) as { opened: boolean; reason: string };
  const waitHeld = async (deviceId: string, want: unknown) => {
    for (let i = 0; i < 300 && JSON.stringify(await held(deviceId)) !== JSON.stringify(want); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await held(deviceId)).toEqual(want);
  };

  beforeAll(async () => {
    const s = await openSite('pinkey', HUB);
    ({ base, broker, cloud } = s);
    const config = writeSiteConfig({ base, brokerUrl: broker.url, pki: s.pki, locks: 2, seed: SEED });
    daemon = await startHubOnline(cloud, HUB, config);
    socket = join(base, 'run', 'control.sock');
    locks = await attachSiteLocks(base);
    admin = new SiteAdmin({ ...site, random: new SeededRandom('admin') });
    admin.setHubKey(HUB, readFileSync(s.pki.hub.cert, 'utf8'));
    admin.addUser('ana');
    admin.addGroup('all', locks);
    admin.addMember('ana', 'all');
  }, 120_000);

  afterAll(async () => {
    await closeSite({ daemon, cloud, broker, base });
  });

  it('a key sealed to another hub refuses the sync whole (sync.pin-key); nothing reaches the locks', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ack = await cloud.sync(
      HUB,
      {
        kind: 'snapshot',
        version: 1,
        data: {
          ...admin.snapshotData(),
          pinKey: {
            version: 1,
            key: wrapForKey(other.publicKey.export({ type: 'spki', format: 'pem' }).toString(), site.pinKey.reveal()),
          },
        },
      },
      { timeoutMs: 20_000 },
    );
    expect(ack).toMatchObject({ ok: false, error: { code: 'sync.pin-key' } });
    for (const id of locks) expect(await held(id)).toEqual({ version: 0, previous: 0 });
  });

  it('delivered over the link after a sync, a PIN opens; a rotation admits old and re-issued PINs, then only the new', async () => {
    const oldPin = admin.issuePin('pin-ana', 'ana');
    expect((await admin.sync(cloud, HUB, { timeoutMs: 20_000 })).ok).toBe(true);
    const [a = ''] = locks;
    await waitHeld(a, { version: 1, previous: 0 });
    expect(await pin(a, oldPin)).toMatchObject({ opened: true });

    const rotation = admin.rotatePinKey(Date.now() + 3_600_000, k2);
    const newPin = rotation.reissued[0]?.pin ?? '';
    expect((await admin.sync(cloud, HUB, { timeoutMs: 20_000 })).ok).toBe(true);
    await waitHeld(a, { version: 2, previous: 1 });
    expect(await pin(a, oldPin)).toMatchObject({ opened: true });
    expect(await pin(a, newPin)).toMatchObject({ opened: true });

    admin.endPinKeyOverlap();
    expect((await admin.sync(cloud, HUB, { timeoutMs: 20_000 })).ok).toBe(true);
    await waitHeld(a, { version: 2, previous: 0 });
    expect(await pin(a, oldPin)).toMatchObject({ opened: false, reason: 'unknown-credential' });
    expect(await pin(a, newPin)).toMatchObject({ opened: true });

    // `iqhub offline` shows the versions, current or not, and never a key.
    const human = await runCli(['offline', '--socket', socket]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('PIN key');
    expect(human.stdout).toContain('v2');
    const json = await runCli(['offline', '--json', '--socket', socket]);
    const rows = JSON.parse(json.stdout) as { lockId: string; pinKeyVersion: number; pinKeyCurrent: boolean }[];
    expect(rows.map((r) => [r.pinKeyVersion, r.pinKeyCurrent])).toEqual(locks.map(() => [2, true]));
    const everything = [
      human.stdout,
      human.stderr,
      json.stdout,
      daemon?.stdout() ?? '',
      daemon?.stderr() ?? '',
      JSON.stringify(cloud.events(HUB)),
      JSON.stringify(cloud.answers(HUB)),
      JSON.stringify(cloud.health(HUB)),
    ].join('\n');
    for (const s of secrets) expect(everything).not.toContain(s);
  }, 120_000);
});
