import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FRAGMENT_DATA_SIZE } from '../drivers/zigbee/link-cluster.js';
import { AccessMirror } from '../src/access/mirror.js';
import { OfflineLists } from '../src/access/offline.js';
import { VirtualClock } from '../src/base/clock.js';
import { encodeMessage } from '../src/contract/link-codec.js';
import type { OfflineItem } from '../src/contract/link-messages.js';
import { offlineListDigest } from '../src/contract/link-offline.js';
import type { SyncPayload } from '../src/contract/mqtt-cloud-messages.js';
import type { SnapshotData } from '../src/contract/sync-data.js';
import { TAGLEN } from '../src/link/noise.js';
import { FRAME_HEADER_LEN } from '../src/link/transport.js';
import { silentLogger } from '../src/log/logger.js';
import { Store } from '../src/store/store.js';

/** What the offline lists of a site cost on the air: the full push, then each day's refresh. */
export interface OfflineWeek {
  /** ZigBee fragments (hub → locks) and setOffline requests (one answer each) of the first full push. */
  full: { fragments: number; requests: number };
  /** The same for the 7 daily refreshes after it, summed (no change to the site meanwhile). */
  week: { fragments: number; requests: number };
}

/**
 * The offline lists of `snapshot` for `lockIds`, kept by OfflineLists on a virtual clock from
 * `startMs` over a week of daily refreshes, sent to stand-in locks that apply each setOffline and
 * answer with their list's digest (as a lock does). Each request is encoded as the link sends it and
 * counted in the ZigBee fragments its sealed frame (message + transport header + tag) takes. No
 * radio: the count is the hub's, by the protocol's sizes.
 */
export async function offlineWeek(
  snapshot: SnapshotData,
  lockIds: string[],
  timeZone: string,
  startMs: number,
): Promise<OfflineWeek> {
  const dir = mkdtempSync(join(tmpdir(), 'iqhub-offline-week-'));
  const store = Store.open(dir);
  const clock = new VirtualClock(startMs);
  const held = new Map(lockIds.map((id) => [id, new Map<string, OfflineItem>()]));
  const count = { fragments: 0, requests: 0 };
  const mirror = new AccessMirror({ store, clock });
  const lists = new OfflineLists({
    mirror,
    clock,
    timeZone,
    log: silentLogger(),
    heapSettle: false,
    link: {
      boundLocks: () => lockIds,
      setOffline: async (lockId, change) => {
        const sealed = encodeMessage({ type: 'setOffline', id: 1, ...change }).length + FRAME_HEADER_LEN + TAGLEN;
        count.fragments += Math.ceil(sealed / FRAGMENT_DATA_SIZE);
        count.requests++;
        const list = held.get(lockId) ?? new Map<string, OfflineItem>();
        if (change.reset) list.clear();
        for (const id of change.remove) list.delete(id);
        for (const item of change.upsert) list.set(item.credentialId, item);
        return { held: list.size, capacity: 500, digest: offlineListDigest([...list.values()]) };
      },
    },
  });
  try {
    mirror.apply({ v: 1, id: 'offline-week', kind: 'snapshot', version: 1, data: snapshot } as unknown as SyncPayload);
    await lists.start();
    await lists.settled();
    const full = { ...count };
    count.fragments = 0;
    count.requests = 0;
    for (let day = 0; day < 7; day++) {
      await clock.advance(86_400_000);
      lists.changed();
      await lists.settled();
    }
    return { full, week: { ...count } };
  } finally {
    await lists.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
