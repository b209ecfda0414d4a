import type { SiteAdmin } from '../../sim/cloud/admin.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import type { SimWorld } from '../../sim/world.js';
import { offlineListRows } from '../access/offline-rows.js';
import type { Hub } from '../app/hub.js';
import { check, type Step, until } from './scenario.js';

/**
 * The site PIN key in the demo (docs/digital-keys.md, "PIN key delivery and rotation"): the
 * simulated locks hold only the key the hub delivered over the sealed link; the cloud rotates
 * it, re-issuing Ana's PIN under the new key; during the overlap her old PIN and the new one both
 * open; once the cloud ends the overlap the old key leaves the hub and the locks, and the old PIN
 * is refused. `pin` ends holding the re-issued PIN (the demo's part 2 types it after the restart).
 */
export function pinKeySteps(
  hub: Hub,
  world: SimWorld,
  cloud: ReferenceCloud,
  admin: SiteAdmin,
  hubId: string,
  pin: { value: string },
  out: (line: string) => void,
): Step[] {
  const [a] = world.stickers.map((s) => s.deviceId) as [string];
  const lock = world.lock(a);
  const holds = (version: number, previous: number) => {
    const v = lock.pinKeyVersions();
    return v.version === version && v.previous === previous;
  };
  let oldPin = '';
  // After the access steps' outage the hub may still be reconnecting: a sync sent meanwhile is
  // lost with its session, so wait for the line and send again once if no answer comes.
  const sync = async () => {
    await until('the hub connected to the cloud', () => hub.uplink?.connected === true, 20_000);
    const ack = await admin.sync(cloud, hubId).catch(() => admin.sync(cloud, hubId));
    check(ack.ok, `sync refused: ${JSON.stringify(ack.error)}`);
  };
  return [
    {
      name: `${a} holds PIN key v1, received from the hub over the sealed link (iqhub offline shows it), and Ana's PIN opens it`,
      async run() {
        // The events of the access steps' outage reach the cloud before this part makes new ones.
        await until('the hub connected to the cloud', () => hub.uplink?.connected === true, 20_000);
        await until('the outage’s events delivered', () => (hub.outbox?.depth().events ?? 0) === 0, 30_000);
        await until(`${a} holding PIN key v1`, () => holds(1, 0), 15_000);
        check(
          offlineListRows(hub.offline, hub.pinKeyDelivery).some((r) => r.lockId === a && r.pinKeyCurrent),
          'iqhub offline does not show the current PIN key on the lock',
        );
        const r = await lock.typePin(pin.value);
        check(r.opened && r.credentialId === 'pin-ana', JSON.stringify(r));
      },
    },
    {
      name: 'the cloud rotates the PIN key (v2, sealed to the hub) and re-issues Ana’s PIN under it; the locks get v2 and keep v1 for the overlap',
      async run() {
        oldPin = pin.value;
        const rotation = admin.rotatePinKey(Date.now() + 3_600_000);
        const ana = rotation.reissued.find((x) => x.oldId === 'pin-ana');
        if (!ana) throw new Error('Ana’s PIN was not re-issued');
        pin.value = ana.pin;
        out(`      Ana's new PIN under key v${rotation.version}, shown once by the cloud: ${ana.pin}`);
        await sync();
        await until(`${a} holding PIN key v2 and v1`, () => holds(2, 1), 15_000);
      },
    },
    {
      name: `during the overlap Ana's old PIN and her re-issued one both open ${a}`,
      async run() {
        const old = await lock.typePin(oldPin);
        check(old.opened && old.credentialId === 'pin-ana', JSON.stringify(old));
        const fresh = await lock.typePin(pin.value);
        check(fresh.opened && fresh.credentialId === 'pin-ana.k2', JSON.stringify(fresh));
      },
    },
    {
      name: `the cloud ends the overlap: v1 leaves the hub and ${a}; the old PIN is refused, the re-issued one opens`,
      async run() {
        admin.endPinKeyOverlap();
        await sync();
        check(hub.pinKeys.versions().length === 1 && hub.pinKeys.currentVersion() === 2, 'the hub still holds v1');
        await until(`${a} holding PIN key v2 only`, () => holds(2, 0), 15_000);
        const old = await lock.typePin(oldPin);
        check(!old.opened && old.reason === 'unknown-credential', JSON.stringify(old));
        const fresh = await lock.typePin(pin.value);
        check(fresh.opened && fresh.credentialId === 'pin-ana.k2', JSON.stringify(fresh));
      },
    },
  ];
}
