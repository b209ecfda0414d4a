import type { Statement } from 'better-sqlite3';
import type { Clock } from '../base/clock.js';
import { HubError, isHubError } from '../base/errors.js';
import type { SyncPayload } from '../contract/mqtt.js';
import {
  checkSyncData,
  type DeltaData,
  LIMITS,
  type SnapshotData,
  type SyncGroup,
  type SyncKey,
  type SyncMembership,
  type SyncPin,
  type SyncTag,
  type SyncUser,
  TABLES,
  type Table,
} from '../contract/sync-data.js';
import type { Store } from '../store/store.js';
import {
  type CompiledSchedule,
  checkTimeZone,
  compileSchedule,
  isWithin,
  type Schedule,
  toMillis,
} from './schedule.js';

/**
 * The site's access rights as the cloud last synced them, held in the store so decisions keep
 * working while the cloud is away. The cloud is the only writer: `apply` takes a snapshot (the
 * whole content) or a delta (upserts and deletions per table from an exact base version), in one
 * transaction, or refuses it whole and changes nothing. The rest are the lookups the access
 * decisions use. Format and rules: docs/access.md.
 */

export interface MirrorUser {
  id: string;
  name: string | undefined;
  validFrom: number | undefined;
  validUntil: number | undefined;
  offline: boolean;
  blocked: boolean;
}

export interface MirrorGroup {
  id: string;
  lockIds: string[];
  /** Undefined: at all times. */
  schedule: Schedule | undefined;
  validFrom: number | undefined;
  validUntil: number | undefined;
}

/** The credential a PIN verifier or tag hash belongs to, and its user. */
export interface CredentialMatch {
  credentialId: string;
  user: MirrorUser;
}

export interface MirrorKey {
  id: string;
  userId: string;
  revoked: boolean;
  expiresAt: number;
}

export type DenyReason =
  | 'user.unknown'
  | 'user.blocked'
  | 'user.not-yet-valid'
  | 'user.expired'
  /** No group of the user names the lock. */
  | 'lock.no-right'
  /** Groups name the lock, but none is within its validity period at that time. */
  | 'group.not-valid'
  /** A group naming the lock is valid, but its schedule does not admit that time. */
  | 'group.outside-schedule';

export type UseVerdict = { allowed: true; groupId: string } | { allowed: false; reason: DenyReason };

/** One way an offline credential may be used: within its validity bounds, at the times of its schedule. */
export interface OfflineWindow {
  validFrom: number | undefined;
  validUntil: number | undefined;
  /** Null: at all times. In the site's time zone. */
  schedule: Schedule | null;
}

/** A credential a lock may accept on its own: admitted when any of its windows admits the time. */
export interface OfflineEntry {
  kind: 'pin' | 'tag';
  credentialId: string;
  userId: string;
  /** The PIN verifier or the tag hash (32 bytes). */
  digest: Uint8Array;
  windows: OfflineWindow[];
}

export interface ApplyResult {
  kind: 'snapshot' | 'delta';
  previousVersion: number;
  version: number;
  /** Rows per table after the sync. */
  counts: Record<Table, number>;
}

export interface AccessMirrorDeps {
  store: Store;
  clock: Clock;
}

interface UserRow {
  id: string;
  name: string | null;
  valid_from: number | null;
  valid_until: number | null;
  offline: number;
  blocked: number;
}

interface GroupRow {
  id: string;
  schedule: string | null;
  valid_from: number | null;
  valid_until: number | null;
}

interface GrantRow {
  user_id: string;
  user_from: number | null;
  user_until: number | null;
  schedule: string | null;
  group_from: number | null;
  group_until: number | null;
}

interface OfflineCredentialRow {
  kind: 'pin' | 'tag';
  id: string;
  user_id: string;
  digest: Buffer;
}

/** A row ready for the store: times in unix ms, schedules checked. */
interface PreparedUser {
  id: string;
  name: string | null;
  validFrom: number | null;
  validUntil: number | null;
  offline: number;
  blocked: number;
}

interface PreparedGroup {
  id: string;
  lockIds: string[];
  schedule: string | null;
  validFrom: number | null;
  validUntil: number | null;
}

interface PreparedCredential {
  id: string;
  userId: string;
  digest: Buffer;
  where: string;
}

