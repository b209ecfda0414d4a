import { describe, expect, it, vi } from 'vitest';
import { AccessMirror } from '../../../src/access/mirror.js';
import { VirtualClock } from '../../../src/base/clock.js';
import type { SnapshotData } from '../../../src/contract/sync-data.js';
import { Store } from '../../../src/store/store.js';
import { refusal } from '../../helpers/refusal.js';
import { snapshotSync } from '../../helpers/sync.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * A sync's rows are converted one at a time (sync-rows.ts), never copied whole: every check that
 * needs no database still runs before the mirror's transaction opens, in table order, and the
 * rows stored are the rows sent.
 */

const hex = (n: number) => n.toString(16).padStart(64, '0');

function site(n: number): SnapshotData {
  const users = Array.from({ length: n }, (_, i) => `u-${i}`);
  return {
    users: users.map((id, i) => ({
      id,
      ...(i % 2 === 0 ? { validFrom: '2026-01-01T00:00:00Z', validUntil: '2027-01-01T00:00:00Z' } : {}),
      ...(i % 3 === 0 ? { offline: true } : {}),
    })),
    groups: [{ id: 'g', lockIds: ['L1', 'L2'], schedule: [{ days: ['mon'], from: '07:00', to: '19:00' }] }],
    memberships: users.map((userId) => ({ userId, groupId: 'g' })),
    pins: users.map((userId, i) => ({ id: `p-${i}`, userId, verifier: hex(i + 1) })),
    tags: users.map((userId, i) => ({ id: `t-${i}`, userId, hash: hex(i + 1) })),
    keys: users.map((userId, i) => ({ id: `k-${i}`, userId, expiresAt: '2027-01-01T00:00:00Z' })),
  };
}

function open() {
  const store = Store.open(tempDir());
  const mirror = new AccessMirror({
    store,
    clock: new VirtualClock(Date.parse('2026-06-03T10:00:00Z')),
    heapSettle: false,
  });
  return { store, mirror, transactions: vi.spyOn(store, 'transaction') };
}

describe('sync rows, converted one at a time', () => {
  it('the rows stored are the rows sent', () => {
    const { store, mirror } = open();
    try {
      mirror.apply(snapshotSync(1, site(50)));
      expect(mirror.counts()).toEqual({ users: 50, groups: 1, memberships: 50, pins: 50, tags: 50, keys: 50 });
      expect(mirror.user('u-0')).toMatchObject({ validFrom: Date.parse('2026-01-01T00:00:00Z'), offline: true });
      expect(mirror.user('u-1')).toMatchObject({ validFrom: undefined, offline: false });
      expect(mirror.userByPinVerifier(Buffer.from(hex(8), 'hex'))).toMatchObject({ credentialId: 'p-7' });
      expect(mirror.userByTagHash(Buffer.from(hex(9), 'hex'))).toMatchObject({ credentialId: 't-8' });
      expect(mirror.digitalKey('k-3')).toEqual({
        id: 'k-3',
        userId: 'u-3',
        revoked: false,
        expiresAt: Date.parse('2027-01-01T00:00:00Z'),
      });
    } finally {
      store.close();
    }
  });

  it('a bad time in the last table is refused before the transaction opens, and nothing changes', () => {
    const { store, mirror, transactions } = open();
    try {
      const data = site(50);
      (data.keys[49] as { expiresAt: string }).expiresAt = '2027-13-01T00:00:00Z';
      const e = refusal(() => mirror.apply(snapshotSync(1, data)));
      expect(e.code).toBe('sync.invalid');
      expect(e.message).toContain('data.keys[49].expiresAt');
      expect(transactions).not.toHaveBeenCalled();
      expect(mirror.version()).toBe(0);
    } finally {
      store.close();
    }
  });

  it('duplicates are named with both places, before the transaction opens; the first problem in table order wins', () => {
    const { store, mirror, transactions } = open();
    try {
      const data = site(20);
      data.memberships.push({ userId: 'u-4', groupId: 'g' });
      (data.pins[7] as { id: string }).id = 'p-2';
      let e = refusal(() => mirror.apply(snapshotSync(1, data)));
      expect(e.code).toBe('sync.duplicate');
      expect(e.message).toBe('data.memberships[20]: membership of u-4 in g is also data.memberships[4]');
      data.memberships.pop();
      e = refusal(() => mirror.apply(snapshotSync(1, data)));
      expect(e.message).toBe('data.pins[7]: pin p-2 is also data.pins[2]');
      // A schedule that does not compile, in a table before them, comes first.
      (data.groups[0] as { schedule: unknown }).schedule = [{ days: ['mon'], from: '19:00', to: '07:00' }];
      (data.pins[7] as { id: string }).id = 'p-7';
      e = refusal(() => mirror.apply(snapshotSync(1, data)));
      expect(e.code).toBe('sync.invalid');
      expect(e.message).toContain('data.groups[0].schedule');
      expect(transactions).not.toHaveBeenCalled();
    } finally {
      store.close();
    }
  });
});
