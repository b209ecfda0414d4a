import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevPki, createForeignCa } from '../../provisioning/dev-pki.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import { installIdentity } from '../../provisioning/identity-install.js';
import { makeKeyAndCsr } from '../../provisioning/key-and-csr.js';
import { CloudCa, parseCsr } from '../../sim/cloud/ca.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { systemClock } from '../../src/base/clock.js';
import { SeededRandom } from '../../src/base/random.js';
import type { CmdResultPayload } from '../../src/contract/mqtt-hub-messages.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { UplinkClient } from '../../src/uplink/mqtt-client.js';
import { attachSiteLocks, connectCloud, writeSiteConfig } from '../helpers/cloud-site.js';
import { capturingLogger } from '../helpers/commands.js';
import { requireBuild, runCli, start } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`rotation: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-rotating';
const LOCKS = ['SIM-0001', 'SIM-0002', 'SIM-0003'];
/** Every certificate here lives this long: renewed after 2/3 of it (about 20 s). */
const VALIDITY_SEC = 30;
const pem = (p: string) => readFileSync(p);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Certificate rotation with short-lived certificates, against real mosquitto, the reference
 * cloud (which signs renewals with the dev CA) and a real daemon. Simulated locks produce events
 * and the cloud sends OTP-signed commands all through the switch: every event reaches the cloud
 * once, every command is answered, the hub ends with a new key and certificate on disk and in
 * use (it reconnects after the old certificate expired), and nothing of the old one is left.
 */
describe.skipIf(!haveMosquitto)(
  `certificate rotation through mosquitto${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`,
  () => {
    let base: string;
    let broker: Mosquitto;
    let cloud: ReferenceCloud;
    let config: string;
    let pki: ReturnType<typeof createDevPki>;
    let original: { keyPem: string; fingerprint: string; notAfter: number };

    const dataDir = () => join(base, 'data');
    const call = (method: string, params: Record<string, unknown>) =>
      callDaemon(join(base, 'run', 'control.sock'), method, params, 30_000);
    const flash = (id: string) =>
      JSON.parse(readFileSync(join(dataDir(), 'sim', `${id}.json`), 'utf8')) as { nextSeq: number };
    const installed = () => new X509Certificate(readFileSync(identityPaths(dataDir()).cert));

    beforeAll(async () => {
      base = mkdtempSync(join(tmpdir(), 'iqhub-rotation-'));
      pki = createDevPki({ dir: join(base, 'pki'), hubId: 'unused-dev-hub' });
      // The hub's first identity: its own key, a 30-second certificate from the dev CA.
      const ca = new CloudCa({ cert: pem(pki.ca.cert), key: pem(pki.ca.key) });
      const { keyPem, csrPem } = makeKeyAndCsr(HUB);
      const first = ca.issue(parseCsr(csrPem), { validitySec: VALIDITY_SEC });
      const info = installIdentity({
        dataDir: dataDir(),
        certPem: first.certPem,
        caPem: pem(pki.ca.cert),
        keyPem,
        csrPem,
        hubId: HUB,
        now: Date.now(),
      });
      original = { keyPem, fingerprint: info.fingerprint, notAfter: Date.parse(info.notAfter) };

      const b = await startMosquitto({ pkiDir: join(base, 'pki'), persistence: true });
      if (!b) throw new Error('mosquitto did not start');
      broker = b;
      cloud = await connectCloud(broker.url, pki, HUB);
      // Renewals: 30-second certificates too.
      await cloud.enableCertificates({
        ca: { cert: pem(pki.ca.cert), key: pem(pki.ca.key) },
        validitySec: VALIDITY_SEC,
      });
      config = writeSiteConfig({
        base,
        brokerUrl: broker.url,
        pki,
        locks: 3,
        seed: 'rotation',
        identity: 'installed',
        uplink: ['  healthIntervalSec: 5'],
        commands: ['  lockoutFailures: 1000'],
        extra: ['provisioning:', '  rotateAtFraction: 0.667'],
      });
    }, 60_000);

    afterAll(async () => {
      await cloud?.close();
      await broker?.close();
      if (base) rmSync(base, { recursive: true, force: true });
    });

    it('events and commands all through the switch: none lost, none missed; the new certificate in use, the old one gone', async () => {
      const daemon = start(['run', '--config', config]);
      await daemon.waitForOutput('iq-hub ready');
      await cloud.waitFor((c) => c.status(HUB)?.state === 'online', 15_000, 'the hub online');
      await attachSiteLocks(base);

      // Traffic both ways until well after the switch: an event every ~100 ms, a command every ~250 ms.
      const random = new SeededRandom('rotation');
      const commands: Promise<CmdResultPayload>[] = [];
      let running = true;
      const events = (async () => {
        while (running) {
          const deviceId = LOCKS[random.int(LOCKS.length)] as string;
          await call('sim.act', { deviceId, act: random.int(2) === 0 ? 'open-by-hand' : 'tamper' });
          await sleep(100);
        }
      })();
      const orders = (async () => {
        while (running) {
          const lockId = LOCKS[random.int(LOCKS.length)] as string;
          commands.push(
            cloud.command(HUB, random.int(2) === 0 ? { op: 'ping' } : { op: 'getState', lockId }, {
              timeoutMs: 30_000,
            }),
          );
          await sleep(250);
        }
      })();

      // The renewal: asked at 2/3 of the lifetime (about 20 s in).
      await cloud.waitFor(
        (c) => c.certificates(HUB).some((x) => x.kind === 'renewal'),
        VALIDITY_SEC * 1000,
        'a renewal request answered',
      );
      const renewed = cloud.certificates(HUB).find((x) => x.kind === 'renewal');
      const deadline = Date.now() + 15_000;
      while (installed().fingerprint256 !== renewed?.fingerprint && Date.now() < deadline) await sleep(50);
      expect(installed().fingerprint256, 'the renewed certificate installed').toBe(renewed?.fingerprint);
      const cert = await runCli(['cert', '--json', '--config', config]);
      expect(cert.code, cert.stderr).toBe(0);
      expect(JSON.parse(cert.stdout)).toMatchObject({ hubId: HUB, fingerprint: renewed?.fingerprint });
      await sleep(3_000); // more traffic on the new connection
      running = false;
      await Promise.all([events, orders]);

      // Every command answered ok: none missed in the switch.
      const results = await Promise.all(commands);
      expect(results.length).toBeGreaterThan(40);
      expect(
        results.filter((r) => !r.ok),
        JSON.stringify(results.filter((r) => !r.ok)).slice(0, 500),
      ).toEqual([]);

      // Every event reached the cloud, once per id, in each lock's order.
      const produced = () => LOCKS.reduce((n, id) => n + flash(id).nextSeq - 1, 0);
      await cloud.waitFor((c) => c.events(HUB).length >= produced(), 30_000, 'every event at the cloud');
      const got = cloud.events(HUB);
      expect(got.length).toBe(produced());
      expect(new Set(got.map((e) => e.id)).size).toBe(got.length);
      for (const id of LOCKS) {
        expect(got.filter((e) => e.lockId === id).map((e) => e.seq)).toEqual(
          Array.from({ length: flash(id).nextSeq - 1 }, (_, i) => i + 1),
        );
      }
      expect(cloud.orderViolations(HUB)).toEqual([]);

      // The old key and certificate are gone: not on disk under any name.
      const paths = identityPaths(dataDir());
      expect(installed().fingerprint256).not.toBe(original.fingerprint);
      expect(readdirSync(paths.dir).sort()).toEqual(['ca.crt', 'hub.crt', 'hub.csr', 'hub.key']);
      const keyBody = original.keyPem.split('\n')[1] as string;
      expect(readFileSync(paths.key, 'utf8')).not.toContain(keyBody);
      const pemBody = (x: X509Certificate) => x.toString().split('\n')[1] as string;
      expect(readFileSync(paths.cert, 'utf8')).toContain(pemBody(installed()));
      expect(daemon.stdout()).toContain('rotation: new certificate installed and in use');
      expect(daemon.stdout() + daemon.stderr()).not.toMatch(/PRIVATE KEY/);

      // The new certificate is the one in use: once the old one has expired, the broker restarts
      // and the hub connects again (with the old one it could not), and keeps serving.
      const wait = original.notAfter + 1500 - Date.now();
      if (wait > 0) await sleep(wait);
      const seen = cloud.statusHistory(HUB).length;
      await broker.stop();
      await broker.start();
      await cloud.waitForOnline(HUB, seen, 20_000, 'the hub online again after the old certificate expired');
      const pong = await cloud.command(HUB, { op: 'ping' }, { timeoutMs: 15_000 });
      expect(pong, JSON.stringify(pong)).toMatchObject({ ok: true });
      await call('sim.act', { deviceId: 'SIM-0001', act: 'open-by-hand' });
      await cloud.waitFor((c) => c.events(HUB).length >= produced(), 15_000, 'the event after the restart');
      expect(cloud.invalid, JSON.stringify(cloud.invalidMessages)).toBe(0);

      // Health reports the certificate the hub now uses.
      await cloud.waitFor(
        (c) => Date.parse(c.health(HUB).at(-1)?.certificate.notAfter ?? '') > original.notAfter,
        15_000,
        "health with the new certificate's expiry",
      );

      daemon.child.kill('SIGTERM');
      expect((await daemon.exit).code).toBe(0);
    }, 120_000);

    it('a new certificate the broker refuses changes nothing: the old connection stays up, and a good one then takes over', async () => {
      const { log, text } = capturingLogger();
      const SWITCHER = 'hub-switching';
      const ca = new CloudCa({ cert: pem(pki.ca.cert), key: pem(pki.ca.key) });
      const issue = (signer: CloudCa) => {
        const k = makeKeyAndCsr(SWITCHER);
        return {
          key: Buffer.from(k.keyPem),
          cert: Buffer.from(signer.issue(parseCsr(k.csrPem), { validitySec: 600 }).certPem),
        };
      };
      const first = issue(ca);
      const client = new UplinkClient({
        url: broker.url,
        hubId: SWITCHER,
        ca: pem(pki.ca.cert),
        cert: first.cert,
        key: first.key,
        serverName: 'localhost',
        reconnectBaseMs: 100,
        reconnectMaxMs: 500,
        clock: systemClock,
        random: new SeededRandom('switch'),
        log,
        version: 'test',
        startedAt: Date.now(),
      });
      const connects: number[] = [];
      const drops: number[] = [];
      client.on('connected', () => connects.push(Date.now()));
      client.on('disconnected', () => drops.push(Date.now()));
      client.start();
      try {
        await until('the test client connected', () => client.connected, 10_000);
        // A certificate for this hub from a CA the broker does not trust.
        const foreign = createForeignCa(join(base, 'foreign'));
        const bad = issue(new CloudCa({ cert: pem(foreign.ca.cert), key: pem(foreign.ca.key) }));
        const refused = await client.switchCredentials(bad.cert, bad.key);
        expect(refused.ok).toBe(false);
        expect(client.connected).toBe(true);
        expect(drops).toEqual([]);
        expect(await client.publish('health-probe', '{}')).toEqual({ ok: true });

        // A good one: the broker takes it, and it replaces the old connection.
        const good = issue(ca);
        const before = connects.length;
        expect(await client.switchCredentials(good.cert, good.key)).toEqual({ ok: true });
        await until('the switched connection up', () => connects.length > before && client.connected, 10_000);
        expect(await client.publish('health-probe', '{}')).toEqual({ ok: true });
        expect(broker.log()).toContain(`Client ${SWITCHER} already connected, closing old connection`);
        expect(text()).toContain('the new certificate was not accepted');
        expect(text()).not.toMatch(/PRIVATE KEY/);
      } finally {
        await client.stop();
      }
    }, 60_000);
  },
);
