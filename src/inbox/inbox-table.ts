import type { Statement } from 'better-sqlite3';
import type { InboundTopic } from '../../hal/uplink.js';
import type { Store } from '../store/store.js';

/**
 * The inbox table: one row per cloud message the hub accepted (a command or a sync), by its id —
 * 'started' before it acts, 'done' with the answer's text after. The SQL lives here so the rules
 * about what a row means stay in Inbox.
 */

export interface InboxRow {
  topic: string;
  state: 'started' | 'done';
  result: string | null;
  counter: number | null;
  op: string | null;
  lock_id: string | null;
}

/** A message accepted and not answered (counter, op and lock: a command's; null for a sync). */
export interface StartedCommand {
  id: string;
  counter: number | null;
  op: string | null;
  lock_id: string | null;
}

export interface RecentRow extends StartedCommand {
  received_at: number;
  state: 'started' | 'done';
  result: string | null;
}

/** What a claim records: the command's counter, op and lock (null for a sync). */
export interface Claim {
  id: string;
  topic: InboundTopic;
  counter: number | null;
  op: string | null;
  lockId: string | null;
}

export class InboxTable {
  readonly #get: Statement<[string], InboxRow>;
  readonly #claim: Statement<[string, string, number, number | null, string | null, string | null]>;
  readonly #done: Statement<[string, string]>;
  readonly #started: Statement<[string], StartedCommand>;
  readonly #recent: Statement<[number], RecentRow>;
  readonly #forget: Statement<[string]>;
  readonly #pruneAge: Statement<[number, number]>;

  constructor(store: Store) {
    const db = store.db;
    this.#get = db.prepare<[string], InboxRow>(
      'SELECT topic, state, result, counter, op, lock_id FROM inbox WHERE id = ?',
    );
    this.#claim = db.prepare<[string, string, number, number | null, string | null, string | null]>(
      "INSERT INTO inbox (id, topic, state, result, received_at, counter, op, lock_id) VALUES (?, ?, 'started', NULL, ?, ?, ?, ?)",
    );
    this.#done = db.prepare<[string, string]>("UPDATE inbox SET state = 'done', result = ? WHERE id = ?");
    this.#started = db.prepare<[string], StartedCommand>(
      "SELECT id, counter, op, lock_id FROM inbox WHERE topic = ? AND state = 'started' ORDER BY rowid",
    );
    this.#recent = db.prepare<[number], RecentRow>(
      "SELECT id, counter, op, lock_id, received_at, state, result FROM inbox WHERE topic = 'cmd' ORDER BY rowid DESC LIMIT ?",
    );
    this.#forget = db.prepare<[string]>('DELETE FROM inbox WHERE id = ?');
    // Rowids grow with every insert, so the oldest rows come first in rowid order: a range scan
    // from the oldest end, cheap on every insert, never a full scan.
    this.#pruneAge = db.prepare<[number, number]>(
      "DELETE FROM inbox WHERE rowid IN (SELECT rowid FROM inbox WHERE state = 'done' ORDER BY rowid LIMIT ?) AND received_at < ?",
    );
  }

  get(id: string): InboxRow | undefined {
    return this.#get.get(id);
  }

  claim(c: Claim, now: number): void {
    this.#claim.run(c.id, c.topic, now, c.counter, c.op, c.lockId);
  }

  done(id: string, answerText: string): void {
    this.#done.run(answerText, id);
  }

  /** Messages of `topic` accepted and never answered, oldest first. */
  started(topic: InboundTopic): StartedCommand[] {
    return this.#started.all(topic);
  }

  recentCommands(limit: number): RecentRow[] {
    return this.#recent.all(limit);
  }

  /** The row of a message that changed nothing and is not kept (a refused sync). */
  forget(id: string): void {
    this.#forget.run(id);
  }

  /** Of the oldest `batch` answered rows, those received before `before`. */
  prune(batch: number, before: number): void {
    this.#pruneAge.run(batch, before);
  }
}
