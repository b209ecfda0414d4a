import { describe, expect, it } from 'vitest';
import { FRAGMENT_DATA_SIZE } from '../../../drivers/zigbee/link-cluster.js';
import { type DecodeResult, decodeMessage, encodeMessage } from '../../../src/contract/link-codec.js';
import {
  type LinkMessage,
  type LockEvent,
  type LockState,
  MAX_EVENTS_PER_ANSWER,
  SINGLE_FRAME_MESSAGE_LEN,
} from '../../../src/contract/link-messages.js';
import { TAGLEN } from '../../../src/link/noise.js';
import { FRAME_HEADER_LEN } from '../../../src/link/transport.js';

/**
 * The air budget's encodings (docs/link-protocol.md "Frame budget"): an `open` answer that carries
 * the events the open logged, and an event acknowledgement riding on any request. Decoding checks
 * every field of both and accepts exactly one encoding.
 */

const state: LockState = { bolt: 'unlocked', mode: 'normal', doorOpen: false, batteryPercent: 90, lastSeq: 8, time: 1 };
const opened = (seq: number): LockEvent => ({
  seq,
  at: 1_767_225_600_000,
  type: 'opened',
  by: 'remote',
  credentialId: null,
});
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const decodeHex = (h: string): DecodeResult => decodeMessage(new Uint8Array(Buffer.from(h, 'hex')));
const rejection = (r: DecodeResult) => (r.ok ? 'accepted' : `${r.error.code}: ${r.error.message}`);

describe('the open answer carries the events of the open', () => {
  it('round-trips with 0…MAX_EVENTS_PER_ANSWER events and lays them out after the state', () => {
    for (let n = 0; n <= MAX_EVENTS_PER_ANSWER; n++) {
      const m: LinkMessage = {
        type: 'ok',
        id: 9,
        result: { op: 'open', state, events: Array.from({ length: n }, (_, i) => opened(5 + i)) },
      };
      expect(decodeMessage(encodeMessage(m))).toEqual({ ok: true, value: m });
    }
    const bytes = encodeMessage({ type: 'ok', id: 9, result: { op: 'open', state, events: [opened(8)] } });
    // header 6, state 16, count 1, then the event (kind 0, seq 8, at, by remote 3, no credential)
    expect(hex(bytes.subarray(22))).toBe(`01000000000800000${(1_767_225_600_000).toString(16)}0300`);
  });

  it('a remote open and its answer are one frame each way: one ZigBee fragment, one BLE write', () => {
    const sealed = (m: LinkMessage) => FRAME_HEADER_LEN + encodeMessage(m).length + TAGLEN;
    const open = encodeMessage({ type: 'open', id: 0xffff_ffff, durationMs: 600_000, ack: 0xffff_fffe });
    const answer = encodeMessage({ type: 'ok', id: 1, result: { op: 'open', state, events: [opened(8)] } });
    expect(open.length).toBeLessThanOrEqual(SINGLE_FRAME_MESSAGE_LEN);
    expect(answer.length).toBeLessThanOrEqual(SINGLE_FRAME_MESSAGE_LEN);
    expect(FRAME_HEADER_LEN + SINGLE_FRAME_MESSAGE_LEN + TAGLEN).toBe(FRAGMENT_DATA_SIZE);
    expect(sealed({ type: 'open', id: 1, durationMs: 1, ack: 1 })).toBe(39);
    expect(sealed({ type: 'ok', id: 1, result: { op: 'open', state, events: [opened(8)] } })).toBe(63);
  });

  it('refuses events out of order, repeated, beyond the state, or too many', () => {
    const base = (events: string[], count = events.length, lastSeq = 8) => {
      const s = hex(
        encodeMessage({ type: 'ok', id: 9, result: { op: 'open', state: { ...state, lastSeq }, events: [] } }),
      );
      return `${s.slice(0, -2)}${count.toString(16).padStart(2, '0')}${events.join('')}`;
    };
    const e = (seq: number) => hex(encodeMessage({ type: 'event', event: opened(seq) })).slice(12);
    expect(rejection(decodeHex(base([e(7), e(8)])))).toBe('accepted');
    expect(rejection(decodeHex(base([e(8), e(7)])))).toMatch(/^invalid-field: events: sequence numbers must increase/);
    expect(rejection(decodeHex(base([e(7), e(7)])))).toMatch(/^invalid-field: events: sequence numbers must increase/);
    expect(rejection(decodeHex(base([e(9)])))).toMatch(/^invalid-field: events: beyond the state's lastSeq/);
    const five = [4, 5, 6, 7, 8].map(e);
    expect(rejection(decodeHex(base(five)))).toMatch(/^invalid-field: events: at most 4/);
    expect(rejection(decodeHex(base([e(8)], 2)))).toMatch(/^truncated/);
    expect(rejection(decodeHex(`${base([e(8)])}00`))).toMatch(/^trailing-bytes/);
    expect(() => encodeMessage({ type: 'ok', id: 9, result: { op: 'open', state, events: [opened(9)] } })).toThrow(
      /beyond the state's lastSeq/,
    );
  });
});

describe('an event acknowledgement rides on a request', () => {
  it('sets the 0x40 bit of the type and puts ack u32 after the header', () => {
    expect(hex(encodeMessage({ type: 'open', id: 7, durationMs: 3000 }))).toBe('01010000000700000bb8');
    expect(hex(encodeMessage({ type: 'open', id: 7, durationMs: 3000, ack: 5 }))).toBe('0141000000070000000500000bb8');
    expect(decodeHex('0141000000070000000500000bb8')).toEqual({
      ok: true,
      value: { type: 'open', id: 7, durationMs: 3000, ack: 5 },
    });
    expect(decodeHex('0144000000070000000a')).toEqual({ ok: true, value: { type: 'getState', id: 7, ack: 10 } });
  });

  it('exactly one encoding: an ack of 0 is refused (no ack is the clear bit), as is one on ackEvents', () => {
    expect(rejection(decodeHex('0144000000070000000000'.slice(0, 20)))).toMatch(/^invalid-field: ack/);
    expect(rejection(decodeHex('01460000000700000005' + '00000005'))).toMatch(/^invalid-field: ack: not on ackEvents/);
    expect(rejection(decodeHex('014400000000' + '00000005'))).toMatch(/^invalid-field: id/);
    expect(rejection(decodeHex('01440000000700000005' + '00'))).toMatch(/^trailing-bytes/);
    expect(rejection(decodeHex('014400000007000000'))).toMatch(/^truncated/);
    expect(() => encodeMessage({ type: 'ackEvents', id: 1, uptoSeq: 2, ack: 2 })).toThrow(/not on ackEvents/);
    expect(() => encodeMessage({ type: 'getState', id: 1, ack: 0 })).toThrow(/ack/);
  });

  it('only a hub sends it: a lock-side decoder sees it as a request, never as a lock message', () => {
    const d = decodeHex('0144000000070000000a');
    expect(d.ok && d.value.type).toBe('getState');
    // The event type 0x40 itself is unchanged (id 0, an event body).
    expect(decodeMessage(encodeMessage({ type: 'event', event: opened(3) }))).toMatchObject({
      ok: true,
      value: { type: 'event' },
    });
  });
});