interface PreparedKey {
  id: string;
  userId: string;
  revoked: number;
  expiresAt: number;
  where: string;
}

interface PreparedRows {
  /** 'data' for a snapshot, 'data.upsert' for a delta: the prefix of error paths. */
  path: string;
  users: PreparedUser[];
  groups: PreparedGroup[];
  memberships: (SyncMembership & { where: string })[];
  pins: PreparedCredential[];
  tags: PreparedCredential[];
  keys: PreparedKey[];
}

interface PreparedDeletes {
  users: string[];
  groups: string[];
  memberships: SyncMembership[];
  pins: string[];
  tags: string[];
  keys: string[];
}

function refuse(code: string, message: string, hint?: string): HubError {
  return new HubError(code, message, hint === undefined ? {} : { hint });
}

function invalid(message: string): HubError {
  return refuse('sync.invalid', message, 'the sync was not applied; the cloud must send a corrected one');
}

/** Whole-sync checks that need no database: times, schedules, validity order, duplicate ids. */
function prepareRows(path: string, d: Partial<SnapshotData>): PreparedRows {
  const ms = (value: string | number | undefined, where: string): number | null => {
    if (value === undefined) return null;
    try {
      return toMillis(value, where);
    } catch (e) {
      throw invalid(isHubError(e) ? e.message : `${where}: not a time`);
    }
  };
  const period = (v: { validFrom?: string | number; validUntil?: string | number }, where: string) => {
    const validFrom = ms(v.validFrom, `${where}.validFrom`);
    const validUntil = ms(v.validUntil, `${where}.validUntil`);
    if (validFrom !== null && validUntil !== null && validUntil <= validFrom) {
      throw invalid(`${where}: validUntil is not after validFrom, so it is never valid`);
    }
    return { validFrom, validUntil };
  };
  const unique = <T>(table: string, list: readonly T[], keyOf: (row: T) => string): void => {
    const seen = new Map<string, number>();
    list.forEach((row, i) => {
      const key = keyOf(row);
      const first = seen.get(key);
      if (first !== undefined) {
        throw refuse('sync.duplicate', `${path}.${table}[${i}]: ${key} is also ${path}.${table}[${first}]`);
      }
      seen.set(key, i);
    });
  };

  const users = d.users ?? [];
  const groups = d.groups ?? [];
  const memberships = d.memberships ?? [];
  const pins = d.pins ?? [];
  const tags = d.tags ?? [];
  const keys = d.keys ?? [];
  unique('users', users, (u) => `user ${u.id}`);
  unique('groups', groups, (g) => `group ${g.id}`);
  unique('memberships', memberships, (m) => `membership of ${m.userId} in ${m.groupId}`);
  unique('pins', pins, (p) => `pin ${p.id}`);
  unique('tags', tags, (t) => `tag ${t.id}`);
  unique('keys', keys, (k) => `key ${k.id}`);

  const credential = (table: 'pins' | 'tags') => (c: SyncPin | SyncTag, i: number) => ({
    id: c.id,
    userId: c.userId,
    digest: Buffer.from('verifier' in c ? c.verifier : c.hash, 'hex'),
    where: `${path}.${table}[${i}] (${table === 'pins' ? 'pin' : 'tag'} ${c.id})`,
  });
  return {
    path,
    users: users.map((u: SyncUser, i) => ({
      id: u.id,
      name: u.name ?? null,
      ...period(u, `${path}.users[${i}]`),
      offline: u.offline ? 1 : 0,
      blocked: u.blocked ? 1 : 0,
    })),
    groups: groups.map((g: SyncGroup, i) => {
      const where = `${path}.groups[${i}]`;
      if (g.schedule) {
        try {
          compileSchedule(g.schedule, `${where}.schedule`);
        } catch (e) {
          throw invalid(isHubError(e) ? e.message : `${where}.schedule is invalid`);
        }
      }
      return {
        id: g.id,
        lockIds: g.lockIds,
        schedule: g.schedule ? JSON.stringify(g.schedule) : null,
        ...period(g, where),
      };
    }),
    memberships: memberships.map((m, i) => ({
      userId: m.userId,
      groupId: m.groupId,
      where: `${path}.memberships[${i}]`,
    })),
    pins: pins.map(credential('pins')),
    tags: tags.map(credential('tags')),
    keys: keys.map((k: SyncKey, i) => {
      const where = `${path}.keys[${i}] (key ${k.id})`;
      return {
        id: k.id,
        userId: k.userId,
        revoked: k.revoked ? 1 : 0,
        expiresAt: ms(k.expiresAt, `${path}.keys[${i}].expiresAt`) as number,
        where,
      };
    }),
  };
}

