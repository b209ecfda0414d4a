import type { SyncPayload } from '../../src/contract/mqtt-cloud-messages.js';
import type { DeltaData, SnapshotData } from '../../src/contract/sync-data.js';

/** A `sync` message carrying a whole snapshot at `version` (id `s-<version>`). */
export const snapshotSync = (version: number, data: SnapshotData): SyncPayload => ({
  v: 1,
  id: `s-${version}`,
  kind: 'snapshot',
  version,
  data: data as unknown as Record<string, unknown>,
});

/** A `sync` message carrying a delta from `baseVersion` to `version` (default: the next one; id `d-<version>`). */
export const deltaSync = (baseVersion: number, data: DeltaData, version = baseVersion + 1): SyncPayload => ({
  v: 1,
  id: `d-${version}`,
  kind: 'delta',
  baseVersion,
  version,
  data: data as unknown as Record<string, unknown>,
});
