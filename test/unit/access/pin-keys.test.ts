import { generateKeyPairSync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { wrapForKey } from '../../../sim/cloud/ca.js';
import { pinVerifier } from '../../../src/access/credentials.js';
import { AccessDecider } from '../../../src/access/decide.js';
import { AccessMirror } from '../../../src/access/mirror.js';
import { OfflineLists } from '../../../src/access/offline.js';
import { offlineListRows } from '../../../src/access/offline-rows.js';
import { PinKeyDelivery } from '../../../src/access/pin-key-delivery.js';
import { PIN_KEY_PURPOSE, PinKeyRing } from '../../../src/access/pin-keys.js';
import { applyWithPinKey } from '../../../src/app/pin-key-open.js';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import { formatOffline } from '../../../src/cli/format.js';
import { encodeMessage } from '../../../src/contract/link-codec.js';
import type { SnapshotData } from '../../../src/contract/sync-data.js';
import { Sealer } from '../../../src/crypto/seal.js';
import { writeSealed } from '../../../src/crypto/sealed-secrets.js';
import { Secret } from '../../../src/crypto/secret.js';
import { silentLogger } from '../../../src/log/logger.js';
import { capturingLogger } from '../../helpers/commands.js';
import { deltaSync, snapshotSync } from '../../helpers/sync.js';
import { type Hub, Site } from '../link/manager/site.js';
import { answerAccessWith } from './access-hook.js';

/**
 * The site PIN key from the cloud to the locks (docs/digital-keys.md, "PIN key delivery and
 * rotation"): the hub's key ring, its delivery over the sealed link to simulated locks, a
 * rotation with its overlap, and the refusals — a downgrade, another key under a held version, a
 * key offered outside a sealed session, a key sealed to another hub.
 */

const SITE = 'site-pk';
const random = new SeededRandom('pin keys');
const K1 = new Secret(random.bytes(32));
const K2 = new Secret(random.bytes(32));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const SECRETS = [K1, K2].flatMap((k) => [hex(k.reveal()), b64(k.reveal())]);
const v = (key: Secret, pin: string) => pinVerifier(key, pin, SITE);

const sites: Site[] = [];
afterEach(async () => {
  for (const s of sites.splice(0)) await s.close();
});

function ringOn(hub: Hub, clock: Site['clock']) {
  const sealer = new Sealer(new Secret(new SeededRandom(`${hub.name} sealer`).bytes(32)), random);
  return { ring: new PinKeyRing({ store: hub.store, sealer, clock }), sealer };
}

/** Snapshot data: Alice's PIN under v1 (old) and under v2 (re-issued), both on the front door. */
function data(pins: { id: string; verifier: Uint8Array }[], extra: Partial<SnapshotData> = {}): SnapshotData {
  return {
    users: [{ id: 'alice', offline: true }],
    groups: [{ id: 'all', lockIds: ['SIM-0001', 'SIM-0002', 'SIM-0003'] }],
    memberships: [{ userId: 'alice', groupId: 'all' }],
    pins: pins.map((p) => ({ id: p.id, userId: 'alice', verifier: hex(p.verifier) })),
    tags: [],
    keys: [],
    ...extra,
  };
}

async function pinSite(seed: string) {
  const site = await Site.create({ seed, locks: 3, lockSite: { siteId: SITE }, mitm: true });
  sites.push(site);
  const hub = site.hub;
  // Every frame the hub puts on the air, to search for the key in clear.
  const air: Uint8Array[] = [];
  hub.onMitmLink = (link) => {
    link.interceptHub = (frame) => {
      air.push(frame.slice());
      return 'pass';
    };
  };
  const logs = capturingLogger();
  const useDecider = answerAccessWith(hub);
  await hub.restart();
  const { ring, sealer } = ringOn(hub, site.clock);
  const mirror = new AccessMirror({ store: hub.store, clock: site.clock });
  const decider = new AccessDecider({
    mirror,
    clock: site.clock,
    timeZone: 'UTC',
    cloudPublicKey: undefined,
    log: silentLogger(),
    pinOverlap: (at) => ring.inOverlap(at),
  });
  useDecider(decider);
  // The enrollment key: version 1 until a sync brings another.
  writeSealed(
    hub.store,
    { purpose: PIN_KEY_PURPOSE, id: 'hub-pk' },
    { blob: sealer.seal(K1, { purpose: PIN_KEY_PURPOSE, id: 'hub-pk' }), fingerprint: 'x' },
    0,
  );
  const boundLocks = () =>
    hub.manager
      .list()
      .filter((l) => l.state === 'bound')
      .map((l) => l.lockId);
  const delivery = new PinKeyDelivery({
    ring,
    clock: site.clock,
    log: logs.log,
    retryMs: 1_000,
    link: { boundLocks, setPinKey: (id, install) => hub.manager.setPinKey(id, install) },
  });
  const lists = new OfflineLists({
    mirror,
    clock: site.clock,
    timeZone: 'UTC',
    log: logs.log,
    link: { boundLocks, setOffline: (id, change) => hub.manager.setOffline(id, change) },
  });
  const connected = new Set<string>();
  hub.manager.onLockChange(({ lockId, summary }) => {
    if (!summary?.connected || summary.state !== 'bound') connected.delete(lockId);
    else if (!connected.has(lockId)) {
      connected.add(lockId);
      delivery.lockReady(lockId);
      lists.lockReady(lockId);
    }
  });
  await delivery.start();
  await lists.start();
  for (const id of site.ids()) await hub.attach(id);
  const held = (id: string) => site.world.lock(id).pinKeyVersions();
  return {
    site,
    hub,
    ring,
    mirror,
    decider,
    delivery,
    lists,
    logs,
    held,
    air,
    ids: site.ids() as [string, string, string],
  };
}

describe('PinKeyRing', () => {
  it('takes the enrollment key as version 1; a newer version keeps the one before for the overlap; then it ends', async () => {
    const { ring, site } = await pinSite('ring');
    expect(ring.versions()).toEqual([{ version: 1, until: null }]);
    const until = site.clock.now() + 60_000;
    ring.install({ version: 2, key: K2, overlapUntil: until });
    expect(ring.versions()).toEqual([
      { version: 2, until: null },
      { version: 1, until },
    ]);
    expect(hex(ring.open(1).reveal())).toBe(hex(K1.reveal()));
    expect(ring.inOverlap()).toBe(true);
    expect(ring.expire()).toBe(false);
    expect(ring.expire(until)).toBe(true);
    expect(ring.versions()).toEqual([{ version: 2, until: null }]);
    expect(() => ring.open(1)).toThrow(HubError);
  });

  it('refuses a downgrade and another key under the held version, changing nothing', async () => {
    const { ring } = await pinSite('ring-refusals');
    ring.install({ version: 2, key: K2 });
    const code = (f: () => void) => {
      try {
        f();
        return 'accepted';
      } catch (e) {
        expect((e as Error).message).not.toMatch(new RegExp(SECRETS.join('|')));
        return (e as HubError).code;
      }
    };
    expect(code(() => ring.install({ version: 1, key: K1 }))).toBe('sync.pin-key-downgrade');
    expect(code(() => ring.install({ version: 2, key: K1 }))).toBe('sync.pin-key');
    expect(code(() => ring.install({ version: 3, key: new Secret(new Uint8Array(31)) }))).toBe('sync.pin-key');
    expect(ring.versions()).toEqual([{ version: 2, until: null }]);
    expect(hex(ring.open(2).reveal())).toBe(hex(K2.reveal()));
  });

  it('a sync whose PIN key is a downgrade, or sealed to another hub, is refused whole: the mirror does not move', async () => {
    const { mirror, ring } = await pinSite('ring-sync');
    const mine = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const myPem = Buffer.from(mine.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const sealedTo = (k: typeof mine, key: Secret) =>
      wrapForKey(k.publicKey.export({ type: 'spki', format: 'pem' }).toString(), key.reveal());
    const apply = (p: ReturnType<typeof snapshotSync>) => applyWithPinKey(mirror, ring, p, () => Buffer.from(myPem));
    apply(
      snapshotSync(
        1,
        data([{ id: 'p1', verifier: v(K1, '1234') }], { pinKey: { version: 2, key: sealedTo(mine, K2) } }),
      ),
    );
    expect(ring.currentVersion()).toBe(2);
    const refused = (p: ReturnType<typeof snapshotSync>) => {
      try {
        apply(p);
        return 'applied';
      } catch (e) {
        return (e as HubError).code;
      }
    };
    expect(refused(deltaSync(1, { pinKey: { version: 3, key: sealedTo(other, K1) }, delete: { pins: ['p1'] } }))).toBe(
      'sync.pin-key',
    );
    expect(refused(deltaSync(1, { pinKey: { version: 1, key: sealedTo(mine, K1) }, delete: { pins: ['p1'] } }))).toBe(
      'sync.pin-key-downgrade',
    );
    expect(mirror.version()).toBe(1);
    expect(mirror.userByPinVerifier(v(K1, '1234'))?.credentialId).toBe('p1');
    expect(ring.currentVersion()).toBe(2);
  });
});

describe('a PIN typed during an overlap', () => {
  it('is one attempt: a code wrong under both keys counts once for the wrong-code throttle', async () => {
    const { ring, decider, site } = await pinSite('throttle');
    ring.install({ version: 2, key: K2, overlapUntil: site.clock.now() + 60_000 });
    const wrong = (i: number) => ({ kind: 'pin' as const, verifier: v(K2, `90${i}1`), previous: v(K1, `90${i}1`) });
    const reasons = [0, 1, 2, 3, 4, 5].map((i) => decider.verifyAccess('SIM-0001', wrong(i)).reason);
    expect(reasons).toEqual([...Array(5).fill('unknown-credential'), 'lockout']);
    // A malformed second verifier is refused as such, not looked up.
    const bad = { kind: 'pin' as const, verifier: v(K2, '1111'), previous: new Uint8Array(5) };
    expect(decider.verifyAccess('SIM-0002', bad).reason).toBe('malformed');
  });
});

describe('PIN key delivery over the sealed link', () => {
  it('every lock gets the key after attach, and a PIN typed there opens; the key is in no log, event or CLI output', async () => {
    const { site, mirror, held, ids, logs, delivery, lists, hub, air } = await pinSite('deliver');
    mirror.apply(snapshotSync(1, data([{ id: 'pin-a', verifier: v(K1, '4821') }])));
    lists.changed();
    await site.until(() => ids.every((id) => held(id).version === 1), 'every lock holding v1');
    const r = await site.drive(site.world.lock(ids[0]).typePin('4821'));
    expect(r).toMatchObject({ opened: true, credentialId: 'pin-a', decidedBy: 'hub' });
    await site.drive(lists.settled());
    const cli = formatOffline(offlineListRows(lists, delivery));
    expect(cli).toContain('v1');
    const everything = [
      logs.text(),
      cli,
      JSON.stringify(offlineListRows(lists, delivery)),
      JSON.stringify(hub.lockEvents),
      JSON.stringify(hub.security),
      JSON.stringify(delivery.status()),
    ].join('\n');
    for (const s of SECRETS) expect(everything).not.toContain(s);
    // On the air the key is only ever sealed: no frame from the hub holds its bytes.
    // The sealed setPinKey frames are among them: 75 bytes each (docs/link-protocol.md).
    expect(air.filter((f) => f.length === 75).length).toBeGreaterThanOrEqual(ids.length);
    const key = Buffer.from(K1.reveal());
    for (const frame of air) expect(Buffer.from(frame).includes(key)).toBe(false);
  });

  it('a lock that was off during a rotation gets the new key at its next link; the overlap admits old and re-issued PINs, then only the new', async () => {
    const { site, ring, mirror, held, ids, delivery, decider } = await pinSite('rotate');
    mirror.apply(snapshotSync(1, data([{ id: 'pin-a', verifier: v(K1, '4821') }])));
    await site.until(() => ids.every((id) => held(id).version === 1), 'every lock holding v1');
    const off = site.world.lock(ids[2]);
    off.crash();
    // The cloud rotates: v2, Alice's PIN re-issued under it (new digits), v1 accepted for an hour.
    const until = site.clock.now() + 8_000;
    mirror.apply(
      deltaSync(1, { upsert: { pins: [{ id: 'pin-a.k2', userId: 'alice', verifier: hex(v(K2, '7390')) }] } }),
      () => ring.install({ version: 2, key: K2, overlapUntil: until }),
    );
    ring.changed();
    await site.until(() => [ids[0], ids[1]].every((id) => held(id).version === 2 && held(id).previous === 1), 'v2+v1');
    const lock = site.world.lock(ids[0]);
    expect(await site.drive(lock.typePin('4821'))).toMatchObject({ opened: true, credentialId: 'pin-a' });
    expect(await site.drive(lock.typePin('7390'))).toMatchObject({ opened: true, credentialId: 'pin-a.k2' });
    // The lock that was off: back on, it is brought to v2 (keeping v1 for the overlap) at its next link.
    off.boot();
    await site.until(() => held(ids[2]).version === 2 && held(ids[2]).previous === 1, 'the returning lock on v2+v1');
    expect(delivery.locks().every((l) => l.version === 2)).toBe(true);
    // A lock off at the end of the overlap keeps its previous key: the hub ignores that verifier then.
    site.world.lock(ids[1]).crash();
    await site.pass(1);
    await site.pass(until - site.clock.now() + 50);
    await site.until(() => held(ids[0]).previous === 0, 'the previous key dropped on the locks');
    expect(ring.versions()).toEqual([{ version: 2, until: null }]);
    expect(await site.drive(lock.typePin('4821'))).toMatchObject({ opened: false, reason: 'unknown-credential' });
    expect(await site.drive(lock.typePin('7390'))).toMatchObject({ opened: true, credentialId: 'pin-a.k2' });
    const late = decider.verifyAccess(ids[1], { kind: 'pin', verifier: v(K2, '0000'), previous: v(K1, '4821') });
    expect(late).toMatchObject({ grant: false, reason: 'unknown-credential' });
  });

  it('a lock refuses a downgrade and another key under its version; a key offered outside a sealed session changes nothing', async () => {
    const { site, hub, held, ids } = await pinSite('attacks');
    await site.until(() => held(ids[0]).version === 1, 'v1 delivered');
    await site.drive(hub.manager.setPinKey(ids[0], { version: 2, key: K2.reveal(), previousUntil: 0 }));
    expect(held(ids[0])).toEqual({ version: 2, previous: 0 });
    const refusalFor = async (id: string) => {
      try {
        await site.drive(hub.manager.setPinKey(id, { version: 2, key: K2.reveal(), previousUntil: 0 }));
        return 'accepted';
      } catch (e) {
        return (e as HubError).code;
      }
    };
    const refusal = async (install: Parameters<Hub['manager']['setPinKey']>[1]) => {
      try {
        await site.drive(hub.manager.setPinKey(ids[0], install));
        return 'accepted';
      } catch (e) {
        return (e as HubError).code;
      }
    };
    expect(await refusal({ version: 1, key: K1.reveal(), previousUntil: 0 })).toMatch(/bad-request/);
    expect(await refusal({ version: 2, key: K1.reveal(), previousUntil: 0 })).toMatch(/bad-request/);
    expect(held(ids[0])).toEqual({ version: 2, previous: 0 });
    // A rogue radio speaks to the lock directly: the message in clear, and as a bogus transport frame.
    const rogue = site.world.radio.bearer({ address: 'rogue' });
    await rogue.start();
    const link = await site.drive(rogue.connect(site.world.lock(ids[1]).address, { timeoutMs: 1_000 }));
    if (!link.ok) throw new Error('no link');
    const clear = encodeMessage({ type: 'setPinKey', id: 1, version: 9, key: K1.reveal(), previousUntil: 0 });
    for (const frame of [
      clear,
      new Uint8Array([0x01, ...clear]),
      new Uint8Array([0x01, 1, ...new Array(8).fill(0), ...clear, ...new Array(16).fill(0)]),
    ]) {
      await link.value.send(frame);
      await site.pass(100);
    }
    expect(held(ids[1])).toEqual({ version: 1, previous: 0 });
    await link.value.close();
    // A quarantined lock (perhaps a clone with a stolen link key) is sent no key.
    hub.pairing.setState(ids[2], 'quarantined', site.clock.now(), 'test');
    expect(await refusalFor(ids[2])).toBe('lock.quarantined');
    expect(held(ids[2])).toEqual({ version: 1, previous: 0 });
  });
});
