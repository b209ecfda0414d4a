import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AccessMirror } from '../../../src/access/mirror.js';
import { VirtualClock } from '../../../src/base/clock.js';
import type { SyncPayload } from '../../../src/contract/mqtt-cloud-messages.js';
import type { DeltaData, SnapshotData } from '../../../src/contract/sync-data.js';
import { migrations } from '../../../src/store/migrations.js';
import { Store } from '../../../src/store/store.js';
import { refusal } from '../../helpers/refusal.js';
import { deltaSync, snapshotSync as snapshot } from '../../helpers/sync.js';
import { tempDir } from '../../helpers/tmp.js';

const delta = (baseVersion: number, version: number, data: DeltaData) => deltaSync(baseVersion, data, version);

const TZ = 'Europe/Madrid';
const t = (iso: string) => Date.parse(iso);
const NOW = t('2026-06-03T10:00:00Z'); // a Wednesday, 12:00 in Madrid

/** A deterministic 32-byte digest, as hex for the sync and as bytes for lookups. */
const digestHex = (label: string) => createHash('sha256').update(label).digest('hex');
const digest = (label: string) => Buffer.from(digestHex(label), 'hex');

function open(): { store: Store; mirror: AccessMirror; clock: VirtualClock } {
  const store = Store.open(tempDir());
  const clock = new VirtualClock(NOW);
  return { store, mirror: new AccessMirror({ store, clock }), clock };
}

/** Every row of every mirror table, in a stable order: "nothing changed" is an equality. */
function dump(store: Store): Record<string, unknown[]> {
  const tables = [
    'access_meta',
    'access_users',
    'access_groups',
    'access_group_locks',
    'access_memberships',
    'access_pins',
    'access_tags',
    'access_keys',
  ];
  return Object.fromEntries(tables.map((n) => [n, store.db.prepare(`SELECT * FROM ${n} ORDER BY 1, 2`).all()]));
}

/**
 * A small site: alice (offline, office hours on the front door and always on the lab), bob
 * (online only, front door), carol (blocked), dave (expired).
 */
function site(): SnapshotData {
  return {
    users: [
      { id: 'alice', name: 'Alice', offline: true },
      { id: 'bob', validFrom: '2026-01-01T00:00:00Z' },
      { id: 'carol', blocked: true, offline: true },
      { id: 'dave', validUntil: t('2026-05-01T00:00:00Z'), offline: true },
    ],
    groups: [
      {
        id: 'office',
        lockIds: ['front', 'back'],
        schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '19:00' }],
      },
      { id: 'lab', lockIds: ['lab-door'], validUntil: '2026-12-31T23:00:00Z' },
    ],
    memberships: [
      { userId: 'alice', groupId: 'office' },
      { userId: 'alice', groupId: 'lab' },
      { userId: 'bob', groupId: 'office' },
      { userId: 'carol', groupId: 'office' },
      { userId: 'dave', groupId: 'office' },
    ],
    pins: [
      { id: 'pin-alice', userId: 'alice', verifier: digestHex('pin alice') },
      { id: 'pin-bob', userId: 'bob', verifier: digestHex('pin bob') },
    ],
    tags: [
      { id: 'tag-alice', userId: 'alice', hash: digestHex('tag alice') },
      { id: 'tag-carol', userId: 'carol', hash: digestHex('tag carol') },
      { id: 'tag-dave', userId: 'dave', hash: digestHex('tag dave') },
    ],
    keys: [{ id: 'key-bob', userId: 'bob', expiresAt: '2026-09-01T00:00:00Z' }],
  };
}

