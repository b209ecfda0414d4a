/**
 * The store's file name in the data directory, apart from the SQLite code: the CLI's checks
 * without a daemon look for the file without loading the database driver.
 */
export const DB_FILE = 'hub.db';

/**
 * The disk-space reserve in the data directory (src/store/disk-space.ts): a file of zeros the hub
 * deletes when the disk is full, so the store can still checkpoint and the daemon answer.
 */
export const RESERVE_FILE = 'hub.reserve';
