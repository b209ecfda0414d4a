import type { Database } from 'better-sqlite3';

/**
 * Forward-only schema migrations. Append; never edit or reorder one that has shipped: a hub's
 * database records which it has applied, and a migration runs exactly once, in its own
 * transaction, together with the row that records it.
 */
export interface Migration {
  version: number;
  name: string;
  up(db: Database): void;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'meta and journal',
    up(db) {
      db.exec(`
        CREATE TABLE meta (
          key   TEXT PRIMARY KEY,
          value TEXT NOT NULL
        ) STRICT;
        -- What the hub itself did (started, stopped, refused something): its operational audit trail.
        CREATE TABLE journal (
          id     INTEGER PRIMARY KEY AUTOINCREMENT,
          at     INTEGER NOT NULL,
          kind   TEXT    NOT NULL,
          detail TEXT    NOT NULL DEFAULT '{}'
        ) STRICT;
      `);
    },
  },
];
