import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wrapForKey } from '../../sim/cloud/ca.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { simulatedSiteSecrets } from '../../sim/world.js';
import { pinVerifier } from '../../src/access/credentials.js';
import type { SyncPayload } from '../../src/contract/mqtt-cloud-messages.js';
import { splitSync } from '../../src/contract/sync-parts.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { Store } from '../../src/store/store.js';
import { attachSiteLocks, closeSite, openSite, startHubOnline, writeSiteConfig } from '../helpers/cloud-site.js';
import { type Proc, requireBuild } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`message-size: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-size';
const SEED = 'message-size';
/** AWS IoT Core's limit, and the hub's default `uplink.maxMessageBytes`. */
const LIMIT = 131_072;
const USERS = 10_000;

describe.skipIf(!haveMosquitto)(
  `every message within ${LIMIT} bytes, through mosquitto with message_size_limit${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`,
  () => {
    let base: string;
    let broker: Mosquitto;
    let cloud: ReferenceCloud;
    let config: string;
    let daemon: Proc | undefined;
    let lockId: string;
    /** The hub certificate's public key: the site PIN key travels sealed to it in the sync. */
    let hubKeyPem: string;

    const call = (method: string, params: Record<string, unknown> = {}) =>
      callDaemon(join(base, 'run', 'control.sock'), method, params, 30_000);

    beforeAll(async () => {
      // The broker drops (3.1.1) or refuses (5) anything larger: a message over the limit is lost.
      const site = await openSite('size', HUB, { extra: [`message_size_limit ${LIMIT}`] });
      ({ base, broker, cloud } = site);
      const { pki } = site;
      hubKeyPem = new X509Certificate(readFileSync(pki.hub.cert)).publicKey
        .export({ type: 'spki', format: 'pem' })
        .toString();
      config = writeSiteConfig({ base, brokerUrl: broker.url, pki, locks: 1, seed: SEED });
      daemon = await startHubOnline(cloud, HUB, config, 30_000);
      [lockId] = (await attachSiteLocks(base)) as [string];
    }, 120_000);

    afterAll(() => closeSite({ daemon, cloud, broker, base }));

    /** Every answer the hub published, as the cloud received it: each within the limit, each valid. */
    const answersFit = () => {
      expect(cloud.invalid, JSON.stringify(cloud.invalidMessages)).toBe(0);
      for (const a of cloud.answers(HUB)) expect(Buffer.byteLength(JSON.stringify(a))).toBeLessThanOrEqual(LIMIT);
    };

    it(`a ${USERS.toLocaleString('en')}-user site syncs in parts, and the lock admits a PIN from its last part`, async () => {
      const { pinKey, siteId } = simulatedSiteSecrets(SEED);
      const users = Array.from({ length: USERS }, (_, i) => `u-${String(i).padStart(5, '0')}`);
      const pins = users.map((_, i) => String(10_000_000 + i * 7919).slice(0, 8));
      const verifiers = pins.map((p) => Buffer.from(pinVerifier(pinKey, p, siteId)).toString('hex'));
      const data = {
        // The site PIN key, sealed to the hub: the lock gets it from the hub over the sealed link.
        pinKey: { version: 1, key: wrapForKey(hubKeyPem, pinKey.reveal()) },
        users: users.map((id) => ({ id, name: `Resident ${id}` })),
        groups: [{ id: 'everyone', lockIds: [lockId] }],
        memberships: users.map((userId) => ({ userId, groupId: 'everyone' })),
        tags: users.map((userId) => ({ id: `t-${userId}`, userId, hash: randomBytes(32).toString('hex') })),
        keys: [],
        // Last, so the last PIN is in the last part.
        pins: users.map((userId, i) => ({ id: `p-${userId}`, userId, verifier: verifiers[i] as string })),
      };
      // The same cut the cloud makes: the last user's PIN verifier travels in the last part.
      const whole: SyncPayload = { v: 1, id: 'probe', kind: 'snapshot', version: 1, data };
      const cut = splitSync(whole, LIMIT, (i) => `probe.p${i}`);
      expect(cut.length).toBeGreaterThan(10);
      const lastChunk = (cut.at(-1) as { chunk: string }).chunk;
      expect(lastChunk).toContain(verifiers.at(-1));
      expect(cut.slice(0, -1).some((p) => (p as { chunk: string }).chunk.includes(verifiers.at(-1) as string))).toBe(
        false,
      );

      const started = Date.now();
      const ack = await cloud.sync(HUB, { kind: 'snapshot', version: 1, data }, { timeoutMs: 60_000 });
      expect(ack, JSON.stringify(ack)).toMatchObject({ ok: true, version: 1, part: { count: cut.length } });
      process.stderr.write(
        `message-size: ${USERS} users in ${cut.length} parts synced in ${Date.now() - started} ms\n`,
      );
      answersFit();

      for (let i = 0; i < 200; i++) {
        const locks = (await call('sim.locks', {})) as { pinKey: { version: number } | null }[];
        if (locks[0]?.pinKey?.version === 1) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const lastPin = pins.at(-1) as string;
      const r = (await call('sim.pin', { deviceId: lockId, pin: lastPin })) as {
        opened: boolean;
        credentialId: string;
      };
      expect(r).toMatchObject({ opened: true, decidedBy: 'hub', credentialId: `p-${users.at(-1)}` });
      const wrong = (await call('sim.pin', { deviceId: lockId, pin: '99999999' })) as { opened: boolean };
      expect(wrong.opened).toBe(false);
    }, 240_000);

    it('500 locks list in pages, each within the limit; a cloud that asks without paging gets the first page and a next', async () => {
      // 499 more lock rows in the pairing store, written while the hub is stopped: a site of 500
      // simulated locks would spend minutes attaching. They are quarantined, so the hub does not
      // try to reach them; they are listed like any other.
      const d = daemon;
      daemon = undefined;
      d?.child.kill('SIGTERM');
      expect((await d?.exit)?.code).toBe(0);
      const store = Store.open(join(base, 'data'));
      try {
        const now = Date.now();
        const insert = store.db.prepare(
          `INSERT INTO locks (lock_id, bearer, address, static_public, state, quarantine_reason, attached_at, updated_at)
           VALUES (?, 'sim', ?, ?, 'quarantined', 'a test row: no such lock', ?, ?)`,
        );
        store.transaction(() => {
          for (let i = 0; i < 499; i++) {
            const id = `ROW-${String(i).padStart(4, '0')}`;
            insert.run(id, `sim:${id}`, randomBytes(32), now, now);
          }
        });
      } finally {
        store.close();
      }
      daemon = await startHubOnline(cloud, HUB, config, 30_000);

      const first = await cloud.command(HUB, { op: 'listLocks' }, { timeoutMs: 30_000 });
      expect(first, JSON.stringify(first).slice(0, 300)).toMatchObject({ ok: true });
      const page = first.result as { locks: unknown[]; next: string | null };
      expect(page.locks.length).toBeLessThan(500);
      expect(page.next).not.toBeNull();

      const all = await cloud.listAllLocks(HUB, { timeoutMs: 30_000 });
      const ids = all.map((l) => l.lockId as string);
      expect(ids).toHaveLength(500);
      expect(new Set(ids).size).toBe(500);
      expect(ids).toContain(lockId);
      expect(ids).toEqual([...ids].sort());
      answersFit();
    }, 180_000);
  },
);
