import type { SiteAdmin } from '../../sim/cloud/admin.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { SimPhone } from '../../sim/phone/phone.js';
import type { SimWorld } from '../../sim/world.js';
import { offlineListRows } from '../access/offline-rows.js';
import type { Hub } from '../app/hub.js';
import { systemRandom } from '../base/random.js';
import { check, type Step, until } from './scenario.js';

/** The cloud's broker as the demo controls it: stopped to show doors working without the cloud. */
export interface CloudLine {
  cut(): Promise<void>;
  restore(): Promise<void>;
}

const ANA_TAG = new TextEncoder().encode('04:A2:19:7C:51:3B:80');
const BEN_TAG = new TextEncoder().encode('04:5E:C1:2A:77:90:81');

/**
 * Who may open which door, in the demo: the reference cloud enrols people and credentials and
 * syncs them; PINs, tags and a phone open doors by the hub's decision; a revoked tag is refused at
 * once; the locks' offline lists follow every sync; with the cloud away, doors keep working.
 */
export function accessSteps(
  hub: Hub,
  world: SimWorld,
  cloud: ReferenceCloud,
  admin: SiteAdmin,
  hubId: string,
  line: CloudLine,
  out: (line: string) => void,
  /** Ana's PIN, once issued (the demo's part 2 types it again). */
  pin: { value: string },
): Step[] {
  const [a, b, c] = world.stickers.map((s) => s.deviceId) as [string, string, string];
  let benPhone: SimPhone | undefined;
  const offlineIds = (lockId: string) =>
    world
      .lock(lockId)
      .offlineAccess()
      .map((e) => e.credentialId);
  return [
    {
      name: 'the cloud enrols Ana (PIN, tag, offline access) and Ben (tag, digital key on his phone) and syncs the site',
      async run() {
        const now = Date.now();
        admin.addUser('ana', { name: 'Ana', offline: true });
        admin.addUser('ben', { name: 'Ben' });
        admin.addGroup('staff', [a, b]);
        admin.addGroup('front-door', [a]);
        admin.addMember('ana', 'staff');
        admin.addMember('ben', 'front-door');
        pin.value = admin.issuePin('pin-ana', 'ana');
        const anaPin = pin.value;
        out(`      Ana's PIN, shown once by the cloud: ${anaPin} (the hub and the locks only ever see its verifier)`);
        admin.issueTag('tag-ana', 'ana', ANA_TAG);
        admin.issueTag('tag-ben', 'ben', BEN_TAG);
        benPhone = await SimPhone.create(systemRandom, { cloudPublicKey: admin.issuer.publicKey });
        const envelope = await admin.issueKey(
          'key-ben',
          'ben',
          benPhone.keys,
          { lockIds: [a] },
          { validFrom: now - 60_000, validUntil: now + 86_400_000 },
        );
        await benPhone.receiveKey(envelope);
        const ack = await admin.sync(cloud, hubId);
        check(ack.ok, `sync refused: ${JSON.stringify(ack.error)}`);
        check(hub.mirror.version() === ack.version, `mirror at ${hub.mirror.version()}, ack ${ack.version}`);
      },
    },
    {
      name: `Ana types her PIN at ${a}: the lock asks the hub, the hub grants, the door opens`,
      async run() {
        // The site PIN key reaches the locks from the hub, over the sealed link, after the sync.
        await until('the locks holding the site PIN key', () =>
          world.locks.filter((l) => l.running && l.boundHub()).every((l) => l.pinKeyVersions().version > 0),
        );
        const r = await world.lock(a).typePin(pin.value);
        check(r.opened && r.decidedBy === 'hub' && r.credentialId === 'pin-ana', JSON.stringify(r));
      },
    },
    {
      name: `Ana's tag opens ${b}; Ben's tag (front door only) is refused there with no-right`,
      async run() {
        const ok = await world.lock(b).presentTag(ANA_TAG);
        check(ok.opened && ok.credentialId === 'tag-ana', JSON.stringify(ok));
        const no = await world.lock(b).presentTag(BEN_TAG);
        check(!no.opened && no.reason === 'no-right' && no.credentialId === 'tag-ben', JSON.stringify(no));
      },
    },
    {
      name: `Ben's phone opens ${a} with its digital key; another phone cannot even open the key`,
      async run() {
        if (!benPhone) throw new Error('no phone');
        const r = await world.lock(a).presentPhone(benPhone);
        check(r.opened && r.credentialId === 'key-ben', JSON.stringify(r));
        const thief = await SimPhone.create(systemRandom, { cloudPublicKey: admin.issuer.publicKey });
        const envelope = await admin.issueKey(
          'key-ben-2',
          'ben',
          benPhone.keys,
          { lockIds: [a] },
          { validFrom: Date.now() - 60_000, validUntil: Date.now() + 60_000 },
        );
        const refused = await thief.receiveKey(envelope).then(
          () => false,
          () => true,
        );
        check(refused, 'a phone opened a key sealed to another phone');
      },
    },
    {
      name: "every lock's offline list holds what it may accept alone (Ana's PIN and tag on the staff doors); health says they are up to date",
      async run() {
        await until('offline lists delivered', () =>
          [a, b].every((id) => ['pin-ana', 'tag-ana'].every((x) => offlineIds(id).includes(x))),
        );
        // The detached lock gets no list at all.
        check(offlineIds(c).length === 0, `${c} holds ${offlineIds(c)}`);
        check(!offlineIds(a).includes('tag-ben'), 'Ben has no offline access');
        // What the cloud hears in the hub's health: both lists up to date.
        await until('health says every offline list is up to date', () => {
          const lists = hub.health()?.offlineLists;
          return lists?.locks === 2 && lists.notUpToDate === 0;
        });
      },
    },
    {
      name: "the cloud revokes Ana's tag: refused at the next presentation, and gone from the offline lists",
      async run() {
        admin.revokeTag('tag-ana');
        const ack = await admin.sync(cloud, hubId);
        check(ack.ok, `sync refused: ${JSON.stringify(ack.error)}`);
        const r = await world.lock(b).presentTag(ANA_TAG);
        check(!r.opened && r.reason === 'unknown-credential', JSON.stringify(r));
        await until('the revoke reached the offline lists', () =>
          [a, b].every((id) => !offlineIds(id).includes('tag-ana')),
        );
      },
    },
    {
      name: 'the cloud goes away: the hub still decides from its mirror (Ana’s PIN and Ben’s phone still open)',
      async run() {
        if (!benPhone) throw new Error('no phone');
        await line.cut();
        await new Promise((r) => setTimeout(r, 300));
        const typed = await world.lock(b).typePin(pin.value);
        check(typed.opened && typed.decidedBy === 'hub', JSON.stringify(typed));
        const phone = await world.lock(a).presentPhone(benPhone);
        check(phone.opened, JSON.stringify(phone));
        await line.restore();
        await cloud.waitFor((x) => x.status(hubId)?.state === 'online', 20_000, 'the hub online again');
      },
    },
  ];
}

/** After the restart: the mirror was on disk, and each lock's list is checked by its digest (docs/access.md). */
export function accessAfterRestartSteps(hub: Hub, world: SimWorld, pin: () => string): Step[] {
  const [a] = world.stickers.map((s) => s.deviceId) as [string];
  return [
    {
      name: `after the restart Ana's PIN still opens ${a} (the mirror is on disk); its offline list is checked and up to date (iqhub offline)`,
      async run() {
        await until('the lock connected again', () => world.lock(a).offlineAccess().length > 0, 15_000);
        const r = await world.lock(a).typePin(pin());
        check(r.opened && r.decidedBy === 'hub', JSON.stringify(r));
        await until(
          `${a}'s offline list known to be up to date`,
          () => offlineListRows(hub.offline).some((l) => l.lockId === a && l.upToDate),
          15_000,
        );
      },
    },
  ];
}
