import type { SiteAdmin } from '../../sim/cloud/admin.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import type { SimWorld } from '../../sim/world.js';
import type { Hub } from '../app/hub.js';
import { check, type Step, until } from './scenario.js';

/**
 * The demo hub is provisioned with a factory CA (the dev PKI's) and has no OTP key file: the cloud
 * delivers its OTP key over the uplink, sealed to the hub with HPKE (docs/mqtt-api.md, "OTP key
 * delivery"), then rotates it. One hub shows both: a second daemon in the demo would be heavy.
 */
export function otpKeySteps(hub: Hub, world: SimWorld, cloud: ReferenceCloud, hubId: string): Step[] {
  const [a] = world.stickers.map((s) => s.deviceId) as [string];
  const installed = (generation: number) =>
    cloud.otpKeys.ackLog(hubId).find((x) => x.ok && x.generation === generation);
  return [
    {
      name: `a factory-CA hub without an OTP key receives one from the cloud (HPKE to a key it signed with its certificate) and accepts a signed open of ${a}`,
      async run() {
        await cloud.waitFor(() => installed(1) !== undefined, 15_000, 'the OTP key delivered');
        check(cloud.otpKeys.requests(hubId)[0]?.current === null, 'the hub held a key before the delivery');
        check(hub.commandStats() !== undefined, 'the remote commands are not up');
        const r = await cloud.command(
          hubId,
          { op: 'open', lockId: a, args: { durationMs: 1000 } },
          { timeoutMs: 15_000 },
        );
        check(r.ok, `result: ${JSON.stringify(r.error)}`);
        check(world.lock(a).state().bolt === 'unlocked', 'the lock did not open');
      },
    },
    {
      name: 'the cloud rotates the OTP key (generation 2); commands go on under it, a replayed generation-1 delivery is refused',
      async run() {
        const first = installed(1)?.id as string;
        const ack = await cloud.rotateOtpKey(hubId, 15_000);
        check(ack.ok && ack.generation === 2, `rotation: ${JSON.stringify(ack)}`);
        const before = cloud.otpKeys.ackLog(hubId).length;
        await cloud.send(hubId, 'otp-key', JSON.stringify(cloud.otpKeys.sentDelivery(hubId, first)));
        await cloud.waitFor((c) => c.otpKeys.ackLog(hubId).length > before, 10_000, 'the replay answered');
        const replay = cloud.otpKeys.ackLog(hubId).at(-1);
        check(replay?.error?.code === 'stale_generation', `the replay: ${JSON.stringify(replay)}`);
        const r = await cloud.command(hubId, { op: 'getState', lockId: a }, { timeoutMs: 15_000 });
        check(r.ok, `result: ${JSON.stringify(r.error)}`);
      },
    },
  ];
}

/** `syncNow`: a sync lost on the way leaves the hub's mirror stale; the cloud asks it to catch up. */
export function syncNowSteps(hub: Hub, cloud: ReferenceCloud, admin: SiteAdmin, hubId: string): Step[] {
  return [
    {
      name: 'a sync lost on the way leaves the hub stale; syncNow makes it ask (sync/request) and a delta brings it up to date',
      async run() {
        // The line to the cloud was just restored (access steps): both ends reconnect and subscribe again.
        await until('the hub and the cloud connected', () => hub.uplink?.connected === true && cloud.connected, 20_000);
        await until(
          'a ping answered',
          async () =>
            (await cloud.command(hubId, { op: 'ping' }, { timeoutMs: 2000 }).catch(() => undefined))?.ok === true,
          20_000,
        );
        admin.serve(cloud);
        const served = admin.served.length;
        admin.addUser('cleo', { name: 'Cleo' });
        const lost = admin.loseSync();
        const stale = hub.mirror.version();
        check(hub.mirror.user('cleo') === undefined && stale < lost, 'the hub already has the lost sync');
        const r = await cloud.command(hubId, { op: 'syncNow' }, { timeoutMs: 15_000 });
        check(r.ok && r.result?.version === stale, `syncNow: ${JSON.stringify(r)}`);
        await until('the hub has Cleo', () => hub.mirror.user('cleo') !== undefined, 15_000);
        await until('the cloud has the sync/ack', () => admin.served.length > served, 15_000);
        const answer = admin.served.at(-1);
        check(answer?.kind === 'delta' && answer.from === stale, `served: ${JSON.stringify(answer)}`);
        check(hub.mirror.version() > lost, `the mirror is at ${hub.mirror.version()}, the lost sync was ${lost}`);
      },
    },
  ];
}
