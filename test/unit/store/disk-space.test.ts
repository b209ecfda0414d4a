import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DISK_RECHECK_MS, DiskWatch } from '../../../src/app/disk-watch.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import { LockStates } from '../../../src/events/lock-states.js';
import { Outbox } from '../../../src/events/outbox.js';
import type { LockChange } from '../../../src/link/manager.js';
import { type DiskState, diskFullDetail, isDiskFull } from '../../../src/store/disk-space.js';
import { RESERVE_FILE } from '../../../src/store/files.js';
import { Store, WAL_AUTOCHECKPOINT_PAGES, WAL_SIZE_LIMIT_BYTES } from '../../../src/store/store.js';
import { capturingLogger } from '../../helpers/commands.js';
import { tempDir } from '../../helpers/tmp.js';

const RESERVE = 256 * 1024;
/** What better-sqlite3 throws when the file system refuses to grow a file. */
const sqliteFull = () => Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });

function open(reserveBytes = RESERVE) {
  const dir = tempDir();
  const clock = new VirtualClock();
  const store = Store.open(dir, undefined, { reserveBytes, now: () => clock.now() });
  const changes: DiskState[] = [];
  store.space.onChange((s) => changes.push(s));
  return { dir, clock, store, changes, reserve: join(dir, RESERVE_FILE) };
}

describe('a full disk is a state of the store', () => {
  it('the store opens with its reserve and a bounded WAL; a tool that asks for none gets none', () => {
    const t = open();
    expect(statSync(t.reserve).size).toBe(RESERVE);
    expect(t.store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(WAL_AUTOCHECKPOINT_PAGES);
    expect(t.store.db.pragma('journal_size_limit', { simple: true })).toBe(WAL_SIZE_LIMIT_BYTES);
    t.store.close();
    const none = tempDir();
    Store.open(none).close();
    expect(existsSync(join(none, RESERVE_FILE))).toBe(false);
  });

  it('a write that meets a full disk: store.disk-full, nothing committed, the reserve released, the state turned once', () => {
    const t = open();
    const write = () =>
      t.store.transaction(() => {
        t.store.journal('before-full', {}, 1);
        throw sqliteFull();
      });
    for (let i = 0; i < 3; i++) {
      let caught: unknown;
      try {
        write();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(HubError);
      expect((caught as HubError).code).toBe('store.disk-full');
      expect(isDiskFull(caught)).toBe(true);
    }
    expect(t.store.db.prepare("SELECT COUNT(*) AS n FROM journal WHERE kind = 'before-full'").get()).toEqual({ n: 0 });
    expect(existsSync(t.reserve)).toBe(false);
    expect(t.store.diskFull).toBe(true);
    const detail = diskFullDetail(t.dir);
    expect(detail).toBe(`disk full at ${t.dir}: events are kept on the locks until space returns`);
    expect(t.changes).toEqual([{ full: true, path: t.dir, since: t.clock.now(), detail }]);
    expect(t.store.health().diskFull).toBe(detail);
    // A lazy commit and the journal turn it too (the same guard), and other errors pass unchanged.
    expect(() => t.store.lazyTransaction(() => t.store.journal('x', {}, 2))).not.toThrow();
    expect(() =>
      t.store.transaction(() => {
        throw new Error('something else');
      }),
    ).toThrow('something else');
    t.store.close();
  });

  it("turning full checkpoints the WAL into the main file (with the reserve's room), also when the failing write was nested", () => {
    const t = open();
    for (let i = 0; i < 50; i++) t.store.journal('fill-the-wal', { i }, i);
    const wal = `${t.store.info.path}-wal`;
    expect(statSync(wal).size).toBeGreaterThan(0);
    let caught: unknown;
    try {
      t.store.transaction(() =>
        t.store.lazyTransaction(() => {
          throw sqliteFull();
        }),
      );
    } catch (e) {
      caught = e;
    }
    expect((caught as HubError).code).toBe('store.disk-full');
    expect(t.changes).toHaveLength(1);
    expect(statSync(wal).size).toBe(0);
    expect(t.store.db.prepare("SELECT COUNT(*) AS n FROM journal WHERE kind = 'fill-the-wal'").get()).toEqual({
      n: 50,
    });
    t.store.close();
  });

  it('space again: the reserve re-created and the state back, said once; a disk without room stays full', () => {
    const t = open();
    expect(() =>
      t.store.lazyTransaction(() => {
        throw sqliteFull();
      }),
    ).toThrow(HubError);
    expect(t.store.space.recheck()).toBe(true);
    expect(statSync(t.reserve).size).toBe(RESERVE);
    expect(t.store.diskFull).toBe(false);
    expect(t.store.health().diskFull).toBeNull();
    expect(t.changes.map((c) => c.full)).toEqual([true, false]);
    expect(t.store.space.recheck()).toBe(false);

    t.store.close();
  });

  it('DiskWatch: one log line per change, a look every few seconds while full, degraded in status', async () => {
    const t = open();
    const { log, text } = capturingLogger();
    let told = 0;
    const watch = new DiskWatch({ space: t.store.space, clock: t.clock, log, changed: () => told++ });
    await watch.start();
    expect(watch.status()).toMatchObject({ name: 'disk', state: 'running' });
    for (let i = 0; i < 5; i++) {
      expect(() =>
        t.store.transaction(() => {
          throw sqliteFull();
        }),
      ).toThrow(HubError);
    }
    expect(watch.status()).toEqual({ name: 'disk', state: 'degraded', detail: diskFullDetail(t.dir) });
    // The rechecks find room (this disk is not full) and re-create the reserve.
    await t.clock.advance(DISK_RECHECK_MS);
    expect(t.store.diskFull).toBe(false);
    expect(statSync(t.reserve).size).toBe(RESERVE);
    const lines = text()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string });
    expect(lines.map((l) => l.msg)).toEqual([
      diskFullDetail(t.dir),
      `space again at ${t.dir}: the locks' events are being collected`,
    ]);
    expect(told).toBe(2);
    await watch.stop();
    expect(t.clock.pending).toBe(0);
    t.store.close();
  });
});