function prepareDeletes(d: DeltaData['delete']): PreparedDeletes {
  const deletes = {
    users: d?.users ?? [],
    groups: d?.groups ?? [],
    memberships: d?.memberships ?? [],
    pins: d?.pins ?? [],
    tags: d?.tags ?? [],
    keys: d?.keys ?? [],
  };
  for (const table of TABLES) {
    const seen = new Map<string, number>();
    (deletes[table] as (string | SyncMembership)[]).forEach((row, i) => {
      const key = typeof row === 'string' ? row : `${row.userId} in ${row.groupId}`;
      const first = seen.get(key);
      if (first !== undefined) {
        throw refuse('sync.duplicate', `data.delete.${table}[${i}]: ${key} is also data.delete.${table}[${first}]`);
      }
      seen.set(key, i);
    });
  }
  return deletes;
}

const undef = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

function toUser(r: UserRow): MirrorUser {
  return {
    id: r.id,
    name: undef(r.name),
    validFrom: undef(r.valid_from),
    validUntil: undef(r.valid_until),
    offline: r.offline === 1,
    blocked: r.blocked === 1,
  };
}

function within(from: number | null, until: number | null, at: number): boolean {
  return (from === null || at >= from) && (until === null || at < until);
}

/** Bound on the cache of schedules (one entry per distinct schedule text). */
const MAX_SCHEDULES = 20_000;

export class AccessMirror {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #sql: ReturnType<typeof statements>;
  /**
   * Each distinct stored schedule text, parsed once (and compiled at its first decision). Keyed by
   * the text, so a sync never makes an entry wrong; the lookups hand out the same (readonly)
   * object each time, which lets the offline lists cache their windows by it.
   */
  readonly #schedules = new Map<string, { schedule: Schedule; compiled: CompiledSchedule | undefined }>();

