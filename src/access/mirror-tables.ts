import type { Database, Statement } from 'better-sqlite3';
import { TABLES, type Table } from '../contract/sync-data.js';

/**
 * Every statement the access mirror runs against its tables (created by migration 5 in
 * src/store/migrations.ts), so the SQL that has to follow a schema change is in one place. The
 * writes a sync makes and the reads decisions make are prepared apart: each side gets only its own.
 */

export interface UserRow {
  id: string;
  name: string | null;
  valid_from: number | null;
  valid_until: number | null;
  offline: number;
  blocked: number;
}

export interface GroupRow {
  id: string;
  schedule: string | null;
  valid_from: number | null;
  valid_until: number | null;
}

/** One offline user's grant on a lock: the user's and the group's validity, and the group's schedule. */
export interface GrantRow {
  user_id: string;
  user_from: number | null;
  user_until: number | null;
  schedule: string | null;
  group_from: number | null;
  group_until: number | null;
}

export interface OfflineCredentialRow {
  kind: 'pin' | 'tag';
  id: string;
  user_id: string;
  digest: Buffer;
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

export type SyncStatements = ReturnType<typeof syncStatements>;
export type LookupStatements = ReturnType<typeof lookupStatements>;

/** What applying a sync needs: the version, the row counts, and the deletions and upserts per table. */
export function syncStatements(db: Database) {
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
  };
}

/** What the decisions and the offline lists read. */
export function lookupStatements(db: Database) {
  return {
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
