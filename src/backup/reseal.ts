import type { Database } from 'better-sqlite3';
import type { Sealer } from '../crypto/seal.js';

/**
 * Every secret a store holds is a sealed blob bound to (purpose, id): the hub's static link key in
 * `hub_identity`, the received keys (OTP key, PIN key, …) in `sealed_secrets`. A backup re-seals
 * them from the machine's storage key to the backup's transfer key, a restore from the transfer
 * key to the new hub's storage key; nothing is ever written open. `renameId` moves records bound
 * to the old hub id to the new one (the OTP and PIN keys are sealed under the hub id).
 */
export function resealStore(
  db: Database,
  from: Sealer,
  to: Sealer,
  renameId?: { from: string; to: string },
): { records: number } {
  let records = 0;
  const hub = db.prepare('SELECT static_sealed AS blob FROM hub_identity WHERE id = 1').get() as
    | { blob: Uint8Array }
    | undefined;
  const ctx = { purpose: 'hub.link-static', id: 'hub' };
  db.transaction(() => {
    if (hub) {
      const secret = from.open(hub.blob, ctx);
      try {
        db.prepare('UPDATE hub_identity SET static_sealed = ? WHERE id = 1').run(Buffer.from(to.seal(secret, ctx)));
      } finally {
        secret.wipe();
      }
      records++;
    }
    const rows = db.prepare('SELECT purpose, id, blob FROM sealed_secrets').all() as {
      purpose: string;
      id: string;
      blob: Uint8Array;
    }[];
    const update = db.prepare('UPDATE sealed_secrets SET id = ?, blob = ? WHERE purpose = ? AND id = ?');
    for (const r of rows) {
      const secret = from.open(r.blob, { purpose: r.purpose, id: r.id });
      const id = renameId && r.id === renameId.from ? renameId.to : r.id;
      try {
        update.run(id, Buffer.from(to.seal(secret, { purpose: r.purpose, id })), r.purpose, r.id);
      } finally {
        secret.wipe();
      }
      records++;
    }
  })();
  return { records };
}
