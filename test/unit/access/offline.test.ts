import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AccessMirror } from '../../../src/access/mirror.js';
import { OfflineLists } from '../../../src/access/offline.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { offlineListDigest } from '../../../src/contract/link-offline.js';
import type { SnapshotData, SyncInterval } from '../../../src/contract/sync-data.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import { deltaSync, snapshotSync } from '../../helpers/sync.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * The windows an offline list gives each credential: the group's schedule as absolute intervals
 * over the horizon, cut to the user's validity. Users sharing a schedule with different validity
 * get their own intervals, and a sync that changes the schedule changes them.
 */

const t = (iso: string) => Date.parse(iso);
const NOW = t('2026-06-03T10:00:00Z'); // a Wednesday
const digestHex = (label: string) => createHash('sha256').update(label).digest('hex');
const span = (day: string, from: string, to: string) => ({
  from: t(`${day}T${from}:00Z`),
  until: t(`${day}T${to}:00Z`),
});

function site(): SnapshotData {
  return {
    users: [
      { id: 'short', offline: true, validUntil: '2026-06-05T00:00:00Z' },
      { id: 'long', offline: true },
    ],
    groups: [
      {
        id: 'office',
        lockIds: ['front'],
        schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '09:00', to: '17:00' }],
      },
    ],
    memberships: [
      { userId: 'short', groupId: 'office' },
      { userId: 'long', groupId: 'office' },
    ],
    pins: [
      { id: 'pin-short', userId: 'short', verifier: digestHex('short') },
      { id: 'pin-long', userId: 'long', verifier: digestHex('long') },
    ],
    tags: [],
    keys: [],
  };
}

function open() {
  const store = Store.open(tempDir());
  const clock = new VirtualClock(NOW);
  const mirror = new AccessMirror({ store, clock });
  const lists = new OfflineLists({
    mirror,
    clock,
    timeZone: 'UTC',
    log: silentLogger(),
    link: {
      boundLocks: () => ['front'],
      setOffline: async () => ({ held: 0, capacity: 500, digest: offlineListDigest([]) }),
    },
  });
  return { store, mirror, lists, clock };
}

const windowsOf = (lists: OfflineLists) =>
  Object.fromEntries(lists.desired('front').items.map((i) => [i.credentialId, i.windows]));

