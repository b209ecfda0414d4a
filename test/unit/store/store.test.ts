import { closeSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { migrations } from '../../../src/store/migrations.js';
import { DB_FILE, STORE_CACHE_KIB, Store } from '../../../src/store/store.js';
import { refusal } from '../../helpers/refusal.js';
import { tempDir } from '../../helpers/tmp.js';

describe('store', () => {
  it('opens in WAL mode with synchronous=FULL and applies every migration once', () => {
    const dir = tempDir();
    const s = Store.open(dir);
    expect(s.info.journalMode).toBe('wal');
    expect(s.info.synchronous).toBe('2');
    expect(s.info.appliedNow).toEqual(migrations.map((m) => m.version));
    s.close();
    const again = Store.open(dir);
    expect(again.info.appliedNow).toEqual([]);
    expect(again.info.schemaVersion).toBe(migrations.at(-1)?.version);
    again.close();
  });

  it("bounds SQLite's page cache (2 MB, not better-sqlite3's 16 MB); a transaction larger than it is still all or nothing", () => {
    expect(STORE_CACHE_KIB).toBe(2048);
    const dir = tempDir();
    const s = Store.open(dir);
    const big = 'x'.repeat(4000);
    try {
      expect(s.db.pragma('cache_size', { simple: true })).toBe(-STORE_CACHE_KIB);
      s.db.exec('CREATE TABLE bulk (n INTEGER PRIMARY KEY, v TEXT NOT NULL) STRICT');
      const put = s.db.prepare('INSERT INTO bulk (n, v) VALUES (?, ?)');
      // ~8 MB in one transaction: SQLite spills pages to the WAL before the commit; a failure
      // still undoes every one of them.
      expect(() =>
        s.transaction(() => {
          for (let i = 0; i < 2_000; i++) put.run(i, big);
          throw new Error('fails at the end');
        }),
      ).toThrow('fails at the end');
      expect(s.db.prepare('SELECT COUNT(*) AS n FROM bulk').get()).toEqual({ n: 0 });
      s.transaction(() => {
        for (let i = 0; i < 2_000; i++) put.run(i, big);
      });
    } finally {
      s.close();
    }
    const again = Store.open(dir);
    try {
      expect(again.db.pragma('cache_size', { simple: true })).toBe(-STORE_CACHE_KIB);
      expect(again.db.prepare('SELECT COUNT(*) AS n, SUM(length(v)) AS b FROM bulk').get()).toEqual({
        n: 2_000,
        b: 2_000 * big.length,
      });
    } finally {
      again.close();
    }
  });

  it('health() reads the WAL size without a checkpoint (it must not write: status during a flood, a full disk)', () => {
    const dir = tempDir();
    const store = Store.open(dir);
    try {
      for (let i = 0; i < 50; i++) store.journal('test', { i }, i);
      const main = statSync(join(dir, DB_FILE)).size;
      const first = store.health();
      expect(first.walPages).toBeGreaterThan(0);
      // A checkpoint would have copied the WAL into the main file and could have reported 0.
      expect(store.health().walPages).toBe(first.walPages);
      expect(statSync(join(dir, DB_FILE)).size).toBe(main);
    } finally {
      store.close();
    }
  });

  it('records each applied migration in the database', () => {
    const dir = tempDir();
    Store.open(dir).close();
    const db = new BetterSqlite3(join(dir, DB_FILE), { readonly: true });
    const rows = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all();
    db.close();
    expect(rows).toEqual(migrations.map((m) => ({ version: m.version, name: m.name })));
  });

  it('migration 4 keeps the inbox of a version 3 database and adds the command tables', () => {
    const dir = tempDir();
    const v3 = Store.open(
      dir,
      migrations.filter((m) => m.version <= 3),
    );
    v3.db
      .prepare("INSERT INTO inbox (id, topic, state, result, received_at) VALUES ('old', 'cmd', 'done', '{}', 1)")
      .run();
    v3.close();
    const s = Store.open(
      dir,
      migrations.filter((m) => m.version <= 4),
    );
    expect(s.info.appliedNow).toEqual([4]);
    expect(s.db.prepare('SELECT id, state, counter, op, lock_id FROM inbox').all()).toEqual([
      { id: 'old', state: 'done', counter: null, op: null, lock_id: null },
    ]);
    expect(() => s.db.prepare('INSERT INTO command_counter VALUES (2, 1, 1)').run()).toThrow(/CHECK/);
    s.db.prepare('INSERT INTO command_counter VALUES (1, 1, 1)').run();
    s.db.prepare("INSERT INTO sealed_secrets VALUES ('p', 'i', x'00', 'ab', 1)").run();
    expect(() => s.db.prepare("INSERT INTO sealed_secrets VALUES ('p', 'i', x'01', 'cd', 2)").run()).toThrow(/UNIQUE/);
    s.close();
  });

  it('a later migration is applied to an existing database, in order', () => {
    const dir = tempDir();
    Store.open(dir).close();
    const extra = [
      ...migrations,
      { version: 900, name: 'add t', up: (db: BetterSqlite3.Database) => db.exec('CREATE TABLE t (x INTEGER) STRICT') },
    ];
    const s = Store.open(dir, extra);
    expect(s.info.appliedNow).toEqual([900]);
    s.db.prepare('INSERT INTO t VALUES (1)').run();
    s.close();
  });

  it('a failing migration leaves nothing half-applied', () => {
    const dir = tempDir();
    Store.open(dir).close();
    const bad = [
      ...migrations,
      {
        version: 901,
        name: 'broken',
        up: (db: BetterSqlite3.Database) => {
          db.exec('CREATE TABLE half (x INTEGER)');
          throw new Error('boom');
        },
      },
    ];
    expect(() => Store.open(dir, bad)).toThrow('boom');
    const s = Store.open(dir);
    expect(s.db.prepare("SELECT name FROM sqlite_master WHERE name = 'half'").get()).toBeUndefined();
    s.close();
  });

  it('a database from a newer version is refused, not downgraded', () => {
    const dir = tempDir();
    const newer = [...migrations, { version: 999, name: 'future', up: () => {} }];
    Store.open(dir, newer).close();
    const e = refusal(() => Store.open(dir));
    expect(e.code).toBe('store.too-new');
    expect(e.message).toContain('schema version 999');
    expect(e.hint).toContain('newer iq-hub');
  });

  it('a second opener of the same data directory is refused while the first holds it', () => {
    const dir = tempDir();
    const first = Store.open(dir);
    const e = refusal(() => Store.open(dir));
    expect(e.code).toBe('store.locked');
    first.close();
    Store.open(dir).close();
  });

  it('a database that fails its integrity check is refused with a clear message', () => {
    const dir = tempDir();
    const s = Store.open(dir);
    s.transaction(() => {
      for (let i = 0; i < 2000; i++) s.journal('fill', { i, pad: 'x'.repeat(100) }, i);
    });
    s.db.exec('CREATE INDEX journal_kind ON journal(kind)');
    s.close();
    // Overwrite a page in the middle of the file: the b-tree no longer matches its index.
    const path = join(dir, DB_FILE);
    const size = readFileSync(path).length;
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, Math.floor(size / 2 / 4096) * 4096);
    closeSync(fd);
    const e = refusal(() => Store.open(dir));
    expect(['store.corrupt', 'store.open']).toContain(e.code);
    expect(e.hint).toMatch(/backup/);
  });

  it('a file that is not a database is refused', () => {
    const dir = tempDir();
    writeFileSync(join(dir, DB_FILE), 'this is not sqlite '.repeat(400));
    const e = refusal(() => Store.open(dir));
    expect(e.code).toBe('store.not-a-database');
    expect(e.message).toContain(DB_FILE);
    // Only a file that is no database is told to move aside (a read-only one is not: exit-codes.test.ts).
    expect(e.hint).toContain('move');
  });

  it('a transaction commits all of its writes or none', () => {
    const dir = tempDir();
    const s = Store.open(dir);
    expect(() =>
      s.transaction(() => {
        s.journal('a', {}, 1);
        throw new Error('abort');
      }),
    ).toThrow('abort');
    expect((s.db.prepare("SELECT COUNT(*) AS n FROM journal WHERE kind = 'a'").get() as { n: number }).n).toBe(0);
    s.close();
  });

  it('a lazy transaction is atomic, joins an outer one, and leaves every other commit at synchronous=FULL', () => {
    const dir = tempDir();
    const s = Store.open(dir);
    const count = (kind: string) =>
      (s.db.prepare('SELECT COUNT(*) AS n FROM journal WHERE kind = ?').get(kind) as { n: number }).n;
    const sync = () => s.db.pragma('synchronous', { simple: true });
    s.lazyTransaction(() => {
      expect(sync()).toBe(1);
      s.journal('lazy', {}, 1);
      s.journal('lazy', {}, 2);
    });
    expect(count('lazy')).toBe(2);
    expect(sync()).toBe(2);
    expect(() =>
      s.lazyTransaction(() => {
        s.journal('undone', {}, 1);
        throw new Error('abort');
      }),
    ).toThrow('abort');
    expect(count('undone')).toBe(0);
    expect(sync()).toBe(2);
    // Inside a durable transaction it joins it: no pragma change (not allowed there), one commit.
    expect(() =>
      s.transaction(() => {
        s.lazyTransaction(() => s.journal('joined', {}, 1));
        expect(sync()).toBe(2);
        throw new Error('abort outer');
      }),
    ).toThrow('abort outer');
    expect(count('joined')).toBe(0);
    s.close();
    // Read back after reopening: the lazy commits are in the database like any other.
    const again = Store.open(dir);
    expect((again.db.prepare("SELECT COUNT(*) AS n FROM journal WHERE kind = 'lazy'").get() as { n: number }).n).toBe(
      2,
    );
    again.close();
  });
});
