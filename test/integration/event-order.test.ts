import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createDevPki } from '../../provisioning/dev-pki.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { devCloudConnection } from '../../sim/cloud/connect.js';
import type { DiagReport, HubStatus } from '../../src/contract/control-socket.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { attachSiteLocks, closeSite, openSite, startHubOnline, writeSiteConfig } from '../helpers/cloud-site.js';
import { type Proc, requireBuild } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`event-order: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-order';
const LOCK = 'SIM-0001';

/**
 * What made the demo's step "after the restart the cloud has every lock event once, in per-lock
 * order" fail now and then: its broker restarts without keeping sessions, and when the hub is back
 * before the cloud has subscribed again, the backlog the hub publishes at once reaches nobody. The
 * hub keeps those events (no ack came) and sends them again after `eventAckTimeoutSec` — after the
 * events made meanwhile, which the cloud did get. Here the race is forced: the cloud reconnects only
 * once the hub has published its backlog. The hub did publish in order; the cloud receives out of
 * order, and what the contract promises (docs/mqtt-api.md, "Event order") still holds: every event
 * arrives, each id once, and ordered by seq each lock's sequence is complete.
 */
describe.skipIf(!haveMosquitto)(
  `event order when the broker loses the backlog${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`,
  () => {
    let base: string;
    let broker: Mosquitto;
    let cloud: ReferenceCloud;
    let pki: ReturnType<typeof createDevPki>;
    let daemon: Proc | undefined;

    beforeAll(async () => {
      // No persistence: a broker restart forgets the cloud's session, as the demo's embedded broker does.
      ({ base, pki, broker, cloud } = await openSite('event-order', HUB));
    }, 60_000);

    afterAll(async () => {
      await closeSite({ daemon, cloud, broker, base });
    });

    const call = <T>(method: string, params: Record<string, unknown> = {}) =>
      callDaemon(join(base, 'run', 'control.sock'), method, params, 30_000) as Promise<T>;
    const act = async (n: number) => {
      for (let i = 0; i < n; i++)
        await call('sim.act', { deviceId: LOCK, act: i % 2 === 0 ? 'tamper' : 'open-by-hand' });
    };
    const seqs = () =>
      cloud
        .events(HUB)
        .filter((e) => e.lockId === LOCK)
        .map((e) => e.seq);
    /** The hub's own account of published events without the cloud's ack (`iqhub diag`, the delivery check). */
    const unacknowledged = async () => {
      const d = (await call<DiagReport>('diag')).checks.find((c) => c.name === 'delivery');
      const m = /(\d+) published events not acknowledged/.exec(d?.detail ?? '');
      if (!m) throw new Error(`no delivery check: ${JSON.stringify(d)}`);
      return Number(m[1]);
    };
    /** Polls until `ok(unacknowledged)`, within `ms`. */
    const until = async (what: string, ok: (n: number) => boolean, ms = 30_000) => {
      const end = Date.now() + ms;
      for (;;) {
        const n = await unacknowledged();
        if (ok(n)) return;
        if (Date.now() > end) throw new Error(`${what} did not happen within ${ms} ms (${n} unacknowledged)`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    const outboxEmpty = async (what: string, ms = 30_000) => {
      const end = Date.now() + ms;
      for (;;) {
        const line = (await call<HubStatus>('status')).components.find((c) => c.name === 'uplink');
        if (/; outbox 0 events/.test(line?.detail ?? '')) return;
        if (Date.now() > end) throw new Error(`${what} did not happen within ${ms} ms: ${line?.detail}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    it('a backlog lost by the broker arrives after newer events, is then complete, and each id is once', async () => {
      const config = writeSiteConfig({
        base,
        brokerUrl: broker.url,
        pki,
        locks: 1,
        seed: 'event-order',
        uplink: ["  mqttVersion: '3.1.1'", '  eventAckTimeoutSec: 10', '  eventAckFaultSec: 600'],
      });
      daemon = await startHubOnline(cloud, HUB, config, 30_000);
      await attachSiteLocks(base);
      await act(3);
      await cloud.waitFor(() => seqs().length >= 3, 15_000, 'the first events at the cloud');
      await outboxEmpty('the first events acknowledged by the cloud');
      const before = Math.max(...seqs());

      // The cloud goes away, then the broker restarts without its session; events made meanwhile queue.
      await cloud.close();
      await broker.stop();
      await act(3);
      await broker.start();
      // The hub is back and has published its backlog (the broker took it: PUBACK) — to no subscriber.
      await until('the backlog published to the restarted broker', (n) => n >= 3);

      // Only now the cloud subscribes again; the next event reaches it ahead of the lost backlog.
      await cloud.connect(devCloudConnection(broker.url, pki));
      await act(1);
      const newest = before + 4;
      await cloud.waitFor(() => seqs().includes(newest), 15_000, `event #${newest}`);
      // The hole the lost backlog leaves (the resend is 10 s away: far more than these steps take).
      expect(cloud.sequenceGaps(HUB)).toEqual([
        { hubId: HUB, lockId: LOCK, epoch: cloud.events(HUB)[0]?.epoch, missing: [before + 1, before + 2, before + 3] },
      ]);
      // The resend (eventAckTimeoutSec) brings the backlog, oldest first.
      await cloud.waitFor(() => seqs().length >= newest - Math.min(...seqs()) + 1, 30_000, 'the backlog, resent');

      const ids = cloud.events(HUB).map((e) => e.id);
      expect(new Set(ids).size).toBe(ids.length);
      // Arrival order: the backlog after the newer event (what the demo's old check refused) …
      expect(cloud.orderViolations(HUB).map((e) => e.seq)).toEqual([before + 1, before + 2, before + 3]);
      // … and what the contract promises: every event, each lock's sequence complete by seq.
      const first = Math.min(...seqs());
      expect([...seqs()].sort((a, b) => a - b)).toEqual(
        Array.from({ length: newest - first + 1 }, (_, i) => first + i),
      );
      expect(cloud.sequenceGaps(HUB)).toEqual([]);
      expect(cloud.invalid).toBe(0);
      // Everything acknowledged in the end: nothing left in the outbox.
      await until('every event acknowledged', (n) => n === 0);
      await outboxEmpty('the outbox emptied by the acks');
    }, 120_000);
  },
);