describe('offline lists: windows', () => {
  it('gives users on one schedule their own validity, and follows a sync that changes the schedule', () => {
    const { store, mirror, lists } = open();
    try {
      mirror.apply(snapshotSync(1, site()));
      // Two periods of the 7-day horizon from the current one's start: Thursday 2026-05-28 (UTC
      // days since the epoch in sevens) to Thursday 2026-06-11. 'short' ends on 2026-06-05.
      const weekdays = [
        '2026-05-28',
        '2026-05-29',
        '2026-06-01',
        '2026-06-02',
        '2026-06-03',
        '2026-06-04',
        '2026-06-05',
        '2026-06-08',
        '2026-06-09',
        '2026-06-10',
      ];
      expect(windowsOf(lists)).toEqual({
        'pin-short': weekdays.slice(0, 6).map((d) => span(d, '09:00', '17:00')),
        'pin-long': weekdays.map((d) => span(d, '09:00', '17:00')),
      });

      mirror.apply(
        deltaSync(1, {
          upsert: {
            groups: [
              { id: 'office', lockIds: ['front'], schedule: [{ days: ['mon', 'wed'], from: '10:00', to: '12:00' }] },
            ],
          },
        }),
      );
      expect(windowsOf(lists)).toEqual({
        'pin-short': ['2026-06-01', '2026-06-03'].map((d) => span(d, '10:00', '12:00')),
        'pin-long': ['2026-06-01', '2026-06-03', '2026-06-08', '2026-06-10'].map((d) => span(d, '10:00', '12:00')),
      });
    } finally {
      store.close();
    }
  });

  it('cuts a validity between seconds to whole seconds inside it (what the wire carries), and keeps an open end open', () => {
    const { store, mirror, lists } = open();
    try {
      const data = site();
      data.users = [
        { id: 'short', offline: true, validFrom: '2026-06-03T09:30:00.250Z', validUntil: '2026-06-03T12:00:00.750Z' },
        { id: 'long', offline: true, validFrom: '2026-06-03T09:30:00.250Z' },
      ];
      data.groups = [...data.groups, { id: 'always', lockIds: ['front'] }];
      data.memberships = [
        { userId: 'short', groupId: 'office' },
        { userId: 'long', groupId: 'always' },
      ];
      mirror.apply(snapshotSync(1, data));
      expect(windowsOf(lists)).toEqual({
        // On a schedule the window starts on the schedule's next minute (its resolution), ends on the second.
        'pin-short': [{ from: t('2026-06-03T09:31:00Z'), until: t('2026-06-03T12:00:00Z') }],
        'pin-long': [{ from: t('2026-06-03T09:30:01Z'), until: Number.MAX_SAFE_INTEGER }],
      });
    } finally {
      store.close();
    }
  });

  it('a list changes once a period, not daily; it always reaches a horizon ahead; a dense schedule falls back to today on', async () => {
    const { store, mirror, lists, clock } = open();
    try {
      const data = site();
      data.users = [{ id: 'long', offline: true }];
      data.memberships = [{ userId: 'long', groupId: 'office' }];
      data.pins = data.pins.filter((p) => p.userId === 'long');
      mirror.apply(snapshotSync(1, data));
      const first = windowsOf(lists)['pin-long'];
      // Every day up to the period's end (Thursday 2026-06-04, 00:00 UTC) the same list: nothing to send.
      for (const day of ['2026-06-03T23:00:00Z', '2026-06-04T00:00:00Z'].map(t)) {
        await clock.advance(day - clock.now() - 1);
        expect(windowsOf(lists)['pin-long']).toEqual(first);
      }
      // The next period: from 2026-06-04 to 2026-06-18.
      await clock.advance(1);
      const next = windowsOf(lists)['pin-long'] ?? [];
      expect(next).not.toEqual(first);
      expect(next[0]).toEqual(span('2026-06-04', '09:00', '17:00'));
      expect(next.at(-1)).toEqual(span('2026-06-17', '09:00', '17:00'));
      // At the last moment of a period the list still reaches at least 7 days ahead.
      expect(first?.at(-1)?.until).toBeGreaterThanOrEqual(t('2026-06-04T00:00:00Z') + 6 * 86_400_000);

      // Two windows every day: 28 in the two periods, more than an item carries (16): the earliest
      // 16 from today on, over one horizon (14 here).
      mirror.apply(
        deltaSync(1, {
          upsert: {
            groups: [
              {
                id: 'office',
                lockIds: ['front'],
                schedule: [
                  { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], from: '08:00', to: '10:00' },
                  { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], from: '14:00', to: '16:00' },
                ],
              },
            ],
          },
        }),
      );
      const dense = windowsOf(lists)['pin-long'] ?? [];
      expect(dense).toHaveLength(14);
      expect(dense[0]).toEqual(span('2026-06-04', '08:00', '10:00'));
      expect(dense.at(-1)).toEqual(span('2026-06-10', '14:00', '16:00'));
    } finally {
      store.close();
    }
  });

  it('over capacity, the credential usable soonest goes first, by its next window, not a past one; one with windows only in the past is not sent', () => {
    const { store, mirror, lists } = open();
    try {
      const at = (id: string, days: SyncInterval['days']) => ({
        id,
        lockIds: ['front'],
        schedule: [{ days, from: '10:00', to: '12:00' }],
      });
      mirror.apply(
        snapshotSync(1, {
          users: [
            { id: 'a', offline: true },
            { id: 'b', offline: true },
            { id: 'c', offline: true, validUntil: '2026-06-04T00:00:00Z' },
          ],
          // This period began on Thursday 2026-05-28; now is Wednesday 2026-06-03, 10:00.
          groups: [at('thu', ['thu']), at('wed', ['wed']), at('mon', ['mon'])],
          memberships: [
            { userId: 'a', groupId: 'thu' },
            { userId: 'b', groupId: 'wed' },
            { userId: 'c', groupId: 'mon' },
          ],
          pins: ['a', 'b', 'c'].map((u) => ({ id: `pin-${u}`, userId: u, verifier: digestHex(u) })),
          tags: [],
          keys: [],
        }),
      );
      // a's windows begin earlier (Thursday 05-28, over) but b's is open now.
      expect(lists.desired('front').items.map((i) => i.credentialId)).toEqual(['pin-b', 'pin-a']);
      expect(lists.desired('front', 1)).toMatchObject({ items: [{ credentialId: 'pin-b' }], leftOut: 1 });
    } finally {
      store.close();
    }
  });
});
