import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createDevPki } from '../../provisioning/dev-pki.js';
import { SiteAdmin } from '../../sim/cloud/admin.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { simulatedSiteSecrets } from '../../sim/world.js';
import { SeededRandom } from '../../src/base/random.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { attachSiteLocks, closeSite, openSite, startHubOnline, writeSiteConfig } from '../helpers/cloud-site.js';
import { type Proc, requireBuild, start } from '../helpers/daemon.js';
import { documentedSeries, get, sample } from '../helpers/metrics.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto } from '../helpers/mosquitto.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`metrics: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-metrics';
const LOCK = 'SIM-0001';

describe('metrics.listen refused', () => {
  it('a non-loopback address without allowRemote: exit 78, the key and the way out named, nothing opened', async () => {
    const base = tempDir();
    const config = join(base, 'config.yaml');
    writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\nmetrics:\n  listen: "0.0.0.0:9464"\n`);
    const p = start(['run', '--config', config]);
    const { code } = await p.exit;
    expect(code).toBe(78);
    expect(p.stderr()).toContain('metrics.listen: 0.0.0.0:9464 is not a loopback address');
    expect(p.stderr()).toContain('metrics.allowRemote');
    // Refused before the store was opened.
    expect(() => statSync(join(base, 'data', 'hub.db'))).toThrow();
  }, 60_000);
});