  constructor(deps: AccessMirrorDeps) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#sql = statements(deps.store);
  }

  /** The version of the last sync applied; 0 before the first. */
  version(): number {
    return this.#sql.version.get()?.version ?? 0;
  }

  /** Rows per table. */
  counts(): Record<Table, number> {
    return Object.fromEntries(TABLES.map((t) => [t, this.#sql.count[t].get() as number])) as Record<Table, number>;
  }

  /**
   * Apply a sync in one transaction, or refuse it whole (HubError; nothing changes):
   * `sync.invalid` (data against the schema, times, schedules, a delta's versions),
   * `sync.duplicate` (an id twice in one list; a verifier or hash held by another credential),
   * `sync.base-mismatch` (a delta not based on this mirror's version: send a snapshot),
   * `sync.stale-version` (version not above the mirror's), `sync.unknown-reference` (a row naming
   * a user or group the mirror would not hold, or deleting one it does not hold), `sync.too-large`.
   */
  apply(p: SyncPayload): ApplyResult {
    let rows: PreparedRows;
    let deletes: PreparedDeletes | undefined;
    if (p.kind === 'snapshot') {
      const checked = checkSyncData('snapshot', p.data);
      if (!checked.ok) throw invalid(checked.message);
      rows = prepareRows('data', checked.data);
    } else {
      const checked = checkSyncData('delta', p.data);
      if (!checked.ok) throw invalid(checked.message);
      if (p.baseVersion === undefined) throw invalid('a delta needs baseVersion, the version it applies to');
      if (p.version <= p.baseVersion) {
        throw invalid(`a delta's version (${p.version}) must be greater than its baseVersion (${p.baseVersion})`);
      }
      rows = prepareRows('data.upsert', checked.data.upsert ?? {});
      deletes = prepareDeletes(checked.data.delete);
    }
    const result = this.#store.transaction(() => {
      const previousVersion = this.version();
      if (p.kind === 'delta' && p.baseVersion !== previousVersion) {
        throw refuse(
          'sync.base-mismatch',
          `delta ${p.id} is based on version ${p.baseVersion}, but the mirror is at version ${previousVersion}`,
          'the cloud must send a snapshot',
        );
      }
      if (p.version <= previousVersion) {
        throw refuse(
          'sync.stale-version',
          `${p.kind} ${p.id} has version ${p.version}, not above the mirror's version ${previousVersion}`,
          'versions only increase; the cloud must send a newer snapshot',
        );
      }
      if (deletes) this.#delete(deletes);
      else this.#clear();
      this.#upsert(rows, p.kind);
      const counts = this.counts();
      for (const table of TABLES) {
        if (counts[table] > LIMITS[table]) {
          throw refuse(
            'sync.too-large',
            `after ${p.kind} ${p.id} the mirror would hold ${counts[table]} ${table}, more than ${LIMITS[table]}`,
          );
        }
      }
      this.#sql.setVersion.run(p.version, p.id, p.kind, Math.floor(this.#clock.now()));
      return { kind: p.kind, previousVersion, version: p.version, counts };
    });
    return result;
  }

  #clear(): void {
    for (const statement of this.#sql.clear) statement.run();
  }

  /** Children before parents, so an explicit deletion is never pre-empted by a cascade. */
  #delete(d: PreparedDeletes): void {
    const s = this.#sql;
    const each = <T>(table: Table, rows: readonly T[], what: (row: T) => string, remove: (row: T) => number) => {
      rows.forEach((row, i) => {
        if (remove(row) !== 1) {
          throw refuse(
            'sync.unknown-reference',
            `data.delete.${table}[${i}]: ${what(row)} is not in the mirror`,
            'the cloud must send a snapshot',
          );
        }
      });
    };
    const byId = (noun: string) => (id: string) => `${noun} ${id}`;
    each('keys', d.keys, byId('key'), (id) => s.deleteKey.run(id).changes);
    each('tags', d.tags, byId('tag'), (id) => s.deleteTag.run(id).changes);
    each('pins', d.pins, byId('pin'), (id) => s.deletePin.run(id).changes);
    each(
      'memberships',
      d.memberships,
      (m) => `the membership of user ${m.userId} in group ${m.groupId}`,
      (m) => s.deleteMembership.run(m.userId, m.groupId).changes,
    );
    each('groups', d.groups, byId('group'), (id) => s.deleteGroup.run(id).changes);
    each('users', d.users, byId('user'), (id) => s.deleteUser.run(id).changes);
  }

  #upsert(r: PreparedRows, kind: 'snapshot' | 'delta'): void {
    const s = this.#sql;
    const holder = kind === 'snapshot' ? 'the snapshot' : 'the mirror';
    const dangling = (where: string, what: string) =>
      refuse('sync.unknown-reference', `${where}: ${what} is not in ${holder}`, 'the cloud must send a snapshot');
    for (const u of r.users) s.upsertUser.run(u.id, u.name, u.validFrom, u.validUntil, u.offline, u.blocked);
    for (const g of r.groups) {
      s.upsertGroup.run(g.id, g.schedule, g.validFrom, g.validUntil);
      s.clearGroupLocks.run(g.id);
      for (const lockId of g.lockIds) s.addGroupLock.run(lockId, g.id);
    }
    for (const m of r.memberships) {
      if (!s.userExists.get(m.userId)) throw dangling(m.where, `user ${m.userId}`);
      if (!s.groupExists.get(m.groupId)) throw dangling(m.where, `group ${m.groupId}`);
      s.addMembership.run(m.userId, m.groupId);
    }
    const credentials = (list: PreparedCredential[], table: 'pins' | 'tags') => {
      const owner = table === 'pins' ? s.pinByVerifier : s.tagByHash;
      const upsert = table === 'pins' ? s.upsertPin : s.upsertTag;
      const digest = table === 'pins' ? 'verifier' : 'hash';
      for (const c of list) {
        if (!s.userExists.get(c.userId)) throw dangling(c.where, `user ${c.userId}`);
        const other = owner.get(c.digest);
        if (other !== undefined && other !== c.id) {
          throw refuse(
            'sync.duplicate',
            `${c.where}: the same ${digest} as ${table === 'pins' ? 'pin' : 'tag'} ${other}; a ${digest} is unique in the site`,
            'the cloud must refuse a credential that is already in use',
          );
        }
        upsert.run(c.id, c.userId, c.digest);
      }
    };
    credentials(r.pins, 'pins');
    credentials(r.tags, 'tags');
    for (const k of r.keys) {
      if (!s.userExists.get(k.userId)) throw dangling(k.where, `user ${k.userId}`);
      s.upsertKey.run(k.id, k.userId, k.revoked, k.expiresAt);
    }
  }

  // ----- lookups -------------------------------------------------------------------------------

  user(userId: string): MirrorUser | undefined {
    const r = this.#sql.user.get(userId);
    return r && toUser(r);
  }

  /** The PIN credential whose verifier (HMAC-SHA-256 of the typed PIN under the site's PIN key) this is. */
  userByPinVerifier(verifier: Uint8Array): CredentialMatch | undefined {
    if (verifier.length !== 32) return undefined;
    const r = this.#sql.pinUser.get(verifier);
    return r && { credentialId: r.credential_id, user: toUser(r) };
  }

  /** The tag credential with this SHA-256 of the DESFire credential id. */
  userByTagHash(hash: Uint8Array): CredentialMatch | undefined {
    if (hash.length !== 32) return undefined;
    const r = this.#sql.tagUser.get(hash);
    return r && { credentialId: r.credential_id, user: toUser(r) };
  }

  digitalKey(keyId: string): MirrorKey | undefined {
    const r = this.#sql.key.get(keyId);
    return r && { id: r.id, userId: r.user_id, revoked: r.revoked === 1, expiresAt: r.expires_at };
  }

  /** The ids of the user's groups that name `lockId`: one indexed query, for a digital key's lock check per door. */
  groupIdsForLock(userId: string, lockId: string): string[] {
    return this.#sql.groupsForLock.all(lockId, userId).map((g) => g.id);
  }

  groupsOf(userId: string): MirrorGroup[] {
    return this.#sql.groupsOf.all(userId).map((g) => ({
      id: g.id,
      lockIds: this.#sql.groupLocks.all(g.id),
      schedule: g.schedule === null ? undefined : this.#parsed(g.schedule).schedule,
      validFrom: undef(g.valid_from),
      validUntil: undef(g.valid_until),
    }));
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
    checkTimeZone(timeZone);
    const u = this.#sql.user.get(userId);
    if (!u) return { allowed: false, reason: 'user.unknown' };
    if (u.blocked === 1) return { allowed: false, reason: 'user.blocked' };
    if (u.valid_from !== null && at < u.valid_from) return { allowed: false, reason: 'user.not-yet-valid' };
    if (u.valid_until !== null && at >= u.valid_until) return { allowed: false, reason: 'user.expired' };
    const all = this.#sql.groupsForLock.all(lockId, userId);
    // A digital key issued for some groups opens a lock only through those groups.
    const groups = onlyGroups ? all.filter((g) => onlyGroups.has(g.id)) : all;
    if (groups.length === 0) return { allowed: false, reason: 'lock.no-right' };
    let anyValid = false;
    for (const g of groups) {
      if (!within(g.valid_from, g.valid_until, at)) continue;
      anyValid = true;
      if (g.schedule === null || isWithin(this.#schedule(g.schedule), timeZone, at)) {
        return { allowed: true, groupId: g.id };
      }
    }
    return { allowed: false, reason: anyValid ? 'group.outside-schedule' : 'group.not-valid' };
  }

  /**
   * The PINs and tags `lockId` may accept on its own: of users with the offline flag, not blocked,
   * in a group naming the lock, each with the windows (user validity ∩ group validity, and the
   * group's schedule) that have not ended by `at`. Windows that start later are included, so the
   * list changes only when a sync changes it. Ordered by kind, then credential id.
   */
  offlineList(lockId: string, at: number): OfflineEntry[] {
    const windows = new Map<string, Map<string, OfflineWindow>>();
    for (const g of this.#sql.offlineGrants.all(lockId)) {
      const from = maxBound(g.user_from, g.group_from);
      const until = minBound(g.user_until, g.group_until);
      if (until !== null && (until <= at || (from !== null && until <= from))) continue;
      const schedule = g.schedule === null ? null : this.#parsed(g.schedule).schedule;
      const key = `${from}|${until}|${g.schedule}`;
      let mine = windows.get(g.user_id);
      if (!mine) {
        mine = new Map();
        windows.set(g.user_id, mine);
      }
      mine.set(key, { validFrom: undef(from), validUntil: undef(until), schedule });
    }
    const entries: OfflineEntry[] = [];
    for (const c of this.#sql.offlineCredentials.all(lockId, lockId)) {
      const mine = windows.get(c.user_id);
      if (!mine) continue;
      entries.push({
        kind: c.kind,
        credentialId: c.id,
        userId: c.user_id,
        digest: new Uint8Array(c.digest),
        windows: [...mine.values()],
      });
    }
    return entries;
  }

  #parsed(text: string): { schedule: Schedule; compiled: CompiledSchedule | undefined } {
    let entry = this.#schedules.get(text);
    if (!entry) {
      if (this.#schedules.size >= MAX_SCHEDULES) this.#schedules.clear();
      entry = { schedule: JSON.parse(text) as Schedule, compiled: undefined };
      this.#schedules.set(text, entry);
    }
    return entry;
  }

  #schedule(text: string): CompiledSchedule {
    const entry = this.#parsed(text);
    entry.compiled ??= compileSchedule(entry.schedule);
    return entry.compiled;
  }
}

