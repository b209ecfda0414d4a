import type { Store } from '../store/store.js';

/**
 * The firmware tables (migration 9): images the hub verified and one transfer per lock. The SQL
 * of the firmware relay lives here and nowhere else.
 */

export type TransferState = 'queued' | 'running' | 'installed' | 'failed';

export interface ImageRow {
  sha256: string;
  model: string;
  version: string;
  size: number;
}

export interface TransferRow {
  lockId: string;
  sha256: string;
  state: TransferState;
  sent: number;
  error: string | null;
  /** Who asked: `cli`, or `cloud:<announce id>`. */
  origin: string;
  startedAt: number;
  updatedAt: number;
}

interface RawTransfer {
  lock_id: string;
  sha256: string;
  state: TransferState;
  sent: number;
  error: string | null;
  origin: string;
  started_at: number;
  updated_at: number;
}

function toRow(r: RawTransfer): TransferRow {
  return {
    lockId: r.lock_id,
    sha256: r.sha256,
    state: r.state,
    sent: r.sent,
    error: r.error,
    origin: r.origin,
    startedAt: r.started_at,
    updatedAt: r.updated_at,
  };
}

export class FirmwareTables {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  putImage(row: ImageRow, file: Uint8Array, now: number): void {
    this.#store.transaction(() => {
      this.#store.db
        .prepare(
          `INSERT INTO firmware_images (sha256, model, version, size, file, added_at) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (sha256) DO NOTHING`,
        )
        .run(row.sha256, row.model, row.version, row.size, Buffer.from(file), now);
    });
  }

  image(sha256: string): (ImageRow & { file: Uint8Array }) | undefined {
    const r = this.#store.db
      .prepare('SELECT sha256, model, version, size, file FROM firmware_images WHERE sha256 = ?')
      .get(sha256) as (ImageRow & { file: Buffer }) | undefined;
    return r ? { ...r, file: new Uint8Array(r.file) } : undefined;
  }

  /** An image's row without its file (which may be megabytes): for progress and existence checks. */
  imageRow(sha256: string): ImageRow | undefined {
    return this.#store.db
      .prepare('SELECT sha256, model, version, size FROM firmware_images WHERE sha256 = ?')
      .get(sha256) as ImageRow | undefined;
  }

  images(): ImageRow[] {
    return this.#store.db
      .prepare('SELECT sha256, model, version, size FROM firmware_images ORDER BY added_at')
      .all() as ImageRow[];
  }

  /** Queues a transfer for each lock in one transaction (replacing a finished or failed one). */
  queue(lockIds: readonly string[], sha256: string, origin: string, now: number): void {
    this.#store.transaction(() => {
      const put = this.#store.db.prepare(
        `INSERT INTO firmware_transfers (lock_id, sha256, state, sent, error, origin, started_at, updated_at)
         VALUES (?, ?, 'queued', 0, NULL, ?, ?, ?)
         ON CONFLICT (lock_id) DO UPDATE SET sha256 = excluded.sha256, state = 'queued', sent = 0, error = NULL,
           origin = excluded.origin, started_at = excluded.started_at, updated_at = excluded.updated_at`,
      );
      for (const lockId of lockIds) put.run(lockId, sha256, origin, now, now);
      this.#prune(now);
    });
  }

  setState(lockId: string, state: TransferState, now: number, error: string | null = null): void {
    this.#store.transaction(() => {
      this.#store.db
        .prepare('UPDATE firmware_transfers SET state = ?, error = ?, updated_at = ? WHERE lock_id = ?')
        .run(state, error, now, lockId);
    });
  }

  /** Progress only (a lost update is read again from the lock), so it commits without waiting for the disk. */
  setSent(lockId: string, sent: number, now: number): void {
    this.#store.lazyTransaction(() => {
      this.#store.db
        .prepare('UPDATE firmware_transfers SET sent = ?, updated_at = ? WHERE lock_id = ?')
        .run(sent, now, lockId);
    });
  }

  transfer(lockId: string): TransferRow | undefined {
    const r = this.#store.db.prepare('SELECT * FROM firmware_transfers WHERE lock_id = ?').get(lockId) as
      | RawTransfer
      | undefined;
    return r ? toRow(r) : undefined;
  }

  transfers(): TransferRow[] {
    return (
      this.#store.db.prepare('SELECT * FROM firmware_transfers ORDER BY started_at, lock_id').all() as RawTransfer[]
    ).map(toRow);
  }

  /** At start: what was running when the hub stopped is queued again (it resumes from the lock's offset). */
  requeueRunning(now: number): void {
    this.#store.transaction(() => {
      this.#store.db
        .prepare("UPDATE firmware_transfers SET state = 'queued', updated_at = ? WHERE state = 'running'")
        .run(now);
    });
  }

  /** Images no transfer refers to any more are dropped a day after they came (they are large). */
  #prune(now: number): void {
    this.#store.db
      .prepare(
        'DELETE FROM firmware_images WHERE added_at < ? AND sha256 NOT IN (SELECT sha256 FROM firmware_transfers)',
      )
      .run(now - 86_400_000);
  }
}
