import type { LookupStatements, UserRow } from './mirror-tables.js';
import { type CompiledSchedule, checkTimeZone, compileSchedule, isWithin, type Schedule } from './schedule.js';

/**
 * The read side of the mirror: the answers access decisions and offline lists need, straight
 * from the store, so they stay the same while the cloud is away. Schedules are stored as text
 * and parsed (and compiled) once per distinct text.
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

/** Each lookup's contract is documented on AccessMirror, which hands it out. */
export class MirrorLookups {
  readonly #sql: LookupStatements;
  /**
   * Each distinct stored schedule text, parsed once (and compiled at its first decision). Keyed by
   * the text, so a sync never makes an entry wrong; the lookups hand out the same (readonly)
   * object each time, which lets the offline lists cache their windows by it.
   */
  readonly #schedules = new Map<string, { schedule: Schedule; compiled: CompiledSchedule | undefined }>();

  constructor(sql: LookupStatements) {
    this.#sql = sql;
  }

  user(userId: string): MirrorUser | undefined {
    const r = this.#sql.user.get(userId);
    return r && toUser(r);
  }

  userByPinVerifier(verifier: Uint8Array): CredentialMatch | undefined {
    if (verifier.length !== 32) return undefined;
    const r = this.#sql.pinUser.get(verifier);
    return r && { credentialId: r.credential_id, user: toUser(r) };
  }

  userByTagHash(hash: Uint8Array): CredentialMatch | undefined {
    if (hash.length !== 32) return undefined;
    const r = this.#sql.tagUser.get(hash);
    return r && { credentialId: r.credential_id, user: toUser(r) };
  }

  digitalKey(keyId: string): MirrorKey | undefined {
    const r = this.#sql.key.get(keyId);
    return r && { id: r.id, userId: r.user_id, revoked: r.revoked === 1, expiresAt: r.expires_at };
  }

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