function maxBound(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

function minBound(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

const TABLE_NAMES: Record<Table, string> = {
  users: 'access_users',
  groups: 'access_groups',
  memberships: 'access_memberships',
  pins: 'access_pins',
  tags: 'access_tags',
  keys: 'access_keys',
};

/** The users on a lock's offline list (one lock id parameter). */
const OFFLINE_USERS = `SELECT m.user_id FROM access_group_locks l
  JOIN access_memberships m ON m.group_id = l.group_id
  JOIN access_users u ON u.id = m.user_id AND u.offline = 1 AND u.blocked = 0
  WHERE l.lock_id = ?`;

function statements(store: Store) {
  const db = store.db;
  const count = Object.fromEntries(
    TABLES.map((t) => [t, db.prepare(`SELECT COUNT(*) FROM ${TABLE_NAMES[t]}`).pluck()]),
  ) as Record<Table, Statement<[], number>>;
  return {
    version: db.prepare<[], { version: number }>('SELECT version FROM access_meta WHERE id = 1'),
    setVersion: db.prepare<[number, string, string, number]>(
      'UPDATE access_meta SET version = ?, sync_id = ?, kind = ?, applied_at = ? WHERE id = 1',
    ),
    count,
    clear: [
      'access_keys',
      'access_tags',
      'access_pins',
      'access_memberships',
      'access_group_locks',
      'access_groups',
      'access_users',
    ].map((t) => db.prepare(`DELETE FROM ${t}`)),
    deleteKey: db.prepare<[string]>('DELETE FROM access_keys WHERE id = ?'),
    deleteTag: db.prepare<[string]>('DELETE FROM access_tags WHERE id = ?'),
    deletePin: db.prepare<[string]>('DELETE FROM access_pins WHERE id = ?'),
    deleteMembership: db.prepare<[string, string]>('DELETE FROM access_memberships WHERE user_id = ? AND group_id = ?'),
    deleteGroup: db.prepare<[string]>('DELETE FROM access_groups WHERE id = ?'),
    deleteUser: db.prepare<[string]>('DELETE FROM access_users WHERE id = ?'),
    // ON CONFLICT DO UPDATE, never INSERT OR REPLACE: a replace deletes the row first, and the
    // cascade would take the user's memberships and credentials with it.
    upsertUser: db.prepare<[string, string | null, number | null, number | null, number, number]>(
      `INSERT INTO access_users (id, name, valid_from, valid_until, offline, blocked) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, valid_from = excluded.valid_from,
         valid_until = excluded.valid_until, offline = excluded.offline, blocked = excluded.blocked`,
    ),
    upsertGroup: db.prepare<[string, string | null, number | null, number | null]>(
      `INSERT INTO access_groups (id, schedule, valid_from, valid_until) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET schedule = excluded.schedule, valid_from = excluded.valid_from,
         valid_until = excluded.valid_until`,
    ),
    clearGroupLocks: db.prepare<[string]>('DELETE FROM access_group_locks WHERE group_id = ?'),
    addGroupLock: db.prepare<[string, string]>('INSERT INTO access_group_locks (lock_id, group_id) VALUES (?, ?)'),
    addMembership: db.prepare<[string, string]>(
      'INSERT INTO access_memberships (user_id, group_id) VALUES (?, ?) ON CONFLICT DO NOTHING',
    ),
    upsertPin: db.prepare<[string, string, Buffer]>(
      `INSERT INTO access_pins (id, user_id, verifier) VALUES (?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, verifier = excluded.verifier`,
    ),
    upsertTag: db.prepare<[string, string, Buffer]>(
      `INSERT INTO access_tags (id, user_id, hash) VALUES (?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, hash = excluded.hash`,
    ),
    upsertKey: db.prepare<[string, string, number, number]>(
      `INSERT INTO access_keys (id, user_id, revoked, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, revoked = excluded.revoked,
         expires_at = excluded.expires_at`,
    ),
    userExists: db.prepare<[string], { 1: number }>('SELECT 1 FROM access_users WHERE id = ?'),
    groupExists: db.prepare<[string], { 1: number }>('SELECT 1 FROM access_groups WHERE id = ?'),
    pinByVerifier: db.prepare<[Uint8Array], string>('SELECT id FROM access_pins WHERE verifier = ?').pluck(),
    tagByHash: db.prepare<[Uint8Array], string>('SELECT id FROM access_tags WHERE hash = ?').pluck(),

    user: db.prepare<[string], UserRow>('SELECT * FROM access_users WHERE id = ?'),
    pinUser: db.prepare<[Uint8Array], UserRow & { credential_id: string }>(
      `SELECT p.id AS credential_id, u.* FROM access_pins p JOIN access_users u ON u.id = p.user_id
       WHERE p.verifier = ?`,
    ),
    tagUser: db.prepare<[Uint8Array], UserRow & { credential_id: string }>(
      `SELECT t.id AS credential_id, u.* FROM access_tags t JOIN access_users u ON u.id = t.user_id
       WHERE t.hash = ?`,
    ),
    key: db.prepare<[string], { id: string; user_id: string; revoked: number; expires_at: number }>(
      'SELECT id, user_id, revoked, expires_at FROM access_keys WHERE id = ?',
    ),
    groupsOf: db.prepare<[string], GroupRow>(
      `SELECT g.id, g.schedule, g.valid_from, g.valid_until FROM access_memberships m
       JOIN access_groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.id`,
    ),
    groupLocks: db
      .prepare<[string], string>('SELECT lock_id FROM access_group_locks WHERE group_id = ? ORDER BY lock_id')
      .pluck(),
    groupsForLock: db.prepare<[string, string], GroupRow>(
      `SELECT g.id, g.schedule, g.valid_from, g.valid_until FROM access_memberships m
       JOIN access_group_locks l ON l.group_id = m.group_id AND l.lock_id = ?
       JOIN access_groups g ON g.id = m.group_id
       WHERE m.user_id = ? ORDER BY g.id`,
    ),
    offlineGrants: db.prepare<[string], GrantRow>(
      `SELECT u.id AS user_id, u.valid_from AS user_from, u.valid_until AS user_until,
              g.schedule, g.valid_from AS group_from, g.valid_until AS group_until
       FROM access_group_locks l
       JOIN access_memberships m ON m.group_id = l.group_id
       JOIN access_users u ON u.id = m.user_id
       JOIN access_groups g ON g.id = l.group_id
       WHERE l.lock_id = ? AND u.offline = 1 AND u.blocked = 0`,
    ),
    offlineCredentials: db.prepare<[string, string], OfflineCredentialRow>(
      `SELECT 'pin' AS kind, id, user_id, verifier AS digest FROM access_pins WHERE user_id IN (${OFFLINE_USERS})
       UNION ALL
       SELECT 'tag' AS kind, id, user_id, hash AS digest FROM access_tags WHERE user_id IN (${OFFLINE_USERS})
       ORDER BY kind, id`,
    ),
  };
}
