import type { Database, Statement } from 'better-sqlite3';

/** Rows examined per step when choosing what to drop. */
export const DROP_CHUNK = 256;

/** The outbox's statements, prepared once per store. */
export interface OutboxStatements {
  insert: Statement;
  total: Statement;
  setGauge: Statement;
  addCounter: Statement;
  /** addCounter, answering the new value (the bytes gauge: the bound is checked without a read). */
  addGauge: Statement<[string, number]>;
  getCounter: Statement;
  droppable: Statement;
  deleteReturning: (n: number) => Statement;
  /** deleteReturning answering the bytes of each row deleted, as plain numbers (pluck). */
  deleteBytes: (n: number) => Statement;
  deleteTopic: Statement;
  deleteAcked: Statement<[number, string]>;
  holdsEvent: Statement<[number, string]>;
  hasEvent: Statement<[number]>;
  events: Statement;
  messages: Statement;
  count: Statement;
  oldest: Statement;
  lastId: Statement<[string]>;
}

/** The outbox's SQL (src/events/outbox.ts), prepared on `db`. */
export function prepareOutboxStatements(db: Database): OutboxStatements {
  // A DELETE of n rows by id, prepared once per n (up to 64 sizes kept).
  const deleteById = (returning: string, pluck: boolean): ((n: number) => Statement) => {
    const byCount = new Map<number, Statement>();
    return (n) => {
      let st = byCount.get(n);
      if (!st) {
        st = db.prepare(`DELETE FROM outbox WHERE id IN (${new Array(n).fill('?').join(',')}) RETURNING ${returning}`);
        if (pluck) st = st.pluck();
        if (byCount.size < 64) byCount.set(n, st);
      }
      return st;
    };
  };
  return {
    insert: db.prepare(
      `INSERT INTO outbox (kind, topic, payload, retain, security, bytes, created_at)
       VALUES (@kind, @topic, @payload, @retain, @security, @bytes, @at)`,
    ),
    total: db.prepare('SELECT COALESCE(SUM(bytes), 0) AS n FROM outbox'),
    setGauge: db.prepare(
      `INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
    ),
    addCounter: db.prepare(
      `INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value`,
    ),
    addGauge: db.prepare<[string, number]>(
      `INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value`,
    ),
    getCounter: db.prepare('SELECT value FROM counters WHERE name = ?'),
    droppable: db.prepare(
      `SELECT id, bytes FROM outbox WHERE kind = 'event' AND security = 0 AND id > ? ORDER BY id LIMIT ${DROP_CHUNK}`,
    ),
    deleteReturning: deleteById('bytes, topic', false),
    deleteBytes: deleteById('bytes', true),
    deleteTopic: db.prepare(`DELETE FROM outbox WHERE kind = 'message' AND topic = ? RETURNING bytes`),
    // The row must still hold that very event: an ack names events, and a row id alone proves nothing.
    deleteAcked: db.prepare<[number, string]>(
      `DELETE FROM outbox WHERE id = ? AND kind = 'event' AND json_extract(payload, '$.id') = ? RETURNING bytes, topic`,
    ),
    holdsEvent: db
      .prepare<[number, string]>(
        `SELECT 1 FROM outbox WHERE id = ? AND kind = 'event' AND json_extract(payload, '$.id') = ?`,
      )
      .pluck(),
    hasEvent: db.prepare<[number]>(`SELECT 1 FROM outbox WHERE id = ? AND kind = 'event'`).pluck(),
    // The event's id read by SQLite: the row's text is published as stored, never parsed here.
    events: db.prepare(
      `SELECT id, payload, bytes, json_extract(payload, '$.id') AS eventId FROM outbox WHERE kind = 'event' AND id > ? ORDER BY id LIMIT ?`,
    ),
    messages: db.prepare(
      `SELECT id, topic, payload, retain FROM outbox WHERE kind = 'message' AND id > ? ORDER BY id LIMIT ?`,
    ),
    count: db.prepare('SELECT COUNT(*) AS n FROM outbox WHERE kind = ?'),
    oldest: db.prepare('SELECT MIN(created_at) AS at FROM outbox'),
    lastId: db.prepare<[string]>('SELECT COALESCE(MAX(id), 0) AS n FROM outbox WHERE kind = ?'),
  };
}

/**
 * Delete acknowledged rows (the group commit's removals): how many went and their bytes, with no
 * object per row (a drain deletes 100,000 rows this way, thousands per group commit).
 */
export function deleteAcknowledged(s: OutboxStatements, ids: readonly number[]): { gone: number; bytes: number } {
  let gone = 0;
  let bytes = 0;
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.length <= 500 ? ids : ids.slice(i, i + 500);
    for (const b of s.deleteBytes(chunk.length).all(...chunk) as number[]) {
      gone++;
      bytes += b;
    }
  }
  return { gone, bytes };
}
