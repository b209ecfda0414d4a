import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AccessMirror } from '../../../src/access/mirror.js';
import { type OfflineLink, OfflineLists } from '../../../src/access/offline.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { encodeMessage } from '../../../src/contract/link-codec.js';
import type { OfflineItem } from '../../../src/contract/link-messages.js';
import { offlineListDigest } from '../../../src/contract/link-offline.js';
import type { SnapshotData } from '../../../src/contract/sync-data.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import { deltaSync, snapshotSync } from '../../helpers/sync.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * How offline lists travel (docs/access.md, "Delivery"): every bound lock at once, as differences,
 * and the last answer of every update checked against the list wanted — a lock that holds
 * anything else (changed behind the hub's back) is asked and sent its whole list, reset first.
 */

const NOW = Date.parse('2026-06-03T10:00:00Z');
const LOCKS = ['door-1', 'door-2', 'door-3', 'door-4'];
const digestHex = (label: string) => createHash('sha256').update(label).digest('hex');

function site(users: number): SnapshotData {
  const ids = Array.from({ length: users }, (_, i) => `u-${String(i).padStart(3, '0')}`);
  return {
    users: ids.map((id) => ({ id, offline: true })),
    groups: [{ id: 'all', lockIds: LOCKS }],
    memberships: ids.map((userId) => ({ userId, groupId: 'all' })),
    pins: [],
    tags: ids.map((userId) => ({ id: `tag-${userId}`, userId, hash: digestHex(userId) })),
    keys: [],
  };
}

type Change = Parameters<OfflineLink['setOffline']>[1];

/** Locks as the link sees them: each holds a list, applies a change and answers with its digest. */
class FakeLocks {
  readonly held = new Map<string, Map<string, OfflineItem>>(LOCKS.map((id) => [id, new Map()]));
  readonly sent: { lockId: string; reset: boolean; remove: string[]; upsert: number }[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Requests to each lock sent and not answered, and the most at once. */
  readonly inFlightOf = new Map<string, number>();
  maxPerLock = 0;
  /** What each lock saw, in order: `send` (the hub sent it) and `apply` (the lock applied it). */
  readonly log: { lockId: string; what: 'send' | 'apply'; reset: boolean; removes: boolean; upserts: boolean }[] = [];
  /** The request (counted from 0 per lock) that fails once (no answer after every attempt). */
  failing: { lockId: string; request: number } | undefined;
  readonly #count = new Map<string, number>();
  /** Answers with the digest of an empty list whatever the lock holds (a lock that lies or is broken). */
  lying = new Set<string>();

  readonly link: OfflineLink = {
    boundLocks: () => LOCKS,
    setOffline: async (lockId: string, change: Change) => {
      // What the link would put on the air: every request the hub builds must encode (counts, sizes).
      encodeMessage({ type: 'setOffline', id: 1, ack: 1, ...change });
      this.sent.push({ lockId, reset: change.reset, remove: [...change.remove], upsert: change.upsert.length });
      const what = {
        lockId,
        reset: change.reset,
        removes: change.remove.length > 0,
        upserts: change.upsert.length > 0,
      };
      this.log.push({ ...what, what: 'send' });
      const n = this.#count.get(lockId) ?? 0;
      this.#count.set(lockId, n + 1);
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      this.inFlightOf.set(lockId, (this.inFlightOf.get(lockId) ?? 0) + 1);
      this.maxPerLock = Math.max(this.maxPerLock, this.inFlightOf.get(lockId) ?? 0);
      try {
        await new Promise((r) => setImmediate(r));
        if (this.failing?.lockId === lockId && this.failing.request === n) {
          this.failing = undefined;
          throw new Error(`no answer to setOffline after 3 attempts`);
        }
      } finally {
        this.inFlight--;
        this.inFlightOf.set(lockId, (this.inFlightOf.get(lockId) ?? 1) - 1);
      }
      this.log.push({ ...what, what: 'apply' });
      const list = this.held.get(lockId) as Map<string, OfflineItem>;
      if (change.reset) list.clear();
      for (const id of change.remove) list.delete(id);
      for (const item of change.upsert) list.set(item.credentialId, item);
      const items = [...list.values()];
      return {
        held: items.length,
        capacity: 500,
        digest: offlineListDigest(this.lying.has(lockId) ? [] : items),
      };
    },
  };

  ids(lockId: string): string[] {
    return [...(this.held.get(lockId)?.keys() ?? [])].sort();
  }
}

async function setUp(users: number, prepare?: (locks: FakeLocks) => void) {
  const store = Store.open(tempDir());
  const clock = new VirtualClock(NOW);
  const mirror = new AccessMirror({ store, clock });
  mirror.apply(snapshotSync(1, site(users)));
  const locks = new FakeLocks();
  prepare?.(locks);
  const lists = new OfflineLists({ mirror, clock, timeZone: 'UTC', log: silentLogger(), link: locks.link });
  await lists.start();
  await lists.settled();
  let version = 1;
  const sync = async (data: Parameters<typeof deltaSync>[1]) => {
    mirror.apply(deltaSync(version, data, ++version));
    lists.changed();
    await lists.settled();
  };
  return { store, clock, mirror, locks, lists, sync };
}

const wantedIds = (lists: OfflineLists, lockId: string) =>
  lists
    .desired(lockId)
    .items.map((i) => i.credentialId)
    .sort();

describe('offline lists: delivery', () => {
  it('updates every bound lock at once, each with its whole list the first time', async () => {
    const { locks, lists, store } = await setUp(10);
    try {
      expect(locks.maxInFlight).toBe(LOCKS.length);
      for (const lockId of LOCKS) {
        expect(locks.ids(lockId)).toEqual(wantedIds(lists, lockId));
        expect(locks.ids(lockId)).toHaveLength(10);
      }
      expect(lists.locks().every((l) => l.held === 10 && l.lastError === undefined)).toBe(true);
    } finally {
      await lists.stop();
      store.close();
    }
  });

  it('to one lock, one request at a time: each answered before the next is sent, the reset first', async () => {
    const { locks, lists, store } = await setUp(40);
    try {
      expect(locks.maxPerLock).toBe(1);
      for (const lockId of LOCKS) {
        const seen = locks.log.filter((l) => l.lockId === lockId);
        // Asked first (the hub knows nothing of it yet), then the whole list, reset first.
        expect(seen[0]).toMatchObject({ what: 'send', reset: false, removes: false, upserts: false });
        expect(seen[2]).toMatchObject({ what: 'send', reset: true });
        expect(seen.map((l) => l.what)).toEqual(seen.map((_, i) => (i % 2 === 0 ? 'send' : 'apply')));
        expect(locks.ids(lockId)).toEqual(wantedIds(lists, lockId));
      }
      expect(lists.locks().every((l) => l.held === 40 && l.lastError === undefined)).toBe(true);
    } finally {
      await lists.stop();
      store.close();
    }
  });

  it('removals are applied before any request of upserts only is sent (a revoked credential leaves first)', async () => {
    const { locks, lists, sync, store } = await setUp(40);
    try {
      locks.log.length = 0;
      const gone = Array.from({ length: 30 }, (_, i) => `tag-u-${String(i).padStart(3, '0')}`);
      const fresh = Array.from({ length: 12 }, (_, i) => `n-${i}`);
      await sync({
        delete: { tags: gone },
        upsert: {
          users: fresh.map((id) => ({ id, offline: true })),
          memberships: fresh.map((userId) => ({ userId, groupId: 'all' })),
          tags: fresh.map((userId) => ({ id: `tag-${userId}`, userId, hash: digestHex(userId) })),
        },
      });
      for (const lockId of LOCKS) {
        const seen = locks.log.filter((l) => l.lockId === lockId);
        const lastRemoval = seen.findLastIndex((l) => l.what === 'apply' && l.removes);
        const firstUpsertOnly = seen.findIndex((l) => l.what === 'send' && l.upserts && !l.removes);
        expect(lastRemoval).toBeGreaterThan(0);
        expect(firstUpsertOnly).toBeGreaterThan(lastRemoval);
        expect(locks.ids(lockId)).toEqual(wantedIds(lists, lockId));
      }
      expect(lists.locks().every((l) => l.held === 22 && l.lastError === undefined)).toBe(true);
    } finally {
      await lists.stop();
      store.close();
    }
  });

  it('a request never answered (its frames dropped, every attempt) fails the update; the retry asks the lock and completes its list', async () => {
    const { locks, lists, store, clock } = await setUp(40, (l) => {
      l.failing = { lockId: 'door-3', request: 4 };
    });
    try {
      const failed = lists.locks().find((l) => l.lockId === 'door-3');
      expect(failed?.lastError).toMatch(/no answer/);
      expect(failed?.held).toBeUndefined();
      expect(lists.locks().filter((l) => l.lastError === undefined)).toHaveLength(3);
      locks.sent.length = 0;
      await clock.advance(30_000);
      await lists.settled();
      const toDoor3 = locks.sent.filter((s) => s.lockId === 'door-3');
      // Asked first (what does it hold now?), then the whole list again, reset first.
      expect(toDoor3[0]).toEqual({ lockId: 'door-3', reset: false, remove: [], upsert: 0 });
      expect(toDoor3[1]?.reset).toBe(true);
      expect(locks.ids('door-3')).toEqual(wantedIds(lists, 'door-3'));
      expect(lists.locks().every((l) => l.held === 40 && l.lastError === undefined)).toBe(true);
    } finally {
      await lists.stop();
      store.close();
    }
  });

  it('sends a change as a difference, and nothing to a lock whose list it does not change', async () => {
    const { locks, lists, sync, store } = await setUp(10);
    try {
      locks.sent.length = 0;
      await sync({ delete: { tags: ['tag-u-003'] } });
      expect(locks.sent.map((s) => [s.lockId, s.reset, s.remove, s.upsert])).toEqual(
        LOCKS.map((id) => [id, false, ['tag-u-003'], 0]),
      );
      locks.sent.length = 0;
      // A user without the offline flag: no list changes, no lock hears of it.
      await sync({ upsert: { users: [{ id: 'walk-in' }] } });
      expect(locks.sent).toEqual([]);
    } finally {
      await lists.stop();
      store.close();
    }
  });

  it('a lock whose list changed behind the hub is caught by the digest of its next answer, asked, and sent its whole list', async () => {
    const { locks, lists, sync, store } = await setUp(10);
    try {
      // Behind the hub's back (a flash restored from an old image): a credential revoked long ago is back.
      const stale = { ...(locks.held.get('door-2')?.get('tag-u-000') as OfflineItem), credentialId: 'tag-revoked' };
      locks.held.get('door-2')?.set('tag-revoked', stale);
      locks.sent.length = 0;
      await sync({ delete: { tags: ['tag-u-005'] } });
      const toDoor2 = locks.sent.filter((s) => s.lockId === 'door-2').map((s) => [s.reset, s.remove.length, s.upsert]);
      // The delta; its answer's digest is not the list wanted: the query, then the whole list with reset.
      expect(toDoor2).toEqual([
        [false, 1, 0],
        [false, 0, 0],
        [true, 0, 8],
        [false, 0, 1],
      ]);
      expect(locks.ids('door-2')).toEqual(wantedIds(lists, 'door-2'));
      expect(locks.ids('door-2')).not.toContain('tag-revoked');
      expect(lists.locks().find((l) => l.lockId === 'door-2')?.lastError).toBeUndefined();
    } finally {
      await lists.stop();
      store.close();
    }
  });

  it('a lock whose answers never match is not hammered: one attempt at once, then the retry', async () => {
    const { clock, locks, lists, sync, store } = await setUp(3);
    try {
      locks.lying.add('door-3');
      locks.sent.length = 0;
      await sync({ delete: { tags: ['tag-u-001'] } });
      const toDoor3 = () => locks.sent.filter((s) => s.lockId === 'door-3').length;
      // The delta, then once at once: the query and the whole list; then nothing until the retry.
      expect(toDoor3()).toBe(3);
      const status = lists.locks().find((l) => l.lockId === 'door-3');
      expect(status?.lastError).toContain('digest mismatch');
      expect(status?.held).toBeUndefined();
      await clock.advance(30_000);
      await lists.settled();
      expect(toDoor3()).toBe(5);
      // The others are up to date.
      expect(locks.ids('door-1')).toEqual(wantedIds(lists, 'door-1'));
    } finally {
      await lists.stop();
      store.close();
    }
  });
});
