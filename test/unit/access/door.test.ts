import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CloudKeyIssuer } from '../../../sim/phone/issuer.js';
import { SimPhone } from '../../../sim/phone/phone.js';
import { pinVerifier, tagHash } from '../../../src/access/credentials.js';
import { AccessDecider } from '../../../src/access/decide.js';
import { AccessMirror } from '../../../src/access/mirror.js';
import { OfflineLists } from '../../../src/access/offline.js';
import { registerAccessMethods } from '../../../src/app/control-methods.js';
import { SeededRandom } from '../../../src/base/random.js';
import { formatOffline } from '../../../src/cli/format.js';
import type { SnapshotData } from '../../../src/contract/sync-data.js';
import { callDaemon } from '../../../src/control-socket/socket-client.js';
import { ControlServer } from '../../../src/control-socket/socket-server.js';
import { Secret } from '../../../src/crypto/secret.js';
import { silentLogger } from '../../../src/log/logger.js';
import { deltaSync as delta, snapshotSync } from '../../helpers/sync.js';
import { tempDir } from '../../helpers/tmp.js';
import { Site } from '../link/manager/site.js';
import { answerAccessWith } from './access-hook.js';

const snapshot = (data: SnapshotData) => snapshotSync(1, data);

/**
 * The door, end to end over the simulated radio: a lock reads a PIN, a tag or a phone, asks its
 * hub over the sealed link, and opens or logs a refusal; the hub keeps each lock's offline list
 * current, and the lock falls back on it when the hub is gone.
 */

const SITE_ID = 'site-door';
const PIN_KEY = new Secret(new SeededRandom('pin key').bytes(32));
const TZ = 'Europe/Madrid';
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const TAG_A = new TextEncoder().encode('desfire-uid-alice');
const TAG_B = new TextEncoder().encode('desfire-uid-bob');

async function door() {
  const site = await Site.create({ seed: 'door', locks: 3, lockSite: { siteId: SITE_ID } });
  const [front, back, lab] = site.ids() as [string, string, string];
  const cloud = new CloudKeyIssuer(new SeededRandom('door cloud'));
  const phone = await SimPhone.create(new SeededRandom('door phone'), { cloudPublicKey: cloud.publicKey });
  const now = site.clock.now();
  const data: SnapshotData = {
    users: [
      { id: 'alice', offline: true },
      { id: 'bob', offline: true },
    ],
    groups: [
      { id: 'staff', lockIds: [front, back] },
      { id: 'lab', lockIds: [lab] },
    ],
    memberships: [
      { userId: 'alice', groupId: 'staff' },
      { userId: 'bob', groupId: 'staff' },
    ],
    pins: [{ id: 'pin-alice', userId: 'alice', verifier: hex(pinVerifier(PIN_KEY, '482916', SITE_ID)) }],
    tags: [
      { id: 'tag-alice', userId: 'alice', hash: hex(tagHash(TAG_A, SITE_ID)) },
      { id: 'tag-bob', userId: 'bob', hash: hex(tagHash(TAG_B, SITE_ID)) },
    ],
    keys: [{ id: 'K-1', userId: 'alice', expiresAt: now + 86_400_000 }],
  };
  await phone.receiveKey(
    await cloud.issueTo(
      { keyId: 'K-1', userId: 'alice', lockIds: [front], validFrom: now - 1000, validUntil: now + 86_400_000 },
      phone.keys,
    ),
  );
  const hub = site.hub;
  const useDecider = answerAccessWith(hub);
  await hub.restart();
  const mirror = new AccessMirror({ store: hub.store, clock: site.clock });
  mirror.apply(snapshot(data));
  const decider = new AccessDecider({
    mirror,
    clock: site.clock,
    timeZone: TZ,
    cloudPublicKey: cloud.publicKey,
    log: silentLogger(),
  });
  useDecider(decider);
  for (const id of site.ids()) {
    await hub.attach(id);
    // The site PIN key reaches each lock only over the sealed link.
    await site.drive(hub.manager.setPinKey(id, { version: 1, key: PIN_KEY.reveal(), previousUntil: 0 }));
  }
  const lists = new OfflineLists({
    mirror,
    clock: site.clock,
    timeZone: TZ,
    log: silentLogger(),
    link: {
      boundLocks: () =>
        hub.manager
          .list()
          .filter((l) => l.state === 'bound')
          .map((l) => l.lockId),
      setOffline: (lockId, change) => hub.manager.setOffline(lockId, change),
    },
  });
  await lists.start();
  await site.drive(lists.settled());
  return { site, hub, mirror, decider, lists, phone, cloud, front, back, lab };
}

