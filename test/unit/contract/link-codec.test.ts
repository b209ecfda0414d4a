import { createHash } from 'node:crypto';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { describe, expect, it } from 'vitest';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import { type DecodeResult, decodeMessage, encodeMessage } from '../../../src/contract/link-codec.js';
import {
  isFromLock,
  type LinkMessage,
  type LockEvent,
  type LockState,
  MAX_EVENTS_PER_BATCH,
  MAX_LINK_MESSAGE_LEN,
  MAX_OFFLINE_PER_REQUEST,
  MAX_OPEN_MS,
  type OfflineItem,
  OPERATIONS,
} from '../../../src/contract/link-messages.js';
import { offlineListDigest, takeOfflineRequest, wireWindow } from '../../../src/contract/link-offline.js';

const state: LockState = {
  bolt: 'unlocked',
  mode: 'office',
  doorOpen: true,
  batteryPercent: 87,
  lastSeq: 4_000_000_000,
  time: 1_767_225_600_123,
};

const events: LockEvent[] = [
  { seq: 1, at: 1_767_225_600_000, type: 'opened', by: 'pin', credentialId: 'user-42:pin' },
  { seq: 2, at: 1_767_225_600_500, type: 'opened', by: 'inside', credentialId: null },
  { seq: 3, at: 1_767_225_601_000, type: 'denied', reason: 'outside-schedule', credentialId: 'tag:04A1B2C3' },
  { seq: 4, at: 1_767_225_602_000, type: 'denied', reason: 'lockout', credentialId: null },
  { seq: 5, at: 1_767_225_603_000, type: 'door', open: true },
  { seq: 6, at: 1_767_225_604_000, type: 'door', open: false },
  { seq: 7, at: 1_767_225_605_000, type: 'battery', percent: 100 },
  { seq: 0xffff_ffff, at: Number.MAX_SAFE_INTEGER, type: 'tamper' },
];

const messages: LinkMessage[] = [
  { type: 'open', id: 1, durationMs: 3000 },
  { type: 'open', id: 0xffff_ffff, durationMs: MAX_OPEN_MS },
  { type: 'lock', id: 2 },
  { type: 'setMode', id: 3, mode: 'normal' },
  { type: 'setMode', id: 3, mode: 'office' },
  { type: 'setMode', id: 3, mode: 'locked' },
  { type: 'getState', id: 4 },
  { type: 'getEvents', id: 5, sinceSeq: 0 },
  { type: 'ackEvents', id: 6, uptoSeq: 17 },
  { type: 'setTime', id: 7, unixMs: 1_767_225_600_000 },
  { type: 'detach', id: 8 },
  { type: 'setPinKey', id: 10, version: 1, key: new Uint8Array(32).fill(3), previousUntil: 0 },
  { type: 'ok', id: 10, result: { op: 'setPinKey', version: 1, previous: 0 } },
  {
    type: 'setOffline',
    id: 9,
    reset: true,
    remove: ['old-tag'],
    upsert: [
      {
        kind: 'pin',
        credentialId: 'pin-1',
        digest: new Uint8Array(32).fill(1),
        windows: [
          { from: 0, until: Number.MAX_SAFE_INTEGER },
          { from: 5_000, until: 6_000 },
        ],
      },
      {
        kind: 'tag',
        credentialId: 'tag-1',
        digest: new Uint8Array(32).fill(2),
        windows: [{ from: 1_000, until: 2_000 }],
      },
    ],
  },
  { type: 'ok', id: 9, result: { op: 'setOffline', held: 2, capacity: 500, digest: new Uint8Array(32).fill(5) } },
  { type: 'access', id: 1, credential: { kind: 'pin', verifier: new Uint8Array(32).fill(3) } },
  { type: 'access', id: 2, credential: { kind: 'tag', hash: new Uint8Array(32).fill(4) } },
  {
    type: 'access',
    id: 3,
    credential: {
      kind: 'digitalKey',
      challenge: new Uint8Array(32).fill(5),
      presentation: new Uint8Array(1800).fill(0x7b),
    },
  },
  { type: 'accessAnswer', id: 3, grant: true, reason: 'granted', credentialId: 'key-1' },
  { type: 'accessAnswer', id: 4, grant: false, reason: 'unknown-credential', credentialId: null },
  { type: 'ok', id: 1, result: { op: 'open', state, events: [] } },
  { type: 'ok', id: 1, result: { op: 'open', state, events: events.slice(0, 4) } },
  { type: 'open', id: 1, durationMs: 3000, ack: 1 },
  { type: 'getEvents', id: 5, sinceSeq: 3, ack: 0xffff_ffff },
  { type: 'ok', id: 2, result: { op: 'lock', state: { ...state, bolt: 'locked', doorOpen: false } } },
  { type: 'ok', id: 3, result: { op: 'setMode', state: { ...state, mode: 'locked' } } },
  { type: 'ok', id: 4, result: { op: 'getState', state: { ...state, batteryPercent: 0, lastSeq: 0, time: 0 } } },
  { type: 'ok', id: 5, result: { op: 'getEvents', events, more: true } },
  { type: 'ok', id: 5, result: { op: 'getEvents', events: [], more: false } },
  { type: 'ok', id: 6, result: { op: 'ackEvents' } },
  { type: 'ok', id: 7, result: { op: 'setTime' } },
  { type: 'ok', id: 8, result: { op: 'detach' } },
  ...(['bad-request', 'unsupported', 'busy', 'jammed', 'battery-critical', 'not-attached', 'internal'] as const).map(
    (code, i): LinkMessage => ({ type: 'error', id: 10 + i, code }),
  ),
  ...events.map((event): LinkMessage => ({ type: 'event', event })),
];

