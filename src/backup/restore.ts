import { sign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { BACKUP_PURPOSE, dataPaths, NETWORK_CONTEXT, NETWORK_FILE } from '../../drivers/zigbee/network.js';
import { fsyncDir, writeFileAtomic } from '../base/atomic-file.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { readPrivateFile } from '../crypto/private-file.js';
import { Sealer } from '../crypto/seal.js';
import { Secret } from '../crypto/secret.js';
import {
  createStorageKey,
  findStorageKey,
  pendingKeyPath,
  readPendingKey,
  type StorageKeyOptions,
} from '../crypto/storage-key.js';
import { FINGERPRINT_ROW, HUB_ID_ROW, keyFingerprint, openStoreWithKey } from '../crypto/store-identity.js';
import { DB_FILE, IDENTITY_FILE, storeFileState } from '../store/files.js';
import { storeInUse } from '../store/store.js';
import { contentKeyFromApproval } from './approval.js';
import {
  DOC_VERSION,
  envelopeDigest,
  MAX_BACKUP_BYTES,
  parseApproval,
  parseBackupFile,
  parseRequest,
  REQUEST_FORMAT,
  type RestoreRequest,
  requestSigningText,
} from './documents.js';
import { b64u, deriveKey, fromB64u, generateHpkeKeyPair, type HpkeKeyPair, keyId, openBody } from './envelope.js';
import { resealStore } from './reseal.js';
import type { BackupBody } from './take.js';

/**
 * `iqhub hub-restore`, on the new hub with its daemon stopped, in two steps (docs/operations.md,
 * "Hub replacement"): without an approval it makes a restore key (kept in `<dataDir>/restore/`,
 * 0600) and the request for the cloud; with the cloud's approval it opens the backup, re-seals
 * every secret under this hub's storage key, moves the records bound to the old hub id to the new
 * one, moves the ZigBee frame counter forward and installs the store, so the locks, bound to the
 * link key that moved with it, reconnect without an attach.
 */

const RESTORE_DIR = 'restore';
const KEY_FILE = 'restore.key';
const REQUEST_FILE = 'request.json';
/**
 * How far a restored coordinator's NWK frame counter moves past the backup's, on top of the
 * driver's own jump at every start: the old coordinator kept sending between its last backup (every
 * radios.zigbee.backupIntervalMin) and its failure, and a lock drops a frame with a counter it saw.
 */
export const RESTORE_FRAME_COUNTER_JUMP = 1_000_000;

function readBounded(path: string, what: string, max: number): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw new HubError(
      'backup.unreadable',
      `cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: 'check the path and that this user may read it',
      },
    );
  }
  if (size > max) throw new HubError('backup.malformed', `the ${what} ${path} is ${size} bytes: too large`);
  return readFileSync(path, 'utf8');
}

export function readBackup(path: string) {
  return parseBackupFile(readBounded(path, 'backup', Math.ceil((MAX_BACKUP_BYTES * 4) / 3) + 8192), path);
}

/** Refuses a data directory that already holds a store: a restore never overwrites one. */
function refuseOccupied(dataDir: string): void {
  const db = join(dataDir, DB_FILE);
  if (storeFileState(db) !== 'missing' || existsSync(join(dataDir, IDENTITY_FILE))) {
    throw new HubError('backup.target-not-empty', `the data directory ${dataDir} already holds a store (${DB_FILE})`, {
      hint: 'restore into the fresh data directory of the new hub; `iqhub reset --yes` moves an existing store aside first',
    });
  }
  if (existsSync(db) && storeInUse(dataDir)) {
    throw new HubError('backup.target-not-empty', `the store in ${dataDir} is in use by a running daemon`);
  }
}

export interface RequestResult {
  requestPath: string;
  backupId: string;
  oldHubId: string;
  newHubId: string;
  restoreKeyId: string;
  request: RestoreRequest;
  reused: boolean;
}

/** Step 1: the restore key and the request for the cloud (the same ones again if asked twice). */
export async function makeRestoreRequest(o: {
  dataDir: string;
  backupPath: string;
  newHubId: string;
  random: Random;
  now: number;
  /** The hub's certificate and private key (PEM), if it has its identity: the request is signed with it. */
  identity?: { certificatePem: string; keyPem: string } | undefined;
}): Promise<RequestResult> {
  refuseOccupied(o.dataDir);
  const { file, header } = readBackup(o.backupPath);
  const dir = join(o.dataDir, RESTORE_DIR);
  const existing = readPending(o.dataDir);
  if (
    existing &&
    envelopeDigest(existing.request) === envelopeDigest(file) &&
    existing.request.newHubId === o.newHubId &&
    existing.request.identity?.certificate === o.identity?.certificatePem
  ) {
    return { ...summary(existing.request, existing.key, join(dir, REQUEST_FILE), header.hubId), reused: true };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = await generateHpkeKeyPair(o.random);
  const request: RestoreRequest = {
    format: REQUEST_FORMAT,
    v: DOC_VERSION,
    header: file.header,
    enc: file.enc,
    key: file.key,
    newHubId: o.newHubId,
    restorePublicKey: b64u(key.publicKey),
    createdAt: new Date(o.now).toISOString(),
  };
  if (o.identity) {
    let signature: Buffer;
    try {
      signature = sign('sha256', Buffer.from(requestSigningText(request), 'utf8'), o.identity.keyPem);
    } catch {
      throw new HubError('backup.identity', "the hub's identity key cannot sign the restore request", {
        hint: 'check the key file (iqhub provision), or leave the request unsigned if the cloud does not ask for it',
      });
    }
    request.identity = { certificate: o.identity.certificatePem, signature: b64u(signature) };
  }
  writeFileAtomic(join(dir, KEY_FILE), Buffer.concat([key.privateKey.reveal(), key.publicKey]), 0o600);
  writeFileAtomic(join(dir, REQUEST_FILE), `${JSON.stringify(request, null, 2)}\n`, 0o600);
  return { ...summary(request, key, join(dir, REQUEST_FILE), header.hubId), reused: false };
}

function summary(request: RestoreRequest, key: HpkeKeyPair, requestPath: string, oldHubId: string) {
  return {
    requestPath,
    backupId: (JSON.parse(request.header) as { backupId: string }).backupId,
    oldHubId,
    newHubId: request.newHubId,
    restoreKeyId: keyId(key.publicKey),
    request,
  };
}

function readPending(dataDir: string): { request: RestoreRequest; key: HpkeKeyPair } | undefined {
  const dir = join(dataDir, RESTORE_DIR);
  if (!existsSync(join(dir, KEY_FILE)) || !existsSync(join(dir, REQUEST_FILE))) return undefined;
  const raw = readPrivateFile(join(dir, KEY_FILE), {
    codePrefix: 'backup.restore-key',
    what: 'pending restore key',
    checkMode: true,
    maxBytes: 64,
  });
  if (!raw) return undefined;
  let request: RestoreRequest | undefined;
  try {
    request = parseRequest(readFileSync(join(dir, REQUEST_FILE), 'utf8'), 'the pending request').request;
  } catch {
    request = undefined;
  }
  if (!request || raw.length !== 64 || b64u(raw.subarray(32)) !== request.restorePublicKey) {
    throw new HubError('backup.no-request', `the pending restore request in ${dir} is damaged`, {
      hint: `remove ${dir} and run \`iqhub hub-restore FILE\` again to make a new request`,
    });
  }
  return { request, key: { privateKey: new Secret(raw.subarray(0, 32)), publicKey: new Uint8Array(raw.subarray(32)) } };
}

