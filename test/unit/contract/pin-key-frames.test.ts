import { describe, expect, it } from 'vitest';
import { HubError } from '../../../src/base/errors.js';
import { decodeMessage, encodeMessage } from '../../../src/contract/link-codec.js';
import { isFromLock, type LinkMessage, OPERATIONS } from '../../../src/contract/link-messages.js';
import { TAGLEN } from '../../../src/link/noise.js';
import { FRAME_HEADER_LEN } from '../../../src/link/transport.js';

/**
 * The site PIN key on the link (docs/link-protocol.md, "setPinKey"): the request, its answer and
 * the overlap credential, byte for byte, and every malformed form refused without a throw.
 */

const KEY = new Uint8Array(32).map((_, i) => i + 1);
const V1 = new Uint8Array(32).fill(0xaa);
const V0 = new Uint8Array(32).fill(0xbb);
const install: LinkMessage = { type: 'setPinKey', id: 7, version: 3, key: KEY, previousUntil: 1_767_225_600_000 };
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('setPinKey frames', () => {
  it('is request type 0x0A: version u32, key 32 bytes, previousUntil u64 — 50 bytes, 75 on the air sealed', () => {
    expect(OPERATIONS.indexOf('setPinKey') + 1).toBe(0x0a);
    const bytes = encodeMessage(install);
    expect(hex(bytes)).toBe(
      `010a00000007` + `00000003` + hex(KEY) + (1_767_225_600_000).toString(16).padStart(16, '0'),
    );
    expect(bytes.length).toBe(50);
    // One 802.15.4 frame: the transport frame (whose version byte is the bearer message's kind) stays within 80 bytes.
    expect(FRAME_HEADER_LEN + bytes.length + TAGLEN).toBe(75);
    expect(decodeMessage(bytes)).toEqual({ ok: true, value: install });
    expect(isFromLock(install)).toBe(false);
  });

  it('the answer carries the versions held (0 = none): type 0x8A, 14 bytes', () => {
    const ok: LinkMessage = { type: 'ok', id: 7, result: { op: 'setPinKey', version: 3, previous: 2 } };
    const bytes = encodeMessage(ok);
    expect(hex(bytes)).toBe('018a000000070000000300000002');
    expect(decodeMessage(bytes)).toEqual({ ok: true, value: ok });
    const none: LinkMessage = { type: 'ok', id: 7, result: { op: 'setPinKey', version: 3, previous: 0 } };
    expect(decodeMessage(encodeMessage(none))).toEqual({ ok: true, value: none });
    expect(isFromLock(ok)).toBe(true);
  });

  it('a PIN with its previous-key verifier is credential kind 3 (pinOverlap), 65 bytes; a plain PIN is unchanged', () => {
    const both: LinkMessage = { type: 'access', id: 9, credential: { kind: 'pin', verifier: V1, previous: V0 } };
    const bytes = encodeMessage(both);
    expect(hex(bytes.subarray(0, 7))).toBe('0130000000090' + '3');
    expect(bytes.length).toBe(6 + 1 + 64);
    expect(decodeMessage(bytes)).toEqual({ ok: true, value: both });
    const one: LinkMessage = { type: 'access', id: 9, credential: { kind: 'pin', verifier: V1 } };
    expect(hex(encodeMessage(one).subarray(0, 7))).toBe('0130000000090' + '0');
    expect(decodeMessage(encodeMessage(one))).toEqual({ ok: true, value: one });
  });

  it('refuses malformed frames with a code and never throws: truncated, oversized, wrong message version, version 0, bad answers', () => {
    const bytes = encodeMessage(install);
    const code = (b: Uint8Array) => {
      const r = decodeMessage(b);
      return r.ok ? 'accepted' : r.error.code;
    };
    for (let n = 0; n < bytes.length; n++) expect(code(bytes.subarray(0, n))).toBe('truncated');
    expect(code(new Uint8Array([...bytes, 0]))).toBe('trailing-bytes');
    expect(code(new Uint8Array(3000).fill(1))).toBe('oversize');
    const wrongVersion = bytes.slice();
    wrongVersion[0] = 2;
    expect(code(wrongVersion)).toBe('version');
    const zero = bytes.slice();
    zero.set([0, 0, 0, 0], 6);
    expect(code(zero)).toBe('invalid-field');
    const hugeTime = bytes.slice();
    hugeTime.set([0xff, 0xff, 0xff, 0xff], 42);
    expect(code(hugeTime)).toBe('invalid-field');
    // An answer whose previous version is not below the current one.
    expect(code(Buffer.from('018a000000070000000300000003', 'hex'))).toBe('invalid-field');
    // An overlap credential cut after its first verifier.
    const both = encodeMessage({ type: 'access', id: 9, credential: { kind: 'pin', verifier: V1, previous: V0 } });
    expect(code(both.subarray(0, both.length - 1))).toBe('truncated');
    // Nothing refused names the key.
    const r = decodeMessage(new Uint8Array([...bytes, 0]));
    expect(JSON.stringify(r)).not.toContain(hex(KEY));
  });

  it('refuses to encode a key that is not 32 bytes, version 0 or above 2^32−1 (a caller bug, frame.invalid)', () => {
    const bad = [
      { ...install, key: new Uint8Array(31) },
      { ...install, key: new Uint8Array(33) },
      { ...install, version: 0 },
      { ...install, version: 2 ** 32 },
      { ...install, previousUntil: -1 },
    ] as LinkMessage[];
    for (const m of bad) {
      expect(() => encodeMessage(m)).toThrow(HubError);
      try {
        encodeMessage(m);
      } catch (e) {
        expect((e as HubError).code).toBe('frame.invalid');
        expect((e as Error).message).not.toContain(hex(KEY));
      }
    }
  });
});
