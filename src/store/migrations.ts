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
  {
    version: 5,
    name: 'access-rights mirror',
    up(db) {
      db.exec(`
        -- The version of the access mirror (0: nothing synced yet) and the sync that set it.
        CREATE TABLE access_meta (
          id         INTEGER PRIMARY KEY CHECK (id = 1),
          version    INTEGER NOT NULL CHECK (version >= 0),
          sync_id    TEXT,
          kind       TEXT CHECK (kind IN ('snapshot', 'delta')),
          applied_at INTEGER
        ) STRICT;
        INSERT INTO access_meta (id, version) VALUES (1, 0);
        -- Times are unix milliseconds; NULL is an open bound. valid_until is exclusive.
        CREATE TABLE access_users (
          id          TEXT    PRIMARY KEY,
          name        TEXT,
          valid_from  INTEGER,
          valid_until INTEGER,
          offline     INTEGER NOT NULL CHECK (offline IN (0, 1)),
          blocked     INTEGER NOT NULL CHECK (blocked IN (0, 1))
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX access_users_offline ON access_users (id) WHERE offline = 1;
        -- schedule: the JSON list of intervals in the site's time zone; NULL: at all times.
        CREATE TABLE access_groups (
          id          TEXT    PRIMARY KEY,
          schedule    TEXT,
          valid_from  INTEGER,
          valid_until INTEGER
        ) STRICT, WITHOUT ROWID;
        -- A group's lockIds, one row each: decisions and offline lists look groups up by lock.
        CREATE TABLE access_group_locks (
          lock_id  TEXT NOT NULL,
          group_id TEXT NOT NULL REFERENCES access_groups (id) ON DELETE CASCADE,
          PRIMARY KEY (lock_id, group_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX access_group_locks_group ON access_group_locks (group_id);
        CREATE TABLE access_memberships (
          user_id  TEXT NOT NULL REFERENCES access_users (id) ON DELETE CASCADE,
          group_id TEXT NOT NULL REFERENCES access_groups (id) ON DELETE CASCADE,
          PRIMARY KEY (user_id, group_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX access_memberships_group ON access_memberships (group_id, user_id);
        -- verifier: HMAC-SHA-256 of the PIN under the site's PIN key, computed by the cloud. No digits, ever.
        CREATE TABLE access_pins (
          id       TEXT PRIMARY KEY,
          user_id  TEXT NOT NULL REFERENCES access_users (id) ON DELETE CASCADE,
          verifier BLOB NOT NULL UNIQUE CHECK (length(verifier) = 32)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX access_pins_user ON access_pins (user_id);
        -- hash: SHA-256 of the DESFire credential id.
        CREATE TABLE access_tags (
          id      TEXT PRIMARY KEY,
          user_id TEXT NOT NULL REFERENCES access_users (id) ON DELETE CASCADE,
          hash    BLOB NOT NULL UNIQUE CHECK (length(hash) = 32)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX access_tags_user ON access_tags (user_id);
        CREATE TABLE access_keys (
          id         TEXT    PRIMARY KEY,
          user_id    TEXT    NOT NULL REFERENCES access_users (id) ON DELETE CASCADE,
          revoked    INTEGER NOT NULL CHECK (revoked IN (0, 1)),
          expires_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX access_keys_user ON access_keys (user_id);
      `);
    },
  },
  {
    version: 6,
    name: 'remote-command lockout',
    up(db) {
      db.exec(`
        -- The remote-command lockout, so a restart does not forget it (src/commands/verifier.ts).
        -- failures: JSON array of the wall times (unix ms) of the counted refusals still within the
        -- window; locked_until: the wall time the running lockout ends (NULL: none). Wall time on
        -- disk, monotonic time in memory: a restart resumes with the remaining time capped at lockoutSec.
        CREATE TABLE command_lockout (
          id           INTEGER PRIMARY KEY CHECK (id = 1),
          failures     TEXT    NOT NULL DEFAULT '[]',
          locked_until INTEGER,
          updated_at   INTEGER NOT NULL
        ) STRICT;
      `);
    },
  },
  {
    version: 7,
    name: 'sync parts',
    up(db) {
      db.exec(`
        -- The parts of a sync sent in parts, kept as they arrive until the set is complete (then
        -- joined, checked and applied), refused or expired. One set at a time (src/access/sync-parts.ts).
        CREATE TABLE sync_parts (
          sync_id      TEXT    NOT NULL,
          idx          INTEGER NOT NULL,
          count        INTEGER NOT NULL,
          digest       TEXT    NOT NULL,
          kind         TEXT    NOT NULL CHECK (kind IN ('snapshot', 'delta')),
          version      INTEGER NOT NULL,
          base_version INTEGER,
          chunk        TEXT    NOT NULL,
          received_at  INTEGER NOT NULL,
          PRIMARY KEY (sync_id, idx)
        ) STRICT, WITHOUT ROWID;
      `);
    },
  },
  {
    version: 8,
    name: 'site PIN keys',
    up(db) {
      db.exec(`
        -- The site PIN keys the cloud sent in its syncs (src/access/pin-keys.ts), each sealed with
        -- the storage key (purpose site.pin-key.version, id = the version). until: NULL for the
        -- current key; for the previous one, the end of the overlap (unix ms) after which it is
        -- deleted. At most these two rows.
        CREATE TABLE pin_keys (
          version      INTEGER PRIMARY KEY CHECK (version BETWEEN 1 AND 4294967295),
          blob         BLOB    NOT NULL,
          fingerprint  TEXT    NOT NULL,
          until        INTEGER,
          installed_at INTEGER NOT NULL
        ) STRICT;
      `);
    },
  },
  {
    version: 9,
    name: 'firmware transfers',
    up(db) {
      db.exec(`
        -- Lock firmware images the hub verified (src/firmware/): the whole signed file, by the
        -- SHA-256 of its payload (hex). Kept until no transfer needs them.
        CREATE TABLE firmware_images (
          sha256   TEXT    PRIMARY KEY CHECK (length(sha256) = 64),
          model    TEXT    NOT NULL,
          version  TEXT    NOT NULL,
          size     INTEGER NOT NULL,
          file     BLOB    NOT NULL,
          added_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
        -- One transfer per lock (the latest asked for). state: queued (waiting for its radio),
        -- running, installed, failed; a restart turns running back into queued and resumes it from
        -- the offset the lock reports. sent: bytes the lock confirmed (for progress only).
        CREATE TABLE firmware_transfers (
          lock_id    TEXT    PRIMARY KEY,
          sha256     TEXT    NOT NULL REFERENCES firmware_images (sha256),
          state      TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'installed', 'failed')),
          sent       INTEGER NOT NULL DEFAULT 0,
          error      TEXT,
          origin     TEXT    NOT NULL,
          started_at INTEGER NOT NULL,
          updated_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
      `);
    },
  },
  {
    version: 10,
    name: 'otp key generation',
    up(db) {
      db.exec(`
        -- The OTP key delivered over the uplink (issue 17): the generation installed, strictly
        -- increasing (a delivery not above it is a replay or a downgrade and is refused), with the
        -- delivery that brought it. The key itself is in sealed_secrets (commands.otp-key).
        CREATE TABLE otp_key_generation (
          id          INTEGER PRIMARY KEY CHECK (id = 1),
          generation  INTEGER NOT NULL,
          delivery_id TEXT    NOT NULL,
          fingerprint TEXT    NOT NULL,
          updated_at  INTEGER NOT NULL
        ) STRICT;
      `);
    },
  },
];
