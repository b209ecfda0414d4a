import { statSync } from 'node:fs';

/**
 * The store's file name in the data directory, apart from the SQLite code: the CLI's checks
 * without a daemon look for the file without loading the database driver.
 */
export const DB_FILE = 'hub.db';

/**
 * The trace a store leaves beside itself: the fingerprint of its storage key and the hub id (never
 * the key). A `hub.db` that is gone while this remains was lost, not never made: the daemon
 * refuses to start rather than make a new, empty store (src/crypto/store-identity.ts).
 */
export const IDENTITY_FILE = 'store-identity.json';

/** What is at the store's path before it is opened: nothing, a file of 0 bytes, or a database. */
export function storeFileState(path: string): 'missing' | 'empty' | 'present' {
  try {
    return statSync(path).size === 0 ? 'empty' : 'present';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw e;
  }
}

/**
 * The disk-space reserve in the data directory (src/store/disk-space.ts): a file of zeros the hub
 * deletes when the disk is full, so the store can still checkpoint and the daemon answer.
 */
export const RESERVE_FILE = 'hub.reserve';
