import { describe, expect, test } from 'vitest';
import type { BleBearer, BleTransport } from '../../drivers/ble/bearer.js';
import type { PeripheralLink } from '../../drivers/sim-radio/radio.js';
import type { Advertisement, BearerLink, BearerState, CloseReason } from '../../hal/bearer.js';
import type { EmulatedAdapter } from '../../sim/emu/hci/rig.js';
import { closedAfterEach, startEchoAdapter, untilWithin, watchedBearer } from '../helpers/ble-rig.js';
import { requireSocat, SOCAT_MISSING } from '../helpers/socat.js';

/**
 * The Bearer contract of the BLE driver, with real noble down to the bytes: noble → serialport →
 * socat PTY → the HCI emulator, which hosts a peripheral that echoes every frame. With
 * IQHUB_HIL_BLE_UART (a serial path) or IQHUB_HIL_BLE_HCI (an HCI index) set, the adapter-level
 * part runs against that real adapter instead (see docs/ble.md).
 */

const HIL_UART = process.env.IQHUB_HIL_BLE_UART;
const HIL_HCI = process.env.IQHUB_HIL_BLE_HCI;
const hil: BleTransport | undefined = HIL_UART
  ? { kind: 'uart', path: HIL_UART }
  : HIL_HCI
    ? { kind: 'hci', deviceId: Number(HIL_HCI) }
    : undefined;
const socat = hil ? undefined : requireSocat();
const runnable = hil !== undefined || socat !== undefined;
if (!runnable) process.stderr.write(`ble-bearer: ${SOCAT_MISSING}\n`);

const LOCK = 'aa:bb:cc:00:00:01';
const ABSENT = 'aa:bb:cc:00:00:99';

const open = closedAfterEach();
const until = untilWithin(10_000);

interface Rig {
  bearer: BleBearer;
  states: BearerState[];
  ads: Advertisement[];
  adapter: EmulatedAdapter | undefined;
  /** The lock side of each link the emulated peripheral accepted. */
  lockLinks: PeripheralLink[];
}

async function rig(attachMode = true): Promise<Rig> {
  const echo = hil
    ? undefined
    : await startEchoAdapter(
        open,
        socat as string,
        { advertiseIntervalMs: 50 },
        { address: LOCK, rssi: -42, deviceId: 'SIM-0001', attachMode },
      );
  const transport: BleTransport = echo ? { kind: 'uart', path: echo.adapter.path } : (hil as BleTransport);
  const watched = watchedBearer(open, transport, {
    maxConnections: 2,
    readyTimeoutMs: 3_000,
    recoverBaseMs: 200,
    recoverMaxMs: 1_000,
    scanRestartMs: 50,
  });
  return { ...watched, adapter: echo?.adapter, lockLinks: echo?.lockLinks ?? [] };
}

