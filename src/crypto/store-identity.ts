import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../base/atomic-file.js';
import { HubError } from '../base/errors.js';
import { DB_FILE, IDENTITY_FILE, storeFileState } from '../store/files.js';
import { ensureWritableDataDir, fileSystemFailure, Store, type StoreOptions } from '../store/store.js';
import { Sealer } from './seal.js';
import type { Secret } from './secret.js';
import {
  commitPendingKey,
  createStorageKey,
  defaultKeyPath,
  findStorageKey,
  pendingKeyPath,
  readPendingKey,
  type StorageKeyOptions,
  type StorageKeySource,
} from './storage-key.js';

/** The stamp's rows in the store's `meta` table (schema v1: older stores need no new schema). */
export const FINGERPRINT_ROW = 'storage-key.fingerprint';
export const HUB_ID_ROW = 'hub.id';

/** What the sidecar file holds: nothing secret. */
interface IdentityTrace {
  store: string;
  keyFingerprint: string;
  hubId: string | null;
}

export interface OpenedStore {
  store: Store;
  sealer: Sealer;
  source: StorageKeySource;
  /** The key's fingerprint: safe to show and log (a keyed hash, not the key). */
  fingerprint: string;
  /** created: a first start; adopted: a store from before the stamp, stamped now; matched: as before. */
  identity: 'created' | 'adopted' | 'matched';
}

/**
 * The fingerprint of a storage key: HMAC-SHA-256 keyed with the key over a fixed label, 16 hex
 * digits. It tells two keys apart and names the right one among backups; it gives nothing that
 * helps to find the key (unlike the key's bytes, it may be printed and logged).
 */
export function keyFingerprint(key: Secret): string {
  return createHmac('sha256', key.reveal()).update('iq-hub/storage-key-fingerprint/v1').digest('hex').slice(0, 16);
}

/**
 * Open the store and its storage key as one identity. A first start (neither exists) makes both.
 * Anything else that does not fit is refused, never replaced: a store lost or emptied beside an
 * existing key or trace, a key lost beside an existing store, a key that is not the store's. A
 * store from before the stamp is adopted when the key opens every record sealed in it.
 */
export function openStoreWithKey(opts: StorageKeyOptions & { store?: StoreOptions }): OpenedStore {
  const { dataDir } = opts;
  ensureWritableDataDir(dataDir);
  const dbPath = join(dataDir, DB_FILE);
  const dbState = storeFileState(dbPath);
  const trace = readTrace(dataDir);
  const found = findStorageKey(opts);
  refuseLostStore(dataDir, dbPath, dbState, trace, found);
  // A first start cut short: its key is still pending, and its store (if any) is checked below.
  const pending = found ? undefined : readPendingKey(dataDir);
  if (!found && !pending && dbState === 'present') {
    throw new HubError(
      'store.key-missing',
      `the storage key is missing (looked for ${keyPlaces(opts)}), but the store ${dbPath} exists and is sealed with a key` +
        (trace ? ` (fingerprint ${trace.keyFingerprint})` : ''),
      {
        hint: `put back the storage key that sealed ${dbPath} (from your key backup; its fingerprint must match), or run \`iqhub reset --yes\` to move both aside and start afresh (every lock must then be attached again)`,
      },
    );
  }
  let source: StorageKeySource;
  try {
    source = found ?? pending ?? createStorageKey(pendingKeyPath(dataDir), opts.random);
  } catch (e) {
    throw fileSystemFailure(e, dataDir) ?? e;
  }
  const fingerprint = keyFingerprint(source.key);
  const sealer = new Sealer(source.key, opts.random);
  const store = Store.open(dataDir, undefined, opts.store);
  try {
    const identity = checkStamp(store, sealer, fingerprint, source, dbState === 'present' && !pending);
    writeTrace(dataDir, { store: DB_FILE, keyFingerprint: fingerprint, hubId: stampedHubId(store) }, trace);
    if (!found) source = { ...source, path: commitPendingKey(dataDir) };
    return { store, sealer, source, fingerprint, identity };
  } catch (e) {
    store.close();
    throw fileSystemFailure(e, dataDir) ?? e;
  }
}

/**
 * Bind the hub id (the certificate's CN) to the store: recorded the first time it is known,
 * refused when the store belongs to another hub.
 */
export function checkStoreHubId(store: Store, hubId: string): void {
  const stamped = stampedHubId(store);
  if (stamped === hubId) return;
  if (stamped !== null) {
    throw new HubError(
      'store.hub-mismatch',
      `the store ${store.info.path} belongs to hub ${stamped}, but this hub's certificate says ${hubId}`,
      {
        hint: `restore the data directory of ${hubId}, or install the certificate of ${stamped}; \`iqhub reset --yes\` starts afresh`,
      },
    );
  }
  store.transaction(() => writeMeta(store, HUB_ID_ROW, hubId));
  const dataDir = join(store.info.path, '..');
  const trace = readTrace(dataDir);
  if (trace) writeTrace(dataDir, { ...trace, hubId }, trace);
}

