import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir } from '../base/atomic-file.js';
import { HubError } from '../base/errors.js';
import type { HubConfig } from '../config/schema.js';
import { CREDENTIAL_NAME } from '../crypto/storage-key.js';
import { DB_FILE, IDENTITY_FILE } from '../store/files.js';
import { storeInUse } from '../store/store.js';

export interface ResetResult {
  /** Where the old files went: `<dataDir>/reset-<UTC time>/`. */
  movedTo: string | null;
  moved: string[];
  /** A storage key kept in place (a systemd credential or secrets.storageKeyFile): the new store is sealed with it. */
  keptKey: string | null;
  /** The old store's hub id and key fingerprint, from its trace (nothing secret). */
  was: { hubId: string | null; keyFingerprint: string | null };
}

/**
 * `iqhub reset`: start afresh on purpose. The store, its trace, the storage key made in the data
 * directory and what was sealed with that key (the ZigBee network) are moved, never deleted, into a
 * timestamped directory beside them; the next start makes a new store and key. The hub's
 * certificate (`identity/`) stays: the hub keeps its name towards the cloud. Every lock was bound
 * to the old hub key and must be attached again.
 */
export function resetStore(config: HubConfig, env: NodeJS.ProcessEnv, now: Date): ResetResult {
  const dir = config.dataDir;
  if (storeInUse(dir)) {
    throw new HubError('reset.daemon-running', `the store in ${dir} is in use by a running daemon`, {
      hint: 'stop it first (systemctl stop iq-hub), then run `iqhub reset --yes` again',
    });
  }
  const credential = env.CREDENTIALS_DIRECTORY ? join(env.CREDENTIALS_DIRECTORY, CREDENTIAL_NAME) : undefined;
  const keyFileHere = existsSync(join(dir, CREDENTIAL_NAME)) && config.secrets.storageKeyFile === null;
  // A key outside the data directory (secrets.storageKeyFile, a systemd credential) stays, and so
  // does what it sealed (the ZigBee network); a key made in the data directory goes with its store.
  const keptKey = keyFileHere
    ? null
    : (config.secrets.storageKeyFile ??
      (credential && existsSync(credential)
        ? credential
        : 'the systemd credential storage-key (outside the data directory)'));
  const names = [
    DB_FILE,
    `${DB_FILE}-wal`,
    `${DB_FILE}-shm`,
    IDENTITY_FILE,
    `${CREDENTIAL_NAME}.pending`,
    ...(keyFileHere ? [CREDENTIAL_NAME, 'zigbee'] : []),
  ].filter((n) => existsSync(join(dir, n)));
  const was = readTrace(join(dir, IDENTITY_FILE));
  if (names.length === 0) return { movedTo: null, moved: [], keptKey, was };
  const movedTo = join(dir, `reset-${now.toISOString().replace(/[:.]/g, '-')}`);
  try {
    mkdirSync(movedTo, { mode: 0o700 });
    // The key last: until it moves, a start refuses (store missing) instead of making a new one.
    for (const n of names.filter((x) => x !== CREDENTIAL_NAME)) renameSync(join(dir, n), join(movedTo, n));
    if (names.includes(CREDENTIAL_NAME)) renameSync(join(dir, CREDENTIAL_NAME), join(movedTo, CREDENTIAL_NAME));
    fsyncDir(movedTo);
    fsyncDir(dir);
  } catch (e) {
    throw new HubError('reset.failed', `could not move the old store aside into ${movedTo}: ${(e as Error).message}`, {
      hint: `nothing was deleted: what moved is in ${movedTo}; fix the cause and run \`iqhub reset --yes\` again`,
    });
  }
  return { movedTo, moved: names, keptKey, was };
}

function readTrace(path: string): ResetResult['was'] {
  try {
    const t = JSON.parse(readFileSync(path, 'utf8')) as { hubId?: unknown; keyFingerprint?: unknown };
    return {
      hubId: typeof t.hubId === 'string' ? t.hubId : null,
      keyFingerprint: typeof t.keyFingerprint === 'string' ? t.keyFingerprint : null,
    };
  } catch {
    return { hubId: null, keyFingerprint: null };
  }
}
