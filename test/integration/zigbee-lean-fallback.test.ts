import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import type { PeripheralLink } from '../../drivers/sim-radio/radio.js';
import { createZigbeeBearer, type ZigbeeBearer } from '../../drivers/zigbee/index.js';
import { ZnpEmulator } from '../../sim/emu/znp/emulator.js';
import { systemClock } from '../../src/base/clock.js';
import { systemRandom } from '../../src/base/random.js';
import { Sealer } from '../../src/crypto/seal.js';
import { Secret } from '../../src/crypto/secret.js';
import { createLogger } from '../../src/log/logger.js';
import { eventually } from '../helpers/radio-rig.js';

/**
 * herdsman's waitresses not as drivers/zigbee/lean-waitress.ts expects them (a herdsman upgrade):
 * useLeanWaitresses replaces nothing (test/unit/drivers/zigbee-lean-waitress.test.ts), and the
 * bearer says so in a warning and carries frames on herdsman's own waitFor. Here it is made to
 * find them changed; real herdsman against the ZNP emulator over TCP.
 */
const lean = vi.hoisted(() => ({ calls: 0 }));
vi.mock('../../drivers/zigbee/lean-waitress.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../drivers/zigbee/lean-waitress.js')>()),
  useLeanWaitresses: () => {
    lean.calls++;
    return false;
  },
}));

describe("herdsman's waitresses not as expected", () => {
  let emulator: ZnpEmulator;
  let bearer: ZigbeeBearer;
  let dataDir: string;
  const logs: string[] = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'iqhub-zigbee-fallback-'));
    emulator = await ZnpEmulator.start({ advertiseIntervalMs: 300, joinRetryMs: 100 });
    bearer = createZigbeeBearer({
      serialPath: emulator.url,
      dataDir,
      sealer: new Sealer(new Secret(randomBytes(32)), systemRandom),
      random: systemRandom,
      clock: systemClock,
      log: createLogger({
        level: 'info',
        pretty: false,
        destination: new Writable({
          write(chunk, _enc, done) {
            logs.push(String(chunk));
            done();
          },
        }),
      }),
      recoverBaseMs: 200,
      recoverMaxMs: 1_000,
      sendTimeoutMs: 2_000,
      backupIntervalMs: 3_600_000,
    });
    await bearer.start();
    await eventually(() => bearer.state().status === 'ready', 'the bearer to be ready', 25_000);
  }, 40_000);

  afterAll(async () => {
    await bearer?.stop();
    await emulator?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }, 40_000);

  test('the coordinator is ready and a warning names what was not as expected', () => {
    expect(lean.calls).toBe(1);
    const warnings = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 'warn');
    const warning = warnings.find((l) => String(l.msg).includes('herdsman not as expected'));
    expect(warning, JSON.stringify(warnings)).toMatchObject({ leanWaits: false, takesFrames: true, lean: true });
  });

  test("a lock joins and frames go both ways on herdsman's own waitFor", async () => {
    const links: PeripheralLink[] = [];
    emulator.addPeripheral({
      address: 'lock-f',
      advertisement: () => ({ deviceId: 'LOCK-F', attachMode: true }),
      onConnect: (link) => links.push(link),
    });
    const ieee = emulator.ieeeOf('lock-f');
    const joined = new Promise<void>((resolve) =>
      bearer.onAdvertisement((ad) => {
        if (ad.deviceId === 'LOCK-F') resolve();
      }),
    );
    await bearer.openJoinWindow(5_000);
    await joined;
    const r = await bearer.connect(ieee, { timeoutMs: 5_000 });
    if (!r.ok) throw new Error(`connect: ${JSON.stringify(r.error)}`);
    const link = r.value;
    const lockLink = await eventually(() => links.at(-1)?.isOpen() && links.at(-1), 'the lock link');
    const atLock: Uint8Array[] = [];
    const atHub: Uint8Array[] = [];
    lockLink.onFrame((f) => atLock.push(f));
    link.onFrame((f) => atHub.push(f));
    const big = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
    expect((await link.send(big)).ok).toBe(true);
    expect((await lockLink.send(Uint8Array.of(1, 2, 3))).ok).toBe(true);
    await eventually(() => atLock.length === 1 && atHub.length === 1, 'a frame each way');
    expect(Buffer.from(atLock[0]!).equals(Buffer.from(big))).toBe(true);
    expect([...atHub[0]!]).toEqual([1, 2, 3]);
    await link.close();
  }, 30_000);
});
