import { createHash } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import type { Clock } from '../base/clock.js';
import { MAX_SYNC_BYTES, maxInboundBytes } from '../contract/mqtt.js';
import { isSyncPart, MAX_SYNC_PARTS, type SyncPartPayload, type SyncPayload } from '../contract/mqtt-cloud-messages.js';
import { parseInboundText } from '../contract/mqtt-validate.js';
import { wholeSyncText } from '../contract/sync-parts.js';
import type { Store } from '../store/store.js';

/**
 * The parts of a sync sent in parts (docs/mqtt-api.md, "Sync in parts"), kept in the store as
 * they arrive (table `sync_parts`, migration 6) until the set is complete. Then, in the same
 * transaction as the last part, the set leaves the store and is joined, its digest checked over
 * the whole and parsed as the sync it stands for; only that whole sync reaches the mirror (which
 * applies it in one transaction or not at all). A part that does not belong — another set's
 * generation while one is open, another count, digest, kind or base, an index already held with
 * other content, an index beyond the count, a count above MAX_SYNC_PARTS — is refused and changes
 * nothing. One set is open at a time; a set that is not complete within its time is dropped and
 * reported `sync.incomplete` (CloudSync).
 */

/** A set of parts as held: its header and how much of it has arrived. */
export interface PartSet {
  sync: string;
  count: number;
  digest: string;
  kind: 'snapshot' | 'delta';
  version: number;
  baseVersion: number | undefined;
  received: number;
  bytes: number;
  /** When its first part arrived (the store's clock, ms). */
  since: number;
}

export type PartOutcome =
  /** Stored (or the very same part again): `received` of `count` held. */
  | { kind: 'waiting'; received: number; count: number }
  /** The last part: the set, joined and checked, is this whole sync. */
  | { kind: 'complete'; sync: SyncPayload; count: number }
  | { kind: 'refused'; code: string; message: string; received: number; count: number };

interface SetRow {
  sync_id: string;
  count: number;
  digest: string;
  kind: 'snapshot' | 'delta';
  version: number;
  base_version: number | null;
  received: number;
  bytes: number;
  since: number;
}

export interface SyncPartsDeps {
  store: Store;
  clock: Clock;
  /** A set not complete this long after its first part is dropped and reported. */
  timeoutMs: number;
}

