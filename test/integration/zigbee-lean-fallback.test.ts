import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import type { PeripheralLink } from '../../drivers/sim-radio/radio.js';
import { eventually } from '../helpers/radio-rig.js';
import { startRig, type ZigbeeRig } from '../helpers/zigbee-rig.js';

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
  let rig: ZigbeeRig;

  beforeAll(async () => {
    rig = await startRig({ backupIntervalMs: 3_600_000 });
    await rig.bearer.start();
    await eventually(() => rig.bearer.state().status === 'ready', 'the bearer to be ready', 25_000);
  }, 40_000);

  afterAll(async () => {
    await rig?.close();
  }, 40_000);

  test('the coordinator is ready and a warning names what was not as expected', () => {
    expect(lean.calls).toBe(1);
    const warnings = rig.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 'warn');
    const warning = warnings.find((l) => String(l.msg).includes('herdsman not as expected'));
    expect(warning, JSON.stringify(warnings)).toMatchObject({ leanWaits: false, takesFrames: true, lean: true });
  });

  test("a lock joins and frames go both ways on herdsman's own waitFor", async () => {
    const links: PeripheralLink[] = [];
    rig.emulator.addPeripheral({
      address: 'lock-f',
      advertisement: () => ({ deviceId: 'LOCK-F', attachMode: true }),
      onConnect: (link) => links.push(link),
    });
    const ieee = rig.emulator.ieeeOf('lock-f');
    const joined = new Promise<void>((resolve) =>
      rig.bearer.onAdvertisement((ad) => {
        if (ad.deviceId === 'LOCK-F') resolve();
      }),
    );
    await rig.bearer.openJoinWindow(5_000);
    await joined;
    const r = await rig.bearer.connect(ieee, { timeoutMs: 5_000 });
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
