import { HubError, type HubErrorCode, isHubError } from '../base/errors.js';
import type { SyncPayload } from '../contract/mqtt-cloud-messages.js';
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
} from '../contract/sync-data.js';
import { compileSchedule, toMillis } from './schedule.js';

/**
 * Everything about a sync that can be judged without the database (the data against the schema,
 * a delta's versions, times, schedules, validity order, an id twice in a list), done before the
 * mirror's transaction opens, so a malformed sync never holds the write lock. What passes comes
 * out as rows ready for the store.
 */

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

export interface PreparedCredential {
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

/**
 * A sync's rows, ready for the store, one at a time: each call of a table's function walks the
 * sync's data again and hands out each row converted afresh. Nothing of the conversion is kept
 * between rows, so a large sync costs its parsed data and no copy of it (the copies outlived the
 * young generation and were promoted to V8's old space, ~8 MB for 10,000 users, which V8 gives
 * back only slowly). `prepareSync` has already walked every table whose conversion can refuse,
 * so a walk never throws.
 */
export interface PreparedRows {
  /** 'data' for a snapshot, 'data.upsert' for a delta: the prefix of error paths. */
  path: string;
  users(): Iterable<PreparedUser>;
  groups(): Iterable<PreparedGroup>;
  memberships(): Iterable<SyncMembership & { where: string }>;
  pins(): Iterable<PreparedCredential>;
  tags(): Iterable<PreparedCredential>;
  keys(): Iterable<PreparedKey>;
}

export interface PreparedDeletes {
  users: string[];
  groups: string[];
  memberships: SyncMembership[];
  pins: string[];
  tags: string[];
  keys: string[];
}

/** A sync ready for the transaction: a snapshot's rows, or a delta's upserts and deletions. */
export interface PreparedSync {
  rows: PreparedRows;
  /** Undefined for a snapshot, which replaces everything instead. */
  deletes: PreparedDeletes | undefined;
}

export function refuse(code: HubErrorCode, message: string, hint?: string): HubError {
  return new HubError(code, message, hint === undefined ? {} : { hint });
}

function invalid(message: string): HubError {
  return refuse('sync.invalid', message, 'the sync was not applied; the cloud must send a corrected one');
}

/** The sync's data as rows, or a refusal (`sync.invalid`, `sync.duplicate`) naming the first problem. */
export function prepareSync(p: SyncPayload): PreparedSync {
  // More rows in one table than the mirror may hold is `sync.too-large` (docs/access.md), before
  // the schema — whose list bounds are the same limits — would call it `sync.invalid`.
  const tables = p.kind === 'snapshot' ? p.data : (p.data as { upsert?: unknown } | undefined)?.upsert;
  for (const table of TABLES) {
    const rows = (tables as Record<string, unknown> | undefined)?.[table];
    if (Array.isArray(rows) && rows.length > LIMITS[table]) {
      throw refuse(
        'sync.too-large',
        `${p.kind} ${p.id} holds ${rows.length} ${table}, more than the ${LIMITS[table]} the mirror may hold`,
        'send a snapshot within the limits of docs/access.md',
      );
    }
  }
  if (p.kind === 'snapshot') {
    const checked = checkSyncData('snapshot', p.data);
    if (!checked.ok) throw invalid(checked.message);
    return { rows: prepareRows('data', checked.data), deletes: undefined };
  }
  const checked = checkSyncData('delta', p.data);
  if (!checked.ok) throw invalid(checked.message);
  if (p.baseVersion === undefined) throw invalid('a delta needs baseVersion, the version it applies to');
  if (p.version <= p.baseVersion) {
    throw invalid(`a delta's version (${p.version}) must be greater than its baseVersion (${p.baseVersion})`);
  }
  return { rows: prepareRows('data.upsert', checked.data.upsert ?? {}), deletes: prepareDeletes(checked.data.delete) };
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
  // Duplicate ids by a set of the ids themselves (no key string kept per row); the first index
  // is looked up only for the refusal.
  const unique = <T>(table: string, list: readonly T[], idOf: (row: T) => string, describe: (row: T) => string) => {
    const seen = new Set<string>();
    list.forEach((row, i) => {
      const id = idOf(row);
      if (seen.has(id)) {
        const first = list.findIndex((other) => idOf(other) === id);
        throw refuse('sync.duplicate', `${path}.${table}[${i}]: ${describe(row)} is also ${path}.${table}[${first}]`);
      }
      seen.add(id);
    });
  };

  const users = d.users ?? [];
  const groups = d.groups ?? [];
  const memberships = d.memberships ?? [];
  const pins = d.pins ?? [];
  const tags = d.tags ?? [];
  const keys = d.keys ?? [];
  const byId = (noun: string) => (row: { id: string }) => `${noun} ${row.id}`;
  const id = (row: { id: string }) => row.id;
  unique('users', users, id, byId('user'));
  unique('groups', groups, id, byId('group'));
  unique(
    'memberships',
    memberships,
    (m) => `${m.userId}\0${m.groupId}`,
    (m) => `membership of ${m.userId} in ${m.groupId}`,
  );
  unique('pins', pins, id, byId('pin'));
  unique('tags', tags, id, byId('tag'));
  unique('keys', keys, id, byId('key'));

  const credential = (table: 'pins' | 'tags', list: readonly (SyncPin | SyncTag)[]) =>
    function* (): Iterable<PreparedCredential> {
      for (let i = 0; i < list.length; i++) {
        const c = list[i] as SyncPin | SyncTag;
        yield {
          id: c.id,
          userId: c.userId,
          digest: Buffer.from('verifier' in c ? c.verifier : c.hash, 'hex'),
          where: `${path}.${table}[${i}] (${table === 'pins' ? 'pin' : 'tag'} ${c.id})`,
        };
      }
    };
  const rows: PreparedRows = {
    path,
    *users() {
      for (let i = 0; i < users.length; i++) {
        const u = users[i] as SyncUser;
        yield {
          id: u.id,
          name: u.name ?? null,
          ...period(u, `${path}.users[${i}]`),
          offline: u.offline ? 1 : 0,
          blocked: u.blocked ? 1 : 0,
        };
      }
    },
    *groups() {
      for (let i = 0; i < groups.length; i++) {
        const g = groups[i] as SyncGroup;
        const where = `${path}.groups[${i}]`;
        if (g.schedule) {
          try {
            compileSchedule(g.schedule, `${where}.schedule`);
          } catch (e) {
            throw invalid(isHubError(e) ? e.message : `${where}.schedule is invalid`);
          }
        }
        yield {
          id: g.id,
          lockIds: g.lockIds,
          schedule: g.schedule ? JSON.stringify(g.schedule) : null,
          ...period(g, where),
        };
      }
    },
    *memberships() {
      for (let i = 0; i < memberships.length; i++) {
        const m = memberships[i] as SyncMembership;
        yield { userId: m.userId, groupId: m.groupId, where: `${path}.memberships[${i}]` };
      }
    },
    pins: credential('pins', pins),
    tags: credential('tags', tags),
    *keys() {
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as SyncKey;
        yield {
          id: k.id,
          userId: k.userId,
          revoked: k.revoked ? 1 : 0,
          expiresAt: ms(k.expiresAt, `${path}.keys[${i}].expiresAt`) as number,
          where: `${path}.keys[${i}] (key ${k.id})`,
        };
      }
    },
  };
  // The tables whose conversion checks something (times, schedules, validity order) are
  // converted once now, in table order, so a refusal comes before the transaction and names the
  // first problem; the rows themselves are dropped. Memberships, PINs and tags have nothing to
  // check beyond their ids (above) and the schema (64 hex digits for a digest).
  for (const table of [rows.users, rows.groups, rows.keys]) {
    for (const _ of table()) {
      // converted and checked
    }
  }
  return rows;
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
