import { beforeAll, describe, expect, it } from 'vitest';
import { CloudKeyIssuer } from '../../../sim/phone/issuer.js';
import { SimPhone } from '../../../sim/phone/phone.js';
import { AccessDecider, type PresentedCredential } from '../../../src/access/decide.js';
import { newChallenge, type SignedKey, VerifiedKeys } from '../../../src/access/digital-key.js';
import { AccessMirror } from '../../../src/access/mirror.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import type { DeltaData, SnapshotData } from '../../../src/contract/sync-data.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import { deltaSync, snapshotSync } from '../../helpers/sync.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * The verified-key cache (VerifiedKeys, src/access/digital-key.ts) and its use by the decider: a
 * signed key seen before skips the cloud signature and the body's parse, and nothing else — a
 * revoked, deleted, expired, tampered or foreign key is refused as without the cache.
 */

const TZ = 'Europe/Madrid';
const NOW = Date.parse('2026-06-03T10:00:00Z'); // a Wednesday
const DAY = 86_400_000;
const random = new SeededRandom('verified keys');
const cloud = new CloudKeyIssuer(random);
const forger = new CloudKeyIssuer(new SeededRandom('verified keys forger'));
let phone: SimPhone;
let otherPhone: SimPhone;
let aliceKey: SignedKey;

const site = (): SnapshotData => ({
  users: [{ id: 'alice' }],
  groups: [{ id: 'office', lockIds: ['front', 'back'] }],
  memberships: [{ userId: 'alice', groupId: 'office' }],
  pins: [],
  tags: [],
  keys: [{ id: 'K-alice', userId: 'alice', expiresAt: NOW + 365 * DAY }],
});

function setUp(verifiedKeys?: number) {
  const store = Store.open(tempDir());
  const clock = new VirtualClock(NOW);
  const mirror = new AccessMirror({ store, clock });
  mirror.apply(snapshotSync(1, site()));
  const decider = new AccessDecider({
    mirror,
    clock,
    timeZone: TZ,
    cloudPublicKey: cloud.publicKey,
    log: silentLogger(),
    ...(verifiedKeys === undefined ? {} : { verifiedKeys }),
  });
  let version = 1;
  const sync = (data: DeltaData) => mirror.apply(deltaSync(version, data, ++version));
  return { mirror, decider, sync };
}

const bytes = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));

/** A presentation of `signed` by `by` at `lockId`, for a fresh challenge. */
function present(signed: SignedKey, lockId = 'front', by: SimPhone = phone): PresentedCredential {
  const challenge = newChallenge(random);
  return { kind: 'digitalKey', challenge, presentation: bytes(by.presentKey(signed, challenge, lockId)) };
}

/** The same, with the signed key replaced by `signedKey` (any shape) and alice's phone's proof. */
function presentAs(signedKey: unknown, lockId = 'front'): PresentedCredential {
  const challenge = newChallenge(random);
  const { proof } = phone.presentKey(aliceKey, challenge, lockId);
  return { kind: 'digitalKey', challenge, presentation: bytes({ signedKey, proof }) };
}

beforeAll(async () => {
  phone = await SimPhone.create(new SeededRandom('verified keys phone A'), { cloudPublicKey: cloud.publicKey });
  otherPhone = await SimPhone.create(new SeededRandom('verified keys phone B'), { cloudPublicKey: cloud.publicKey });
  aliceKey = cloud.issue(
    { keyId: 'K-alice', userId: 'alice', lockIds: ['front'], validFrom: NOW - DAY, validUntil: NOW + 2 * DAY },
    phone.keys,
  );
});

