import type { Peripheral } from '@stoprocent/noble';
import { describe, expect, it } from 'vitest';
import type { Adapter } from '../../../drivers/ble/adapter.js';
import { encodeManufacturerData } from '../../../drivers/ble/gatt-frames.js';
import { MAX_HEARD_ADDRESSES, Scanner } from '../../../drivers/ble/scanner.js';
import { zeroCounters } from '../../../drivers/zigbee/counters.js';
import { DoorLockStates, MAX_REPORTING_DEVICES } from '../../../drivers/zigbee/door-lock-state.js';
import { setBounded } from '../../../src/base/bounded-map.js';
import { systemClock } from '../../../src/base/clock.js';
import { HeardLocks, MAX_HEARD_DEVICES } from '../../../src/link/heard-locks.js';
import { silentLogger } from '../../../src/log/logger.js';

/**
 * What a radio hears comes from anyone in range: the caches keyed by it keep the latest entries
 * only, so a neighbour making up device ids or rotating addresses cannot grow the daemon.
 */
describe('setBounded', () => {
  it('keeps the latest `max` keys, forgetting the least recently set first', () => {
    const m = new Map<string, number>();
    for (let i = 0; i < 10; i++) setBounded(m, `k${i}`, i, 4);
    expect([...m.keys()]).toEqual(['k6', 'k7', 'k8', 'k9']);
    // Setting an old key again makes it the most recent: it survives the next insertions.
    setBounded(m, 'k6', 60, 4);
    setBounded(m, 'k10', 10, 4);
    setBounded(m, 'k11', 11, 4);
    expect([...m.entries()]).toEqual([
      ['k9', 9],
      ['k6', 60],
      ['k10', 10],
      ['k11', 11],
    ]);
  });
});

const ad = (deviceId: string, seenAt: number) => ({ deviceId, attachMode: false, address: `addr-${deviceId}`, seenAt });

describe('HeardLocks under a flood of made-up device ids', () => {
  it('stays bounded, and a lock that keeps advertising is still known', () => {
    const heard = new HeardLocks();
    heard.heard(ad('REAL-LOCK', 0));
    for (let i = 0; i < 20 * MAX_HEARD_DEVICES; i++) {
      heard.heard(ad(`FAKE-${i}`, i));
      // The real lock advertises too, once for every 100 of the attacker's.
      if (i % 100 === 0) heard.heard(ad('REAL-LOCK', i));
    }
    let known = 0;
    for (let i = 0; i < 20 * MAX_HEARD_DEVICES; i++) if (heard.get(`FAKE-${i}`)) known++;
    expect(known).toBeLessThanOrEqual(MAX_HEARD_DEVICES);
    expect(heard.get('REAL-LOCK')).toBeDefined();
    // The newest fakes are what is kept (the oldest went first).
    expect(heard.get(`FAKE-${20 * MAX_HEARD_DEVICES - 1}`)).toBeDefined();
    expect(heard.get('FAKE-0')).toBeUndefined();
  });
});

describe('the BLE scanner under rotating addresses', () => {
  it('remembers at most MAX_HEARD_ADDRESSES addresses, the latest ones', () => {
    const counters = { advertisements: 0, malformedAdvertisements: 0 };
    const scanner = new Scanner({
      adapter: {} as Adapter,
      cfg: { scanRestartMs: 1_000 },
      clock: systemClock,
      log: silentLogger(),
      counters,
    });
    const manufacturerData = encodeManufacturerData({ deviceId: 'LOCK-1', attachMode: false });
    const address = (i: number) =>
      [0xc0 | ((i >> 16) & 0x3f), (i >> 8) & 0xff, i & 0xff, 1, 2, 3]
        .map((b) => b.toString(16).padStart(2, '0'))
        .join(':');
    const n = 10 * MAX_HEARD_ADDRESSES;
    for (let i = 0; i < n; i++) {
      scanner.discover({
        address: address(i),
        rssi: -60,
        advertisement: { manufacturerData },
      } as unknown as Peripheral);
    }
    expect(counters.advertisements).toBe(n);
    let known = 0;
    for (let i = 0; i < n; i++) if (scanner.heard(address(i))) known++;
    expect(known).toBe(MAX_HEARD_ADDRESSES);
    expect(scanner.heard(address(n - 1))).toBe(true);
    expect(scanner.lastRssi(address(n - 1))).toBe(-60);
    expect(scanner.heard(address(0))).toBe(false);
  });
});

describe('ZigBee door-lock reports from many addresses', () => {
  it('keep the state of at most MAX_REPORTING_DEVICES addresses, the latest ones', () => {
    const states = new DoorLockStates(zeroCounters());
    const n = 10 * MAX_REPORTING_DEVICES;
    for (let i = 0; i < n; i++) states.report(`0x${i.toString(16).padStart(16, '0')}`, { lockState: 1 });
    let known = 0;
    for (let i = 0; i < n; i++) if (states.get(`0x${i.toString(16).padStart(16, '0')}`)) known++;
    expect(known).toBe(MAX_REPORTING_DEVICES);
    expect(states.get(`0x${(n - 1).toString(16).padStart(16, '0')}`)).toBe('locked');
  });
});
