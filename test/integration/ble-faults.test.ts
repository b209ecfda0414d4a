import { describe, expect, test } from 'vitest';
import type { BleBearer } from '../../drivers/ble/bearer.js';
import { FRAGMENT_HEADER_LEN, FRAGMENT_VERSION } from '../../drivers/ble/gatt-frames.js';
import type { PeripheralLink } from '../../drivers/sim-radio/radio.js';
import type { Advertisement, BearerLink, BearerState, CloseReason } from '../../hal/bearer.js';
import type { EmulatedAdapter } from '../../sim/emu/hci/rig.js';
import { closedAfterEach, startEchoAdapter, untilWithin, watchedBearer } from '../helpers/ble-rig.js';
import { requireSocat, SOCAT_MISSING } from '../helpers/socat.js';

/**
 * Faults between the hub's BLE driver (real noble) and the emulated controller: the adapter
 * unplugged and plugged back, a controller that hangs (caught by the liveness watchdog), damaged
 * and oversized fragments from the air.
 */

const socat = requireSocat();
if (!socat) process.stderr.write(`ble-faults: ${SOCAT_MISSING}\n`);

const LOCK = 'aa:bb:cc:00:00:01';
const open = closedAfterEach();
const until = untilWithin(15_000);

interface Rig {
  adapter: EmulatedAdapter;
  bearer: BleBearer;
  states: BearerState[];
  ads: Advertisement[];
  lockLinks: PeripheralLink[];
}

async function rig(): Promise<Rig> {
  const { adapter, lockLinks } = await startEchoAdapter(
    open,
    socat as string,
    { advertiseIntervalMs: 50, attMtu: 185 },
    { address: LOCK, deviceId: 'SIM-0001', attachMode: false },
  );
  const { bearer, states, ads } = watchedBearer(
    open,
    { kind: 'uart', path: adapter.path },
    {
      maxConnections: 2,
      readyTimeoutMs: 2_000,
      recoverBaseMs: 100,
      recoverMaxMs: 500,
      scanRestartMs: 50,
      // Fast enough for the tests, loose enough for a loaded CI machine (a false alarm would fail them).
      livenessIntervalMs: 250,
      livenessTimeoutMs: 2_000,
    },
  );
  await bearer.start();
  await until(() => bearer.state().status === 'ready', 'bearer ready');
  return { adapter, bearer, states, ads, lockLinks };
}

async function connected(r: Rig): Promise<BearerLink> {
  const result = await r.bearer.connect(LOCK, { timeoutMs: 5_000 });
  if (!result.ok) return expect.fail(`connect: ${result.error.message}`);
  return result.value;
}