describe('access mirror: snapshots and deltas', () => {
  it('starts empty at version 0; migration 5 adds the mirror to a version 4 database', () => {
    const dir = tempDir();
    Store.open(
      dir,
      migrations.filter((m) => m.version <= 4),
    ).close();
    const store = Store.open(dir);
    expect(store.info.appliedNow).toEqual(migrations.filter((m) => m.version >= 5).map((m) => m.version));
    const mirror = new AccessMirror({ store, clock: new VirtualClock() });
    expect(mirror.version()).toBe(0);
    expect(mirror.counts()).toEqual({ users: 0, groups: 0, memberships: 0, pins: 0, tags: 0, keys: 0 });
    store.close();
  });

  it('a snapshot with more users than the mirror may hold is refused sync.too-large, as docs/access.md says', () => {
    const { mirror } = open();
    const users = Array.from({ length: 100_001 }, (_, i) => ({ id: `u-${i}` }));
    const e = refusal(() =>
      mirror.apply(snapshot(2, { ...site(), users, memberships: [], pins: [], tags: [], keys: [] })),
    );
    expect(e.code).toBe('sync.too-large');
    expect(e.message).toContain('100001 users');
    expect(mirror.version()).toBe(0);
    const big = refusal(() =>
      mirror.apply(
        delta(0, 3, {
          upsert: {
            tags: Array.from({ length: 100_001 }, (_, i) => ({ id: `t-${i}`, userId: 'u', hash: digestHex(`${i}`) })),
          },
        }),
      ),
    );
    expect(big.code).toBe('sync.too-large');
  });

  it('a snapshot, then deltas on its version, each move the version and the content', () => {
    const { store, mirror } = open();
    const first = mirror.apply(snapshot(10, site()));
    expect(first).toEqual({
      kind: 'snapshot',
      previousVersion: 0,
      version: 10,
      counts: { users: 4, groups: 2, memberships: 5, pins: 2, tags: 3, keys: 1 },
    });
    expect(store.db.prepare('SELECT version, sync_id, kind, applied_at FROM access_meta').get()).toEqual({
      version: 10,
      sync_id: 's-10',
      kind: 'snapshot',
      applied_at: NOW,
    });

    mirror.apply(
      delta(10, 11, {
        upsert: {
          users: [{ id: 'erin', offline: true }],
          memberships: [{ userId: 'erin', groupId: 'lab' }],
          tags: [{ id: 'tag-erin', userId: 'erin', hash: digestHex('tag erin') }],
        },
      }),
    );
    expect(mirror.version()).toBe(11);
    expect(mirror.userByTagHash(digest('tag erin'))?.user.id).toBe('erin');
    expect(mirror.userMayUse('erin', 'lab-door', NOW, TZ)).toEqual({ allowed: true, groupId: 'lab' });

    const third = mirror.apply(
      delta(11, 15, {
        upsert: { groups: [{ id: 'lab', lockIds: ['lab-door', 'front'] }] },
        delete: { memberships: [{ userId: 'alice', groupId: 'lab' }], users: ['dave'] },
      }),
    );
    expect(third.version).toBe(15);
    expect(mirror.groupsOf('erin')).toEqual([
      { id: 'lab', lockIds: ['front', 'lab-door'], schedule: undefined, validFrom: undefined, validUntil: undefined },
    ]);
    expect(mirror.groupsOf('alice').map((g) => g.id)).toEqual(['office']);
    // Deleting a user takes its memberships and credentials with it.
    expect(mirror.user('dave')).toBeUndefined();
    expect(mirror.userByTagHash(digest('tag dave'))).toBeUndefined();
    expect(third.counts).toEqual({ users: 4, groups: 2, memberships: 4, pins: 2, tags: 3, keys: 1 });
    store.close();
  });

  it('a snapshot replaces everything: what it does not hold is gone', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    mirror.apply(
      snapshot(2, {
        users: [{ id: 'zoe' }],
        groups: [],
        memberships: [],
        pins: [{ id: 'pin-zoe', userId: 'zoe', verifier: digestHex('pin alice') }],
        tags: [],
        keys: [],
      }),
    );
    expect(mirror.counts()).toEqual({ users: 1, groups: 0, memberships: 0, pins: 1, tags: 0, keys: 0 });
    expect(mirror.user('alice')).toBeUndefined();
    expect(mirror.userByPinVerifier(digest('pin alice'))).toEqual({
      credentialId: 'pin-zoe',
      user: { id: 'zoe', name: undefined, validFrom: undefined, validUntil: undefined, offline: false, blocked: false },
    });
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM access_group_locks').get()).toEqual({ n: 0 });
    store.close();
  });

  it('a delta on the wrong base version is refused and nothing changes', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(5, site()));
    const before = dump(store);
    for (const base of [4, 6, 0]) {
      const e = refusal(() =>
        mirror.apply(delta(base, 7, { upsert: { users: [{ id: 'mallory' }] }, delete: { tags: ['tag-alice'] } })),
      );
      expect(e.code).toBe('sync.base-mismatch');
      expect(e.message).toBe(`delta d-7 is based on version ${base}, but the mirror is at version 5`);
      expect(e.hint).toContain('snapshot');
    }
    expect(dump(store)).toEqual(before);
    expect(mirror.version()).toBe(5);
    store.close();
  });

  it('versions only increase: an equal or older snapshot, or a delta not above its base, is refused', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(5, site()));
    const before = dump(store);
    for (const version of [5, 4, 1]) {
      const e = refusal(() => mirror.apply(snapshot(version, site())));
      expect(e.code).toBe('sync.stale-version');
      expect(e.message).toContain(`version ${version}, not above the mirror's version 5`);
    }
    const e = refusal(() => mirror.apply(delta(5, 5, { upsert: { users: [{ id: 'mallory' }] } })));
    expect(e.code).toBe('sync.invalid');
    expect(e.message).toContain('must be greater than its baseVersion');
    const noBase = { ...delta(5, 6, {}), baseVersion: undefined };
    expect(refusal(() => mirror.apply(noBase)).code).toBe('sync.invalid');
    expect(dump(store)).toEqual(before);
    store.close();
  });

  it('a dangling reference refuses the whole sync with the row and the missing id', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    const before = dump(store);
    const cases: [DeltaData, string][] = [
      [
        { upsert: { users: [{ id: 'erin' }], memberships: [{ userId: 'erin', groupId: 'garage' }] } },
        'data.upsert.memberships[0]: group garage is not in the mirror',
      ],
      [
        { upsert: { memberships: [{ userId: 'nobody', groupId: 'lab' }] } },
        'data.upsert.memberships[0]: user nobody is not in the mirror',
      ],
      [
        {
          upsert: {
            tags: [
              { id: 'tag-ok', userId: 'bob', hash: digestHex('tag ok') },
              { id: 'tag-x', userId: 'ghost', hash: digestHex('tag x') },
            ],
          },
        },
        'data.upsert.tags[1] (tag tag-x): user ghost is not in the mirror',
      ],
      [
        { upsert: { pins: [{ id: 'pin-x', userId: 'ghost', verifier: digestHex('pin x') }] } },
        'data.upsert.pins[0] (pin pin-x): user ghost is not in the mirror',
      ],
      [
        { upsert: { keys: [{ id: 'key-x', userId: 'ghost', expiresAt: NOW }] } },
        'data.upsert.keys[0] (key key-x): user ghost is not in the mirror',
      ],
      // A user deleted in the same delta is gone before the upserts are checked.
      [
        { delete: { users: ['bob'] }, upsert: { keys: [{ id: 'key-bob', userId: 'bob', expiresAt: NOW }] } },
        'data.upsert.keys[0] (key key-bob): user bob is not in the mirror',
      ],
      [{ delete: { tags: ['tag-nobody'] } }, 'data.delete.tags[0]: tag tag-nobody is not in the mirror'],
      [
        { delete: { memberships: [{ userId: 'bob', groupId: 'lab' }] } },
        'data.delete.memberships[0]: the membership of user bob in group lab is not in the mirror',
      ],
    ];
    for (const [data, message] of cases) {
      const e = refusal(() => mirror.apply(delta(1, 2, data)));
      expect(e.code).toBe('sync.unknown-reference');
      expect(e.message).toBe(message);
      expect(dump(store)).toEqual(before);
    }
    const bad = site();
    bad.pins.push({ id: 'pin-ghost', userId: 'ghost', verifier: digestHex('pin ghost') });
    const e = refusal(() => mirror.apply(snapshot(2, bad)));
    expect(e.code).toBe('sync.unknown-reference');
    expect(e.message).toBe('data.pins[2] (pin pin-ghost): user ghost is not in the snapshot');
    expect(dump(store)).toEqual(before);
    store.close();
  });

  it('a PIN verifier or tag hash held by another credential, or an id twice in a list, is refused', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    const before = dump(store);
    const samePin = refusal(() =>
      mirror.apply(
        delta(1, 2, { upsert: { pins: [{ id: 'pin-2', userId: 'bob', verifier: digestHex('pin alice') }] } }),
      ),
    );
    expect(samePin.code).toBe('sync.duplicate');
    expect(samePin.message).toBe(
      'data.upsert.pins[0] (pin pin-2): the same verifier as pin pin-alice; a verifier is unique in the site',
    );
    const twice = site();
    twice.tags.push({ id: 'tag-alice', userId: 'bob', hash: digestHex('tag other') });
    const e = refusal(() => mirror.apply(snapshot(2, twice)));
    expect(e.code).toBe('sync.duplicate');
    expect(e.message).toBe('data.tags[3]: tag tag-alice is also data.tags[0]');
    const sameHash = site();
    sameHash.tags.push({ id: 'tag-copy', userId: 'bob', hash: digestHex('tag alice') });
    expect(refusal(() => mirror.apply(snapshot(2, sameHash))).message).toContain('the same hash as tag tag-alice');
    // Changing a credential's own row (same id, same digest) is not a conflict.
    mirror.apply(
      delta(1, 2, { upsert: { pins: [{ id: 'pin-alice', userId: 'alice', verifier: digestHex('pin alice') }] } }),
    );
    expect(dump(store).access_pins).toEqual(before.access_pins);
    store.close();
  });

  it('data outside the schema is refused before anything is touched', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    const before = dump(store);
    const cases: [SyncPayload, string][] = [
      [
        delta(1, 2, { upsert: { users: [{ id: 'x', admin: true } as never] } }),
        'data/upsert/users/0: unknown field "admin"',
      ],
      [delta(1, 2, { upsert: { tags: [{ id: 'x', userId: 'bob', hash: 'abcd' }] } }), 'data/upsert/tags/0/hash'],
      [delta(1, 2, { upsert: { users: [{ id: 'a/b' }] } }), 'data/upsert/users/0/id'],
      [{ ...snapshot(2, site()), data: { users: [] } }, "must have required property 'groups'"],
      [
        delta(1, 2, {
          upsert: {
            groups: [{ id: 'g', lockIds: ['front'], schedule: [{ days: ['mon'], from: '09:00', to: '08:00' }] }],
          },
        }),
        'data.upsert.groups[0].schedule[0]: ends at 08:00, not after its start 09:00',
      ],
      [
        delta(1, 2, {
          upsert: { users: [{ id: 'x', validFrom: '2026-06-01T00:00:00Z', validUntil: '2026-05-01T00:00:00Z' }] },
        }),
        'data.upsert.users[0]: validUntil is not after validFrom',
      ],
      [delta(1, 2, { upsert: { keys: [{ id: 'k', userId: 'bob', expiresAt: '2026-06-01 00:00' }] } }), 'expiresAt'],
      [delta(1, 2, { delete: { users: ['bob', 'bob'] } }), 'data.delete.users[1]: bob is also data.delete.users[0]'],
    ];
    for (const [payload, message] of cases) {
      const e = refusal(() => mirror.apply(payload));
      expect(['sync.invalid', 'sync.duplicate']).toContain(e.code);
      expect(e.message).toContain(message);
    }
    expect(dump(store)).toEqual(before);
    store.close();
  });
});

