import type { Statement } from 'better-sqlite3';
import type { BearerKind } from '../../hal/bearer.js';
import type { Random } from '../base/random.js';
import type { LockEvent } from '../contract/link-messages.js';
import type { Sealer } from '../crypto/seal.js';
import type { DiskSpace } from '../store/disk-space.js';
import type { Store } from '../store/store.js';
import { generateKeyPair, type KeyPair, keyPairFromSecret } from './noise.js';

export type PairingState = 'attaching' | 'bound' | 'detaching' | 'quarantined';

export interface LockRecord {
  lockId: string;
  bearer: BearerKind;
  address: string;
  staticPublic: Uint8Array;
  state: PairingState;
  quarantineReason: string | null;
  lastEventSeq: number;
  /** One per attach; events are numbered by the lock within an epoch. */
  epoch: number;
  sessions: number;
  rejectedFrames: number;
  failedHandshakes: number;
  firmware: string | null;
  lastSeen: number | null;
  attachedAt: number;
  updatedAt: number;
}

interface LockRow {
  lock_id: string;
  bearer: string;
  address: string;
  static_public: Buffer;
  state: string;
  quarantine_reason: string | null;
  last_event_seq: number;
  epoch: number;
  sessions: number;
  rejected_frames: number;
  failed_handshakes: number;
  firmware: string | null;
  last_seen: number | null;
  attached_at: number;
  updated_at: number;
}

function fromRow(r: LockRow): LockRecord {
  return {
    lockId: r.lock_id,
    bearer: r.bearer as BearerKind,
    address: r.address,
    staticPublic: new Uint8Array(r.static_public),
    state: r.state as PairingState,
    quarantineReason: r.quarantine_reason,
    lastEventSeq: r.last_event_seq,
    epoch: r.epoch,
    sessions: r.sessions,
    rejectedFrames: r.rejected_frames,
    failedHandshakes: r.failed_handshakes,
    firmware: r.firmware,
    lastSeen: r.last_seen,
    attachedAt: r.attached_at,
    updatedAt: r.updated_at,
  };
}

const SEAL = { purpose: 'hub.link-static', id: 'hub' };

/** A lock event as stored, with what the uplink needs to give it a stable id. */
export interface StoredEvent {
  lockId: string;
  epoch: number;
  event: LockEvent;
  receivedAt: number;
}

/**
 * The pairing store: which locks are bound to this hub, by which static key, and where their
 * event numbering stands. Every change is one durable transaction; counters only move forward.
 */
export class PairingStore {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  /** The data directory's disk: while it is full, events stay on the locks (src/store/disk-space.ts). */
  get space(): DiskSpace {
    return this.#store.space;
  }
  /** Statements are prepared once per store: commands and events look locks up several times each. */
  readonly #statements = new Map<string, Statement>();
  /** Records read outside a transaction and not written since (see get). */
  readonly #records = new Map<string, LockRecord>();

  /** Bumped by every write to a lock's row (see storeEvents). */
  #writes = 0;

