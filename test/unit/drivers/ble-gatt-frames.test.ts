import { connect } from 'node:net';
import { describe, expect, test } from 'vitest';
import { createBleBearer } from '../../../drivers/ble/bearer.js';
import {
  advertisingPacket,
  decodeManufacturerData,
  encodeManufacturerData,
  FRAGMENT_HEADER_LEN,
  fragmentFrame,
  Reassembler,
  scanResponsePacket,
  zeroReassemblyCounters,
} from '../../../drivers/ble/gatt-frames.js';
import { HciEmulator } from '../../../sim/emu/hci/controller.js';
import { H4Parser } from '../../../sim/emu/hci/h4.js';
import { systemClock } from '../../../src/base/clock.js';
import { silentLogger } from '../../../src/log/logger.js';

function reassembler(maxFrameSize = 2048, now = () => 0) {
  const counters = zeroReassemblyCounters();
  return { r: new Reassembler({ maxFrameSize, timeoutMs: 1_000, now, counters }), counters };
}

const frame = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);

describe('BLE advertisement format', () => {
  test('device id and attach-mode flag survive encoding; both packets fit a legacy advertisement', () => {
    for (const attachMode of [true, false]) {
      const raw = encodeManufacturerData({ deviceId: 'LOCK-ABCDEFGHIJKLMNOPQRST', attachMode });
      expect(decodeManufacturerData(raw)).toEqual({ deviceId: 'LOCK-ABCDEFGHIJKLMNOPQRST', attachMode });
    }
    expect(advertisingPacket().length).toBeLessThanOrEqual(31);
    expect(scanResponsePacket({ deviceId: 'X'.repeat(25), attachMode: true }).length).toBeLessThanOrEqual(31);
    expect(() => encodeManufacturerData({ deviceId: 'X'.repeat(26), attachMode: false })).toThrow(/1…25/);
  });

  test('malformed manufacturer data is rejected with a reason', () => {
    const good = encodeManufacturerData({ deviceId: 'SIM-1', attachMode: true });
    const bad = (edit: (b: Buffer) => void) => {
      const b = Buffer.from(good);
      edit(b);
      return decodeManufacturerData(b);
    };
    expect(decodeManufacturerData(undefined)).toBe('no manufacturer data');
    expect(decodeManufacturerData(good.subarray(0, 4))).toMatch(/too short/);
    expect(bad((b) => b.writeUInt16LE(0x004c, 0))).toMatch(/company id/);
    expect(bad((b) => b.writeUInt8(2, 2))).toMatch(/version/);
    expect(bad((b) => b.writeUInt8(0x81, 3))).toMatch(/reserved/);
    expect(bad((b) => b.writeUInt8(0x20, 5))).toMatch(/printable/);
    expect(decodeManufacturerData(Buffer.concat([good, Buffer.alloc(30, 0x41)]))).toMatch(/too long/);
  });
});

describe('BLE fragmentation', () => {
  test('frames of every size up to the limit come back whole at small and large MTUs', () => {
    for (const mtu of [23, 185, 247]) {
      const { r } = reassembler();
      for (const n of [0, 1, 15, 16, 17, 500, 2048]) {
        const parts = fragmentFrame(frame(n), n & 0xff, mtu);
        for (const p of parts) expect(p.length).toBeLessThanOrEqual(mtu - 3);
        const out = parts.map((p) => r.push(p)).filter((f) => f !== undefined);
        expect(out).toHaveLength(1);
        expect(Buffer.from(out[0] as Uint8Array).equals(Buffer.from(frame(n)))).toBe(true);
      }
    }
  });

  test('a frame too large for 255 fragments is refused by the sender', () => {
    expect(() => fragmentFrame(frame(255 * 16 + 1), 0, 23)).toThrow(/limit/);
  });

  test('runts, unknown versions and bad indexes are malformed; nothing is delivered', () => {
    const { r, counters } = reassembler();
    expect(r.push(Uint8Array.of(1, 0, 0))).toBeUndefined();
    expect(r.push(Uint8Array.of(2, 0, 0, 1, 9))).toBeUndefined();
    expect(r.push(Uint8Array.of(1, 0, 0, 0, 9))).toBeUndefined();
    expect(r.push(Uint8Array.of(1, 0, 3, 2, 9))).toBeUndefined();
    expect(counters.malformed).toBe(4);
    expect(counters.frames).toBe(0);
  });

  test('a gap, another frame id or a restart drops the partial frame (inconsistent); the next frame arrives', () => {
    const { r, counters } = reassembler();
    const a = fragmentFrame(frame(500), 1, 185);
    const b = fragmentFrame(frame(500), 2, 185);
    r.push(a[0] as Buffer);
    expect(r.push(a[2] as Buffer)).toBeUndefined(); // gap
    r.push(a[0] as Buffer);
    expect(r.push(b[1] as Buffer)).toBeUndefined(); // another id
    r.push(a[0] as Buffer);
    r.push(b[0] as Buffer); // a new frame starts: the old one is dropped
    expect(r.push(b[1] as Buffer)).toBeUndefined();
    expect(r.push(b[2] as Buffer)).toEqual(frame(500));
    expect(counters.inconsistent).toBe(3);
    expect(counters.frames).toBe(1);
  });

  test('fragments adding up to more than maxFrameSize are dropped (oversized)', () => {
    const { r, counters } = reassembler(300);
    const parts = fragmentFrame(frame(400), 5, 185);
    expect(parts.map((p) => r.push(p)).every((f) => f === undefined)).toBe(true);
    expect(counters.oversized).toBe(1);
  });

  test('a partial frame older than the timeout is dropped when the next fragment comes', () => {
    let now = 0;
    const { r, counters } = reassembler(2048, () => now);
    const parts = fragmentFrame(frame(300), 9, 185);
    r.push(parts[0] as Buffer);
    now = 5_000;
    expect(r.push(parts[1] as Buffer)).toBeUndefined();
    expect(counters.timeout).toBe(1);
    expect(FRAGMENT_HEADER_LEN).toBe(4);
  });
});