describe('lock states wait while the disk is full', () => {
  it('nothing queued and nothing logged while full; the newest state of each lock queued once space returns', async () => {
    const t = open();
    const { log, text } = capturingLogger();
    const outbox = new Outbox(t.store, { clock: t.clock, log, maxBytes: 1024 * 1024 });
    let listener: ((c: LockChange) => void) | undefined;
    const states = new LockStates({
      link: {
        onLockChange: (l) => {
          listener = l;
          return () => {};
        },
      },
      outbox,
      store: t.store,
      clock: t.clock,
      log,
      kick: () => {},
    });
    states.follow();
    const change = (lockId: string, bolt: 'locked' | 'unlocked') =>
      listener?.({
        lockId,
        summary: undefined,
        state: { bolt, mode: 'normal', doorOpen: false, batteryPercent: 90, lastSeq: 1 },
      } as unknown as LockChange);
    expect(() =>
      t.store.transaction(() => {
        throw sqliteFull();
      }),
    ).toThrow(HubError);
    for (let i = 0; i < 20; i++) {
      change('L1', i % 2 ? 'locked' : 'unlocked');
      change('L2', 'locked');
      states.flush();
    }
    expect(outbox.depth().messages).toBe(0);
    expect(text()).toBe('');
    t.store.space.recheck();
    expect(outbox.depth().messages).toBe(2);
    const payloads = t.store.db
      .prepare("SELECT topic, payload FROM outbox WHERE kind = 'message' ORDER BY topic")
      .all() as {
      topic: string;
      payload: string;
    }[];
    expect(payloads.map((p) => [p.topic, (JSON.parse(p.payload) as { bolt: string }).bolt])).toEqual([
      ['locks/L1/state', 'locked'],
      ['locks/L2/state', 'locked'],
    ]);
    expect(text()).toBe('');
    t.store.close();
  });
});