/** The store's stamp as the CLI shows it (`iqhub reset`): no key needed. */
export function stampedHubId(store: Store): string | null {
  return readMeta(store, HUB_ID_ROW);
}

function refuseLostStore(
  dataDir: string,
  dbPath: string,
  dbState: 'missing' | 'empty' | 'present',
  trace: IdentityTrace | undefined,
  key: StorageKeySource | undefined,
): void {
  if (dbState === 'present') return;
  // The default key file lives beside the store, so it is a trace of a store as well as a key.
  const keyBeside = key !== undefined && key.origin === 'key-file' && key.path === defaultKeyPath(dataDir);
  const what = dbState === 'empty' ? 'is empty (0 bytes)' : 'is missing';
  const evidence = [
    ...(trace ? [`${join(dataDir, IDENTITY_FILE)} records a store sealed with key ${trace.keyFingerprint}`] : []),
    ...(key ? [`the storage key ${key.path} exists`] : []),
  ];
  const lost = dbState === 'empty' ? trace !== undefined || key !== undefined : trace !== undefined || keyBeside;
  if (!lost) return;
  throw new HubError(
    dbState === 'empty' ? 'store.emptied' : 'store.missing',
    `the store ${dbPath} ${what}, but ${evidence.join(' and ')}: the locks are bound to the hub key sealed in that store, so a new empty store is not made`,
    {
      hint: `stop the daemon, restore ${dbPath} from a backup (made with this storage key), or run \`iqhub reset --yes\` to move the store and key aside and start afresh (every lock must then be attached again)`,
    },
  );
}

function checkStamp(
  store: Store,
  sealer: Sealer,
  fingerprint: string,
  source: StorageKeySource,
  existed: boolean,
): OpenedStore['identity'] {
  const stamped = readMeta(store, FINGERPRINT_ROW);
  if (stamped !== null) {
    if (stamped !== fingerprint) throw keyMismatch(store, source, fingerprint, `it is stamped with key ${stamped}`);
    return 'matched';
  }
  // No stamp: a store from before it, or one just made. Adopt it only if this key opens it.
  const failed = firstSealedThatFails(store, sealer);
  if (failed) throw keyMismatch(store, source, fingerprint, `its sealed ${failed} does not open with it`);
  store.transaction(() => writeMeta(store, FINGERPRINT_ROW, fingerprint));
  return existed && store.info.appliedNow[0] !== 1 ? 'adopted' : 'created';
}

function keyMismatch(store: Store, source: StorageKeySource, fingerprint: string, why: string): HubError {
  return new HubError(
    'store.key-mismatch',
    `the storage key ${source.path} (fingerprint ${fingerprint}) is not the key of the store ${store.info.path}: ${why}`,
    {
      hint: `put back the storage key that sealed ${store.info.path} (from your key backup), or the hub.db that goes with this key; \`iqhub reset --yes\` moves both aside and starts afresh (every lock must then be attached again)`,
    },
  );
}

/** The purpose of the first sealed record the key does not open, or undefined if all open. */
function firstSealedThatFails(store: Store, sealer: Sealer): string | undefined {
  const records: { purpose: string; id: string; blob: Uint8Array }[] = [];
  const hub = store.db.prepare('SELECT static_sealed AS blob FROM hub_identity WHERE id = 1').get() as
    | { blob: Uint8Array }
    | undefined;
  if (hub) records.push({ purpose: 'hub.link-static', id: 'hub', blob: hub.blob });
  records.push(...(store.db.prepare('SELECT purpose, id, blob FROM sealed_secrets').all() as typeof records));
  for (const r of records) {
    try {
      sealer.open(r.blob, { purpose: r.purpose, id: r.id }).wipe();
    } catch {
      return `${r.purpose} (${r.id})`;
    }
  }
  return undefined;
}

function readMeta(store: Store, key: string): string | null {
  const row = store.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
  return row?.value ?? null;
}

function writeMeta(store: Store, key: string, value: string): void {
  store.db
    .prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
    .run(key, value);
}

function readTrace(dataDir: string): IdentityTrace | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, IDENTITY_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const t = JSON.parse(text) as Partial<IdentityTrace>;
    return {
      store: String(t.store ?? DB_FILE),
      keyFingerprint: String(t.keyFingerprint ?? '?'),
      hubId: t.hubId ?? null,
    };
  } catch {
    // A damaged trace is still a trace: a store was here.
    return { store: DB_FILE, keyFingerprint: '(unreadable)', hubId: null };
  }
}

function writeTrace(dataDir: string, next: IdentityTrace, current: IdentityTrace | undefined): void {
  if (current && JSON.stringify(current) === JSON.stringify(next)) return;
  writeFileAtomic(join(dataDir, IDENTITY_FILE), `${JSON.stringify(next, null, 2)}\n`, 0o600);
}

function keyPlaces(opts: StorageKeyOptions): string {
  const places = [
    ...(opts.credentialsDirectory ? [`the systemd credential ${join(opts.credentialsDirectory, 'storage-key')}`] : []),
    opts.keyFile ?? defaultKeyPath(opts.dataDir),
  ];
  return places.join(', then ');
}
