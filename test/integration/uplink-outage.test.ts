import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createDevPki } from '../../provisioning/dev-pki.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { SeededRandom } from '../../src/base/random.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { attachSiteLocks, openSite, writeSiteConfig } from '../helpers/cloud-site.js';
import { requireBuild, start } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`uplink-outage: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-outage';
const LOCKS = ['SIM-0001', 'SIM-0002', 'SIM-0003'];

describe.skipIf(!haveMosquitto)(
  `the uplink through a broker outage and a hub SIGKILL${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`,
  () => {
    let base: string;
    let broker: Mosquitto;
    let cloud: ReferenceCloud;
    let config: string;
    let pki: ReturnType<typeof createDevPki>;

    beforeAll(async () => {
      // Shared by both tests (tempDir() would be removed after the first one).
      ({ base, pki, broker, cloud } = await openSite('outage', HUB, { persistence: true }));
      config = writeSiteConfig({ base, brokerUrl: broker.url, pki, locks: 3, seed: 'outage' });
    }, 60_000);

    afterAll(async () => {
      await cloud?.close();
      await broker?.close();
      if (base) rmSync(base, { recursive: true, force: true });
    });

    const call = (method: string, params: Record<string, unknown>) =>
      callDaemon(join(base, 'run', 'control.sock'), method, params, 30_000);
    const flash = (id: string) =>
      JSON.parse(readFileSync(join(base, 'data', 'sim', `${id}.json`), 'utf8')) as { nextSeq: number };

    it('every event reaches the cloud exactly once per id, in per-lock order', async () => {
      const random = new SeededRandom('outage');
      const act = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const id = LOCKS[random.int(LOCKS.length)] as string;
          await call('sim.act', { deviceId: id, act: random.int(2) === 0 ? 'open-by-hand' : 'tamper' });
        }
      };

      let daemon = start(['run', '--config', config]);
      await daemon.waitForOutput('iq-hub ready');
      await attachSiteLocks(base);
      await act(10);
      await cloud.waitFor((c) => c.events(HUB).length >= 10, 15_000, 'the first events at the cloud');

      // The broker goes away; events keep coming and queue in the hub's outbox.
      await broker.stop();
      await act(10);
      await new Promise((r) => setTimeout(r, 300));
      // The hub dies without a chance to flush anything.
      daemon.child.kill('SIGKILL');
      await daemon.exit;
      daemon = start(['run', '--config', config]);
      await daemon.waitForOutput('iq-hub ready');
      await act(10);
      await new Promise((r) => setTimeout(r, 300));

      // The broker comes back: the hub drains its outbox.
      await broker.start();
      const produced = () => LOCKS.reduce((n, id) => n + flash(id).nextSeq - 1, 0);
      expect(produced()).toBeGreaterThanOrEqual(30);
      await cloud.waitFor((c) => c.events(HUB).length >= produced(), 30_000, 'every event at the cloud');

      const events = cloud.events(HUB);
      const ids = events.map((e) => e.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(events.length).toBe(produced());
      for (const id of LOCKS) {
        const seqs = events.filter((e) => e.lockId === id).map((e) => e.seq);
        // Every number the lock gave, each once, in the lock's own order.
        expect(seqs).toEqual(Array.from({ length: flash(id).nextSeq - 1 }, (_, i) => i + 1));
      }
      expect(cloud.orderViolations(HUB)).toEqual([]);
      expect(cloud.invalid).toBe(0);

      daemon.child.kill('SIGTERM');
      expect((await daemon.exit).code).toBe(0);
    }, 120_000);

    it('1,000 hostile commands through the broker each get an error, and the hub keeps serving', async () => {
      const daemon = start(['run', '--config', config]);
      await daemon.waitForOutput('iq-hub ready');
      await cloud.waitFor((c) => c.status(HUB)?.state === 'online', 15_000, 'the hub online');
      const random = new SeededRandom('hostile');
      const shapes: (() => string)[] = [
        () => 'not json at all',
        () => '{"v":1,"id":"x","op":"open"',
        () => JSON.stringify({ v: 1, id: `h${random.int(1e9)}`, op: 'nuke' }),
        () => JSON.stringify({ v: 1, id: `h${random.int(1e9)}`, op: 'open', lockId: 'SIM-0001', durationMs: -1 }),
        () => JSON.stringify({ v: 2, id: `h${random.int(1e9)}`, op: 'ping' }),
        () => JSON.stringify({ v: 1, id: `h${random.int(1e9)}`, op: 'ping', extra: 'x'.repeat(1000) }),
        () => `${'['.repeat(5000)}${']'.repeat(5000)}`,
        () => JSON.stringify({ v: 1, id: 'a/b/#', op: 'ping' }),
        // Written as text: an object literal's __proto__ sets the prototype, and JSON.stringify
        // would leave it out — nothing hostile would reach the hub.
        () => `{"__proto__":{"polluted":true},"v":1,"id":"h${random.int(1e9)}","op":"ping","constructor":1}`,
        () => JSON.stringify([1, 2, 3]),
      ];
      const before = cloud.answers(HUB).length;
      for (let i = 0; i < 1000; i++) await cloud.send(HUB, 'cmd', (shapes[i % shapes.length] as () => string)());
      await cloud.waitFor((c) => c.answers(HUB).length - before >= 1000, 30_000, '1,000 error answers');
      const answers = cloud.answers(HUB).slice(before);
      expect(answers.filter((a) => a.topic === 'cmd/result' && !a.payload.ok)).toHaveLength(answers.length);
      const pong = await cloud.command(HUB, { op: 'ping' }, { timeoutMs: 10_000 });
      expect(pong.ok).toBe(true);
      const state = await cloud.command(HUB, { op: 'getState', lockId: 'SIM-0001' }, { timeoutMs: 10_000 });
      expect(state.ok).toBe(true);
      daemon.child.kill('SIGTERM');
      expect((await daemon.exit).code).toBe(0);
    }, 120_000);
  },
);
