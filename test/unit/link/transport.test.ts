import { describe, expect, it } from 'vitest';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import { createHandshake, generateKeyPair, LINK_PROLOGUE } from '../../../src/link/noise.js';
import {
  FRAME_HEADER_LEN,
  LINK_VERSION,
  MAX_FRAME_LEN,
  MAX_PAYLOAD_LEN,
  openSealedChannel,
  REJECT_REASONS,
  type SealedChannel,
  type SealedChannelOptions,
} from '../../../src/link/transport.js';
import { refusal } from '../../helpers/refusal.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const hubKeys = generateKeyPair(new SeededRandom('hub'));
const lockKeys = generateKeyPair(new SeededRandom('lock'));

/** A hub and a lock after a KK handshake, as on every connection after attach. */
function session(seed: string, options?: SealedChannelOptions): { hub: SealedChannel; lock: SealedChannel } {
  const random = new SeededRandom(seed);
  const prologue = new TextEncoder().encode(LINK_PROLOGUE);
  const hub = createHandshake({ pattern: 'KK', initiator: true, prologue, s: hubKeys, rs: lockKeys.publicKey, random });
  const lock = createHandshake({
    pattern: 'KK',
    initiator: false,
    prologue,
    s: lockKeys,
    rs: hubKeys.publicKey,
    random,
  });
  lock.readMessage(hub.writeMessage());
  hub.readMessage(lock.writeMessage());
  return { hub: openSealedChannel(hub, options), lock: openSealedChannel(lock, options) };
}

function counterOf(frame: Uint8Array): bigint {
  return new DataView(frame.buffer, frame.byteOffset).getBigUint64(1, false);
}

function opened(channel: SealedChannel, frame: Uint8Array): string {
  const result = channel.open(frame);
  if (!result.ok) throw new Error(`expected the frame to open, got ${result.error}`);
  return dec(result.value.payload);
}

function rejected(channel: SealedChannel, frame: Uint8Array): string {
  const result = channel.open(frame);
  return result.ok ? 'accepted' : result.error;
}

function seal(channel: SealedChannel, count: number, prefix = 'f'): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => channel.seal(enc(`${prefix}${i}`)));
}