  /** A write to the lock's row: its kept record is dropped. */
  #forget(lockId: string): void {
    this.#records.delete(lockId);
    this.#writes++;
  }

  #prep(sql: string): Statement {
    let st = this.#statements.get(sql);
    if (!st) {
      st = this.#store.db.prepare(sql);
      this.#statements.set(sql, st);
    }
    return st;
  }

  /** The hub's link identity, created (and its secret sealed) on first use. */
  hubIdentity(sealer: Sealer, random: Random, now: number): KeyPair {
    const db = this.#store.db;
    const row = db.prepare('SELECT static_sealed FROM hub_identity WHERE id = 1').get() as
      | { static_sealed: Buffer }
      | undefined;
    if (row) return keyPairFromSecret(sealer.open(row.static_sealed, SEAL).reveal());
    const kp = generateKeyPair(random);
    db.prepare('INSERT INTO hub_identity (id, static_public, static_sealed, created_at) VALUES (1, ?, ?, ?)').run(
      Buffer.from(kp.publicKey),
      Buffer.from(sealer.seal(kp.secretKey, SEAL)),
      now,
    );
    return kp;
  }

  /**
   * The lock's record. Read from the store once and then kept (frozen) until this store writes
   * the lock's row: every write to `locks` goes through a method here, and each forgets the row it
   * touches. Nothing is kept from a read inside a transaction (it could still roll back).
   */
  get(lockId: string): LockRecord | undefined {
    const kept = this.#records.get(lockId);
    if (kept) return kept;
    const r = this.#prep('SELECT * FROM locks WHERE lock_id = ?').get(lockId) as LockRow | undefined;
    if (!r) return undefined;
    const rec = Object.freeze(fromRow(r));
    if (!this.#store.db.inTransaction) this.#records.set(lockId, rec);
    return rec;
  }

  list(): LockRecord[] {
    return (this.#prep('SELECT * FROM locks ORDER BY lock_id').all() as LockRow[]).map(fromRow);
  }

  /** Record a lock as `attaching` (it proved itself, has not yet confirmed) or `bound` (it confirmed). */
  bind(rec: {
    lockId: string;
    bearer: BearerKind;
    address: string;
    staticPublic: Uint8Array;
    state: 'attaching' | 'bound';
    now: number;
  }): void {
    this.#forget(rec.lockId);
    this.#prep(
      `INSERT INTO locks (lock_id, bearer, address, static_public, state, attached_at, updated_at, last_seen, sessions)
         VALUES (@lockId, @bearer, @address, @key, @state, @now, @now, @now, 0)
         ON CONFLICT (lock_id) DO UPDATE SET bearer = @bearer, address = @address, static_public = @key, state = @state,
           quarantine_reason = NULL, last_event_seq = 0, epoch = epoch + 1, attached_at = @now, updated_at = @now, last_seen = @now,
           sessions = sessions`,
    ).run({
      lockId: rec.lockId,
      bearer: rec.bearer,
      address: rec.address,
      key: Buffer.from(rec.staticPublic),
      state: rec.state,
      now: rec.now,
    });
  }

  setState(lockId: string, state: PairingState, now: number, reason: string | null = null): void {
    this.#forget(lockId);
    this.#prep('UPDATE locks SET state = ?, quarantine_reason = ?, updated_at = ? WHERE lock_id = ?').run(
      state,
      reason,
      now,
      lockId,
    );
  }

  remove(lockId: string): boolean {
    this.#forget(lockId);
    return this.#prep('DELETE FROM locks WHERE lock_id = ?').run(lockId).changes > 0;
  }

  seen(lockId: string, address: string, now: number): void {
    this.#forget(lockId);
    this.#prep('UPDATE locks SET last_seen = ?, address = ? WHERE lock_id = ?').run(now, address, lockId);
  }

  sessionOpened(lockId: string, now: number): void {
    this.#forget(lockId);
    this.#prep('UPDATE locks SET sessions = sessions + 1, last_seen = ?, updated_at = ? WHERE lock_id = ?').run(
      now,
      now,
      lockId,
    );
  }

  countFailures(lockId: string, handshakes: number, frames: number): void {
    this.#forget(lockId);
    this.#prep(
      'UPDATE locks SET failed_handshakes = failed_handshakes + ?, rejected_frames = rejected_frames + ? WHERE lock_id = ?',
    ).run(handshakes, frames, lockId);
  }

  /**
   * Store a batch of the lock's events and move its sequence forward, in one transaction: the
   * store's next group commit (Store.commitSoon), so the events of many locks, and the answer of
   * the command that set them off, share one fsync. Events already stored (a resent batch) are
   * ignored, so a lock's event is kept exactly once. Resolves with the events that were new once
   * they are on disk — acknowledge them to the lock only then; rejects if they could not be
   * stored (nothing of the batch is).
   */
  storeEvents(
    lockId: string,
    events: LockEvent[],
    now: number,
    /** Runs inside the same transaction with the new events (the uplink outbox enqueues them here). */
    also?: (fresh: StoredEvent[]) => void,
  ): Promise<LockEvent[]> {
    const epochOf = this.#prep('SELECT epoch FROM locks WHERE lock_id = ?');
    const insert = this.#prep(
      'INSERT OR IGNORE INTO lock_events (lock_id, epoch, seq, at, kind, body, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const advance = this.#prep(
      'UPDATE locks SET last_event_seq = MAX(last_event_seq, ?), last_seen = ? WHERE lock_id = ?',
    );
    // The record kept when the transaction runs, if any, is the committed row (every write to it
    // drops it): after the commit it is kept again with what the transaction changed (below).
    let base: LockRecord | undefined;
    let writes = -1;
    const top = events.reduce((m, e) => Math.max(m, e.seq), 0);
    const stored = this.#store.commitSoon(() => {
      base = this.#records.get(lockId);
      this.#forget(lockId);
      writes = this.#writes;
      const epoch = (epochOf.get(lockId) as { epoch: number } | undefined)?.epoch;
      if (epoch === undefined || epoch !== base?.epoch) base = undefined;
      if (epoch === undefined) return [];
      const fresh: LockEvent[] = [];
      for (const e of events) {
        const { seq, at, type, ...body } = e;
        if (insert.run(lockId, epoch, seq, at, type, JSON.stringify(body), now).changes > 0) fresh.push(e);
      }
      if (top > 0) advance.run(top, now, lockId);
      if (fresh.length > 0) also?.(fresh.map((event) => ({ lockId, epoch, event, receivedAt: now })));
      return fresh;
    });
    stored.then(
      () => {
        // Committed: unless another write to a lock's row came since (then the next get reads it),
        // the record is what it was with the sequence and last_seen this transaction set, so a
        // command's lookup of the lock (once per open) does not read the row again.
        if (!base || this.#writes !== writes || this.#records.has(lockId)) return;
        const lastEventSeq = Math.max(base.lastEventSeq, top);
        this.#records.set(lockId, top > 0 ? Object.freeze({ ...base, lastEventSeq, lastSeen: now }) : base);
      },
      // A failed commit leaves nothing of the batch: forget what the record cache read meanwhile.
      () => this.#forget(lockId),
    );
    return stored;
  }

  events(lockId: string, limit = 100): (LockEvent & { receivedAt: number })[] {
    const rows = this.#prep('SELECT * FROM lock_events WHERE lock_id = ? ORDER BY epoch DESC, seq DESC LIMIT ?').all(
      lockId,
      limit,
    ) as { seq: number; at: number; kind: string; body: string; received_at: number }[];
    return rows.map(
      (r) =>
        ({
          seq: r.seq,
          at: r.at,
          type: r.kind,
          ...(JSON.parse(r.body) as object),
          receivedAt: r.received_at,
        }) as LockEvent & {
          receivedAt: number;
        },
    );
  }

  securityEvent(kind: string, lockId: string | null, detail: Record<string, unknown>, now: number): void {
    this.#prep('INSERT INTO security_events (at, kind, lock_id, detail) VALUES (?, ?, ?, ?)').run(
      now,
      kind,
      lockId,
      JSON.stringify(detail),
    );
  }

  securityEvents(limit = 100): { at: number; kind: string; lockId: string | null; detail: Record<string, unknown> }[] {
    const rows = this.#prep('SELECT at, kind, lock_id, detail FROM security_events ORDER BY id DESC LIMIT ?').all(
      limit,
    ) as { at: number; kind: string; lock_id: string | null; detail: string }[];
    return rows.map((r) => ({
      at: r.at,
      kind: r.kind,
      lockId: r.lock_id,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
    }));
  }
}
