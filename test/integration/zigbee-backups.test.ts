import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BACKUP_AFTER_CHANGE_MS, backupTakenAt } from '../../drivers/zigbee/backups.js';
import { createZigbeeBearer, type ZigbeeBearer } from '../../drivers/zigbee/index.js';
import { ZnpEmulator } from '../../sim/emu/znp/emulator.js';
import { systemClock } from '../../src/base/clock.js';
import { systemRandom } from '../../src/base/random.js';
import { Sealer } from '../../src/crypto/seal.js';
import { Secret } from '../../src/crypto/secret.js';
import { silentLogger } from '../../src/log/logger.js';
import { eventually } from '../helpers/radio-rig.js';

/**
 * When the coordinator is backed up (issue 15, start-up): when the network changes (formed at the
 * first start, a device joined) and on a schedule counted from the newest backup — not on every
 * start. One ZNP emulator keeps its network across the bearers of this file, as a dongle does
 * across restarts of the hub; the data directory is kept too.
 */
describe('coordinator backups: on a network change and on a schedule, not on every start', () => {
  const INTERVAL_MS = 4_000;
  let emulator: ZnpEmulator;
  let dataDir: string;
  let sealer: Sealer;
  let bearer: ZigbeeBearer | undefined;

  const open = (backupIntervalMs: number) =>
    createZigbeeBearer({
      serialPath: emulator.url,
      dataDir,
      sealer,
      random: systemRandom,
      clock: systemClock,
      log: silentLogger(),
      recoverBaseMs: 200,
      recoverMaxMs: 1_000,
      backupIntervalMs,
      backupsKept: 10,
    });
  /** A bearer on the same emulator and data directory; by default the schedule stays out of the way (1 h). */
  const startReady = async (backupIntervalMs = 3_600_000) => {
    bearer = open(backupIntervalMs);
    await bearer.start();
    await eventually(() => bearer?.state().status === 'ready', 'the coordinator to be ready', 25_000);
    return bearer;
  };

  beforeAll(async () => {
    emulator = await ZnpEmulator.start({ advertiseIntervalMs: 300, joinRetryMs: 100 });
    dataDir = mkdtempSync(join(tmpdir(), 'iqhub-zigbee-backups-'));
    sealer = new Sealer(new Secret(randomBytes(32)), systemRandom);
  });

  afterAll(async () => {
    await bearer?.stop();
    await emulator?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }, 90_000);

  test('the first start forms the network and backs it up once', async () => {
    const b = await startReady();
    expect(b.counters().backups).toBe(1);
    expect(b.backups()).toHaveLength(1);
  }, 40_000);

  test('a device that joins is backed up once the network is quiet again (its link key lives in the coordinator backup)', async () => {
    const b = bearer!;
    const before = b.backups().length;
    emulator.addPeripheral({
      address: 'lock-b1',
      advertisement: () => ({ deviceId: 'LOCK-B1', attachMode: true }),
      onConnect: () => {},
    });
    await b.openJoinWindow(5_000);
    await eventually(() => b.counters().joinsAccepted >= 1, 'the lock to join', 15_000);
    await eventually(() => b.backups().length > before, 'a backup after the join', BACKUP_AFTER_CHANGE_MS + 15_000);
    expect(b.counters().backups).toBe(2);
  }, 60_000);

  test('a restart that resumes the network as it was backed up seals nothing at start', async () => {
    await bearer!.stop();
    // herdsman writes its own backup as it stops; the bearer seals it.
    const afterStop = bearer!.backups();
    const b = await startReady();
    expect(b.counters().backups).toBe(0);
    expect(b.backups()).toEqual(afterStop);
  }, 40_000);

  test('a restart after backupIntervalMs without a backup takes one at start; the schedule runs from the newest', async () => {
    await bearer!.stop();
    const newest = bearer!.backups().at(-1)!;
    const at = backupTakenAt(newest);
    expect(at).toBeGreaterThan(Date.now() - 60_000);
    // Past the interval since the newest backup: the schedule is due at the start.
    await new Promise((r) => setTimeout(r, Math.max(0, at! + INTERVAL_MS - Date.now()) + 200));
    const b = await startReady(INTERVAL_MS);
    expect(b.counters().backups).toBe(1);
    // And again INTERVAL_MS after that one, with nothing else happening.
    await eventually(() => b.counters().backups >= 2, 'the scheduled backup', INTERVAL_MS * 4);
  }, 60_000);

  test('an id that is not a backup time says nothing', () => {
    expect(backupTakenAt('coordinator-2026-12-07T09-56-56-671Z')).toBe(Date.parse('2026-12-07T09:56:56.671Z'));
    expect(backupTakenAt('coordinator-latest')).toBeUndefined();
    expect(backupTakenAt('x-2026-12-07T09-56-56-671Z')).toBeUndefined();
  });
});
