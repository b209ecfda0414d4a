import { statSync } from 'node:fs';
import { VERSION } from '../base/version.js';
import type { MetricsSource } from '../metrics/source.js';
import type { Hub } from './hub.js';

/**
 * What the metrics endpoint reads when scraped: the figures the hub's parts already keep (no
 * bookkeeping of its own). Built only when metrics are on.
 */
export function hubMetricsSource(hub: Hub): MetricsSource {
  const store = hub.store;
  // The table's row numbers only grow (events are never deleted one by one): the count ever stored.
  const eventsStored = store.db.prepare('SELECT COALESCE(MAX(rowid), 0) AS n FROM lock_events');
  const fileSize = (path: string) => {
    try {
      return statSync(path).size;
    } catch {
      return 0;
    }
  };
  return {
    version: VERSION,
    outbox: () => {
      const o = hub.outbox;
      if (!o || store.closed) return undefined;
      const d = o.depth();
      return {
        events: d.events,
        messages: d.messages,
        bytes: d.bytes,
        oldestAgeSec: o.oldestAgeSec(),
        dropped: o.dropped(),
      };
    },
    eventsStored: () => (store.closed ? 0 : (eventsStored.get() as { n: number }).n),
    delivery: () => hub.delivery?.counts(),
    commands: () => hub.commandStats(),
    decisions: () => hub.access.counts(),
    locks: () => (store.closed ? [] : (hub.link?.list() ?? [])),
    uplinkConnected: () => hub.uplink?.connected ?? false,
    radios: () => (hub.radios?.members ?? []).map((b) => ({ kind: b.kind, up: b.state().status === 'ready' })),
    storeBytes: () => fileSize(store.info.path) + fileSize(`${store.info.path}-wal`),
    disk: () => ({ free: store.space.free(), full: store.space.full }),
  };
}
