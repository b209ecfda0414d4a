import { HubError } from '../base/errors.js';
import type { ControlServer } from '../control-socket/socket-server.js';
import { lockIdParam } from '../link/control.js';
import type { OfflineLists } from './offline.js';

/** One lock's offline list as `iqhub offline` shows it. */
export interface OfflineListRow {
  lockId: string;
  /** Entries the lock holds, as far as the hub knows; null: not known now (an update is due). */
  held: number | null;
  capacity: number;
  /** Credentials left out of the list for capacity. */
  leftOut: number;
  /** When the lock last acknowledged an update, or its list was found up to date (ISO 8601). */
  lastUpdatedAt: string | null;
  /** Why the last update failed (the hub retries); null when it did not. */
  lastError: string | null;
  /** The hub knows what the lock holds and its last update did not fail. */
  upToDate: boolean;
}

/**
 * The field technician's view of the offline lists on the control socket (`iqhub offline`): per
 * bound lock, what it holds and whether it is up to date. Nothing secret: counts, times and the
 * failure message, never a credential id or digest.
 */
export function registerAccessMethods(server: ControlServer, offline: OfflineLists | undefined): void {
  server.register('access.offline', {
    params: { properties: { lockId: lockIdParam } },
    handler: (p) => {
      const lockId = p.lockId as string | undefined;
      const rows = offlineListRows(offline).filter((r) => lockId === undefined || r.lockId === lockId);
      if (lockId !== undefined && rows.length === 0) {
        throw new HubError('access.no-offline-list', `lock ${lockId} has no offline list on this hub`, {
          hint: 'only bound locks get one; iqhub locks lists them (a lock bound a moment ago gets its list shortly)',
        });
      }
      return rows;
    },
  });
}

/** Every bound lock's offline list, by lock id (none when the hub keeps no lists). */
export function offlineListRows(offline: OfflineLists | undefined): OfflineListRow[] {
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
    }));
}
