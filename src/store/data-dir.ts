import { accessSync, constants, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { HubError } from '../base/errors.js';
import { DB_FILE } from './files.js';

/**
 * The data directory and the store's file before and around Store.open: made and checked writable,
 * file-system failures told apart from a damaged store, whether another process holds the store.
 */

/**
 * Create the data directory if needed (0700) and make sure the daemon may write it and the store
 * in it. A read-only file system and missing permissions are told apart from a damaged store: the
 * fix is a mount or a chown, and the store itself must be kept as it is.
 */
export function ensureWritableDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    accessSync(dataDir, constants.W_OK | constants.X_OK);
    const path = join(dataDir, DB_FILE);
    try {
      accessSync(path, constants.R_OK | constants.W_OK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  } catch (e) {
    throw fileSystemFailure(e, dataDir) ?? e;
  }
}

/** A HubError for an errno that says "read-only", "not allowed" or "no space"; undefined otherwise. */
export function fileSystemFailure(e: unknown, dataDir: string): HubError | undefined {
  const errno = (e as NodeJS.ErrnoException).code;
  const detail = (e as Error).message;
  if (errno === 'EROFS') {
    return new HubError('store.read-only', `the data directory ${dataDir} is on a read-only file system (${detail})`, {
      hint: `remount the file system that holds ${dataDir} read-write; the store in it is kept as it is: nothing needs restoring`,
      cause: e,
    });
  }
  if (errno === 'EACCES' || errno === 'EPERM') {
    return new HubError(
      'store.not-writable',
      `the daemon's user cannot write the data directory ${dataDir} (${errno})`,
      {
        hint: `as root: chown -R iqhub:iqhub ${dataDir} && chmod 0700 ${dataDir} (or the user the daemon runs as); the store in it is kept as it is`,
        cause: e,
      },
    );
  }
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return new HubError('store.disk-full', `no space left on the file system of ${dataDir} (${errno})`, {
      hint: `free space where ${dataDir} lives (df -h ${dataDir}); the daemon is restarted and carries on`,
      cause: e,
    });
  }
  return undefined;
}

/**
 * Why SQLite could not open or prepare the store, by its result code: not a database, damaged,
 * read-only, not allowed, full. Only a file that is not a database is told to move aside.
 */
export function openFailure(e: unknown, path: string, dataDir: string): HubError {
  const code = (e as { code?: string }).code ?? '';
  const message = (e as Error).message;
  if (code === 'SQLITE_NOTADB') {
    return new HubError('store.not-a-database', `the file ${path} is not an iq-hub database (${message})`, {
      hint: `stop the daemon, move ${path} aside (keep it), and restore hub.db from a backup taken with its storage key`,
    });
  }
  if (code.startsWith('SQLITE_CORRUPT')) {
    return new HubError('store.corrupt', `the database ${path} is damaged (${message})`, {
      hint: 'refusing to start on a damaged store: stop the daemon, keep a copy of the data directory, and restore from a backup (docs/operations.md)',
    });
  }
  if (code === 'SQLITE_FULL') {
    return new HubError('store.disk-full', `no space left for the database ${path} (${message})`, {
      hint: `free space where ${dataDir} lives (df -h ${dataDir}); the daemon is restarted and carries on`,
    });
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PERM') {
    const probe = writeProbe(dataDir);
    if (probe) return probe;
  }
  return new HubError('store.open', `cannot open the database ${path}: ${message}`, {
    hint: `check that ${dataDir} exists and is writable by the daemon's user; \`iqhub diag\` checks the store file`,
  });
}

/** Ask the file system itself whether the data directory and the store can be written. */
function writeProbe(dataDir: string): HubError | undefined {
  try {
    ensureWritableDataDir(dataDir);
    return undefined;
  } catch (e) {
    return e instanceof HubError ? e : undefined;
  }
}

/**
 * Whether a process holds the store (a running daemon keeps it locked exclusively). Takes and
 * releases the write lock without writing; a file that is no database at all is held by nobody.
 */
export function storeInUse(dataDir: string): boolean {
  const path = join(dataDir, DB_FILE);
  let db: Database;
  try {
    db = new BetterSqlite3(path, { timeout: 0, fileMustExist: true });
  } catch {
    return false;
  }
  try {
    db.exec('BEGIN IMMEDIATE; COMMIT;');
    return false;
  } catch (e) {
    return (e as { code?: string }).code?.startsWith('SQLITE_BUSY') ?? false;
  } finally {
    db.close();
  }
}