export class SyncParts {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #sql: {
    sets: Statement<[], SetRow>;
    chunk: Statement<[string, number], { chunk: string }>;
    chunkTexts: Statement<[string], string>;
    insert: Statement<[string, number, number, string, string, number, number | null, string, number]>;
    drop: Statement<[string]>;
  };

  constructor(deps: SyncPartsDeps) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#timeoutMs = deps.timeoutMs;
    const db = deps.store.db;
    this.#sql = {
      sets: db.prepare(
        `SELECT sync_id, MIN(count) AS count, MIN(digest) AS digest, MIN(kind) AS kind, MIN(version) AS version,
                MIN(base_version) AS base_version, COUNT(*) AS received,
                SUM(length(CAST(chunk AS BLOB))) AS bytes, MIN(received_at) AS since
           FROM sync_parts GROUP BY sync_id ORDER BY since`,
      ),
      chunk: db.prepare('SELECT chunk FROM sync_parts WHERE sync_id = ? AND idx = ?'),
      chunkTexts: db.prepare<[string], string>('SELECT chunk FROM sync_parts WHERE sync_id = ? ORDER BY idx').pluck(),
      insert: db.prepare(
        `INSERT INTO sync_parts (sync_id, idx, count, digest, kind, version, base_version, chunk, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      drop: db.prepare('DELETE FROM sync_parts WHERE sync_id = ?'),
    };
  }

  /** The sets held now (at most one, but a store is read as it is), oldest first. */
  sets(): PartSet[] {
    return this.#sql.sets.all().map((r) => ({
      sync: r.sync_id,
      count: r.count,
      digest: r.digest,
      kind: r.kind,
      version: r.version,
      baseVersion: r.base_version ?? undefined,
      received: r.received,
      bytes: r.bytes,
      since: r.since,
    }));
  }

  /** When the oldest set held runs out of time, if any is held. */
  nextDeadline(): number | undefined {
    const first = this.sets()[0];
    return first && first.since + this.#timeoutMs;
  }

  /**
   * Drop every set whose time is up; `report` is called for each inside the transaction that
   * drops it (so its report is queued durably with the drop, or neither happens).
   */
  expire(report: (set: PartSet) => void): PartSet[] {
    const now = this.#now();
    return this.#store.transaction(() => {
      const due = this.sets().filter((s) => now >= s.since + this.#timeoutMs);
      for (const s of due) {
        this.#sql.drop.run(s.sync);
        report(s);
      }
      return due;
    });
  }

  /**
   * Take one part, durably. `superseded` is called (inside the same transaction) for an open set
   * of an older version that a part of a newer sync replaces.
   */
  take(p: SyncPartPayload, superseded: (set: PartSet) => void): PartOutcome {
    const { sync, index, count, digest } = p.part;
    const refuse = (code: string, message: string, received = 0): PartOutcome => ({
      kind: 'refused',
      code,
      message,
      received,
      count,
    });
    if (count > MAX_SYNC_PARTS) {
      return refuse(
        'sync.too-large',
        `sync ${sync} comes in ${count} parts, more than the ${MAX_SYNC_PARTS} a hub takes`,
      );
    }
    if (index >= count) {
      return refuse(
        'sync.part-out-of-range',
        `part ${index} of sync ${sync} is beyond its count of ${count} (0 to ${count - 1})`,
      );
    }
    return this.#store.transaction(() => {
      const open = this.sets().find((s) => s.sync === sync);
      for (const other of this.sets()) {
        if (other.sync === sync) continue;
        if (p.version <= other.version) {
          return refuse(
            'sync.part-mismatch',
            `part ${index} of sync ${sync} (version ${p.version}) arrived while sync ${other.sync} (version ${other.version}) is being received in parts; one set at a time, and a newer one replaces an older one`,
          );
        }
        this.#sql.drop.run(other.sync);
        superseded(other);
      }
      if (open) {
        const differs = differences(open, p);
        if (differs.length > 0) {
          return refuse(
            'sync.part-mismatch',
            `part ${index} of sync ${sync} differs from the parts already held in ${differs.join(', ')}; every part of a set carries the same`,
            open.received,
          );
        }
        const held = this.#sql.chunk.get(sync, index);
        if (held) {
          if (held.chunk !== p.chunk) {
            return refuse(
              'sync.part-conflict',
              `part ${index} of sync ${sync} was already received with other content; the part held is kept`,
              open.received,
            );
          }
          return { kind: 'waiting', received: open.received, count };
        }
      }
      const bytes = (open?.bytes ?? 0) + Buffer.byteLength(p.chunk);
      if (bytes > MAX_SYNC_BYTES) {
        // It can never complete within the limit: the whole set goes.
        this.#sql.drop.run(sync);
        return refuse(
          'sync.too-large',
          `sync ${sync} would be more than ${MAX_SYNC_BYTES} bytes; its parts were dropped`,
          0,
        );
      }
      this.#sql.insert.run(sync, index, count, digest, p.kind, p.version, p.baseVersion ?? null, p.chunk, this.#now());
      const received = (open?.received ?? 0) + 1;
      if (received < count) return { kind: 'waiting', received, count };
      return this.#complete(p, count);
    });
  }

  /**
   * The set is whole: it leaves the store (in the caller's transaction) and is checked as one.
   * The parts are joined once, straight into the text of the whole message, with no other copy of
   * the megabytes a large sync is (the digest is taken over the data's slice of it, the message is
   * parsed from the text, not from bytes made of it and decoded again).
   */
  #complete(p: SyncPartPayload, count: number): PartOutcome {
    const { sync, digest } = p.part;
    const chunks = this.#sql.chunkTexts.all(sync);
    this.#sql.drop.run(sync);
    const refuse = (code: string, message: string): PartOutcome => ({
      kind: 'refused',
      code,
      message,
      received: count,
      count,
    });
    // wholeSyncText(head, data) is its head, the data, and a closing brace.
    const head = wholeSyncText({ id: sync, kind: p.kind, version: p.version, baseVersion: p.baseVersion }, '}');
    const open = head.slice(0, -2);
    // Read back from the store, the chunks are well-formed text (an unpaired surrogate a part
    // carried was stored as UTF-8 and reads back as U+FFFD), as a message's decoded bytes are.
    const whole = [open, ...chunks, '}'].join('');
    chunks.length = 0;
    // A slice of a string is not a copy of it.
    if (wholeDigest(whole.slice(open.length, -1)) !== digest) {
      return refuse(
        'sync.digest-mismatch',
        `the ${count} parts of sync ${sync} do not join to their digest; nothing was applied and the parts were dropped`,
      );
    }
    const limit = maxInboundBytes('sync');
    const bytes = Buffer.byteLength(whole, 'utf8');
    const parsed: ReturnType<typeof parseInboundText<'sync'>> =
      bytes > limit
        ? { ok: false, error: { code: 'payload.too-large', message: `payload of ${bytes} bytes exceeds ${limit}` } }
        : parseInboundText('sync', whole);
    if (!parsed.ok) {
      return refuse(parsed.error.code, `sync ${sync} joined from ${count} parts: ${parsed.error.message}`);
    }
    const m = parsed.value;
    if (
      isSyncPart(m) ||
      m.id !== sync ||
      m.kind !== p.kind ||
      m.version !== p.version ||
      m.baseVersion !== p.baseVersion
    ) {
      return refuse('sync.part-mismatch', `sync ${sync} joined from ${count} parts does not match its parts' header`);
    }
    return { kind: 'complete', sync: m, count };
  }

  #now(): number {
    return Math.floor(this.#clock.now());
  }
}

/**
 * partsDigest (SHA-256 of the UTF-8 text, hex) through node:crypto: the same value, without a
 * byte copy of the text in JavaScript's heap and several times faster.
 */
export function wholeDigest(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The header fields in which a part differs from the set held. */
function differences(set: PartSet, p: SyncPartPayload): string[] {
  const out: string[] = [];
  if (set.count !== p.part.count) out.push(`count (${p.part.count}, not ${set.count})`);
  if (set.digest !== p.part.digest) out.push('digest');
  if (set.kind !== p.kind) out.push(`kind (${p.kind}, not ${set.kind})`);
  if (set.version !== p.version) out.push(`version (${p.version}, not ${set.version})`);
  if (set.baseVersion !== p.baseVersion) out.push('baseVersion');
  return out;
}