export interface RestoreResult {
  backupId: string;
  oldHubId: string;
  newHubId: string;
  locks: number;
  sealedRecords: number;
  storageKeyFingerprint: string;
  /** The ZigBee frame counter the restored coordinator backup continues from, or null without ZigBee. */
  zigbeeFrameCounter: number | null;
}

/** Step 2: the restore itself, with the cloud's approval. */
export async function applyRestore(o: {
  key: StorageKeyOptions;
  backupPath: string;
  approvalPath: string;
  newHubId: string;
  now: number;
}): Promise<RestoreResult> {
  const { dataDir } = o.key;
  refuseOccupied(dataDir);
  const backup = readBackup(o.backupPath);
  const approval = parseApproval(readBounded(o.approvalPath, 'approval', 64 * 1024), o.approvalPath);
  const pending = readPending(dataDir);
  if (!pending) {
    throw new HubError('backup.no-request', `this hub has made no restore request in ${join(dataDir, RESTORE_DIR)}`, {
      hint: 'run `iqhub hub-restore FILE` first, send the request it writes to the cloud, then pass its approval',
    });
  }
  const contentKey = await contentKeyFromApproval(approval, backup, { hubId: o.newHubId, restoreKey: pending.key });
  const transferKey = deriveKey(contentKey, 'transfer-seal');
  try {
    const opened = openBody(contentKey, backup.file.header, backup.body);
    if (!opened) {
      throw new HubError('backup.open', `the body of backup ${backup.header.backupId} does not open`, {
        hint: 'the file was altered or damaged after it was made: use an intact copy',
      });
    }
    const body = parseBody(opened);
    const transfer = new Sealer(transferKey, o.key.random);
    // A restore cut short may have left its new key pending: take it up rather than make another.
    const source =
      findStorageKey(o.key) ?? readPendingKey(dataDir) ?? createStorageKey(pendingKeyPath(dataDir), o.key.random);
    const sealer = new Sealer(source.key, o.key.random);
    const fingerprint = keyFingerprint(source.key);
    const zigbeeFrameCounter = body.zigbee.network
      ? restoreZigbee(join(dataDir, 'zigbee'), body, transfer, sealer)
      : null;
    const { records, locks } = installStore(dataDir, body, transfer, sealer, {
      fingerprint,
      oldHubId: backup.header.hubId,
      newHubId: o.newHubId,
      backupId: backup.header.backupId,
      now: o.now,
    });
    // Opens the store as the daemon will: the stamp must match this key; commits a new key file.
    const check = openStoreWithKey(o.key);
    check.store.close();
    rmSync(join(dataDir, RESTORE_DIR), { recursive: true, force: true });
    return {
      backupId: backup.header.backupId,
      oldHubId: backup.header.hubId,
      newHubId: o.newHubId,
      locks,
      sealedRecords: records,
      storageKeyFingerprint: check.fingerprint,
      zigbeeFrameCounter,
    };
  } finally {
    transferKey.wipe();
    contentKey.wipe();
  }
}