describe('access mirror: lookups', () => {
  it('finds the user of a PIN verifier and of a tag hash, and nothing for unknown or malformed ones', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    expect(mirror.userByPinVerifier(digest('pin alice'))).toEqual({
      credentialId: 'pin-alice',
      user: { id: 'alice', name: 'Alice', validFrom: undefined, validUntil: undefined, offline: true, blocked: false },
    });
    expect(mirror.userByTagHash(digest('tag carol'))?.user).toMatchObject({ id: 'carol', blocked: true });
    expect(mirror.userByPinVerifier(digest('pin nobody'))).toBeUndefined();
    expect(mirror.userByPinVerifier(digest('tag alice'))).toBeUndefined(); // a tag hash is not a PIN verifier
    expect(mirror.userByTagHash(new Uint8Array(31))).toBeUndefined();
    expect(mirror.digitalKey('key-bob')).toEqual({
      id: 'key-bob',
      userId: 'bob',
      revoked: false,
      expiresAt: t('2026-09-01T00:00:00Z'),
    });
    expect(mirror.digitalKey('key-nobody')).toBeUndefined();
    expect(mirror.groupsOf('alice')).toEqual([
      {
        id: 'lab',
        lockIds: ['lab-door'],
        schedule: undefined,
        validFrom: undefined,
        validUntil: t('2026-12-31T23:00:00Z'),
      },
      {
        id: 'office',
        lockIds: ['back', 'front'],
        schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '19:00' }],
        validFrom: undefined,
        validUntil: undefined,
      },
    ]);
    store.close();
  });

  it('userMayUse checks the user, then a group naming the lock, its validity and its schedule', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    expect(mirror.userMayUse('alice', 'front', NOW, TZ)).toEqual({ allowed: true, groupId: 'office' });
    expect(mirror.userMayUse('alice', 'lab-door', NOW, TZ)).toEqual({ allowed: true, groupId: 'lab' });
    const deny = (user: string, lock: string, at: number) => mirror.userMayUse(user, lock, at, TZ);
    expect(deny('nobody', 'front', NOW)).toEqual({ allowed: false, reason: 'user.unknown' });
    expect(deny('carol', 'front', NOW)).toEqual({ allowed: false, reason: 'user.blocked' });
    expect(deny('dave', 'front', NOW)).toEqual({ allowed: false, reason: 'user.expired' });
    expect(deny('bob', 'front', t('2025-12-31T12:00:00Z'))).toEqual({ allowed: false, reason: 'user.not-yet-valid' });
    expect(deny('bob', 'lab-door', NOW)).toEqual({ allowed: false, reason: 'lock.no-right' });
    expect(deny('alice', 'lab-door', t('2027-01-01T00:00:00Z'))).toEqual({ allowed: false, reason: 'group.not-valid' });
    // Saturday noon, and Wednesday 19:00 local (17:00Z in summer): outside office hours.
    expect(deny('bob', 'front', t('2026-06-06T10:00:00Z'))).toEqual({
      allowed: false,
      reason: 'group.outside-schedule',
    });
    expect(deny('bob', 'front', t('2026-06-03T17:00:00Z'))).toEqual({
      allowed: false,
      reason: 'group.outside-schedule',
    });
    expect(deny('bob', 'front', t('2026-06-03T16:59:59Z')).allowed).toBe(true);
    expect(refusal(() => mirror.userMayUse('bob', 'front', NOW, 'Europe/Nowhere')).code).toBe('access.time-zone');
    store.close();
  });

  it("a group's schedule follows the site's wall clock across DST (07:00 local on 2026-10-23 and 2026-10-26)", () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    expect(mirror.userMayUse('bob', 'front', t('2026-10-23T04:59:59Z'), TZ).allowed).toBe(false); // Fri 06:59 CEST
    expect(mirror.userMayUse('bob', 'front', t('2026-10-23T05:00:00Z'), TZ).allowed).toBe(true); // Fri 07:00 CEST
    expect(mirror.userMayUse('bob', 'front', t('2026-10-26T05:30:00Z'), TZ).allowed).toBe(false); // Mon 06:30 CET
    expect(mirror.userMayUse('bob', 'front', t('2026-10-26T06:00:00Z'), TZ).allowed).toBe(true); // Mon 07:00 CET
    store.close();
  });

  it('a revocation by delta takes effect at once: a deleted tag, a revoked key, a blocked user', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    expect(mirror.userByTagHash(digest('tag alice'))?.credentialId).toBe('tag-alice');
    mirror.apply(delta(1, 2, { delete: { tags: ['tag-alice'] } }));
    expect(mirror.userByTagHash(digest('tag alice'))).toBeUndefined();

    mirror.apply(
      delta(2, 3, { upsert: { keys: [{ id: 'key-bob', userId: 'bob', expiresAt: NOW + 86_400_000, revoked: true }] } }),
    );
    expect(mirror.digitalKey('key-bob')).toMatchObject({ revoked: true, expiresAt: NOW + 86_400_000 });

    expect(mirror.userMayUse('bob', 'front', NOW, TZ).allowed).toBe(true);
    mirror.apply(delta(3, 4, { upsert: { users: [{ id: 'bob', blocked: true }] } }));
    expect(mirror.userMayUse('bob', 'front', NOW, TZ)).toEqual({ allowed: false, reason: 'user.blocked' });
    // An upsert of the user changes only the user: its credentials and memberships stay.
    expect(mirror.userByPinVerifier(digest('pin bob'))?.user.blocked).toBe(true);
    expect(mirror.groupsOf('bob').map((g) => g.id)).toEqual(['office']);
    store.close();
  });
});

