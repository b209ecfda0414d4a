import type { Store } from '../store/store.js';
import type { SealContext } from './seal.js';

/** A row of sealed_secrets: the blob sealed under its (purpose, id), and the key's fingerprint. */
export interface SealedRecord {
  blob: Uint8Array;
  fingerprint: string;
}

/** The sealed record of `ctx`, if there is one (the blob still sealed: open it with the Sealer). */
export function readSealed(store: Store, ctx: SealContext): SealedRecord | undefined {
  return store.db
    .prepare('SELECT blob, fingerprint FROM sealed_secrets WHERE purpose = ? AND id = ?')
    .get(ctx.purpose, ctx.id) as SealedRecord | undefined;
}

/**
 * Write `blob` (sealed under `ctx`) and its fingerprint, replacing any record of `ctx` before it.
 * One home for the upsert, so every sealed key is stored the same way. `at` is Unix ms.
 */
export function writeSealed(store: Store, ctx: SealContext, record: SealedRecord, at: number): void {
  store.db
    .prepare(
      `INSERT INTO sealed_secrets (purpose, id, blob, fingerprint, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (purpose, id) DO UPDATE SET blob = excluded.blob, fingerprint = excluded.fingerprint, updated_at = excluded.updated_at`,
    )
    .run(ctx.purpose, ctx.id, record.blob, record.fingerprint, Math.floor(at));
}
