/**
 * The store's file name in the data directory, apart from the SQLite code: the CLI's checks
 * without a daemon look for the file without loading the database driver.
 */
export const DB_FILE = 'hub.db';