describe('access mirror: offline lists', () => {
  it("holds the PINs and tags of offline users with rights to the lock, with each grant's window", () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    // alice: offline, office (front). bob: not offline. carol: blocked. dave: expired.
    expect(mirror.offlineList('front', NOW)).toEqual([
      {
        kind: 'pin',
        credentialId: 'pin-alice',
        userId: 'alice',
        digest: new Uint8Array(digest('pin alice')),
        windows: [
          {
            validFrom: undefined,
            validUntil: undefined,
            schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '19:00' }],
          },
        ],
      },
      {
        kind: 'tag',
        credentialId: 'tag-alice',
        userId: 'alice',
        digest: new Uint8Array(digest('tag alice')),
        windows: [
          {
            validFrom: undefined,
            validUntil: undefined,
            schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '19:00' }],
          },
        ],
      },
    ]);
    expect(mirror.offlineList('lab-door', NOW).map((e) => [e.credentialId, e.windows])).toEqual([
      ['pin-alice', [{ validFrom: undefined, validUntil: t('2026-12-31T23:00:00Z'), schedule: null }]],
      ['tag-alice', [{ validFrom: undefined, validUntil: t('2026-12-31T23:00:00Z'), schedule: null }]],
    ]);
    expect(mirror.offlineList('lab-door', t('2027-01-01T00:00:00Z'))).toEqual([]);
    expect(mirror.offlineList('unknown-lock', NOW)).toEqual([]);
    store.close();
  });

  it('a user in two groups naming the lock gets one entry per credential with both windows', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    mirror.apply(
      delta(1, 2, {
        upsert: {
          users: [{ id: 'alice', offline: true, validUntil: '2026-09-01T00:00:00Z' }],
          groups: [{ id: 'lab', lockIds: ['lab-door', 'front'], validFrom: '2026-07-01T00:00:00Z' }],
        },
      }),
    );
    const [pin] = mirror.offlineList('front', NOW);
    expect(pin?.credentialId).toBe('pin-alice');
    expect(pin?.windows).toEqual(
      expect.arrayContaining([
        { validFrom: t('2026-07-01T00:00:00Z'), validUntil: t('2026-09-01T00:00:00Z'), schedule: null },
        {
          validFrom: undefined,
          validUntil: t('2026-09-01T00:00:00Z'),
          schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '19:00' }],
        },
      ]),
    );
    expect(pin?.windows).toHaveLength(2);
    store.close();
  });

  it('a delta that clears the offline flag or blocks the user removes the credentials from the list', () => {
    const { store, mirror } = open();
    mirror.apply(snapshot(1, site()));
    expect(mirror.offlineList('front', NOW)).toHaveLength(2);
    mirror.apply(delta(1, 2, { upsert: { users: [{ id: 'alice', blocked: true, offline: true }] } }));
    expect(mirror.offlineList('front', NOW)).toEqual([]);
    mirror.apply(delta(2, 3, { upsert: { users: [{ id: 'alice' }, { id: 'bob', offline: true }] } }));
    expect(mirror.offlineList('front', NOW).map((e) => e.credentialId)).toEqual(['pin-bob']);
    store.close();
  });
});