function parseBody(opened: Uint8Array): BackupBody {
  let b: BackupBody;
  try {
    b = JSON.parse(Buffer.from(opened).toString('utf8')) as BackupBody;
  } catch {
    b = {} as BackupBody;
  }
  const optional = (v: unknown) => v === null || typeof v === 'string';
  if (
    b?.v !== 1 ||
    typeof b.store !== 'string' ||
    typeof b.zigbee !== 'object' ||
    !optional(b.zigbee?.network) ||
    !optional(b.zigbee?.herdsmanDb) ||
    !(
      b.zigbee.coordinator === null ||
      (typeof b.zigbee.coordinator?.id === 'string' && /^coordinator-[A-Za-z0-9-]+$/.test(b.zigbee.coordinator.id))
    )
  ) {
    throw new HubError('backup.malformed', 'the backup opened but its content is not a hub backup', {
      hint: 'it was made by an incompatible version of iq-hub',
    });
  }
  return b;
}

function installStore(
  dataDir: string,
  body: BackupBody,
  transfer: Sealer,
  sealer: Sealer,
  t: { fingerprint: string; oldHubId: string; newHubId: string; backupId: string; now: number },
): { records: number; locks: number } {
  const tmp = join(dataDir, `.${DB_FILE}.restoring`);
  for (const p of [tmp, `${tmp}-journal`]) if (existsSync(p)) unlinkSync(p);
  writeFileSync(tmp, Buffer.from(body.store, 'base64url'), { mode: 0o600 });
  let out: { records: number; locks: number };
  try {
    const db = new BetterSqlite3(tmp, { fileMustExist: true });
    try {
      db.pragma('journal_mode = DELETE');
      db.pragma('secure_delete = ON');
      const { records } = resealStore(db, transfer, sealer, { from: t.oldHubId, to: t.newHubId });
      const meta = db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      );
      db.transaction(() => {
        meta.run(FINGERPRINT_ROW, t.fingerprint);
        meta.run(HUB_ID_ROW, t.newHubId);
        db.prepare('INSERT INTO journal (at, kind, detail) VALUES (?, ?, ?)').run(
          t.now,
          'hub.restored',
          JSON.stringify({ backupId: t.backupId, fromHub: t.oldHubId }),
        );
      })();
      db.exec('VACUUM');
      const locks = (db.prepare("SELECT count(*) AS n FROM locks WHERE state <> 'attaching'").get() as { n: number }).n;
      out = { records, locks };
    } finally {
      db.close();
    }
  } catch (e) {
    if (existsSync(tmp)) unlinkSync(tmp);
    if (e instanceof HubError) throw e;
    throw new HubError('backup.malformed', `the store in the backup could not be restored: ${(e as Error).message}`);
  }
  renameSync(tmp, join(dataDir, DB_FILE));
  fsyncDir(dataDir);
  return out;
}

function restoreZigbee(zigbeeDir: string, body: BackupBody, transfer: Sealer, sealer: Sealer): number | null {
  const paths = dataPaths(zigbeeDir);
  for (const d of [zigbeeDir, paths.herdsmanDir, paths.backupDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const z = body.zigbee;
  const net = transfer.open(fromB64u(z.network, undefined, 1024) ?? new Uint8Array(0), NETWORK_CONTEXT);
  writeFileAtomic(join(zigbeeDir, NETWORK_FILE), sealer.seal(net, NETWORK_CONTEXT), 0o600);
  net.wipe();
  let frameCounter: number | null = null;
  if (z.coordinator) {
    const ctx = { purpose: BACKUP_PURPOSE, id: z.coordinator.id };
    const clear = transfer.open(Buffer.from(z.coordinator.blob, 'base64url'), ctx);
    let backup: Record<string, unknown>;
    try {
      backup = JSON.parse(Buffer.from(clear.reveal()).toString('utf8')) as Record<string, unknown>;
    } finally {
      clear.wipe();
    }
    const key = backup.network_key as { frame_counter?: unknown } | undefined;
    if (typeof key?.frame_counter === 'number') {
      frameCounter = Math.min(0xffffffff, key.frame_counter + RESTORE_FRAME_COUNTER_JUMP);
      backup = { ...backup, network_key: { ...key, frame_counter: frameCounter } };
    }
    const bumped = new Secret(Buffer.from(JSON.stringify(backup), 'utf8'));
    writeFileAtomic(join(paths.backupDir, `${z.coordinator.id}.sealed`), sealer.seal(bumped, ctx), 0o600);
    bumped.wipe();
  }
  if (z.herdsmanDb) writeFileAtomic(paths.databasePath, Buffer.from(z.herdsmanDb, 'base64url'), 0o600);
  return frameCounter;
}