describe('verified digital keys: what a cached key still goes through', () => {
  it('a key presented again is a hit and granted; the phone proof is checked every time', () => {
    const { decider } = setUp();
    expect(decider.verifyAccess('front', present(aliceKey)).grant).toBe(true);
    expect(decider.verifyAccess('front', present(aliceKey)).grant).toBe(true);
    expect(decider.verifiedKeys()).toMatchObject({ hits: 1, misses: 1, size: 1 });
    // Cached, but another phone's proof, or a proof for another challenge, is not the key's phone's.
    expect(decider.verifyAccess('front', present(aliceKey, 'front', otherPhone)).reason).toBe('bad-proof');
    const first = present(aliceKey);
    if (first.kind !== 'digitalKey') throw new Error('unreachable');
    expect(decider.verifyAccess('front', { ...first, challenge: newChallenge(random) }).reason).toBe('bad-proof');
    expect(decider.verifiedKeys().hits).toBe(3);
  });

  it('a cached key revoked by a sync is refused at once, and the sync emptied the cache', () => {
    const { decider, sync } = setUp();
    expect(decider.verifyAccess('front', present(aliceKey)).grant).toBe(true);
    sync({ upsert: { keys: [{ id: 'K-alice', userId: 'alice', expiresAt: NOW + DAY, revoked: true }] } });
    expect(decider.verifyAccess('front', present(aliceKey)).reason).toBe('revoked');
    // Verified afresh after the sync: a miss, not a hit.
    expect(decider.verifiedKeys()).toMatchObject({ hits: 0, misses: 2 });
    expect(decider.verifyAccess('front', present(aliceKey)).reason).toBe('revoked');
  });

  it('a cached key deleted from the mirror, or handed to another user, opens nothing', () => {
    const { decider, sync } = setUp();
    expect(decider.verifyAccess('front', present(aliceKey)).grant).toBe(true);
    sync({ upsert: { users: [{ id: 'bob' }], keys: [{ id: 'K-alice', userId: 'bob', expiresAt: NOW + DAY }] } });
    expect(decider.verifyAccess('front', present(aliceKey)).reason).toBe('unknown-credential');
    sync({ delete: { keys: ['K-alice'] } });
    expect(decider.verifyAccess('front', present(aliceKey)).reason).toBe('unknown-credential');
    expect(decider.verifyAccess('front', present(aliceKey)).reason).toBe('unknown-credential');
  });

  it('a cached key past its signed validity, or past the expiry the mirror sets, is expired', () => {
    const { decider, sync } = setUp();
    expect(decider.verifyAccess('front', present(aliceKey), NOW).grant).toBe(true);
    expect(decider.verifyAccess('front', present(aliceKey), NOW + 3 * DAY).reason).toBe('expired');
    expect(decider.verifyAccess('front', present(aliceKey), NOW - 2 * DAY).reason).toBe('not-yet-valid');
    expect(decider.verifiedKeys().hits).toBe(2);
    sync({ upsert: { keys: [{ id: 'K-alice', userId: 'alice', expiresAt: NOW + 3_600_000 }] } });
    expect(decider.verifyAccess('front', present(aliceKey), NOW + 2 * 3_600_000).reason).toBe('expired');
    expect(decider.verifyAccess('front', present(aliceKey), NOW + 2 * 3_600_000).reason).toBe('expired');
  });

  it('a cached key at a lock it does not name is wrong-lock', () => {
    const { decider } = setUp();
    expect(decider.verifyAccess('front', present(aliceKey)).grant).toBe(true);
    expect(decider.verifyAccess('back', present(aliceKey, 'back')).reason).toBe('wrong-lock');
    expect(decider.verifiedKeys().hits).toBe(1);
  });

  it('a body or signature one character off, or split otherwise between the two, is verified afresh and refused', () => {
    const { decider } = setUp();
    expect(decider.verifyAccess('front', present(aliceKey)).grant).toBe(true);
    const body = aliceKey.body.replace('"front"', '"frona"');
    const flip = (c: string) => (c === 'A' ? 'B' : 'A');
    const sig = flip(aliceKey.sig[0] as string) + aliceKey.sig.slice(1);
    expect(decider.verifyAccess('front', presentAs({ body, sig: aliceKey.sig })).reason).toBe('bad-signature');
    expect(decider.verifyAccess('front', presentAs({ body: aliceKey.body, sig })).reason).toBe('bad-signature');
    // The same characters, one moved from the body to the signature.
    const moved = { sig: aliceKey.sig + aliceKey.body[0], body: aliceKey.body.slice(1) };
    expect(decider.verifyAccess('front', presentAs(moved)).reason).toBe('malformed');
    // The cached pair with an extra member is not the signed key's form.
    expect(decider.verifyAccess('front', presentAs({ ...aliceKey, extra: 1 })).reason).toBe('malformed');
    expect(decider.verifiedKeys()).toMatchObject({ hits: 0, size: 1 });
  });
});

describe('verified digital keys: the cache itself', () => {
  it('is bound to the cloud key it was filled under: another key finds nothing in it', () => {
    const cache = new VerifiedKeys();
    expect(cache.check(aliceKey, cloud.publicKey).ok).toBe(true);
    expect(cache.check(aliceKey, forger.publicKey)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(cache.size).toBe(0);
    expect(cache.check(aliceKey, cloud.publicKey).ok).toBe(true);
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 3, size: 1 });
  });

  it('is bounded: the least recently used key goes first', () => {
    const cache = new VerifiedKeys(2);
    const keys = ['K1', 'K2', 'K3'].map((keyId) =>
      cloud.issue(
        { keyId, userId: 'alice', lockIds: ['front'], validFrom: NOW - DAY, validUntil: NOW + DAY },
        phone.keys,
      ),
    );
    const [k1, k2, k3] = keys as [SignedKey, SignedKey, SignedKey];
    cache.check(k1, cloud.publicKey);
    cache.check(k2, cloud.publicKey);
    cache.check(k1, cloud.publicKey); // k1 used: k2 is now the oldest
    cache.check(k3, cloud.publicKey);
    expect(cache.size).toBe(2);
    expect(cache.stats().hits).toBe(1);
    cache.check(k1, cloud.publicKey);
    cache.check(k3, cloud.publicKey);
    expect(cache.stats().hits).toBe(3);
    cache.check(k2, cloud.publicKey);
    expect(cache.stats()).toMatchObject({ hits: 3, misses: 4, size: 2 });
  });

  it('refuses a size that is not a positive integer, and never caches a failure', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new VerifiedKeys(bad)).toThrow(HubError);
    const cache = new VerifiedKeys();
    const forged = forger.issue(
      { keyId: 'K-x', userId: 'alice', lockIds: ['front'], validFrom: NOW - DAY, validUntil: NOW + DAY },
      phone.keys,
    );
    expect(cache.check(forged, cloud.publicKey)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(cache.check({ body: 1, sig: 2 }, cloud.publicKey)).toEqual({ ok: false, reason: 'malformed' });
    expect(cache.size).toBe(0);
  });
});