describe.skipIf(!haveMosquitto)(
  `the metrics endpoint of a running daemon${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`,
  () => {
    let base: string;
    let broker: Mosquitto;
    let cloud: ReferenceCloud;
    let pki: ReturnType<typeof createDevPki>;
    let daemon: Proc | undefined;
    let socketPath: string;

    const scrape = async () => {
      const r = await get({ socketPath });
      expect(r.status).toBe(200);
      return r.body;
    };
    const call = (method: string, params: Record<string, unknown> = {}) =>
      callDaemon(join(base, 'run', 'control.sock'), method, params, 30_000);
    /** Scrapes until `ok` holds for a sample (the hub acts on its own time: the uplink, the outbox). */
    async function until(series: string, ok: (v: number | undefined) => boolean, what: string): Promise<string> {
      let body = '';
      for (let i = 0; i < 450; i++) {
        body = await scrape();
        if (ok(sample(body, series))) return body;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`${what}: ${series} is ${sample(body, series)}`);
    }

    beforeAll(async () => {
      ({ base, pki, broker, cloud } = await openSite('metrics', HUB));
      socketPath = join(base, 'run', 'metrics.sock');
      const config = writeSiteConfig({
        base,
        brokerUrl: broker.url,
        pki,
        locks: 1,
        seed: 'metrics',
        // A copy the hub publishes before the cloud is back at the restarted broker reaches no one
        // (docs/mqtt-api.md, "Event order"): resent after this, not the default 60 s.
        uplink: ['  eventAckTimeoutSec: 5'],
        extra: ['metrics:', `  listen: ${socketPath}`],
      });
      daemon = await startHubOnline(cloud, HUB, config);
      await attachSiteLocks(base);
      // The lock's keypad works once it holds the site PIN key, which only a sync sealed to the hub
      // brings (docs/digital-keys.md): without it a typed PIN never reaches the hub's decision.
      const admin = new SiteAdmin({ ...simulatedSiteSecrets('metrics'), random: new SeededRandom('metrics-admin') });
      admin.setHubKey(HUB, readFileSync(pki.hub.cert, 'utf8'));
      await admin.sync(cloud, HUB);
      const held = async () =>
        ((await call('sim.locks', {})) as { deviceId: string; pinKey: unknown }[]).find((l) => l.deviceId === LOCK)
          ?.pinKey;
      for (let i = 0; i < 600 && !(await held()); i++) await new Promise((r) => setTimeout(r, 50));
      expect(await held()).toBeTruthy();
    }, 120_000);

    afterAll(() => closeSite({ daemon, cloud, broker, base }));

    it('serves every documented series, on a socket only the daemon and its group may use', async () => {
      expect(statSync(socketPath).mode & 0o777).toBe(0o660);
      const body = await scrape();
      for (const n of documentedSeries()) expect(body, n).toMatch(new RegExp(`^# TYPE ${n} `, 'm'));
      expect(sample(body, 'iqhub_uplink_connected')).toBe(1);
      expect(sample(body, 'iqhub_radio_up{radio="sim"}')).toBe(1);
      expect(sample(body, `iqhub_lock_state{lock_id="${LOCK}",state="bound"}`)).toBe(1);
      expect(sample(body, 'iqhub_store_bytes')).toBeGreaterThan(0);
      expect(sample(body, 'iqhub_disk_free_bytes')).toBeGreaterThan(0);
      // Nothing secret in a scrape: not the OTP key, not the storage key file's bytes.
      const otpKey = readFileSync(pki.otpKey, 'utf8').trim();
      expect(body).not.toContain(otpKey);
    });

    it('a remote open counts as accepted, a forged OTP as refused otp_mismatch', async () => {
      const before = await scrape();
      const accepted = sample(before, 'iqhub_commands_accepted_total') ?? Number.NaN;
      const refused = sample(before, 'iqhub_commands_refused_total{code="otp_mismatch"}') ?? Number.NaN;
      const ok = await cloud.command(
        HUB,
        { op: 'open', lockId: LOCK, args: { durationMs: 500 } },
        { timeoutMs: 15_000 },
      );
      expect(ok, JSON.stringify(ok)).toMatchObject({ ok: true });
      const forged = cloud.attack(HUB, {
        kind: 'forgedOtp',
        command: { op: 'open', lockId: LOCK, args: { durationMs: 500 } },
      });
      const r = await cloud.sendEnvelope(HUB, forged, { timeoutMs: 15_000 });
      expect(r).toMatchObject({ ok: false, error: { code: 'otp_mismatch' } });
      const after = await scrape();
      expect(sample(after, 'iqhub_commands_accepted_total')).toBe(accepted + 1);
      expect(sample(after, 'iqhub_commands_refused_total{code="otp_mismatch"}')).toBe(refused + 1);
      expect(sample(after, 'iqhub_commands_refused_total{code="expired"}')).toBe(0);
    }, 60_000);

    it('a PIN at the door is a decision counted and timed', async () => {
      const before = await scrape();
      const n = sample(before, 'iqhub_access_decision_seconds_count{result="denied"}') ?? Number.NaN;
      const wrong = (await call('sim.pin', { deviceId: LOCK, pin: '99999999' })) as { opened: boolean };
      expect(wrong.opened).toBe(false);
      const after = await scrape();
      expect(sample(after, 'iqhub_access_decision_seconds_count{result="denied"}')).toBe(n + 1);
      expect(
        sample(after, 'iqhub_access_decisions_total{result="denied",reason="unknown-credential"}'),
      ).toBeGreaterThan(0);
    }, 90_000);

    it('with the broker down, events wait in the outbox and the depth shows it; they leave once it is back', async () => {
      const sentBefore = sample(await scrape(), 'iqhub_events_sent_total') ?? Number.NaN;
      await broker.stop();
      await until('iqhub_uplink_connected', (v) => v === 0, 'the uplink did not go down');
      await call('locks.open', { lockId: LOCK, durationMs: 300 });
      const queued = await until('iqhub_outbox_depth{kind="event"}', (v) => (v ?? 0) > 0, 'no event queued');
      expect(sample(queued, 'iqhub_outbox_oldest_age_seconds')).toBeGreaterThanOrEqual(0);
      expect(sample(queued, 'iqhub_events_stored_total')).toBeGreaterThan(0);
      await broker.start();
      await until('iqhub_uplink_connected', (v) => v === 1, 'the uplink did not come back');
      const drained = await until('iqhub_outbox_depth{kind="event"}', (v) => v === 0, 'the outbox did not drain');
      expect(sample(drained, 'iqhub_events_sent_total')).toBeGreaterThan(sentBefore);
      await until('iqhub_events_acknowledged_total', (v) => (v ?? 0) > 0, 'no event acknowledged');
    }, 240_000);

    it('answers nothing but GET/HEAD /metrics', async () => {
      expect((await get({ socketPath }, '/')).status).toBe(404);
      expect((await get({ socketPath }, '/metrics', 'POST')).status).toBe(405);
    });
  },
);
