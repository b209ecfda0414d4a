import type { OfflineListRow } from '../contract/control-socket.js';
import type { OfflineLists } from './offline.js';
import type { PinKeyDelivery } from './pin-key-delivery.js';

/**
 * Every bound lock's offline list as the field technician and the cloud see it (`iqhub offline`,
 * `health.offlineLists`), by lock id; none when the hub keeps no lists. Nothing secret: counts,
 * times and the failure message, never a credential id or digest.
 */
export function offlineListRows(offline: OfflineLists | undefined, pinKeys?: PinKeyDelivery): OfflineListRow[] {
  const current = pinKeys?.currentVersion() ?? 0;
  const held = new Map((pinKeys?.locks() ?? []).map((l) => [l.lockId, l]));
  return (offline?.locks() ?? [])
    .sort((x, y) => (x.lockId < y.lockId ? -1 : x.lockId > y.lockId ? 1 : 0))
    .map((l) => ({
      lockId: l.lockId,
      held: l.held ?? null,
      capacity: l.capacity,
      leftOut: l.leftOut,
      lastUpdatedAt: l.lastUpdatedAt === undefined ? null : new Date(l.lastUpdatedAt).toISOString(),
      lastError: l.lastError ?? null,
      upToDate: l.held !== undefined && l.lastError === undefined && l.lastUpdatedAt !== undefined,
      // The PIN key version the lock said it holds (never the key), and whether it is the site's current one.
      pinKeyVersion: held.get(l.lockId)?.version ?? null,
      pinKeyCurrent: current > 0 && held.get(l.lockId)?.version === current,
    }));
}
