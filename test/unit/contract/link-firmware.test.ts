import { describe, expect, it } from 'vitest';
import { FRAGMENT_DATA_SIZE } from '../../../drivers/zigbee/link-cluster.js';
import { decodeMessage, encodeMessage } from '../../../src/contract/link-codec.js';
import {
  FIRMWARE_BLOCK_LEN,
  type LinkMessage,
  OPERATIONS,
  operationCode,
  operationOfCode,
} from '../../../src/contract/link-messages.js';
import { TAGLEN } from '../../../src/link/noise.js';
import { FRAME_HEADER_LEN } from '../../../src/link/transport.js';

/** The firmware requests and results on the link: one encoding each, bounded, and a block in one radio frame. */

const bytes = (n: number, v = 7) => new Uint8Array(n).fill(v);
const version = { major: 1, minor: 2, patch: 65535 };

const messages: LinkMessage[] = [
  { type: 'fwStatus', id: 1 },
  { type: 'fwBegin', id: 2, manifest: bytes(81), signature: bytes(64, 9) },
  { type: 'fwBlock', id: 3, offset: 0xffff_fff0, data: bytes(FIRMWARE_BLOCK_LEN) },
  { type: 'fwFinish', id: 4 },
  { type: 'ok', id: 5, result: { op: 'fwStatus', model: 'iq-sim-lock', version, staged: bytes(32), offset: 400 } },
  { type: 'ok', id: 6, result: { op: 'fwStatus', model: 'm', version, staged: null, offset: 0 } },
  { type: 'ok', id: 7, result: { op: 'fwBegin', outcome: 'accepted', offset: 120 } },
  { type: 'ok', id: 8, result: { op: 'fwBlock', offset: 160 } },
  { type: 'ok', id: 9, result: { op: 'fwFinish', outcome: 'install-failed', version } },
];

describe('firmware link messages', () => {
  it('each survives a round trip, and re-encodes to the same bytes', () => {
    for (const m of messages) {
      const wire = encodeMessage(m);
      const back = decodeMessage(wire);
      expect(back, m.type).toEqual({ ok: true, value: m });
      if (back.ok) expect(encodeMessage(back.value)).toEqual(wire);
    }
  });

  it('their type codes come from the top of the request range, apart from the other operations', () => {
    expect(['fwStatus', 'fwBegin', 'fwBlock', 'fwFinish'].map((op) => operationCode(op as 'fwStatus'))).toEqual([
      0x2c, 0x2d, 0x2e, 0x2f,
    ]);
    expect(operationOfCode(0x2e)).toBe('fwBlock');
    expect(operationOfCode(0x30)).toBeUndefined();
    expect(OPERATIONS.length + 1).toBeLessThan(0x2c);
    expect(encodeMessage({ type: 'fwBlock', id: 1, offset: 0, data: bytes(1) })[1]).toBe(0x2e);
  });

  it('a full block, sealed, fits one ZigBee link-cluster fragment (one 802.15.4 frame)', () => {
    const block = encodeMessage({
      type: 'fwBlock',
      id: 0xffff_ffff,
      offset: 0xffff_ffff,
      data: bytes(FIRMWARE_BLOCK_LEN),
    });
    // Bearer kind byte, frame header, the message, the AEAD tag.
    expect(1 + FRAME_HEADER_LEN + block.length + TAGLEN).toBeLessThanOrEqual(FRAGMENT_DATA_SIZE);
  });

  it('a block over the limit, an empty block, a staged offset without an image, a bad outcome are refused both ways', () => {
    expect(() => encodeMessage({ type: 'fwBlock', id: 1, offset: 0, data: bytes(FIRMWARE_BLOCK_LEN + 1) })).toThrow(
      /data/,
    );
    expect(() => encodeMessage({ type: 'fwBlock', id: 1, offset: 0, data: bytes(0) })).toThrow(/data/);
    expect(() =>
      encodeMessage({ type: 'ok', id: 1, result: { op: 'fwStatus', model: 'm', version, staged: null, offset: 3 } }),
    ).toThrow(/offset/);
    const over = encodeMessage({ type: 'fwBlock', id: 1, offset: 0, data: bytes(FIRMWARE_BLOCK_LEN) });
    over[10] = FIRMWARE_BLOCK_LEN + 1;
    expect(decodeMessage(over)).toMatchObject({ ok: false, error: { code: 'invalid-field' } });
    const outcome = encodeMessage({ type: 'ok', id: 1, result: { op: 'fwBegin', outcome: 'accepted', offset: 0 } });
    outcome[6] = 200;
    expect(decodeMessage(outcome)).toMatchObject({ ok: false, error: { code: 'invalid-field' } });
    const trailing = new Uint8Array([...encodeMessage({ type: 'fwFinish', id: 1 }), 0]);
    expect(decodeMessage(trailing)).toMatchObject({ ok: false, error: { code: 'trailing-bytes' } });
    const manifest = encodeMessage({ type: 'fwBegin', id: 1, manifest: bytes(10), signature: bytes(64) });
    expect(decodeMessage(manifest.subarray(0, manifest.length - 1))).toMatchObject({
      ok: false,
      error: { code: 'truncated' },
    });
  });
});