describe('sealed link transport', () => {
  it('a frame sealed by one side opens on the other, in both directions', () => {
    const { hub, lock } = session('both ways');
    expect(opened(lock, hub.seal(enc('open 3000')))).toBe('open 3000');
    expect(opened(hub, lock.seal(enc('ok')))).toBe('ok');
    expect(opened(lock, hub.seal(new Uint8Array(0)))).toBe('');
  });

  it('a frame is version, big-endian counter, then ciphertext with tag; the payload never shows in clear', () => {
    const { hub } = session('layout');
    const payload = enc('a recognisable plaintext');
    const frame = hub.seal(payload);
    expect(frame.length).toBe(FRAME_HEADER_LEN + payload.length + 16);
    expect(frame[0]).toBe(LINK_VERSION);
    expect(Buffer.from(frame).includes(Buffer.from(payload))).toBe(false);
  });

  it('the sender counter strictly increases from zero', () => {
    const { hub } = session('counter');
    expect(seal(hub, 5).map(counterOf)).toEqual([0n, 1n, 2n, 3n, 4n]);
  });

  it('a replayed frame is rejected and counted', () => {
    const { hub, lock } = session('replay');
    const frame = hub.seal(enc('open'));
    expect(opened(lock, frame)).toBe('open');
    expect(rejected(lock, frame)).toBe('replay');
    expect(rejected(lock, frame)).toBe('replay');
    expect(lock.stats().rejected.replay).toBe(2);
    expect(lock.stats().received).toBe(1);
  });

  it('a replayed frame is rejected after later frames have arrived', () => {
    const { hub, lock } = session('late replay');
    const frames = seal(hub, 10);
    for (const f of frames) opened(lock, f);
    expect(rejected(lock, frames[3]!)).toBe('replay');
  });

  it('frames reordered within the window are each accepted once', () => {
    const { hub, lock } = session('reorder');
    const frames = seal(hub, 6);
    const order = [5, 0, 3, 1, 4, 2];
    expect(order.map((i) => opened(lock, frames[i]!))).toEqual(order.map((i) => `f${i}`));
    expect(order.map((i) => rejected(lock, frames[i]!))).toEqual(order.map(() => 'replay'));
  });

  it('a frame older than the window is rejected as too old and counted', () => {
    const { hub, lock } = session('too old', { window: 64 });
    const frames = seal(hub, 101);
    opened(lock, frames[100]!);
    expect(opened(lock, frames[37]!)).toBe('f37'); // 63 behind: the oldest still inside
    expect(rejected(lock, frames[36]!)).toBe('too-old'); // 64 behind: just outside
    expect(rejected(lock, frames[0]!)).toBe('too-old');
    expect(lock.stats().rejected['too-old']).toBe(2);
  });

  it('a large forward jump forgets the old window without reopening it', () => {
    const { hub, lock } = session('jump', { window: 8 });
    const frames = seal(hub, 40);
    opened(lock, frames[0]!);
    opened(lock, frames[39]!);
    expect(rejected(lock, frames[0]!)).toBe('too-old');
    expect(opened(lock, frames[32]!)).toBe('f32');
    expect(rejected(lock, frames[39]!)).toBe('replay');
  });

  it('a truncated frame is rejected and counted', () => {
    const { hub, lock } = session('truncated');
    const frame = hub.seal(enc('open'));
    for (const length of [0, 1, FRAME_HEADER_LEN, FRAME_HEADER_LEN + 15]) {
      expect(rejected(lock, frame.subarray(0, length))).toBe('truncated');
    }
    // Cut inside the ciphertext: long enough to parse, but the tag no longer matches.
    expect(rejected(lock, frame.subarray(0, frame.length - 1))).toBe('tampered');
    expect(lock.stats().rejected.truncated).toBe(4);
    expect(opened(lock, frame)).toBe('open');
  });

  it('a frame with a wrong version is rejected and counted', () => {
    const { hub, lock } = session('version');
    const frame = hub.seal(enc('open'));
    for (const version of [0, 2, 0xff]) {
      const copy = frame.slice();
      copy[0] = version;
      expect(rejected(lock, copy)).toBe('version');
    }
    expect(lock.stats().rejected.version).toBe(3);
  });

  it('a tampered frame is rejected and counted: every single-bit flip anywhere after the version byte', () => {
    const { hub, lock } = session('tamper');
    const frame = hub.seal(enc('open 5000'));
    let flips = 0;
    for (let byte = 1; byte < frame.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = frame.slice();
        copy[byte] = (copy[byte] ?? 0) ^ (1 << bit);
        expect(rejected(lock, copy)).toBe('tampered');
        flips++;
      }
    }
    expect(lock.stats().rejected.tampered).toBe(flips);
    expect(lock.stats().received).toBe(0);
    expect(opened(lock, frame)).toBe('open 5000');
  });

  it('a frame whose counter is rewritten is rejected, so a replay cannot be disguised as new', () => {
    const { hub, lock } = session('rewrite');
    const frame = hub.seal(enc('open'));
    opened(lock, frame);
    const disguised = frame.slice();
    new DataView(disguised.buffer).setBigUint64(1, 1n, false);
    expect(rejected(lock, disguised)).toBe('tampered');
  });

  it('a forged frame with a huge counter does not move the replay window', () => {
    const { hub, lock } = session('forged jump');
    const frames = seal(hub, 3);
    const forged = frames[0]!.slice();
    new DataView(forged.buffer).setBigUint64(1, 1_000_000n, false);
    expect(rejected(lock, forged)).toBe('tampered');
    expect(frames.map((f) => opened(lock, f))).toEqual(['f0', 'f1', 'f2']);
  });

  it('a frame reflected back to its sender is rejected', () => {
    const { hub } = session('reflect');
    const frame = hub.seal(enc('open'));
    expect(rejected(hub, frame)).toBe('tampered');
  });

  it('a frame from another session is rejected', () => {
    const first = session('session one');
    const second = session('session two');
    expect(rejected(second.lock, first.hub.seal(enc('open')))).toBe('tampered');
  });

  it('an oversized frame is rejected, and an oversized payload is refused by the sender', () => {
    const { hub, lock } = session('oversize');
    const big = new Uint8Array(MAX_FRAME_LEN + 1);
    big[0] = LINK_VERSION;
    expect(rejected(lock, big)).toBe('oversize');
    expect(() => hub.seal(new Uint8Array(MAX_PAYLOAD_LEN + 1))).toThrow(HubError);
    expect(opened(lock, hub.seal(new Uint8Array(MAX_PAYLOAD_LEN))).length).toBe(MAX_PAYLOAD_LEN);
  });

  it('the counter limit forces a new handshake rather than wrapping', () => {
    const { hub, lock } = session('limit', { maxCounter: 2n });
    const frames = seal(hub, 3);
    expect(frames.map(counterOf)).toEqual([0n, 1n, 2n]);
    expect(hub.exhausted).toBe(true);
    expect(refusal(() => hub.seal(enc('one too many'))).code).toBe('link.exhausted');
    expect(hub.stats().sent).toBe(3);
    // A frame claiming a counter past the bound cannot come from an honest sender.
    const beyond = frames[2]!.slice();
    new DataView(beyond.buffer).setBigUint64(1, 3n, false);
    expect(rejected(lock, beyond)).toBe('tampered');
    expect(frames.map((f) => opened(lock, f))).toEqual(['f0', 'f1', 'f2']);
  });

  it('a receiver refuses counters past its own bound, even in an authentic frame', () => {
    const random = new SeededRandom('bounds');
    const hs = createHandshake({ pattern: 'NN', initiator: true, random });
    const hr = createHandshake({ pattern: 'NN', initiator: false, random });
    hr.readMessage(hs.writeMessage());
    hs.readMessage(hr.writeMessage());
    const sender = openSealedChannel(hs, { maxCounter: 10n });
    const receiver = openSealedChannel(hr, { maxCounter: 1n });
    const frames = seal(sender, 3);
    expect(rejected(receiver, frames[2]!)).toBe('tampered');
    expect(opened(receiver, frames[1]!)).toBe('f1');
  });

  it('stats count accepted frames and rejections by reason, per channel', () => {
    const { hub, lock } = session('stats', { window: 4 });
    const frames = seal(hub, 10);
    opened(lock, frames[9]!);
    rejected(lock, frames[9]!); // replay
    rejected(lock, frames[0]!); // too-old
    rejected(lock, frames[1]!.subarray(0, 5)); // truncated
    const wrongVersion = frames[8]!.slice();
    wrongVersion[0] = 9;
    rejected(lock, wrongVersion); // version
    const tampered = frames[8]!.slice();
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
    rejected(lock, tampered);
    opened(lock, frames[8]!);
    expect(lock.stats()).toEqual({
      sent: 0,
      received: 2,
      rejected: { truncated: 1, oversize: 0, version: 1, 'too-old': 1, replay: 1, tampered: 1 },
    });
    expect(Object.keys(lock.stats().rejected).sort()).toEqual([...REJECT_REASONS].sort());
    expect(hub.stats().sent).toBe(10);
    // stats() is a snapshot, not a handle on the counters.
    const snapshot = lock.stats();
    snapshot.rejected.replay = 99;
    expect(lock.stats().rejected.replay).toBe(1);
  });

  it('over a lossy, duplicating, reordering radio every frame is delivered at most once', () => {
    const random = new SeededRandom('radio');
    const { hub, lock } = session('radio');
    const sent = seal(hub, 3000, 'm');
    const air: Uint8Array[] = [];
    for (const frame of sent) {
      if (random.float() < 0.05) continue; // lost
      air.push(frame);
      if (random.float() < 0.05) air.push(frame); // duplicated
    }
    // Reorder by swapping neighbours up to 8 places apart, well inside the 64-frame window.
    for (let i = 0; i < air.length; i++) {
      const j = Math.min(air.length - 1, i + random.int(8));
      [air[i], air[j]] = [air[j]!, air[i]!];
    }
    const delivered = new Set<string>();
    for (const frame of air) {
      const result = lock.open(frame);
      if (result.ok) {
        const text = dec(result.value.payload);
        expect(delivered.has(text)).toBe(false);
        delivered.add(text);
      } else {
        expect(result.error).toBe('replay');
      }
    }
    expect(delivered.size).toBe(new Set(air).size);
    expect(lock.stats().rejected.replay).toBe(air.length - delivered.size);
  });

  it('a window outside 1..1024 or a counter bound above 2^64-2 is refused', () => {
    for (const options of [{ window: 0 }, { window: 1.5 }, { window: 1025 }, { maxCounter: 2n ** 64n - 1n }]) {
      expect(() => session('config', options)).toThrow(HubError);
    }
  });
});
