import type { Clock } from '../base/clock.js';
import { HEAP_SETTLE_MIN_ROWS, type HeapSettle, processHeapSettle, syncRows } from '../base/heap-settle.js';
import type { SyncPayload } from '../contract/mqtt-cloud-messages.js';
import type { Table } from '../contract/sync-data.js';
import type { Store } from '../store/store.js';
import {
  type CredentialMatch,
  type MirrorGroup,
  type MirrorKey,
  MirrorLookups,
  type MirrorUser,
  type OfflineEntry,
  type UseVerdict,
} from './mirror-lookups.js';
import { lookupStatements, syncStatements } from './mirror-tables.js';
import { type ApplyResult, SyncApplier } from './sync-apply.js';

/**
 * The site's access rights as the cloud last synced them, held in the store so decisions keep
 * working while the cloud is away. The cloud is the only writer: `apply` takes a snapshot (the
 * whole content) or a delta (upserts and deletions per table from an exact base version), in one
 * transaction, or refuses it whole and changes nothing. The rest are the lookups the access
 * decisions use. Format and rules: docs/access.md.
 *
 * One object for the rest of the hub to hold; the work is done by the sync's checks
 * (sync-rows.ts), its transaction (sync-apply.ts) and the lookups (mirror-lookups.ts), over the
 * statements of mirror-tables.ts.
 */

export type {
  CredentialMatch,
  DenyReason,
  MirrorGroup,
  MirrorKey,
  MirrorUser,
  OfflineEntry,
  OfflineWindow,
  UseVerdict,
} from './mirror-lookups.js';
export type { ApplyResult } from './sync-apply.js';

export interface AccessMirrorDeps {
  store: Store;
  clock: Clock;
  /** Collects the garbage a large sync leaves (heap-settle.ts; default the process's); false: none (left to V8's own pace). */
  heapSettle?: HeapSettle | false;
}

export class AccessMirror {
  readonly #sync: SyncApplier;
  readonly #lookups: MirrorLookups;
  readonly #heap: HeapSettle | undefined;
  #changes = 0;

  constructor(deps: AccessMirrorDeps) {
    this.#heap = deps.heapSettle === false ? undefined : (deps.heapSettle ?? processHeapSettle);
    this.#sync = new SyncApplier(deps.store, deps.clock, syncStatements(deps.store.db));
    this.#lookups = new MirrorLookups(lookupStatements(deps.store.db));
  }

  /** The version of the last sync applied; 0 before the first. */
  version(): number {
    return this.#sync.version();
  }

  /** Rows per table. */
  counts(): Record<Table, number> {
    return this.#sync.counts();
  }

  /**
   * Apply a sync in one transaction, or refuse it whole (HubError; nothing changes):
   * `sync.invalid` (data against the schema, times, schedules, a delta's versions),
   * `sync.duplicate` (an id twice in one list; a verifier or hash held by another credential),
   * `sync.base-mismatch` (a delta not based on this mirror's version: send a snapshot),
   * `sync.stale-version` (version not above the mirror's), `sync.unknown-reference` (a row naming
   * a user or group the mirror would not hold, or deleting one it does not hold), `sync.too-large`.
   * `also` runs inside the same transaction (the sync's PIN key: `sync.pin-key…` refusals).
   */
  apply(p: SyncPayload, also?: () => void): ApplyResult {
    try {
      return this.#sync.apply(p, also);
    } finally {
      // Counted refused or not: whoever caches something derived from the mirror starts again.
      this.#changes++;
      // Applied or refused, a large sync leaves megabytes of garbage behind it.
      if (this.#heap && syncRows(p?.data) >= HEAP_SETTLE_MIN_ROWS) this.#heap.soon();
    }
  }

  /** How many syncs were offered to this mirror (in memory): a cache derived from it is dropped when this moves. */
  changes(): number {
    return this.#changes;
  }

  user(userId: string): MirrorUser | undefined {
    return this.#lookups.user(userId);
  }

  /** The PIN credential whose verifier (HMAC-SHA-256 of the typed PIN under the site's PIN key) this is. */
  userByPinVerifier(verifier: Uint8Array): CredentialMatch | undefined {
    return this.#lookups.userByPinVerifier(verifier);
  }

  /** The tag credential with this SHA-256 of the DESFire credential id. */
  userByTagHash(hash: Uint8Array): CredentialMatch | undefined {
    return this.#lookups.userByTagHash(hash);
  }

  digitalKey(keyId: string): MirrorKey | undefined {
    return this.#lookups.digitalKey(keyId);
  }

  /** The ids of the user's groups that name `lockId`: one indexed query, for a digital key's lock check per door. */
  groupIdsForLock(userId: string, lockId: string): string[] {
    return this.#lookups.groupIdsForLock(userId, lockId);
  }

  groupsOf(userId: string): MirrorGroup[] {
    return this.#lookups.groupsOf(userId);
  }

  /**
   * Whether the user may open `lockId` at `at` (unix ms), schedules read in `timeZone`: the user
   * exists, is not blocked and is within its validity, and one of its groups names the lock and is
   * within its validity and schedule. Otherwise the first reason in that order. With `onlyGroups`,
   * only those of the user's groups count (a digital key issued for some groups).
   */
  userMayUse(
    userId: string,
    lockId: string,
    at: number,
    timeZone: string,
    onlyGroups?: ReadonlySet<string>,
  ): UseVerdict {
    return this.#lookups.userMayUse(userId, lockId, at, timeZone, onlyGroups);
  }

  /**
   * The PINs and tags `lockId` may accept on its own: of users with the offline flag, not blocked,
   * in a group naming the lock, each with the windows (user validity ∩ group validity, and the
   * group's schedule) that have not ended by `at`. Windows that start later are included, so the
   * list changes only when a sync changes it. Ordered by kind, then credential id.
   */
  offlineList(lockId: string, at: number): OfflineEntry[] {
    return this.#lookups.offlineList(lockId, at);
  }
}