/** Sends `frame` and waits for the echo; false if it did not come back in time. */
async function echoes(link: BearerLink, frame: Uint8Array, waitMs = 2_000): Promise<boolean> {
  const want = Buffer.from(frame).toString('hex');
  let seen = false;
  const off = link.onFrame((f) => {
    if (Buffer.from(f).toString('hex') === want) seen = true;
  });
  const sent = await link.send(frame);
  expect(sent.ok).toBe(true);
  const deadline = Date.now() + waitMs;
  while (!seen && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  off();
  return seen;
}

function fragment(id: number, index: number, count: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(FRAGMENT_HEADER_LEN + payload.length);
  b.set([FRAGMENT_VERSION, id, index, count]);
  b.set(payload, FRAGMENT_HEADER_LEN);
  return b;
}

describe.skipIf(!socat)(`BLE faults over real noble${socat ? '' : ` (${SOCAT_MISSING})`}`, () => {
  test('adapter unplugged mid-session: links drop, the bearer is unavailable, then ready again by itself', async () => {
    const r = await rig();
    const link = await connected(r);
    expect(await echoes(link, Uint8Array.of(1, 2, 3))).toBe(true);
    const hubSide: CloseReason[] = [];
    const lockSide: CloseReason[] = [];
    link.onClose((c) => hubSide.push(c));
    r.lockLinks[0]?.onClose((c) => lockSide.push(c));

    await r.adapter.pty.unplug();
    await until(() => r.bearer.state().status === 'unavailable', 'bearer unavailable');
    expect(hubSide).toEqual(['adapter-unavailable']);
    await until(() => lockSide.length === 1, 'lock end closed');
    expect(lockSide).toEqual(['lost']);
    const refused = await r.bearer.connect(LOCK, { timeoutMs: 500 });
    expect(refused.ok ? undefined : refused.error.code).toBe('adapter-unavailable');

    await r.adapter.pty.plug();
    await until(() => r.bearer.state().status === 'ready', 'bearer ready again');
    // Unavailable may be reported more than once with another reason (re-opened before the port came back).
    const statuses = r.states.map((s) => s.status).filter((s, i, all) => s !== all[i - 1]);
    expect(statuses).toEqual(['starting', 'ready', 'unavailable', 'ready']);
    expect(r.bearer.counters().adapterRecoveries).toBe(1);
    const before = r.ads.length;
    await until(() => r.ads.length > before, 'the lock heard again');
    const again = await connected(r);
    expect(
      await echoes(
        again,
        Uint8Array.from({ length: 600 }, (_, i) => i & 0xff),
      ),
    ).toBe(true);
  });

  test('an adapter absent at start is unavailable with a reason, and is picked up when it appears', async () => {
    const r = await rig();
    await r.bearer.stop();
    await r.adapter.pty.unplug();
    await r.bearer.start();
    await until(() => r.bearer.state().status === 'unavailable', 'bearer unavailable');
    const state = r.bearer.state();
    expect(state.status === 'unavailable' ? state.reason : '').toContain(r.adapter.path);
    await r.adapter.pty.plug();
    await until(() => r.bearer.state().status === 'ready', 'bearer ready');
    const link = await connected(r);
    expect(await echoes(link, Uint8Array.of(9))).toBe(true);
  });

  test('a damaged fragment is rejected and counted; the link keeps working', async () => {
    const r = await rig();
    const link = await connected(r);
    r.adapter.emulator.corruptNext(1);
    expect(await echoes(link, Uint8Array.of(1), 500)).toBe(false);
    expect(r.bearer.counters().reassembly.malformed).toBe(1);
    expect(await echoes(link, Uint8Array.of(2))).toBe(true);
    expect(link.isOpen()).toBe(true);
  });

  test('a lost fragment drops that frame only (the rest is inconsistent), the next frame arrives', async () => {
    const r = await rig();
    const link = await connected(r);
    const big = Uint8Array.from({ length: 500 }, (_, i) => i & 0xff); // 3 fragments at MTU 185
    // The hub's write reaches the lock whole; its echo loses its first fragment on the air.
    r.adapter.emulator.dropNext(1);
    expect(await echoes(link, big, 500)).toBe(false);
    expect(await echoes(link, Uint8Array.of(7))).toBe(true);
    const c = r.bearer.counters().reassembly;
    expect(c.inconsistent).toBeGreaterThanOrEqual(1);
  });

  test('fragments claiming a frame above maxFrameSize, runts and nonsense are rejected and counted', async () => {
    const r = await rig();
    const link = await connected(r);
    const payload = new Uint8Array(185 - 3 - FRAGMENT_HEADER_LEN).fill(0xab);
    // 13 fragments of 178 bytes: 2314 bytes, above the 2048 the link accepts.
    for (let i = 0; i < 13; i++) r.adapter.emulator.injectNotification(LOCK, fragment(200, i, 13, payload));
    r.adapter.emulator.injectNotification(LOCK, Uint8Array.of(1, 2)); // shorter than the header
    r.adapter.emulator.injectNotification(LOCK, fragment(201, 3, 2, payload)); // index beyond count
    r.adapter.emulator.injectNotification(LOCK, new Uint8Array(0));
    expect(await echoes(link, Uint8Array.of(42))).toBe(true);
    const c = r.bearer.counters().reassembly;
    expect(c.oversized).toBe(1);
    expect(c.malformed).toBe(3);
    expect(link.isOpen()).toBe(true);
  });

  test('a stalled controller (hung, the port stays): links drop, unavailable "stopped answering", then ready again by itself', async () => {
    const r = await rig();
    const link = await connected(r);
    expect(await echoes(link, Uint8Array.of(1))).toBe(true);
    const hubSide: CloseReason[] = [];
    link.onClose((c) => hubSide.push(c));
    const lockSide: CloseReason[] = [];
    r.lockLinks[0]?.onClose((c) => lockSide.push(c));
    // A healthy controller answers every liveness question: no false alarm.
    await until(() => r.bearer.counters().livenessProbes >= 3, 'three liveness questions asked');
    expect(r.bearer.counters().livenessFailures).toBe(0);
    expect(r.bearer.state().status).toBe('ready');
    expect(link.isOpen()).toBe(true);
    const failuresBefore = r.bearer.counters().livenessFailures;

    r.adapter.emulator.stall(true);
    // While hung, a connect ends with a typed error at its deadline instead of hanging.
    const during = await r.bearer.connect('aa:bb:cc:00:00:02', { timeoutMs: 300 });
    expect(during.ok ? undefined : during.error.code).toMatch(/^(timeout|not-found|adapter-unavailable)$/);
    await until(() => r.bearer.state().status === 'unavailable', 'bearer unavailable');
    const state = r.bearer.state();
    expect(state.status === 'unavailable' ? state.reason : '').toContain('stopped answering');
    expect(state.status === 'unavailable' ? state.reason : '').toContain(r.adapter.path);
    expect(hubSide).toEqual(['adapter-unavailable']);
    expect(r.bearer.counters().livenessFailures).toBe(failuresBefore + 1);
    expect(r.adapter.pty.plugged).toBe(true); // nothing was unplugged: only the watchdog saw it
    const refused = await r.bearer.connect(LOCK, { timeoutMs: 300 });
    expect(refused.ok ? undefined : refused.error.code).toBe('adapter-unavailable');

    r.adapter.emulator.stall(false);
    await until(() => r.bearer.state().status === 'ready', 'bearer ready again by itself');
    expect(r.bearer.counters().adapterRecoveries).toBe(1);
    // The re-opened adapter's HCI Reset ends the link the hung controller still held, on the lock too.
    await until(() => lockSide.length === 1, 'lock end closed');
    expect(lockSide).toEqual(['lost']);
    const before = r.ads.length;
    await until(() => r.ads.length > before, 'the lock heard again');
    const again = await connected(r);
    expect(await echoes(again, Uint8Array.of(5))).toBe(true);
  });

  test('the link dropped by the radio (supervision timeout) reads lost on both ends', async () => {
    const r = await rig();
    const link = await connected(r);
    const hubSide: CloseReason[] = [];
    link.onClose((c) => hubSide.push(c));
    const lockSide: CloseReason[] = [];
    r.lockLinks[0]?.onClose((c) => lockSide.push(c));
    expect(r.adapter.emulator.disconnect(LOCK)).toBe(1);
    await until(() => hubSide.length === 1, 'hub end closed');
    expect([hubSide, lockSide]).toEqual([['lost'], ['lost']]);
  });
});
