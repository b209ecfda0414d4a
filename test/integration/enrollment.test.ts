import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevPki, issueClientCert } from '../../provisioning/dev-pki.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { attachSiteLocks, closeSite, connectCloud, startHubOnline, writeSiteConfig } from '../helpers/cloud-site.js';
import { type Proc, requireBuild } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`enrollment: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-enrolled';
const CLAIM = 'claim-factory';
const pem = (p: string) => readFileSync(p);

/**
 * Enrollment by claim against real mosquitto, the reference cloud and a real daemon: a hub with
 * only the shared claim certificate ends with its own certificate, its OTP key and its own
 * topics; the claim certificate can then do nothing but ask to enroll.
 */
describe.skipIf(!haveMosquitto)(
  `enrollment by claim through mosquitto${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`,
  () => {
    let base: string;
    let broker: Mosquitto;
    let cloud: ReferenceCloud;
    let pki: ReturnType<typeof createDevPki>;
    let claim: { cert: string; key: string };
    let config: string;
    let daemon: Proc | undefined;

    const dataDir = () => join(base, 'data');
    const call = (method: string, params: Record<string, unknown> = {}) =>
      callDaemon(join(base, 'run', 'control.sock'), method, params, 30_000);

    async function startHub(): Promise<Proc> {
      // Enrollment comes first: give it longer.
      daemon = await startHubOnline(cloud, HUB, config, 30_000);
      return daemon;
    }

    async function stopHub(): Promise<void> {
      const d = daemon;
      daemon = undefined;
      if (!d) return;
      d.child.kill('SIGTERM');
      expect((await d.exit).code).toBe(0);
    }

    /** An MQTT connection with the claim certificate, as anyone holding a hub image could make. */
    const claimClient = (clientId: string): Promise<MqttClient> =>
      connectAsync(broker.url, {
        ca: pem(pki.ca.cert),
        cert: pem(claim.cert),
        key: pem(claim.key),
        servername: 'localhost',
        rejectUnauthorized: true,
        protocolVersion: 5,
        clientId,
        clean: true,
        reconnectPeriod: 0,
      } as IClientOptions);

    beforeAll(async () => {
      base = mkdtempSync(join(tmpdir(), 'iqhub-enroll-'));
      // The dev PKI's hub certificate is not used: this hub gets its own at enrollment.
      pki = createDevPki({ dir: join(base, 'pki'), hubId: 'factory-unused' });
      claim = issueClientCert({ dir: join(base, 'pki'), cn: CLAIM, fileName: 'claim' });
      const b = await startMosquitto({
        pkiDir: join(base, 'pki'),
        claimIds: [CLAIM],
        clientIdFromCertificate: true,
      });
      if (!b) throw new Error('mosquitto did not start');
      broker = b;
      cloud = await connectCloud(broker.url, pki);
      await cloud.enableCertificates({
        ca: { cert: pem(pki.ca.cert), key: pem(pki.ca.key) },
        claimIds: [CLAIM],
        allowEnrollment: (hubId, claimId) => claimId === CLAIM && hubId === HUB,
      });
      config = writeSiteConfig({
        base,
        brokerUrl: broker.url,
        pki,
        locks: 1,
        seed: 'enrollment',
        identity: 'installed',
        otp: false,
        extra: [
          'provisioning:',
          `  hubId: ${HUB}`,
          `  claimCertFile: ${claim.cert}`,
          `  claimKeyFile: ${claim.key}`,
          `  claimCaFile: ${pki.ca.cert}`,
        ],
      });
    }, 60_000);

    afterAll(() => closeSite({ daemon, cloud, broker, base }));

    it('a hub with only the claim certificate enrolls, and is online under its own id with its own certificate and OTP key', async () => {
      expect(existsSync(identityPaths(dataDir()).cert)).toBe(false);
      const d = await startHub();

      // One enrollment, answered once, for this hub.
      const issued = cloud.certificates(HUB);
      expect(issued).toHaveLength(1);
      expect(issued[0]).toMatchObject({ kind: 'enrollment', hubId: HUB });
      expect(cloud.certificateAnswers()).toEqual([
        expect.objectContaining({ kind: 'enrollment', via: CLAIM, ok: true }),
      ]);

      // The installed certificate is the one the cloud issued: CN = hub id, from the dev CA.
      const paths = identityPaths(dataDir());
      const installed = new X509Certificate(readFileSync(paths.cert));
      expect(installed.fingerprint256).toBe(issued[0]?.fingerprint);
      expect(installed.subject).toContain(`CN=${HUB}`);
      expect(installed.checkIssued(new X509Certificate(pem(pki.ca.cert)))).toBe(true);
      expect(readdirSync(paths.dir).sort()).toEqual(['ca.crt', 'hub.crt', 'hub.csr', 'hub.key']);

      // The OTP key came encrypted to the hub: a command signed with the cloud's copy is accepted.
      const pong = await cloud.command(HUB, { op: 'ping' }, { timeoutMs: 15_000 });
      expect(pong, JSON.stringify(pong)).toMatchObject({ ok: true });

      // Events flow under the hub's own id.
      const [deviceId] = await attachSiteLocks(base);
      await call('sim.act', { deviceId, act: 'open-by-hand' });
      await cloud.waitFor((c) => c.events(HUB).length >= 1, 15_000, 'an event from the enrolled hub');

      // The log says so, and carries no key material.
      expect(d.stdout()).toContain('enrollment: complete');
      expect(d.stdout() + d.stderr()).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE REQUEST/);
      expect(cloud.invalid, JSON.stringify(cloud.invalidMessages)).toBe(0);
      await stopHub();
    }, 90_000);

    it('after a restart the hub uses its own certificate at once: no second enrollment', async () => {
      const d = await startHub();
      expect(d.stdout()).not.toContain('enrolling with the claim certificate');
      expect(cloud.certificates(HUB)).toHaveLength(1);
      const pong = await cloud.command(HUB, { op: 'ping' }, { timeoutMs: 15_000 });
      expect(pong.ok).toBe(true);
      await stopHub();
    }, 60_000);

    it('the claim certificate can do nothing else: no hub topic, no other claim, no response, no session takeover', async () => {
      await startHub();
      const c = await claimClient(HUB); // asks for the hub's client id: the broker gives it the claim's
      const received: string[] = [];
      c.on('message', (topic) => received.push(topic));
      try {
        const refused = async (topic: string) => {
          const err = await c.publishAsync(topic, '{"v":1}', { qos: 1 }).then(
            () => undefined,
            (e: { code?: number }) => e,
          );
          expect(err?.code, `publishing on ${topic}`).toBe(0x87);
        };
        for (const topic of [
          `ks/hubs/${HUB}/events`,
          `ks/hubs/${HUB}/status`,
          `ks/hubs/${HUB}/cmd`,
          `ks/hubs/${HUB}/cert/request`,
          `ks/hubs/${CLAIM}/status`,
          `ks/provisioning/${CLAIM}/response`,
          'ks/provisioning/other-claim/request',
          'anything/else',
        ]) {
          await refused(topic);
        }
        // Subscriptions are granted (mosquitto checks reads on delivery) but deliver nothing.
        await c.subscribeAsync(['#', 'ks/hubs/#', `ks/hubs/${HUB}/cmd`], { qos: 1 });
        const statusBefore = cloud.statusHistory(HUB).length;
        const pong = await cloud.command(HUB, { op: 'ping' }, { timeoutMs: 15_000 });
        expect(pong.ok).toBe(true);
        await new Promise((r) => setTimeout(r, 500));
        expect(received.filter((t) => !t.startsWith(`ks/provisioning/${CLAIM}/`))).toEqual([]);
        // The hub was not kicked off by a connection asking for its client id.
        expect(
          cloud
            .statusHistory(HUB)
            .slice(statusBefore)
            .map((s) => s.state),
        ).not.toContain('offline');
        expect(cloud.status(HUB)?.state).toBe('online');
      } finally {
        await c.endAsync();
      }
      await stopHub();
    }, 60_000);

    it("its one use, asking to enroll, cannot get an enrolled hub's certificate or secrets for another key", async () => {
      const { makeKeyAndCsr } = await import('../../provisioning/key-and-csr.js');
      const c = await claimClient('intruder');
      try {
        const answers = new Promise<Record<string, unknown>>((resolve) =>
          c.on('message', (_t, payload) => resolve(JSON.parse(payload.toString()) as Record<string, unknown>)),
        );
        await c.subscribeAsync(`ks/provisioning/${CLAIM}/response`, { qos: 1 });
        const { csrPem } = makeKeyAndCsr(HUB);
        await c.publishAsync(
          `ks/provisioning/${CLAIM}/request`,
          JSON.stringify({ v: 1, requestId: 'enr-intruder', hubId: HUB, csr: csrPem }),
          { qos: 1 },
        );
        const r = await answers;
        expect(r).toMatchObject({
          requestId: 'enr-intruder',
          hubId: HUB,
          ok: false,
          error: { code: 'already_enrolled' },
        });
        expect(r.cert).toBeUndefined();
        expect(r.secrets).toBeUndefined();
      } finally {
        await c.endAsync();
      }
      expect(cloud.certificates(HUB)).toHaveLength(1);
    }, 60_000);
  },
);
