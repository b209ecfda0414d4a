import { afterEach } from 'vitest';
import { type BleBearer, type BleBearerOptions, type BleTransport, createBleBearer } from '../../drivers/ble/bearer.js';
import type { PeripheralLink } from '../../drivers/sim-radio/radio.js';
import type { Advertisement, BearerState } from '../../hal/bearer.js';
import type { HciEmulatorOptions } from '../../sim/emu/hci/controller.js';
import { type EmulatedAdapter, startEmulatedAdapter } from '../../sim/emu/hci/rig.js';
import { systemClock } from '../../src/base/clock.js';
import { silentLogger } from '../../src/log/logger.js';
import { eventually } from './radio-rig.js';

/**
 * The set-up the BLE integration tests share (real noble → serialport → socat PTY → the HCI
 * emulator, test/integration/ble-*.test.ts): what each test opened is closed after it, waits are
 * bounded, and the pieces (emulated adapter, an echoing peripheral, a bearer whose states and
 * advertisements are recorded) are started the same way everywhere.
 */

export type Closer = () => Promise<void> | void;

/**
 * A list to push what a test opens onto; an afterEach of the calling file closes it, newest first
 * (the bearer before the adapter it runs on). Call once per file, at the top level.
 */
export function closedAfterEach(): Closer[] {
  const open: Closer[] = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });
  return open;
}

/** A wait for `condition` that fails the test after `maxMs` (by default `defaultMs`): radio-rig's `eventually`. */
export type Until = (condition: () => boolean, what: string, maxMs?: number) => Promise<void>;

/** `until` with the default deadline of the calling file (a slower scenario waits longer). */
export function untilWithin(defaultMs: number): Until {
  return async (condition, what, maxMs = defaultMs) => {
    await eventually(condition, what, maxMs);
  };
}

/** The emulated adapter behind a socat PTY, closed after the test. */
export async function startAdapter(
  open: Closer[],
  socat: string,
  options: HciEmulatorOptions,
): Promise<EmulatedAdapter> {
  const adapter = await startEmulatedAdapter(socat, options);
  open.push(() => adapter.close());
  return adapter;
}

export interface EchoLock {
  readonly address: string;
  readonly deviceId: string;
  readonly attachMode: boolean;
  /** Omitted: the emulator's default. */
  readonly rssi?: number;
}

export interface EchoAdapter {
  readonly adapter: EmulatedAdapter;
  /** The lock side of each link the emulated peripheral accepted. */
  readonly lockLinks: PeripheralLink[];
}

/**
 * An emulated adapter hosting one peripheral that sends back every frame it gets: the simplest
 * "lock" that still proves frames cross whole both ways.
 */
export async function startEchoAdapter(
  open: Closer[],
  socat: string,
  options: HciEmulatorOptions,
  lock: EchoLock,
): Promise<EchoAdapter> {
  const adapter = await startAdapter(open, socat, options);
  const lockLinks: PeripheralLink[] = [];
  adapter.emulator.addPeripheral({
    address: lock.address,
    ...(lock.rssi === undefined ? {} : { rssi: lock.rssi }),
    advertisement: () => ({ deviceId: lock.deviceId, attachMode: lock.attachMode }),
    onConnect: (link) => {
      lockLinks.push(link);
      link.onFrame((frame) => void link.send(frame));
    },
  });
  return { adapter, lockLinks };
}

/** The tunables a test picks; transport, clock (the system's) and log (silent) are the rig's. */
export type BleTestBearerOptions = Omit<BleBearerOptions, 'transport' | 'clock' | 'log'>;

/** The BLE driver on `transport` with the system clock and a silent log. Not started. */
export function bleBearer(transport: BleTransport, options: BleTestBearerOptions): BleBearer {
  return createBleBearer({ transport, clock: systemClock, log: silentLogger(), ...options });
}

export interface WatchedBearer {
  readonly bearer: BleBearer;
  /** Every state it reported, in order. */
  readonly states: BearerState[];
  /** Every advertisement it heard, in order. */
  readonly ads: Advertisement[];
}

/** bleBearer, stopped after the test, its states and advertisements recorded. Not started. */
export function watchedBearer(open: Closer[], transport: BleTransport, options: BleTestBearerOptions): WatchedBearer {
  const bearer = bleBearer(transport, options);
  open.push(() => bearer.stop());
  const states: BearerState[] = [];
  const ads: Advertisement[] = [];
  bearer.onStateChange((s) => states.push(s));
  bearer.onAdvertisement((a) => ads.push(a));
  return { bearer, states, ads };
}
