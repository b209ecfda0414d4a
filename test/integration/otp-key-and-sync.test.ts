import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDevPki, type DevPkiPaths } from '../../provisioning/dev-pki.js';
import { SiteAdmin } from '../../sim/cloud/admin.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { SeededRandom } from '../../src/base/random.js';
import { Secret } from '../../src/crypto/secret.js';
import { attachSiteLocks, connectCloud, startHubOnline, writeSiteConfig } from '../helpers/cloud-site.js';
import { type Proc, requireBuild } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`otp-key-and-sync: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-factory';

/**
 * A hub provisioned with a factory CA (its certificate from the dev PKI's CA, no enrollment, no
 * OTP key file) gets its OTP key from the reference cloud over the uplink and accepts a signed
 * open; the cloud rotates the key; the key survives a restart. Then `syncNow` brings the same hub
 * up to date after a sync it missed while it was down (session expiry 0: the broker keeps nothing
 * for it), and a delta that does not fit makes the hub ask for a sync on its own.
 */
describe.skipIf(!haveMosquitto)(
  `OTP key delivery and syncNow through mosquitto${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`,
  () => {
    let base: string;
    let pki: DevPkiPaths;
    let broker: Mosquitto;
    let cloud: ReferenceCloud;
    let config: string;
    let daemon: Proc | undefined;
    let lockId: string;
    const admin = new SiteAdmin({
      siteId: 'site-f',
      pinKey: new Secret(Buffer.alloc(32, 3)),
      random: new SeededRandom('admin'),
    });

    const stopHub = async () => {
      daemon?.child.kill('SIGTERM');
      await daemon?.exit;
      daemon = undefined;
    };

    beforeAll(async () => {
      base = mkdtempSync(join(tmpdir(), 'iqhub-otpsync-'));
      pki = createDevPki({ dir: join(base, 'pki'), hubId: HUB });
      const b = await startMosquitto({ pkiDir: join(base, 'pki') });
      if (!b) throw new Error('mosquitto did not start');
      broker = b;
      // No OTP key for the hub: the cloud has none until it delivers one.
      cloud = await connectCloud(broker.url, pki);
      cloud.enableOtpKeys({ ca: readFileSync(pki.ca.cert) });
      admin.serve(cloud);
      config = writeSiteConfig({
        base,
        brokerUrl: broker.url,
        pki,
        locks: 1,
        seed: 'otp-key-and-sync',
        otp: false,
        uplink: ['  sessionExpirySec: 0'],
      });
    }, 120_000);

    afterAll(async () => {
      await stopHub();
      await cloud?.close();
      await broker?.close();
      if (base) rmSync(base, { recursive: true, force: true });
    });

    it('a factory-CA hub without an OTP key receives one over the uplink and accepts a signed open', async () => {
      daemon = await startHubOnline(cloud, HUB, config);
      await cloud.waitFor((c) => [...c.otpKeys.acks(HUB).values()].some((a) => a.ok), 20_000, 'the OTP key installed');
      const ack = [...cloud.otpKeys.acks(HUB).values()].find((a) => a.ok);
      expect(ack).toMatchObject({ generation: 1, lastCounter: 0 });
      expect(cloud.otpKeys.requests(HUB)[0]).toMatchObject({ ok: true, current: null });
      [lockId] = (await attachSiteLocks(base)) as [string];
      const r = await cloud.command(HUB, { op: 'open', lockId, args: { durationMs: 1000 } });
      expect(r.ok, JSON.stringify(r.error)).toBe(true);
      // The key never appears in the daemon's output.
      const key = cloud.otpKeys.keyOf(HUB, 1) as Secret;
      const hex = Buffer.from(key.reveal()).toString('hex');
      expect(daemon.stdout() + daemon.stderr()).not.toContain(hex);
    }, 120_000);

    it('the cloud rotates the key: commands go on under the new one, the counter carries on', async () => {
      const before = cloud.nextCounter(HUB) as number;
      const ack = await cloud.rotateOtpKey(HUB);
      expect(ack).toMatchObject({ ok: true, generation: 2 });
      expect(ack.lastCounter).toBe(before - 1);
      const r = await cloud.command(HUB, { op: 'getState', lockId });
      expect(r.ok, JSON.stringify(r.error)).toBe(true);
      // A command under the old key is refused.
      const old = cloud.otpKeys.keyOf(HUB, 1) as Secret;
      const now = cloud.otpKeys.keyOf(HUB, 2) as Secret;
      cloud.setOtpKey(HUB, old);
      expect((await cloud.command(HUB, { op: 'getState', lockId })).error?.code).toBe('otp_mismatch');
      cloud.setOtpKey(HUB, now);
    }, 60_000);

    it('after a restart the delivered key is in use, and the first delivery replayed is refused', async () => {
      await stopHub();
      daemon = await startHubOnline(cloud, HUB, config);
      await cloud.waitFor((c) => c.otpKeys.requests(HUB).length >= 2, 20_000, 'a second otp-key/request');
      expect(cloud.otpKeys.requests(HUB).at(-1)?.current?.generation).toBe(2);
      const r = await cloud.command(HUB, { op: 'getState', lockId });
      expect(r.ok, JSON.stringify(r.error)).toBe(true);
      const first = [...cloud.otpKeys.acks(HUB).keys()][0] as string;
      const replay = cloud.otpKeys.sentDelivery(HUB, first);
      const acks = cloud.otpKeys.acks(HUB).size;
      await cloud.send(HUB, 'otp-key', JSON.stringify(replay));
      await cloud.waitFor((c) => c.otpKeys.ackLog(HUB).length > acks, 10_000, 'the answer to the replayed delivery');
      expect(cloud.otpKeys.ackLog(HUB).at(-1)?.error?.code).toBe('stale_generation');
      expect((await cloud.command(HUB, { op: 'getState', lockId })).ok).toBe(true);
    }, 120_000);

    it('syncNow brings a hub that missed a sync while it was down up to date', async () => {
      admin.addUser('u1', { name: 'Ana' });
      expect((await admin.sync(cloud, HUB)).ok).toBe(true);
      const synced = admin.syncedVersion(HUB);
      await stopHub();
      // Sent while the hub is down with no session kept for it: lost.
      admin.addUser('u2', { name: 'Bo' });
      await expect(admin.sync(cloud, HUB, { timeoutMs: 1500 })).rejects.toThrow(/no sync\/ack/);
      daemon = await startHubOnline(cloud, HUB, config);
      const r = await cloud.command(HUB, { op: 'syncNow' });
      expect(r).toMatchObject({ ok: true, result: { requested: true, version: synced } });
      await vi.waitFor(() => expect(admin.served.length).toBeGreaterThan(0), { timeout: 15_000, interval: 50 });
      const served = admin.served[0];
      expect(served).toMatchObject({ from: synced, kind: 'delta', ack: { ok: true } });
      expect(served?.ack.version).toBeGreaterThan(synced + 1);
      expect(cloud.syncRequests(HUB).at(-1)).toMatchObject({ requestId: r.id, version: synced, reason: 'command' });
    }, 120_000);

    it('a delta that does not fit the mirror makes the hub ask for a sync itself', async () => {
      const served = admin.served.length;
      const ack = await cloud.sync(HUB, { kind: 'delta', baseVersion: 9000, version: 9001, data: {} });
      expect(ack.error?.code).toBe('sync.base-mismatch');
      // Polled: `served` is written after the ack resolves the cloud's own wait.
      await vi.waitFor(() => expect(admin.served.length).toBeGreaterThan(served), { timeout: 15_000, interval: 50 });
      expect(cloud.syncRequests(HUB).at(-1)?.reason).toBe('gap');
      expect(admin.served.at(-1)?.ack.ok).toBe(true);
    }, 60_000);
  },
);
