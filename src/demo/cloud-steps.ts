import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import type { SimWorld } from '../../sim/world.js';
import type { Hub } from '../app/hub.js';
import { check, type Step } from './scenario.js';

/** The cloud side of the demo: what travels over the embedded TLS broker. */
export function cloudSteps(hub: Hub, world: SimWorld, cloud: ReferenceCloud, hubId: string): Step[] {
  const [, b] = world.stickers.map((s) => s.deviceId) as [string, string];
  return [
    {
      name: 'the hub is online at the cloud (retained status over mutual TLS)',
      async run() {
        await cloud.waitFor((c) => c.status(hubId)?.state === 'online', 10_000, 'the hub online');
      },
    },
    {
      name: 'an event travels from a simulated lock through the hub to the cloud, with a stable id',
      async run() {
        const e = world.lock(b).openByHand();
        await cloud.waitFor(
          (c) => c.events(hubId).some((x) => x.lockId === b && x.seq === e.seq && x.type === 'opened'),
          10_000,
          `event #${e.seq} of ${b} at the cloud`,
        );
        const got = cloud.events(hubId).find((x) => x.lockId === b && x.seq === e.seq);
        check(got?.id === `${b}/${got?.epoch}/${e.seq}`, `unexpected id ${got?.id}`);
      },
    },
    {
      name: 'the cloud opens a door with an OTP-signed command; the result and an opened{by: remote} event come back',
      async run() {
        const lock = world.lock(b);
        const opened = () =>
          cloud.events(hubId).filter((e) => e.lockId === b && e.type === 'opened' && e.by === 'remote').length;
        const before = opened();
        const r = await cloud.command(
          hubId,
          { op: 'open', lockId: b, args: { durationMs: 1000 } },
          { timeoutMs: 15_000 },
        );
        check(r.ok, `result: ${JSON.stringify(r.error)}`);
        check(lock.state().bolt === 'unlocked', 'the lock did not open');
        await cloud.waitFor((c) => c.lockState(hubId, b)?.bolt === 'unlocked', 10_000, 'the retained lock state');
        await cloud.waitFor(() => opened() === before + 1, 10_000, 'the opened{by: remote} event');
      },
    },
    {
      name: 'a forged command (a wrong OTP) is refused with otp_mismatch and the door stays locked',
      async run() {
        const lock = world.lock(b);
        // The genuine open above relocks after its second.
        for (let i = 0; i < 100 && lock.state().bolt !== 'locked'; i++) await new Promise((r) => setTimeout(r, 50));
        check(lock.state().bolt === 'locked', 'the door did not lock again after the genuine open');
        const opens = lock.requestCounts().handled.open;
        const forged = cloud.attack(hubId, { kind: 'forgedOtp', command: { op: 'open', lockId: b, args: {} } });
        const r = await cloud.sendEnvelope(hubId, forged, { timeoutMs: 15_000 });
        check(!r.ok && r.error?.code === 'otp_mismatch', `expected otp_mismatch, got ${JSON.stringify(r)}`);
        check(lock.requestCounts().handled.open === opens, 'the forged command reached the lock');
        check(lock.state().bolt === 'locked', 'the door is not locked');
      },
    },
    {
      name: 'a malformed command gets an error result and changes nothing',
      async run() {
        const before = hub.store.db.prepare('SELECT COUNT(*) AS n FROM inbox').get() as { n: number };
        await cloud.send(
          hubId,
          'cmd',
          JSON.stringify({ v: 1, cmdId: 'bad-1', hubId, op: 'open', lockId: '../../etc', args: { durationMs: -5 } }),
        );
        await cloud.waitFor((c) => c.results(hubId).get('bad-1')?.ok === false, 10_000, 'the error result');
        const after = hub.store.db.prepare('SELECT COUNT(*) AS n FROM inbox').get() as { n: number };
        check(after.n === before.n, 'the malformed command was recorded');
      },
    },
    {
      name: 'every message the cloud received conforms to the contract',
      run() {
        check(cloud.invalid === 0, `${cloud.invalid} messages did not conform`);
      },
    },
  ];
}

/** After the restart: nothing lost, nothing out of order. */
export function cloudAfterRestartSteps(hub: Hub, world: SimWorld, cloud: ReferenceCloud, hubId: string): Step[] {
  return [
    {
      name: "after the restart the cloud has every lock event once, each lock's sequence complete (ordered by seq)",
      async run() {
        // This daemon's own online status, with the cloud connected: the line to the cloud was cut
        // and restored before the restart, and the cloud may still be reconnecting (a status from
        // before the restart would say online too).
        const startedAt = hub.status().startedAt;
        await cloud.waitFor(
          (c) => c.connected && c.status(hubId)?.state === 'online' && c.status(hubId)?.startedAt === startedAt,
          30_000,
          'the hub online again, seen by a connected cloud',
        );
        const lock = world.lock(world.stickers[0]?.deviceId ?? '');
        const e = lock.tamper();
        await cloud.waitFor(
          (c) => c.events(hubId).some((x) => x.lockId === lock.deviceId && x.seq === e.seq),
          10_000,
          'the new event',
        );
        // Every event the hub stored reaches the cloud (at least once; the cloud keeps each id once).
        const stored = hub.store.db.prepare('SELECT lock_id AS l, epoch AS e, seq AS s FROM lock_events').all() as {
          l: string;
          e: number;
          s: number;
        }[];
        const missing = () => {
          const have = new Set(cloud.events(hubId).map((x) => x.id));
          return stored.map((r) => `${r.l}/${r.e}/${r.s}`).filter((id) => !have.has(id));
        };
        await cloud.waitFor(() => missing().length === 0, 30_000, 'every event the hub stored');
        const ids = cloud.events(hubId).map((x) => x.id);
        check(new Set(ids).size === ids.length, 'an event id twice');
        // Per-lock order is the cloud's by (lockId, epoch, seq), gap-free: not arrival order, which a
        // copy lost by the restarted broker (resent later) may break (docs/mqtt-api.md, "Event order").
        const gaps = cloud.sequenceGaps(hubId);
        check(gaps.length === 0, `holes in a lock's sequence: ${JSON.stringify(gaps)}`);
      },
    },
  ];
}
