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
  {
    version: 2,
    name: 'pairing store and lock events',
    up(db) {
      db.exec(`
        -- The hub's static X25519 key for the lock link; the secret half sealed (purpose hub.link-static).
        CREATE TABLE hub_identity (
          id            INTEGER PRIMARY KEY CHECK (id = 1),
          static_public BLOB    NOT NULL,
          static_sealed BLOB    NOT NULL,
          created_at    INTEGER NOT NULL
        ) STRICT;
        -- One row per lock bound (or being bound or unbound) to this hub. No per-lock secret is kept:
        -- the binding is the pair of static public keys; session keys are fresh for every connection.
        CREATE TABLE locks (
          lock_id           TEXT    PRIMARY KEY,
          bearer            TEXT    NOT NULL,
          address           TEXT    NOT NULL,
          static_public     BLOB    NOT NULL,
          state             TEXT    NOT NULL CHECK (state IN ('attaching', 'bound', 'detaching', 'quarantined')),
          quarantine_reason TEXT,
          last_event_seq    INTEGER NOT NULL DEFAULT 0,
          -- One epoch per attach: the lock's numbering is only unique within it (a reset lock restarts).
          epoch             INTEGER NOT NULL DEFAULT 1,
          sessions          INTEGER NOT NULL DEFAULT 0,
          rejected_frames   INTEGER NOT NULL DEFAULT 0,
          failed_handshakes INTEGER NOT NULL DEFAULT 0,
          firmware          TEXT,
          last_seen         INTEGER,
          attached_at       INTEGER NOT NULL,
          updated_at        INTEGER NOT NULL
        ) STRICT;
        -- Every event a lock reported, once: (lock_id, seq) is the lock's own numbering.
        CREATE TABLE lock_events (
          lock_id     TEXT    NOT NULL,
          epoch       INTEGER NOT NULL,
          seq         INTEGER NOT NULL,
          at          INTEGER NOT NULL,
          kind        TEXT    NOT NULL,
          body        TEXT    NOT NULL,
          received_at INTEGER NOT NULL,
          PRIMARY KEY (lock_id, epoch, seq)
        ) STRICT;
        -- What the hub refused: rogue devices, wrong setup codes, bad frames, contradictions.
        CREATE TABLE security_events (
          id        INTEGER PRIMARY KEY AUTOINCREMENT,
          at        INTEGER NOT NULL,
          kind      TEXT    NOT NULL,
          lock_id   TEXT,
          detail    TEXT    NOT NULL DEFAULT '{}'
        ) STRICT;
      `);
    },
  },
  {
    version: 3,
    name: 'uplink outbox and inbox',
    up(db) {
      db.exec(`
        -- What the hub must still publish. A row leaves only when the broker acknowledged it (PUBACK).
        -- kind 'event': one lock event, published in batches on 'events', in per-lock order (id order).
        -- kind 'message': a whole payload for its topic ('cmd/result', 'sync/ack', 'locks/X/state').
        CREATE TABLE outbox (
          id         INTEGER PRIMARY KEY AUTOINCREMENT,
          kind       TEXT    NOT NULL CHECK (kind IN ('event', 'message')),
          topic      TEXT    NOT NULL,
          payload    TEXT    NOT NULL,
          retain     INTEGER NOT NULL DEFAULT 0,
          security   INTEGER NOT NULL DEFAULT 0,
          bytes      INTEGER NOT NULL,
          created_at INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX outbox_kind ON outbox (kind, id);
        -- Counters that must survive restarts (events dropped under the size limit, messages refused by ACL).
        CREATE TABLE counters (
          name  TEXT PRIMARY KEY,
          value INTEGER NOT NULL
        ) STRICT;
        -- Every command and sync the cloud sent, by id: a redelivered id returns the stored result
        -- and never acts twice. 'started' without a result means the hub stopped while acting.
        CREATE TABLE inbox (
          id          TEXT    PRIMARY KEY,
          topic       TEXT    NOT NULL,
          state       TEXT    NOT NULL CHECK (state IN ('started', 'done')),
          result      TEXT,
          received_at INTEGER NOT NULL
        ) STRICT;
      `);
    },
  },
  {
    version: 4,
    name: 'sealed secrets, command counter, command columns of the inbox',
    up(db) {
      db.exec(`
        -- Secrets the hub received rather than generated (the OTP key for remote commands), sealed
        -- with purpose and id as associated data. fingerprint: the first 8 hex digits of the
        -- SHA-256 of the secret, so a rotation can be logged without the secret.
        CREATE TABLE sealed_secrets (
          purpose     TEXT    NOT NULL,
          id          TEXT    NOT NULL,
          blob        BLOB    NOT NULL,
          fingerprint TEXT    NOT NULL,
          updated_at  INTEGER NOT NULL,
          PRIMARY KEY (purpose, id)
        ) STRICT;
        -- The counter of the last remote command the hub accepted: a command must carry a greater one.
        -- It moves in the transaction that records the command in the inbox, before the hub acts.
        CREATE TABLE command_counter (
          id           INTEGER PRIMARY KEY CHECK (id = 1),
          last_counter INTEGER NOT NULL,
          updated_at   INTEGER NOT NULL
        ) STRICT;
        -- What a started command was (its counter, op and lock), so one interrupted by a stop can be
        -- answered unknown_outcome with the lock's state read back, and a redelivery recognised.
        ALTER TABLE inbox ADD COLUMN counter INTEGER;
        ALTER TABLE inbox ADD COLUMN op TEXT;
        ALTER TABLE inbox ADD COLUMN lock_id TEXT;
      `);
    },
  },
];