async function connected(r: Rig, address = LOCK): Promise<BearerLink> {
  const result = await r.bearer.connect(address, { timeoutMs: 5_000 });
  if (!result.ok) return expect.fail(`connect ${address}: ${result.error.message}`);
  return result.value;
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

describe.skipIf(!runnable)(`BLE bearer contract over real noble${runnable ? '' : ` (${SOCAT_MISSING})`}`, () => {
  test('start reaches ready, and a lock is heard with its device id and attach-mode flag', async () => {
    const r = await rig();
    await r.bearer.start();
    await until(() => r.bearer.state().status === 'ready', 'bearer ready');
    expect(r.states.map((s) => s.status)).toEqual(['starting', 'ready']);
    await until(() => r.ads.length > 0, 'an advertisement');
    const ad = r.ads[0] as Advertisement;
    if (!hil) {
      expect(ad).toMatchObject({ deviceId: 'SIM-0001', address: LOCK, attachMode: true, rssi: -42 });
    }
    expect(ad.deviceId.length).toBeGreaterThan(0);
    expect(r.bearer.counters().malformedAdvertisements).toBe(0);
  });

  test.skipIf(hil !== undefined)('a lock out of attach mode advertises attachMode false', async () => {
    const r = await rig(false);
    await r.bearer.start();
    await until(() => r.ads.length > 0, 'an advertisement');
    expect(r.ads[0]?.attachMode).toBe(false);
  });

  test.skipIf(hil !== undefined)('frames cross both ways whole, including frames larger than the MTU', async () => {
    const r = await rig();
    await r.bearer.start();
    await until(() => r.bearer.state().status === 'ready', 'bearer ready');
    await until(() => r.ads.length > 0, 'an advertisement');
    const link = await connected(r);
    expect(link.address).toBe(LOCK);
    expect(link.maxFrameSize).toBeGreaterThanOrEqual(2048);
    expect(link.isOpen()).toBe(true);
    const got: Uint8Array[] = [];
    link.onFrame((f) => got.push(f));
    const frames = [pattern(1, 1), pattern(100, 2), pattern(1000, 3), pattern(link.maxFrameSize, 4)];
    for (const f of frames) expect(await link.send(f)).toEqual({ ok: true, value: undefined });
    await until(() => got.length === frames.length, 'echoes of every frame');
    expect(got.map((f) => Buffer.from(f).toString('hex'))).toEqual(frames.map((f) => Buffer.from(f).toString('hex')));
    expect(link.linkQuality().rssi).toBe(-42);
  });

  test.skipIf(hil !== undefined)('a frame above maxFrameSize is refused and the link stays open', async () => {
    const r = await rig();
    await r.bearer.start();
    await until(() => r.bearer.state().status === 'ready', 'bearer ready');
    const link = await connected(r);
    const result = await link.send(new Uint8Array(link.maxFrameSize + 1));
    expect(result.ok ? undefined : result.error.code).toBe('frame-too-large');
    expect(link.isOpen()).toBe(true);
  });

  test.skipIf(hil !== undefined)('the hub closes: both ends are told (local, remote)', async () => {
    const r = await rig();
    await r.bearer.start();
    await until(() => r.bearer.state().status === 'ready', 'bearer ready');
    const link = await connected(r);
    const hubSide: CloseReason[] = [];
    const lockSide: CloseReason[] = [];
    link.onClose((c) => hubSide.push(c));
    r.lockLinks[0]?.onClose((c) => lockSide.push(c));
    await link.close();
    await until(() => hubSide.length === 1 && lockSide.length === 1, 'both ends closed');
    expect([hubSide, lockSide]).toEqual([['local'], ['remote']]);
    const after = await link.send(pattern(10, 0));
    expect(after.ok ? undefined : after.error.code).toBe('disconnected');
    // A listener added after the close still hears it.
    const late: CloseReason[] = [];
    link.onClose((c) => late.push(c));
    await until(() => late.length === 1, 'late close listener');
    // And the lock can be reached again.
    const again = await connected(r);
    expect(again.isOpen()).toBe(true);
  });

  test.skipIf(hil !== undefined)('the lock closes: both ends are told (remote, local)', async () => {
    const r = await rig();
    await r.bearer.start();
    await until(() => r.bearer.state().status === 'ready', 'bearer ready');
    const link = await connected(r);
    const hubSide: CloseReason[] = [];
    link.onClose((c) => hubSide.push(c));
    const lockLink = r.lockLinks[0] as PeripheralLink;
    const lockSide: CloseReason[] = [];
    lockLink.onClose((c) => lockSide.push(c));
    await lockLink.close();
    await until(() => hubSide.length === 1, 'hub end closed');
    expect([hubSide, lockSide]).toEqual([['remote'], ['local']]);
  });

  test('connecting to an address nobody answers ends with a typed error at the deadline', async () => {
    const r = await rig();
    await r.bearer.start();
    await until(() => r.bearer.state().status === 'ready', 'bearer ready');
    const result = await r.bearer.connect(ABSENT, { timeoutMs: 500 });
    expect(result.ok ? undefined : result.error.code).toBe('not-found');
    if (!hil) {
      // The controller was told to give up: the next connection works.
      const link = await connected(r);
      expect(link.isOpen()).toBe(true);
    }
  });

  test.skipIf(hil !== undefined)(
    'connect refuses what the port says it refuses: twice the same lock, not started',
    async () => {
      const r = await rig();
      const early = await r.bearer.connect(LOCK, { timeoutMs: 500 });
      expect(early.ok ? undefined : early.error.code).toBe('stopped');
      await r.bearer.start();
      await until(() => r.bearer.state().status === 'ready', 'bearer ready');
      await connected(r);
      const twice = await r.bearer.connect(LOCK, { timeoutMs: 500 });
      expect(twice.ok ? undefined : twice.error.code).toBe('busy');
    },
  );

  test.skipIf(hil !== undefined)('stop closes every link with reason stopped and is idempotent', async () => {
    const r = await rig();
    await r.bearer.start();
    await until(() => r.bearer.state().status === 'ready', 'bearer ready');
    const link = await connected(r);
    const reasons: CloseReason[] = [];
    link.onClose((c) => reasons.push(c));
    await r.bearer.stop();
    await r.bearer.stop();
    expect(reasons).toEqual(['stopped']);
    expect(r.bearer.state().status).toBe('stopped');
  });
});