describe('at the door', () => {
  it('a PIN, a tag and a phone open the doors they have rights to; each outcome is an event with the credential id', async () => {
    const { site, hub, phone, front, back, lab } = await door();
    const lock = site.world.lock(front);
    expect(await site.drive(lock.typePin('482916'))).toEqual({
      opened: true,
      reason: 'granted',
      credentialId: 'pin-alice',
      decidedBy: 'hub',
    });
    expect(lock.state().bolt).toBe('unlocked');
    expect(await site.drive(site.world.lock(back).presentTag(TAG_B))).toMatchObject({
      opened: true,
      credentialId: 'tag-bob',
    });
    expect(await site.drive(lock.presentPhone(phone))).toMatchObject({ opened: true, credentialId: 'K-1' });
    // The lab: no rights.
    expect(await site.drive(site.world.lock(lab).presentTag(TAG_A))).toMatchObject({
      opened: false,
      reason: 'no-right',
      credentialId: 'tag-alice',
    });
    // A wrong code.
    expect(await site.drive(lock.typePin('000000'))).toMatchObject({ opened: false, reason: 'unknown-credential' });
    await site.until(
      () => hub.storedEvents(front).length >= 3 && hub.storedEvents(lab).length >= 1,
      'events collected',
    );
    const events = hub.storedEvents(front);
    expect(events.map((e) => (e.type === 'opened' ? `${e.by}:${e.credentialId}` : `${e.type}`))).toEqual([
      'pin:pin-alice',
      'digitalKey:K-1',
      'denied',
    ]);
    expect(hub.storedEvents(lab)).toMatchObject([{ type: 'denied', reason: 'no-right', credentialId: 'tag-alice' }]);
    // The digits are nowhere in the hub's data directory (database, WAL) nor in the lock's flash.
    hub.store.db.pragma('wal_checkpoint(PASSIVE)');
    for (const name of readdirSync(hub.dir)) {
      const path = join(hub.dir, name);
      if (statSync(path).isFile()) expect(readFileSync(path).indexOf('482916'), name).toBe(-1);
    }
    expect(JSON.stringify(lock.offlineAccess()) + JSON.stringify(lock.events())).not.toContain('482916');
  });

  it('offline lists: every bound lock gets the credentials it may accept alone; a revoke leaves them at once', async () => {
    const { site, mirror, lists, front, back, lab } = await door();
    const ids = (lockId: string) =>
      site.world
        .lock(lockId)
        .offlineAccess()
        .map((e) => e.credentialId)
        .sort();
    expect(ids(front)).toEqual(['pin-alice', 'tag-alice', 'tag-bob']);
    expect(ids(back)).toEqual(['pin-alice', 'tag-alice', 'tag-bob']);
    expect(ids(lab)).toEqual([]);
    // The lock holds the verifier, never the digits.
    expect(JSON.stringify(site.world.lock(front).offlineAccess())).not.toContain('482916');

    mirror.apply(delta(1, { delete: { tags: ['tag-bob'] } }));
    lists.changed();
    await site.drive(lists.settled());
    expect(ids(front)).toEqual(['pin-alice', 'tag-alice']);
    expect(ids(back)).toEqual(['pin-alice', 'tag-alice']);

    mirror.apply(delta(2, { upsert: { memberships: [{ userId: 'bob', groupId: 'lab' }] } }));
    mirror.apply(
      delta(3, { upsert: { tags: [{ id: 'tag-bob-2', userId: 'bob', hash: hex(tagHash(TAG_B, SITE_ID)) }] } }),
    );
    lists.changed();
    await site.drive(lists.settled());
    expect(ids(lab)).toEqual(['tag-bob-2']);
    expect(lists.locks().every((l) => l.lastError === undefined)).toBe(true);
  });

  it('after a hub restart, a lock already holding its list is only asked; one holding another list gets it whole', async () => {
    const { site, hub, mirror, lists, front, back, lab } = await door();
    await lists.stop();
    const tamperedWith = site.world.lock(back);
    // Behind the hub's back: the lock lost one entry (as a lock restored from an old flash image would).
    tamperedWith.setOfflineAccess(tamperedWith.offlineAccess().filter((e) => e.credentialId !== 'tag-bob'));
    const sent: { lockId: string; reset: boolean; remove: number; upsert: number }[] = [];
    // What a restarted hub has: the same mirror, no memory of what each lock holds.
    const restarted = new OfflineLists({
      mirror,
      clock: site.clock,
      timeZone: TZ,
      log: silentLogger(),
      link: {
        boundLocks: () => [front, back, lab],
        setOffline: (lockId, change) => {
          sent.push({ lockId, reset: change.reset, remove: change.remove.length, upsert: change.upsert.length });
          return hub.manager.setOffline(lockId, change);
        },
      },
    });
    await restarted.start();
    await site.drive(restarted.settled());
    const query = { reset: false, remove: 0, upsert: 0 };
    expect(sent.filter((s) => s.lockId === front)).toEqual([{ lockId: front, ...query }]);
    expect(sent.filter((s) => s.lockId === lab)).toEqual([{ lockId: lab, ...query }]);
    expect(sent.filter((s) => s.lockId === back)).toEqual([
      { lockId: back, ...query },
      { lockId: back, reset: true, remove: 0, upsert: 3 },
    ]);
    expect(
      tamperedWith
        .offlineAccess()
        .map((e) => e.credentialId)
        .sort(),
    ).toEqual(['pin-alice', 'tag-alice', 'tag-bob']);
    expect(restarted.locks().map((l) => [l.lockId, l.held, l.lastError])).toEqual(
      expect.arrayContaining([
        [front, 3, undefined],
        [back, 3, undefined],
        [lab, 0, undefined],
      ]),
    );

    // Known again: a revoke is a delta, not a whole list.
    sent.length = 0;
    mirror.apply(delta(1, { delete: { tags: ['tag-bob'] } }));
    restarted.changed();
    await site.drive(restarted.settled());
    expect(sent.filter((s) => s.lockId === front)).toEqual([{ lockId: front, reset: false, remove: 1, upsert: 0 }]);
    await restarted.stop();
  });

  it('`iqhub offline` shows each lock up to date, then the one out of reach with its failure, and nothing secret', async () => {
    const { site, mirror, lists, front, back, lab } = await door();
    const server = new ControlServer(join(tempDir(), 'run', 'control.sock'), silentLogger());
    registerAccessMethods(server, lists);
    await server.start();
    try {
      const call = (params: Record<string, unknown> = {}) => callDaemon(server.path, 'access.offline', params, 10_000);
      const all = (await call()) as { lockId: string; held: number | null; upToDate: boolean }[];
      expect(all.map((r) => [r.lockId, r.held, r.upToDate])).toEqual([
        [front, 3, true],
        [back, 3, true],
        [lab, 0, true],
      ]);
      expect(await call({ lockId: lab })).toMatchObject([{ lockId: lab, held: 0, capacity: 500, leftOut: 0 }]);
      await expect(call({ lockId: 'NOT-A-LOCK' })).rejects.toMatchObject({ code: 'access.no-offline-list' });
      await expect(call({ lockId: '../etc' })).rejects.toMatchObject({ code: 'control.bad-params' });

      // The back door's lock is out of reach when a revoke must reach it.
      site.world.lock(back).crash();
      mirror.apply(delta(1, { delete: { tags: ['tag-bob'] } }));
      lists.changed();
      await site.drive(lists.settled());
      const after = (await call()) as Parameters<typeof formatOffline>[0];
      expect(after.find((r) => r.lockId === front)).toMatchObject({ held: 2, upToDate: true });
      expect(after.find((r) => r.lockId === back)).toMatchObject({ held: null, upToDate: false });
      expect(after.find((r) => r.lockId === back)?.lastError).toMatch(/\S/);
      const text = formatOffline(after);
      expect(text).toContain(`${back}: `);
      expect(text).toContain('1 of 3 not up to date');
      // Counts and times only: no credential id, verifier or hash.
      for (const secretish of ['tag-alice', 'pin-alice', hex(tagHash(TAG_A, SITE_ID)), '482916']) {
        expect(JSON.stringify(after) + text).not.toContain(secretish);
      }
    } finally {
      await server.stop();
      await lists.stop();
    }
  });

  it('with the hub gone, the lock admits its offline list and refuses the rest, phones included', async () => {
    const { site, hub, mirror, lists, phone, front } = await door();
    mirror.apply(delta(1, { delete: { tags: ['tag-bob'] } }));
    lists.changed();
    await site.drive(lists.settled());
    await lists.stop();
    hub.kill();
    const lock = site.world.lock(front);
    expect(await site.drive(lock.presentTag(TAG_A))).toMatchObject({
      opened: true,
      credentialId: 'tag-alice',
      decidedBy: 'offline-list',
    });
    expect(await site.drive(lock.typePin('482916'))).toMatchObject({ opened: true, decidedBy: 'offline-list' });
    // Revoked while the hub was still there: gone from the list.
    expect(await site.drive(lock.presentTag(TAG_B))).toMatchObject({ opened: false, reason: 'hub-unreachable' });
    expect(await site.drive(lock.presentPhone(phone))).toMatchObject({ opened: false, reason: 'hub-unreachable' });
    expect(lock.events().filter((e) => e.type === 'denied')).toHaveLength(2);
  });

  it('a resent access request gets the first answer, not a second decision', async () => {
    const { site, hub, phone, front } = await door();
    // Every frame the lock sends arrives twice: the digital key's challenge is still decided once.
    site.world.radio.setFaults({ duplicateRate: 1 });
    expect(await site.drive(site.world.lock(front).presentPhone(phone))).toMatchObject({
      opened: true,
      reason: 'granted',
    });
    site.world.radio.setFaults({ duplicateRate: 0 });
    expect(hub.manager.list().find((l) => l.lockId === front)?.state).toBe('bound');
  });
});
