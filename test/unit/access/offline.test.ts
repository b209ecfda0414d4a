import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AccessMirror } from '../../../src/access/mirror.js';
import { OfflineLists } from '../../../src/access/offline.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { offlineListDigest } from '../../../src/contract/link-offline.js';
import type { SnapshotData } from '../../../src/contract/sync-data.js';
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
  return { store, mirror, lists };
}

const windowsOf = (lists: OfflineLists) =>
  Object.fromEntries(lists.desired('front').items.map((i) => [i.credentialId, i.windows]));

describe('offline lists: windows', () => {
  it('gives users on one schedule their own validity, and follows a sync that changes the schedule', () => {
    const { store, mirror, lists } = open();
    try {
      mirror.apply(snapshotSync(1, site()));
      const weekdays = ['2026-06-03', '2026-06-04', '2026-06-05', '2026-06-08', '2026-06-09'];
      expect(windowsOf(lists)).toEqual({
        'pin-short': weekdays.slice(0, 2).map((d) => span(d, '09:00', '17:00')),
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
        'pin-short': [span('2026-06-03', '10:00', '12:00')],
        'pin-long': ['2026-06-03', '2026-06-08'].map((d) => span(d, '10:00', '12:00')),
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
});
