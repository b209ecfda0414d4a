import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { BACKUP_PURPOSE, dataPaths, listBackups, NETWORK_CONTEXT, NETWORK_FILE } from '../../drivers/zigbee/network.js';
import { writeFileAtomic } from '../base/atomic-file.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { Sealer } from '../crypto/seal.js';
import { Secret } from '../crypto/secret.js';
import type { Store } from '../store/store.js';
import { BACKUP_FORMAT, type BackupFile, type BackupHeader, DOC_VERSION } from './documents.js';
import { BACKUP_INFO, b64u, CONTENT_KEY_BYTES, deriveKey, keyId, sealBody, sealTo } from './envelope.js';
import { resealStore } from './reseal.js';

/** Where the daemon writes hub backups: `<dataDir>/hub-backups/` (0700; files 0600). */
export const BACKUP_DIR = 'hub-backups';
/** How many hub backups stay in BACKUP_DIR (the newest; older ones are deleted after a new one is written). */
export const BACKUPS_KEPT = 5;

/** What the sealed body holds once opened: every secret in it is sealed under the transfer key. */
export interface BackupBody {
  v: 1;
  /** The store snapshot (SQLite file), its sealed records under the transfer key. */
  store: string;
  zigbee: {
    /** network.sealed, under the transfer key (context zigbee.network/coordinator). */
    network: string | null;
    /** The newest coordinator backup, under the transfer key (context zigbee.coordinator-backup/id). */
    coordinator: { id: string; blob: string } | null;
    /** zigbee-herdsman's device database (no key in it). */
    herdsmanDb: string | null;
  };
}

export interface TakeOptions {
  store: Store;
  sealer: Sealer;
  dataDir: string;
  hubId: string;
  recoveryPublicKey: Uint8Array;
  random: Random;
  now: number;
  hubVersion: string;
}

export interface TakenBackup {
  path: string;
  backupId: string;
  hubId: string;
  recoveryKeyId: string;
  locks: number;
  bytes: number;
  zigbee: boolean;
  sealedRecords: number;
}

/**
 * `iqhub hub-backup`, in the daemon: a consistent snapshot of the store (SQLite's online backup
 * API, while the daemon runs), its secrets re-sealed under the backup's transfer key, the ZigBee
 * coordinator state likewise, all sealed to the cloud's recovery key, written atomically (0600).
 */
