import type { CloudKeyIssuer, KeySpec, PhoneKeys } from '../sim/phone/issuer.js';
import { pinVerifier, tagHash } from '../src/access/credentials.js';
import type { SignedKey } from '../src/access/digital-key.js';
import { SeededRandom } from '../src/base/random.js';
import type { SnapshotData, SyncGroup, SyncInterval } from '../src/contract/sync-data.js';
import type { Secret } from '../src/crypto/secret.js';

/**
 * A synthetic site for the access benchmarks (and their test): N users, each with one PIN, one
 * tag and one digital key, in access groups over a set of locks. Deterministic from its seed, so
 * two runs measure the same site. The generator keeps, per user, what a person at the door would
 * present (the PIN digits, the tag's DESFire id, the key's spec), so a benchmark can build
 * credentials that must be granted; the snapshot itself holds only what the cloud sends the hub
 * (verifiers, hashes, key ids).
 *
 * Shape, so that decisions exercise every path the mirror has:
 * - groups name `locksPerGroup` consecutive locks (wrapping); every other group has a weekly
 *   schedule (weekdays 07:00–19:00, Saturday 09:00–14:00 in the site's zone), the rest none;
 *   every third group has a validity period;
 * - every user is in one group, every fifth user in a second one;
 * - every third user has a validity period; a share (`offlineShare`) has the offline flag;
 * - keys alternate between naming locks (up to 8 of the user's) and naming the user's groups.
 * Every validity period contains `VALID_FROM`..`VALID_UNTIL`, and every schedule admits weekdays
 * 09:00–18:00: `businessHour` picks instants where every credential is granted.
 */

export interface AccessSiteOptions {
  seed: string;
  /** Users; each gets one PIN, one tag and one digital key. */
  users: number;
  /** Lock ids the groups name. */
  lockIds: readonly string[];
  groups: number;
  locksPerGroup: number;
  siteId: string;
  /** The site's PIN key (the cloud's; the hub never holds it): verifiers are computed under it. */
  pinKey: Secret;
  /** Users with the offline flag, as a share in [0, 1]. */
  offlineShare: number;
}

/** What the person of one user index carries. */
export interface AccessPerson {
  userId: string;
  /** The PIN digits (for the lock's keypad; never in the snapshot). */
  pin: string;
  /** The DESFire credential id of the user's tag. */
  tagId: Uint8Array;
  keyId: string;
  /** Locks the user may open (through any of its groups). */
  lockIds: string[];
  /** The key as the cloud issues it, minus the phone (see `issueKey`). */
  keySpec: KeySpec;
}

export interface AccessSite {
  snapshot: SnapshotData;
  people: AccessPerson[];
}

/** Every validity period in the site contains [VALID_FROM, VALID_UNTIL). */
export const VALID_FROM = Date.parse('2026-01-01T00:00:00Z');
export const VALID_UNTIL = Date.parse('2027-01-01T00:00:00Z');

const SCHEDULE: SyncInterval[] = [
  { days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '19:00' },
  { days: ['sat'], from: '09:00', to: '14:00' },
];

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const pad = (i: number, width: number) => String(i).padStart(width, '0');

export function accessSite(o: AccessSiteOptions): AccessSite {
  if (!Number.isSafeInteger(o.users) || o.users < 1 || o.users > 99_999_999) {
    throw new Error(`accessSite: users must be 1 to 99,999,999, got ${o.users}`);
  }
  if (o.groups < 1 || o.lockIds.length < 1 || o.locksPerGroup < 1 || o.locksPerGroup > o.lockIds.length) {
    throw new Error('accessSite: needs at least one group and one lock, and locksPerGroup within the locks');
  }
  const random = new SeededRandom(`access-site/${o.seed}`);
  const groups: SyncGroup[] = [];
  for (let g = 0; g < o.groups; g++) {
    const start = (g * o.locksPerGroup) % o.lockIds.length;
    const lockIds = Array.from(
      { length: o.locksPerGroup },
      (_, k) => o.lockIds[(start + k) % o.lockIds.length] as string,
    );
    groups.push({
      id: `g-${pad(g, 5)}`,
      lockIds,
      ...(g % 2 === 0 ? { schedule: SCHEDULE } : {}),
      ...(g % 3 === 0 ? { validFrom: VALID_FROM - 86_400_000, validUntil: VALID_UNTIL + 86_400_000 } : {}),
    });
  }
  const snapshot: SnapshotData = { users: [], groups, memberships: [], pins: [], tags: [], keys: [] };
  const people: AccessPerson[] = [];
  // A permutation step coprime with 10^8 spreads the 8-digit PINs; distinct indexes give distinct PINs.
  const PIN_SPACE = 100_000_000;
  const offlineEvery = o.offlineShare <= 0 ? 0 : Math.max(1, Math.round(1 / o.offlineShare));
  for (let i = 0; i < o.users; i++) {
    const userId = `u-${pad(i, 6)}`;
    const own = [i % o.groups, ...(i % 5 === 0 && o.groups > 1 ? [(i + 1) % o.groups] : [])];
    snapshot.users.push({
      id: userId,
      ...(i % 3 === 0 ? { validFrom: VALID_FROM, validUntil: VALID_UNTIL } : {}),
      ...(offlineEvery > 0 && i % offlineEvery === 0 ? { offline: true } : {}),
    });
    for (const g of own) snapshot.memberships.push({ userId, groupId: groups[g]?.id as string });
    const pin = pad((i * 48_271 + 1_234_567) % PIN_SPACE, 8);
    // 7 bytes like a DESFire UID: the index (unique) and three random bytes.
    const tagId = new Uint8Array(7);
    new DataView(tagId.buffer).setUint32(0, i);
    tagId.set(random.bytes(3), 4);
    const pinId = `p-${pad(i, 6)}`;
    const tagIdText = `t-${pad(i, 6)}`;
    const keyId = `k-${pad(i, 6)}`;
    snapshot.pins.push({ id: pinId, userId, verifier: hex(pinVerifier(o.pinKey, pin, o.siteId)) });
    snapshot.tags.push({ id: tagIdText, userId, hash: hex(tagHash(tagId, o.siteId)) });
    snapshot.keys.push({ id: keyId, userId, expiresAt: VALID_UNTIL });
    const lockIds = [...new Set(own.flatMap((g) => groups[g]?.lockIds ?? []))];
    const keySpec: KeySpec = {
      keyId,
      userId,
      ...(i % 2 === 0 ? { lockIds: lockIds.slice(0, 8) } : { groupIds: own.map((g) => groups[g]?.id as string) }),
      validFrom: VALID_FROM,
      validUntil: VALID_UNTIL,
    };
    people.push({
      userId,
      pin,
      tagId,
      keyId,
      lockIds: i % 2 === 0 ? lockIds.slice(0, 8) : lockIds,
      keySpec,
    });
  }
  return { snapshot, people };
}

/** The person's key, signed by `cloud` for `phone` (in the clear: what the phone holds). */
export function issueKey(cloud: CloudKeyIssuer, person: AccessPerson, phone: PhoneKeys): SignedKey {
  return cloud.issue(person.keySpec, phone);
}

/**
 * An instant at which every credential of the site is granted: a weekday (Monday to Friday) of
 * June 2026 between 09:00 and 18:00 in Europe/Madrid (CEST, UTC+2), within every validity period.
 */
export function businessHour(random: { int(n: number): number }): number {
  const monday = Date.parse('2026-06-01T07:00:00Z'); // Monday 09:00 in Madrid
  const day = random.int(4) * 7 + random.int(5);
  return monday + day * 86_400_000 + random.int(9 * 60) * 60_000;
}