describe('access mirror: size', () => {
  it('applies a snapshot of 10,000 users, 10,000 tags and 10,000 digital keys in one transaction', () => {
    const { store, mirror } = open();
    const n = 10_000;
    const groups = Array.from({ length: 50 }, (_, g) => ({
      id: `g-${g}`,
      lockIds: Array.from({ length: 4 }, (_, l) => `lock-${g * 4 + l}`),
      schedule: [
        {
          days: ['mon', 'tue', 'wed', 'thu', 'fri'] as ('mon' | 'tue' | 'wed' | 'thu' | 'fri')[],
          from: '07:00',
          to: '19:00',
        },
      ],
    }));
    const data: SnapshotData = {
      users: Array.from({ length: n }, (_, i) => ({ id: `u-${i}`, offline: i % 4 === 0 })),
      groups,
      memberships: Array.from({ length: n }, (_, i) => ({ userId: `u-${i}`, groupId: `g-${i % 50}` })),
      pins: [],
      tags: Array.from({ length: n }, (_, i) => ({ id: `t-${i}`, userId: `u-${i}`, hash: digestHex(`tag ${i}`) })),
      keys: Array.from({ length: n }, (_, i) => ({ id: `k-${i}`, userId: `u-${i}`, expiresAt: NOW + i })),
    };
    const started = performance.now();
    const result = mirror.apply(snapshot(1, data));
    const ms = performance.now() - started;
    console.log(
      `access mirror: snapshot of ${n} users + ${n} tags + ${n} keys (+${n} memberships) applied in ${ms.toFixed(0)} ms`,
    );
    expect(result.counts).toEqual({ users: n, groups: 50, memberships: n, pins: 0, tags: n, keys: n });
    expect(mirror.userByTagHash(digest('tag 9999'))?.user.id).toBe('u-9999');
    expect(mirror.digitalKey('k-4321')).toMatchObject({ userId: 'u-4321', revoked: false });
    expect(mirror.userMayUse('u-4321', 'lock-84', NOW, TZ)).toEqual({ allowed: true, groupId: 'g-21' });
    // lock-0 is g-0's: users 0, 50, 100, ...; of those, the multiples of 100 are offline.
    expect(mirror.offlineList('lock-0', NOW)).toHaveLength(n / 100);
    // A second full snapshot replaces the first in one transaction as well.
    expect(mirror.apply(snapshot(2, data)).counts.tags).toBe(n);
    store.close();
  });
});
