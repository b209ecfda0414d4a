import type { Clock } from '../base/clock.js';
import type { SyncPayload } from '../contract/mqtt-cloud-messages.js';
import { LIMITS, TABLES, type Table } from '../contract/sync-data.js';
import type { Store } from '../store/store.js';
import type { SyncStatements } from './mirror-tables.js';
import { type PreparedCredential, type PreparedDeletes, type PreparedRows, prepareSync, refuse } from './sync-rows.js';

/**
 * The mirror's only writer: a sync goes into the store in one transaction, under the rules that
 * need the database (the version order, references to users and groups, a verifier or hash
 * unique in the site, the size limits), or is refused whole and nothing changes.
 */

export interface ApplyResult {
  kind: 'snapshot' | 'delta';
  previousVersion: number;
  version: number;
  /** Rows per table after the sync. */
  counts: Record<Table, number>;
}

export class SyncApplier {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #sql: SyncStatements;

  constructor(store: Store, clock: Clock, sql: SyncStatements) {
    this.#store = store;
    this.#clock = clock;
    this.#sql = sql;
  }

  version(): number {
    return this.#sql.version.get()?.version ?? 0;
  }

  counts(): Record<Table, number> {
    return Object.fromEntries(TABLES.map((t) => [t, this.#sql.count[t].get() as number])) as Record<Table, number>;
  }

  /** `also`: more of the same sync (its PIN key), run inside its transaction after the rows. */
  apply(p: SyncPayload, also?: () => void): ApplyResult {
    const { rows, deletes } = prepareSync(p);
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
      also?.();
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
    for (const u of r.users()) s.upsertUser.run(u.id, u.name, u.validFrom, u.validUntil, u.offline, u.blocked);
    for (const g of r.groups()) {
      s.upsertGroup.run(g.id, g.schedule, g.validFrom, g.validUntil);
      s.clearGroupLocks.run(g.id);
      for (const lockId of g.lockIds) s.addGroupLock.run(lockId, g.id);
    }
    for (const m of r.memberships()) {
      if (!s.userExists.get(m.userId)) throw dangling(m.where, `user ${m.userId}`);
      if (!s.groupExists.get(m.groupId)) throw dangling(m.where, `group ${m.groupId}`);
      s.addMembership.run(m.userId, m.groupId);
    }
    const credentials = (list: Iterable<PreparedCredential>, table: 'pins' | 'tags') => {
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
    credentials(r.pins(), 'pins');
    credentials(r.tags(), 'tags');
    for (const k of r.keys()) {
      if (!s.userExists.get(k.userId)) throw dangling(k.where, `user ${k.userId}`);
      s.upsertKey.run(k.id, k.userId, k.revoked, k.expiresAt);
    }
  }
}