function rejection(result: DecodeResult): string {
  return result.ok ? 'accepted' : result.error.code;
}

function decodeHex(hex: string): DecodeResult {
  return decodeMessage(hexToBytes(hex));
}

describe('link application frames', () => {
  it('every request, result, error and event survives a round trip unchanged', () => {
    const kinds = new Set<string>();
    for (const m of messages) {
      const bytes = encodeMessage(m);
      expect(bytes.length).toBeLessThanOrEqual(MAX_LINK_MESSAGE_LEN);
      expect(decodeMessage(bytes)).toEqual({ ok: true, value: m });
      kinds.add(m.type === 'ok' ? `ok:${m.result.op}` : m.type === 'event' ? `event:${m.event.type}` : m.type);
      if (m.type === 'access') kinds.add(`access:${m.credential.kind}`);
    }
    expect([...kinds].sort()).toEqual(
      [
        'access',
        'accessAnswer',
        ...['pin', 'tag', 'digitalKey'].map((k) => `access:${k}`),
        ...[
          'open',
          'lock',
          'setMode',
          'getState',
          'getEvents',
          'ackEvents',
          'setTime',
          'detach',
          'setOffline',
          'setPinKey',
        ].flatMap((op) => [op, `ok:${op}`]),
        'error',
        ...['opened', 'denied', 'door', 'battery', 'tamper'].map((t) => `event:${t}`),
      ].sort(),
    );
  });

  it('the wire format is the documented one', () => {
    expect(bytesToHex(encodeMessage({ type: 'open', id: 7, durationMs: 3000 }))).toBe('01010000000700000bb8');
    expect(bytesToHex(encodeMessage({ type: 'setMode', id: 1, mode: 'office' }))).toBe('01030000000101');
    expect(bytesToHex(encodeMessage({ type: 'error', id: 9, code: 'jammed' }))).toBe('01c00000000903');
    expect(bytesToHex(encodeMessage({ type: 'ok', id: 9, result: { op: 'detach' } }))).toBe('018800000009');
    expect(
      bytesToHex(encodeMessage({ type: 'event', event: { seq: 2, at: 2 ** 32 + 1, type: 'door', open: true } })),
    ).toBe('014000000000' + '02' + '00000002' + '0000000100000001' + '01');
  });

  it('the offline list digest is SHA-256 of the items in credential-id order, each as a setOffline upsert carries it', () => {
    const a: OfflineItem = {
      kind: 'tag',
      credentialId: 'b-tag',
      digest: new Uint8Array(32).fill(2),
      windows: [{ from: 1_000, until: 2_000 }],
    };
    const b: OfflineItem = {
      kind: 'pin',
      credentialId: 'a-pin',
      digest: new Uint8Array(32).fill(1),
      windows: [
        { from: 10_000, until: 20_000 },
        { from: 30_000, until: 40_000 },
      ],
    };
    // The items' bytes as the wire has them: a setOffline with no removals, after its 9-byte head.
    const wire = encodeMessage({ type: 'setOffline', id: 1, reset: false, remove: [], upsert: [b, a] }).slice(9);
    expect(bytesToHex(offlineListDigest([a, b]))).toBe(createHash('sha256').update(wire).digest('hex'));
    expect(offlineListDigest([b, a])).toEqual(offlineListDigest([a, b]));
    expect(bytesToHex(offlineListDigest([]))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const moved = { ...b, windows: [{ from: 10_000, until: 21_000 }, b.windows[1] ?? { from: 30_000, until: 40_000 }] };
    expect(offlineListDigest([a, moved])).not.toEqual(offlineListDigest([a, b]));
    expect(offlineListDigest([a, { ...b, kind: 'tag' }])).not.toEqual(offlineListDigest([a, b]));
    expect(offlineListDigest([a])).not.toEqual(offlineListDigest([a, b]));
    expect(() => offlineListDigest([{ ...a, windows: [] }])).toThrow(HubError);
  });

  it('requests are told apart from what only a lock may send', () => {
    const fromLock = messages.filter(isFromLock).map((m) => m.type);
    expect(new Set(fromLock)).toEqual(new Set(['ok', 'error', 'event', 'access']));
    const toLock = messages.filter((m) => !isFromLock(m)).map((m) => m.type);
    expect(new Set(toLock)).toEqual(new Set([...OPERATIONS, 'accessAnswer']));
  });

  it('a full batch of the largest events fits the frame limit', () => {
    const big: LockEvent = { seq: 1, at: 0, type: 'opened', by: 'tag', credentialId: 'x'.repeat(64) };
    const full: LinkMessage = {
      type: 'ok',
      id: 1,
      result: { op: 'getEvents', events: Array(MAX_EVENTS_PER_BATCH).fill(big), more: true },
    };
    expect(decodeMessage(encodeMessage(full)).ok).toBe(true);
  });

  describe('decoding rejects, with a typed error', () => {
    const open = bytesToHex(encodeMessage({ type: 'open', id: 7, durationMs: 3000 }));

    it('a truncated message', () => {
      for (let n = 0; n < open.length / 2; n++) expect(rejection(decodeHex(open.slice(0, 2 * n)))).toBe('truncated');
    });

    it('trailing bytes after a complete message', () => {
      expect(rejection(decodeHex(open + '00'))).toBe('trailing-bytes');
      expect(rejection(decodeHex('010400000004ff'))).toBe('trailing-bytes');
    });

    it('a wrong version', () => {
      expect(rejection(decodeHex('02' + open.slice(2)))).toBe('version');
      expect(rejection(decodeHex('00' + open.slice(2)))).toBe('version');
    });

    it('an unknown message type', () => {
      for (const type of ['00', '1f', '32', '3f', '70', '71', '7f', '80', '9f', 'c1', 'ff']) {
        expect(rejection(decodeHex('01' + type + '00000001'))).toBe('unknown-type');
      }
    });

    it('access answers whose grant and reason disagree, and credentials of the wrong size', () => {
      // accessAnswer id 1: grant=1 with reason 1 (unknown-credential); grant=0 with reason 0 (granted).
      expect(rejection(decodeHex('0131000000010101' + '00'))).toBe('invalid-field');
      expect(rejection(decodeHex('0131000000010000' + '00'))).toBe('invalid-field');
      expect(() =>
        encodeMessage({ type: 'accessAnswer', id: 1, grant: true, reason: 'revoked', credentialId: null }),
      ).toThrow(HubError);
      // access id 1, pin, 31 bytes of verifier.
      expect(rejection(decodeHex('013000000001' + '00' + '11'.repeat(31)))).toBe('truncated');
      // digital key with a presentation length of 0 and of 1801.
      expect(rejection(decodeHex('013000000001' + '02' + '22'.repeat(32) + '0000'))).toBe('invalid-field');
      expect(rejection(decodeHex('013000000001' + '02' + '22'.repeat(32) + '0709' + '7b'.repeat(1801)))).toBe(
        'invalid-field',
      );
      expect(() =>
        encodeMessage({
          type: 'access',
          id: 1,
          credential: { kind: 'tag', hash: new Uint8Array(16) },
        }),
      ).toThrow(HubError);
    });

    /** A one-credential offline item with these windows, and a setOffline with nothing else. */
    const offlineItem = (windows: { from: number; until: number }[]): OfflineItem => ({
      kind: 'tag',
      credentialId: 't',
      digest: new Uint8Array(32),
      windows,
    });
    const setOffline = { type: 'setOffline' as const, id: 1, reset: false, remove: [] };

    it('offline updates with an empty or inverted window, or too many entries', () => {
      const item = offlineItem;
      const base = setOffline;
      expect(() => encodeMessage({ ...base, upsert: [item([])] })).toThrow(HubError);
      expect(() => encodeMessage({ ...base, upsert: [item([{ from: 5_000, until: 5_000 }])] })).toThrow(HubError);
      expect(() =>
        encodeMessage({
          ...base,
          upsert: Array.from({ length: MAX_OFFLINE_PER_REQUEST + 1 }, () => item([{ from: 0, until: 1_000 }])),
        }),
      ).toThrow(HubError);
      const good = bytesToHex(encodeMessage({ ...base, upsert: [item([{ from: 1_000, until: 9_000 }])] }));
      // Swap from and until on the wire: 1 → 9 becomes 9 → 1.
      const swapped = good.replace('0000000100000009', '0000000900000001');
      expect(swapped).not.toBe(good);
      expect(rejection(decodeHex(swapped))).toBe('invalid-field');
    });

    it('offline windows travel as whole seconds (u32): a bound between seconds, negative or past 2106 is refused', () => {
      const item = offlineItem;
      const base = setOffline;
      const encode = (from: number, until: number) => () =>
        encodeMessage({ ...base, upsert: [item([{ from, until }])] });
      expect(encode(1_500, 9_000)).toThrow(/window\.from: must be whole seconds/);
      expect(encode(1_000, 8_999)).toThrow(/window\.until: must be whole seconds/);
      expect(encode(-1_000, 9_000)).toThrow(HubError);
      expect(encode(0xffff_ffff * 1000, Number.MAX_SAFE_INTEGER)).toThrow(/window\.from/);
      expect(encode(0, 0xffff_ffff * 1000)).toThrow(/window\.until/);
      // The last second a bound can name, and the open end (0xFFFFFFFF on the wire).
      const last = 0xffff_fffe * 1000;
      const wire = bytesToHex(encodeMessage({ ...base, upsert: [item([{ from: last - 1_000, until: last }])] }));
      expect(wire.endsWith('01fffffffdfffffffe')).toBe(true);
      const open = encodeMessage({ ...base, upsert: [item([{ from: 2_000, until: Number.MAX_SAFE_INTEGER }])] });
      expect(bytesToHex(open).endsWith('0100000002ffffffff')).toBe(true);
      const decoded = decodeMessage(open);
      expect(decoded.ok && decoded.value.type === 'setOffline' && decoded.value.upsert[0]?.windows).toEqual([
        { from: 2_000, until: Number.MAX_SAFE_INTEGER },
      ]);
      // A start of 0xFFFFFFFF (no second a window can start at) is refused on the way in.
      const bad = bytesToHex(open).replace(/00000002ffffffff$/, 'ffffffffffffffff');
      expect(rejection(decodeHex(bad))).toBe('invalid-field');
    });

    it('takeOfflineRequest fills each setOffline up to its counts and its size, removals first, in order', () => {
      const id = (n: number, len: number) => `${n}`.padStart(len, 'x');
      const item = (n: number, len: number, windows: number): OfflineItem => ({
        kind: 'pin',
        credentialId: id(n, len),
        digest: new Uint8Array(32).fill(n),
        windows: Array.from({ length: windows }, (_, w) => ({ from: (2 * w + 1) * 1000, until: (2 * w + 2) * 1000 })),
      });
      const split = (remove: string[], upsert: OfflineItem[]) => {
        const r = [...remove];
        const u = [...upsert];
        const requests: { remove: string[]; upsert: OfflineItem[] }[] = [];
        while (r.length > 0 || u.length > 0) requests.push(takeOfflineRequest(r, u));
        return requests;
      };
      const fits = (req: { remove: string[]; upsert: OfflineItem[] }) =>
        encodeMessage({ type: 'setOffline', id: 1, ack: 1, reset: true, ...req }).length;
      // A site's usual change: a few removals, then upserts eight at a time.
      const small = Array.from({ length: 20 }, (_, n) => item(n, 36, 2));
      expect(split(['a', 'b', 'c'], small).map((q) => [q.remove.length, q.upsert.length])).toEqual([
        [3, 8],
        [0, 8],
        [0, 4],
      ]);
      // More removals than one request takes: no upsert rides until every removal has gone.
      expect(
        split(
          Array.from({ length: 30 }, (_, n) => id(n, 8)),
          small.slice(0, 3),
        ).map((q) => [q.remove.length, q.upsert.length]),
      ).toEqual([
        [24, 0],
        [6, 3],
      ]);
      // The largest there are (64-character ids, 16 windows each) after 23 long removals: too much for
      // one message by count alone (23 × 65 + 8 × 227 bytes); each request still encodes, nothing is
      // lost or reordered.
      const removals = Array.from({ length: 23 }, (_, n) => id(n, 64));
      const big = Array.from({ length: 9 }, (_, n) => item(n, 64, 16));
      const requests = split(removals, big);
      expect(requests.map((q) => [q.remove.length, q.upsert.length])).toEqual([
        [23, 2],
        [0, 7],
      ]);
      for (const q of requests) expect(fits(q)).toBeLessThanOrEqual(MAX_LINK_MESSAGE_LEN);
      expect(requests.flatMap((q) => q.remove)).toEqual(removals);
      expect(requests.flatMap((q) => q.upsert)).toEqual(big);
      // An item the wire cannot carry is refused as the encoder refuses it (frame.invalid), naming the field.
      const unsendable = () => takeOfflineRequest([], [{ ...item(0, 8, 1), windows: [] }]);
      expect(unsendable).toThrow(HubError);
      expect(unsendable).toThrow(/Cannot send the offline list: upsert\.windows/);
      // One request of the largest items only: the counts' limit, and it fits.
      expect(split([], big).map((q) => q.upsert.length)).toEqual([8, 1]);
      expect(fits({ remove: [], upsert: big.slice(0, 8) })).toBeLessThanOrEqual(MAX_LINK_MESSAGE_LEN);
    });

    it('wireWindow cuts a window to whole seconds inside it, keeps an open end open and drops what is left of nothing', () => {
      expect(wireWindow(1_001, 9_999)).toEqual({ from: 2_000, until: 9_000 });
      expect(wireWindow(1_000, 9_000)).toEqual({ from: 1_000, until: 9_000 });
      expect(wireWindow(-5, Number.MAX_SAFE_INTEGER)).toEqual({ from: 0, until: Number.MAX_SAFE_INTEGER });
      expect(wireWindow(1_200, 1_900)).toBeUndefined();
      expect(wireWindow(1_200, 2_100)).toBeUndefined();
      // A finite end past 2106 ends at the last second the wire can name (sooner, never later).
      expect(wireWindow(0, 5e15)).toEqual({ from: 0, until: 0xffff_fffe * 1000 });
      expect(wireWindow(0xffff_ffff * 1000, Number.MAX_SAFE_INTEGER)).toBeUndefined();
    });

    it('a message longer than the frame limit', () => {
      expect(rejection(decodeMessage(new Uint8Array(MAX_LINK_MESSAGE_LEN + 1).fill(1)))).toBe('oversize');
    });

    it('out-of-range or unknown field values', () => {
      const cases: [string, string][] = [
        ['01010000000700000000', 'durationMs'], // open for 0 ms
        ['0101000000070009eb11', 'durationMs'], // open for MAX_OPEN_MS + 1
        ['01010000000000000bb8', 'id'], // request id 0
        ['01030000000103', 'mode'], // unknown mode
        ['01c00000000907', 'code'], // unknown error code
        ['01c00000000003', 'id'], // response to request id 0
        ['0107000000010020000000000000', 'unixMs'], // setTime beyond 2^53-1
        ['014000000001' + '02' + '00000002' + '0000000000000000' + '01', 'id'], // pushed event with a request id
        ['014000000000' + '02' + '00000000' + '0000000000000000' + '01', 'event.seq'], // event sequence 0
        ['014000000000' + '02' + '00000002' + '0000000000000000' + '02', 'event.open'], // boolean 2
        ['014000000000' + '03' + '00000002' + '0000000000000000' + '65', 'event.percent'], // battery 101 %
        ['014000000000' + '05' + '00000002' + '0000000000000000', 'event.type'], // unknown event type
        ['014000000000' + '00' + '00000002' + '0000000000000000' + '06' + '00', 'event.by'], // unknown open method
        ['014000000000' + '00' + '00000002' + '0000000000000000' + '00' + '41' + '78'.repeat(65), 'event.credentialId'], // credential id too long
        ['014000000000' + '00' + '00000002' + '0000000000000000' + '00' + '02' + '7820', 'event.credentialId'], // credential id with a space
        ['018500000005' + '11' + '00', 'events'], // 17 events in one batch
        ['018400000004' + '02000000' + '0000000000000000' + '0000000000000000', 'state.bolt'], // unknown bolt state
      ];
      for (const [hex, field] of cases) {
        const result = decodeHex(hex);
        expect(result.ok ? 'accepted' : [result.error.code, result.error.message.split(':')[0]]).toEqual([
          'invalid-field',
          field,
        ]);
      }
    });
  });

  it('encoding refuses values the decoder would reject', () => {
    const bad: unknown[] = [
      { type: 'open', id: 1, durationMs: 0 },
      { type: 'open', id: 1, durationMs: 1.5 },
      { type: 'open', id: 0, durationMs: 1000 },
      { type: 'open', id: 2 ** 32, durationMs: 1000 },
      { type: 'setMode', id: 1, mode: 'party' },
      { type: 'setTime', id: 1, unixMs: -1 },
      { type: 'unlock', id: 1 },
      { type: 'ok', id: 1, result: { op: 'getState', state: { ...state, batteryPercent: 101 } } },
      { type: 'ok', id: 1, result: { op: 'getEvents', events: Array(17).fill(events[0]), more: false } },
      { type: 'event', event: { ...events[0], credentialId: '' } },
      { type: 'event', event: { ...events[0], credentialId: 'é' } },
      { type: 'event', event: { ...events[0], seq: 0 } },
      { type: 'error', id: 1, code: 'oops' },
    ];
    for (const m of bad) {
      expect(() => encodeMessage(m as LinkMessage)).toThrow(HubError);
    }
  });

  describe('fuzzing', () => {
    const random = new SeededRandom('frames fuzz');
    const valid = messages.map(encodeMessage);

    /** Decoding never throws; anything it accepts is the one canonical encoding of what it returns. */
    function probe(bytes: Uint8Array): DecodeResult {
      let result: DecodeResult | undefined;
      expect(() => {
        result = decodeMessage(bytes);
      }).not.toThrow();
      if (!result) throw new Error('no result');
      if (result.ok) expect(bytesToHex(encodeMessage(result.value))).toBe(bytesToHex(bytes));
      else expect(result.error.message).not.toBe('undecodable message');
      return result;
    }

    it('random bytes never make decode throw, and are rejected', () => {
      let accepted = 0;
      for (let i = 0; i < 3000; i++) {
        const bytes = random.bytes(random.int(80));
        // Half the cases get a valid version and type so the fuzz reaches the bodies.
        if (i % 2 === 0 && bytes.length >= 2) {
          bytes[0] = 1;
          bytes[1] = (valid[random.int(valid.length)] ?? [])[1] ?? 0;
        }
        if (probe(bytes).ok) accepted++;
      }
      expect(accepted).toBeLessThan(30);
    });

    it('mutations of valid messages never make decode throw', () => {
      let rejected = 0;
      for (let i = 0; i < 4000; i++) {
        const original = valid[random.int(valid.length)]!;
        let bytes = original.slice();
        for (let k = 0; k <= random.int(3); k++) {
          const at = random.int(bytes.length + 1);
          switch (random.int(4)) {
            case 0:
              if (at < bytes.length) bytes[at] = (bytes[at] ?? 0) ^ (1 << random.int(8));
              break;
            case 1:
              bytes = Uint8Array.from([...bytes.subarray(0, at), random.int(256), ...bytes.subarray(at)]);
              break;
            case 2:
              bytes = Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
              break;
            default:
              bytes = bytes.subarray(0, at);
          }
        }
        if (!probe(bytes).ok) rejected++;
      }
      expect(rejected).toBeGreaterThan(2000);
    });

    it('non-byte input is rejected, not thrown on', () => {
      for (const junk of [null, undefined, 'open', 42, {}, [1, 1, 0, 0, 0, 1]]) {
        expect(rejection(decodeMessage(junk as unknown as Uint8Array))).toBe('invalid-field');
      }
    });
  });
});