export async function takeHubBackup(o: TakeOptions): Promise<TakenBackup> {
  const stamp = new Date(o.now).toISOString();
  const backupId = `hub-backup-${o.hubId}-${stamp.replace(/[:.]/g, '-')}`;
  const dir = join(o.dataDir, BACKUP_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const contentKey = new Secret(o.random.bytes(CONTENT_KEY_BYTES));
  const transferKey = deriveKey(contentKey, 'transfer-seal');
  const transfer = new Sealer(transferKey, o.random);
  try {
    const snap = await snapshotStore(o, dir, transfer);
    const zigbee = zigbeeState(join(o.dataDir, 'zigbee'), o.sealer, transfer);
    const header: BackupHeader = {
      backupId,
      hubId: o.hubId,
      createdAt: stamp,
      recoveryKeyId: keyId(o.recoveryPublicKey),
      linkPublicKey: snap.linkPublicKey,
      locks: snap.locks,
      schemaVersion: o.store.info.schemaVersion,
      zigbee: zigbee.network !== null,
      hubVersion: o.hubVersion,
    };
    const headerText = JSON.stringify(header);
    const body: BackupBody = { v: 1, store: b64u(snap.bytes), zigbee };
    const sealedBody = sealBody(contentKey, headerText, Buffer.from(JSON.stringify(body), 'utf8'), o.random);
    const sealedKey = await sealTo(o.recoveryPublicKey, BACKUP_INFO, headerText, contentKey, o.random);
    const file: BackupFile = {
      format: BACKUP_FORMAT,
      v: DOC_VERSION,
      header: headerText,
      enc: b64u(sealedKey.enc),
      key: b64u(sealedKey.ct),
      body: b64u(sealedBody),
    };
    const text = `${JSON.stringify(file)}\n`;
    const path = join(dir, `${backupId}.iqbackup`);
    writeFileAtomic(path, text, 0o600);
    pruneBackups(dir);
    return {
      path,
      backupId,
      hubId: o.hubId,
      recoveryKeyId: header.recoveryKeyId,
      locks: snap.locks,
      bytes: Buffer.byteLength(text),
      zigbee: header.zigbee,
      sealedRecords: snap.records,
    };
  } finally {
    transferKey.wipe();
    contentKey.wipe();
  }
}

async function snapshotStore(
  o: TakeOptions,
  dir: string,
  transfer: Sealer,
): Promise<{ bytes: Buffer; locks: number; linkPublicKey: string | null; records: number }> {
  const tmp = join(dir, `.snapshot-${process.pid}-${o.now}.db`);
  try {
    await o.store.db.backup(tmp);
    const db = new BetterSqlite3(tmp);
    let out: { locks: number; linkPublicKey: string | null; records: number };
    try {
      db.pragma('journal_mode = DELETE');
      // Pages freed by the re-seal are zeroed, and VACUUM leaves none: no blob sealed under the
      // machine's key travels in the backup.
      db.pragma('secure_delete = ON');
      const { records } = resealStore(db, o.sealer, transfer);
      const locks = (db.prepare("SELECT count(*) AS n FROM locks WHERE state <> 'attaching'").get() as { n: number }).n;
      const pub = db.prepare('SELECT static_public FROM hub_identity WHERE id = 1').get() as
        | { static_public: Buffer }
        | undefined;
      db.exec('VACUUM');
      out = { locks, linkPublicKey: pub ? Buffer.from(pub.static_public).toString('hex') : null, records };
    } finally {
      db.close();
    }
    return { bytes: readFileSync(tmp), ...out };
  } catch (e) {
    if (e instanceof HubError) throw e;
    throw new HubError('backup.snapshot', `could not take a snapshot of the store: ${(e as Error).message}`);
  } finally {
    for (const p of [tmp, `${tmp}-journal`]) {
      if (existsSync(p)) {
        // Overwrite before unlinking: the snapshot held sealed records only, but leave nothing behind.
        try {
          writeFileSync(p, Buffer.alloc(readFileSync(p).length));
        } catch {}
        unlinkSync(p);
      }
    }
  }
}

function zigbeeState(zigbeeDir: string, sealer: Sealer, transfer: Sealer): BackupBody['zigbee'] {
  const paths = dataPaths(zigbeeDir);
  const networkFile = join(zigbeeDir, NETWORK_FILE);
  let network: string | null = null;
  if (existsSync(networkFile)) {
    const secret = sealer.open(readFileSync(networkFile), NETWORK_CONTEXT);
    network = b64u(transfer.seal(secret, NETWORK_CONTEXT));
    secret.wipe();
  }
  let coordinator: BackupBody['zigbee']['coordinator'] = null;
  const newest = listBackups(paths).at(-1);
  if (newest) {
    const ctx = { purpose: BACKUP_PURPOSE, id: newest.id };
    const secret = sealer.open(readFileSync(newest.path), ctx);
    coordinator = { id: newest.id, blob: b64u(transfer.seal(secret, ctx)) };
    secret.wipe();
  }
  const herdsmanDb = existsSync(paths.databasePath) ? b64u(readFileSync(paths.databasePath)) : null;
  return { network, coordinator, herdsmanDb };
}

/** Keeps the newest BACKUPS_KEPT backups (their names sort by time within one hub id). */
function pruneBackups(dir: string): void {
  const all = readdirSync(dir)
    .filter((f) => f.startsWith('hub-backup-') && f.endsWith('.iqbackup'))
    .map((f) => ({ f, at: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => a.at - b.at || a.f.localeCompare(b.f));
  for (const old of all.slice(0, Math.max(0, all.length - BACKUPS_KEPT))) unlinkSync(join(dir, old.f));
}