describe('H4 parsing in the HCI emulator', () => {
  test('garbage bytes and oversized ACL packets are counted and skipped; the packets after them are parsed', () => {
    const counters = { garbageBytes: 0, oversizedPackets: 0 };
    const p = new H4Parser(251, counters);
    const reset = Buffer.from('01030c00', 'hex');
    const acl = Buffer.from('02400005000100040001', 'hex');
    const huge = Buffer.from('024000ff0f', 'hex');
    const out = [
      ...p.push(Buffer.from([0xff, 0x00, 0x77])),
      ...p.push(reset.subarray(0, 2)),
      ...p.push(Buffer.concat([reset.subarray(2), huge, acl])),
    ];
    expect(out.map((x) => x.type)).toEqual(['command', 'acl']);
    expect(out[0]).toMatchObject({ opcode: 0x0c03 });
    expect(counters.garbageBytes).toBeGreaterThanOrEqual(3);
    expect(counters.oversizedPackets).toBe(1);
  });

  test('the emulator answers Reset after a stream of garbage, without throwing', async () => {
    const emu = await HciEmulator.start();
    try {
      const socket = connect(emu.port, '127.0.0.1');
      const received: Buffer[] = [];
      socket.on('data', (b) => received.push(b));
      await new Promise((r) => socket.once('connect', r));
      socket.write(Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 13 + 5) & 0xff).filter((b) => b > 4)));
      socket.write(Buffer.from('01030c00', 'hex'));
      const deadline = Date.now() + 5_000;
      while (!Buffer.concat(received).includes(Buffer.from('040e0401030c00', 'hex')) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(Buffer.concat(received).includes(Buffer.from('040e0401030c00', 'hex'))).toBe(true);
      expect(emu.counters().garbageBytes).toBeGreaterThan(0);
      socket.destroy();
    } finally {
      await emu.close();
    }
  });
});

describe('BLE bearer options', () => {
  const base = { maxConnections: 2, clock: systemClock, log: silentLogger() };
  test('bad options are refused at construction, naming the option', () => {
    const bad = (o: Record<string, unknown>) => () => createBleBearer({ ...base, ...o } as never);
    expect(bad({ transport: { kind: 'uart', path: '' } })).toThrow(/transport.path/);
    expect(bad({ transport: { kind: 'uart', path: '/dev/x', baudRate: -1 } })).toThrow(/baudRate/);
    expect(bad({ transport: { kind: 'hci', deviceId: -1 } })).toThrow(/deviceId/);
    expect(bad({ transport: { kind: 'usb' } })).toThrow(/transport must be/);
    expect(bad({ transport: { kind: 'hci', deviceId: 0 }, maxConnections: 0 })).toThrow(/maxConnections/);
    expect(bad({ transport: { kind: 'hci', deviceId: 0 }, maxFrameSize: 100 })).toThrow(/maxFrameSize/);
    expect(bad({ transport: { kind: 'hci', deviceId: 0 }, readyTimeoutMs: 0 })).toThrow(/readyTimeoutMs/);
    expect(bad({ transport: { kind: 'hci', deviceId: 0 }, recoverBaseMs: 900, recoverMaxMs: 100 })).toThrow(
      /recoverMaxMs/,
    );
    expect(bad({ transport: { kind: 'hci', deviceId: 0 }, livenessIntervalMs: 0 })).toThrow(/livenessIntervalMs/);
    expect(bad({ transport: { kind: 'hci', deviceId: 0 }, livenessIntervalMs: Number.NaN })).toThrow(
      /livenessIntervalMs/,
    );
    expect(bad({ transport: { kind: 'hci', deviceId: 0 }, livenessTimeoutMs: -1 })).toThrow(/livenessTimeoutMs/);
    // Below 100 ms a busy event loop alone would read as a dead adapter.
    expect(bad({ transport: { kind: 'hci', deviceId: 0 }, livenessTimeoutMs: 50 })).toThrow(
      /livenessTimeoutMs.*>= 100/,
    );
    const ok = createBleBearer({ ...base, transport: { kind: 'hci', deviceId: 0 } });
    expect(ok.kind).toBe('ble');
    expect(ok.state()).toEqual({ status: 'stopped' });
  });
});
