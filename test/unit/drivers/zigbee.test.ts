import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { createZigbeeBearer, type ZigbeeBearerOptions } from '../../../drivers/zigbee/bearer.js';
import { scrub } from '../../../drivers/zigbee/herdsman-log.js';
import {
  decodeZcl,
  encodeModelId,
  encodeZcl,
  FRAGMENT_DATA_SIZE,
  fragmentFrame,
  MAX_FRAGMENTS,
  MAX_FRAME_SIZE,
  parseModelId,
  Reassembler,
  ZCL_PAYLOAD_LIMIT,
} from '../../../drivers/zigbee/link-cluster.js';
import { dataPaths, loadOrCreateNetwork, prepareDirectories } from '../../../drivers/zigbee/network.js';
import { checkOptions, DEFAULT_MAX_LINKS } from '../../../drivers/zigbee/options.js';
import { BEARER_MIN_FRAME_SIZE } from '../../../hal/bearer.js';
import { encodeFrame, MtParser, MtType } from '../../../sim/emu/znp/mt.js';
import { NvId, ZnpNv } from '../../../sim/emu/znp/nv.js';
import { systemClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom, systemRandom } from '../../../src/base/random.js';
import { parseConfig } from '../../../src/config/load.js';
import { Sealer } from '../../../src/crypto/seal.js';
import { Secret } from '../../../src/crypto/secret.js';
import { silentLogger } from '../../../src/log/logger.js';
import { tempDir } from '../../helpers/tmp.js';

const dir = () => tempDir('iqhub-zigbee-unit-');

function frameOf(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff);
}

function reassemble(fragments: Uint8Array[]): Uint8Array | undefined {
  const r = new Reassembler();
  let out: Uint8Array | undefined;
  for (const f of fragments) {
    const result = r.push(f);
    if (result.kind === 'frame') out = result.frame;
  }
  return out;
}

describe('link fragmentation', () => {
  test('every fragment fits one ZCL payload and the largest frame fits the fragment count', () => {
    expect(MAX_FRAME_SIZE).toBeGreaterThanOrEqual(BEARER_MIN_FRAME_SIZE);
    for (const f of fragmentFrame(1, frameOf(MAX_FRAME_SIZE))) expect(f.length).toBeLessThanOrEqual(ZCL_PAYLOAD_LIMIT);
    expect(fragmentFrame(1, frameOf(MAX_FRAME_SIZE))).toHaveLength(MAX_FRAGMENTS);
  });

  test.each([1, FRAGMENT_DATA_SIZE, FRAGMENT_DATA_SIZE + 1, 256, MAX_FRAME_SIZE])(
    'a %i-byte frame comes back whole',
    (n) => {
      const frame = frameOf(n);
      expect(Buffer.from(reassemble(fragmentFrame(9, frame))!).equals(Buffer.from(frame))).toBe(true);
    },
  );

  test('fragments arriving out of order still make the frame', () => {
    const frame = frameOf(300);
    const fragments = fragmentFrame(3, frame).reverse();
    expect(Buffer.from(reassemble(fragments)!).equals(Buffer.from(frame))).toBe(true);
  });

  test('empty and oversized frames are refused before anything is sent', () => {
    expect(() => fragmentFrame(1, new Uint8Array(0))).toThrow(RangeError);
    expect(() => fragmentFrame(1, frameOf(MAX_FRAME_SIZE + 1))).toThrow(RangeError);
  });

  test('malformed fragments are rejected with their reason', () => {
    const r = new Reassembler();
    const reason = (bytes: number[]) => {
      const result = r.push(Uint8Array.from(bytes));
      return result.kind === 'rejected' ? result.reason : result.kind;
    };
    const full = Array.from({ length: FRAGMENT_DATA_SIZE }, () => 1);
    expect(reason([1, 0])).toBe('short-fragment');
    expect(reason([1, 0, 0, 5])).toBe('bad-count');
    expect(reason([1, 0, MAX_FRAGMENTS + 1, 5])).toBe('bad-count');
    expect(reason([1, 2, 2, 5])).toBe('bad-index');
    expect(reason([1, 0, 2, 5])).toBe('bad-fragment-size');
    expect(reason([1, 1, 2, ...full, 9])).toBe('bad-fragment-size');
    expect(reason([1, 0, 2, ...full])).toBe('partial');
    expect(reason([1, 0, 2, ...full])).toBe('duplicate-fragment');
    expect(reason([1, 1, 3, ...full])).toBe('count-mismatch');
  });

  test('a newer frame abandons an unfinished one, counted, and is itself delivered', () => {
    const r = new Reassembler();
    const first = fragmentFrame(1, frameOf(200));
    const second = fragmentFrame(2, frameOf(150));
    r.push(first[0]!);
    let out: Uint8Array | undefined;
    for (const f of second) {
      const result = r.push(f);
      if (result.kind === 'frame') out = result.frame;
    }
    expect(r.abandoned).toBe(1);
    expect(Buffer.from(out!).equals(Buffer.from(frameOf(150)))).toBe(true);
  });
});

describe('lock identity in genBasic.modelId', () => {
  test('device id and attach mode round-trip', () => {
    expect(parseModelId(encodeModelId('LOCK-7', true))).toEqual({ deviceId: 'LOCK-7', attachMode: true });
    expect(parseModelId(encodeModelId('a.b_c', false))).toEqual({ deviceId: 'a.b_c', attachMode: false });
  });

  test.each([
    undefined,
    42,
    '',
    'lumi.sensor',
    'iqlock:X',
    'iqlock:X:maybe',
    'iqlock::attach',
    'iqlock:a b:attach',
    'other:X:attach',
  ])('%j is not an iq lock', (modelId) => {
    expect(parseModelId(modelId)).toBeUndefined();
  });

  test('a device id that cannot be encoded is refused', () => {
    expect(() => encodeModelId('has:colon', true)).toThrow(RangeError);
    expect(() => encodeModelId('x'.repeat(65), true)).toThrow(RangeError);
  });
});

describe('ZCL frames', () => {
  test('a manufacturer-specific cluster command round-trips', () => {
    const frame = {
      clusterSpecific: true,
      manufacturerCode: 0x1234,
      serverToClient: true,
      disableDefaultResponse: true,
      tsn: 7,
      command: 2,
      payload: Uint8Array.from([1, 2, 3]),
    };
    expect(decodeZcl(encodeZcl(frame))).toEqual(frame);
  });

  test('random bytes never throw, and short or reserved-type frames are refused', () => {
    const random = new SeededRandom('zcl-fuzz');
    for (let i = 0; i < 5_000; i++) decodeZcl(random.bytes(random.int(12)));
    expect(decodeZcl(Uint8Array.from([0x01, 0x02]))).toBeUndefined();
    expect(decodeZcl(Uint8Array.from([0x02, 0, 0]))).toBeUndefined();
    expect(decodeZcl(Uint8Array.from([0x04, 0x34, 0x12, 1]))).toBeUndefined();
  });
});

describe('the emulator MT parser', () => {
  const ping = encodeFrame({ type: MtType.SREQ, subsystem: 1, command: 1, data: Buffer.alloc(0) });

  test('garbage before a frame is skipped and counted; a frame split across reads is put together', () => {
    const p = new MtParser();
    expect(p.push(Buffer.from([0x00, 0x11, 0x22]))).toHaveLength(0);
    expect(p.push(ping.subarray(0, 3))).toHaveLength(0);
    const frames = p.push(ping.subarray(3));
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ type: MtType.SREQ, subsystem: 1, command: 1 });
    expect(p.counters.garbageBytes).toBe(3);
  });

  test('a frame with a bad FCS is dropped and counted; the next good one still parses', () => {
    const p = new MtParser();
    const bad = Buffer.from(ping);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff;
    const frames = p.push(Buffer.concat([bad, ping]));
    expect(frames).toHaveLength(1);
    expect(p.counters.badFcs).toBe(1);
  });

  test('random input never throws', () => {
    const random = new SeededRandom('mt-fuzz');
    const p = new MtParser();
    for (let i = 0; i < 2_000; i++) p.push(Buffer.from(random.bytes(1 + random.int(64))));
    expect(p.counters.garbageBytes + p.counters.badFcs).toBeGreaterThan(0);
  });
});

describe('herdsman log scrubbing', () => {
  const key = Uint8Array.from([0xa1, 0xb2, 0xc3, 0xd4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);

  test('keys in hex, as number lists or as Buffer JSON are redacted; IEEE addresses stay', () => {
    const hex = Buffer.from(key).toString('hex');
    const text = [
      `configured=${hex}`,
      `upper=${hex.toUpperCase()}`,
      `list=[${Array.from(key).join(',')}]`,
      `json=${JSON.stringify({ value: Buffer.from(key) })}`,
      'some other key 00112233445566778899aabbccddeeff',
      'device 0x00124b0001020304 joined',
    ].join(' ');
    const out = scrub(text, [key]);
    expect(out).not.toContain(hex);
    expect(out.toLowerCase()).not.toContain(hex);
    expect(out).not.toContain(Array.from(key).join(','));
    expect(out).not.toContain('00112233445566778899aabbccddeeff');
    expect(out).toContain('0x00124b0001020304');
  });
});

describe('network parameters', () => {
  test('generated once, sealed, owner-only; the file holds no key bytes; the same parameters come back', () => {
    const paths = dataPaths(join(dir(), 'zigbee'));
    prepareDirectories(paths);
    const sealer = new Sealer(new Secret(randomBytes(32)), systemRandom);
    const first = loadOrCreateNetwork(paths, sealer, systemRandom, 20);
    expect(first.created).toBe(true);
    const file = join(paths.dataDir, 'network.sealed');
    expect(readFileSync(file).includes(Buffer.from(first.params.networkKey))).toBe(false);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(paths.dataDir).mode & 0o777).toBe(0o700);
    const again = loadOrCreateNetwork(paths, sealer, systemRandom, 11);
    expect(again.created).toBe(false);
    expect(again.params).toEqual(first.params);
    expect(again.params.channel).toBe(20);
    expect(first.params.panId).toBeGreaterThan(0);
    expect(first.params.panId).toBeLessThan(0xfff0);
  });

  test('a network file sealed under another storage key does not open', () => {
    const paths = dataPaths(join(dir(), 'zigbee'));
    prepareDirectories(paths);
    loadOrCreateNetwork(paths, new Sealer(new Secret(randomBytes(32)), systemRandom), systemRandom, 15);
    const other = new Sealer(new Secret(randomBytes(32)), systemRandom);
    expect(() => loadOrCreateNetwork(paths, other, systemRandom, 15)).toThrow(HubError);
  });

  test('two hubs never share a key', () => {
    const keys = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const paths = dataPaths(join(dir(), 'zigbee'));
      prepareDirectories(paths);
      const { params } = loadOrCreateNetwork(
        paths,
        new Sealer(new Secret(randomBytes(32)), systemRandom),
        systemRandom,
        15,
      );
      keys.add(Buffer.from(params.networkKey).toString('hex'));
    }
    expect(keys.size).toBe(5);
  });
});

describe('createZigbeeBearer', () => {
  function options(patch: Partial<ZigbeeBearerOptions> = {}): ZigbeeBearerOptions {
    return {
      serialPath: '/dev/ttyUSB0',
      dataDir: dir(),
      sealer: new Sealer(new Secret(randomBytes(32)), systemRandom),
      random: systemRandom,
      clock: systemClock,
      log: silentLogger(),
      ...patch,
    };
  }

  test.each<[string, Partial<ZigbeeBearerOptions>, RegExp]>([
    ['a relative serial path', { serialPath: 'ttyUSB0' }, /serialPath/],
    ['a tcp path without a port', { serialPath: 'tcp://host' }, /serialPath/],
    ['channel 10', { channel: 10 }, /channel/],
    ['channel 27', { channel: 27 }, /channel/],
    ['no links', { maxLinks: 0 }, /maxLinks/],
    ['a small frame counter jump', { frameCounterJump: 100 }, /frameCounterJump/],
    ['a negative interval', { backupIntervalMs: -1 }, /backupIntervalMs/],
    ['backoff ceiling below its base', { recoverBaseMs: 5_000, recoverMaxMs: 1_000 }, /recoverMaxMs/],
  ])('refuses %s with a message naming the option', (_, patch, message) => {
    try {
      createZigbeeBearer(options(patch));
      expect.fail('accepted');
    } catch (e) {
      expect(e).toBeInstanceOf(HubError);
      expect((e as HubError).code).toBe('zigbee.config');
      expect((e as HubError).message).toMatch(message);
    }
  });

  test('the default link limit holds the 16 locks of a site twice over, in the driver and in the config', () => {
    expect(DEFAULT_MAX_LINKS).toBe(32);
    expect(checkOptions(options()).maxLinks).toBe(DEFAULT_MAX_LINKS);
    expect(parseConfig('', 'config.yaml').radios.zigbee.maxLinks).toBe(DEFAULT_MAX_LINKS);
  });

  test('before start, connect answers stopped', async () => {
    const bearer = createZigbeeBearer(options());
    const result = await bearer.connect('0x0011223344556677', { timeoutMs: 100 });
    expect(result.ok ? 'connected' : result.error.code).toBe('stopped');
  });

  test('an absent adapter is a state with a reason, start resolves, and stop ends the retries', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const bearer = createZigbeeBearer(
      options({ serialPath: `tcp://127.0.0.1:${port}`, recoverBaseMs: 50, recoverMaxMs: 100 }),
    );
    await bearer.start();
    const state = bearer.state();
    expect(state.status).toBe('unavailable');
    expect(state.status === 'unavailable' && state.reason).toContain(`tcp://127.0.0.1:${port}`);
    const refused = await bearer.connect('0x0011223344556677', { timeoutMs: 100 });
    expect(refused.ok ? 'connected' : refused.error.code).toBe('adapter-unavailable');
    await bearer.stop();
    expect(bearer.state().status).toBe('stopped');
  });
});

describe('the emulator NV memory', () => {
  test('a formed network survives a snapshot: key, PAN ids and frame counter resume', () => {
    const nv = ZnpNv.factory('0x00124b0001020304', (n) => new Uint8Array(n).fill(7));
    expect(nv.networkKey()).toBeUndefined();
    const key = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    nv.items.set(NvId.PRECFGKEY, key);
    nv.items.set(NvId.PANID, Buffer.from([0x34, 0x12]));
    nv.items.set(NvId.EXTENDED_PAN_ID, Buffer.from('0807060504030201', 'hex'));
    nv.items.set(NvId.CHANLIST, Buffer.from([0, 0x80, 0, 0])); // channel 15
    nv.formNetwork();
    nv.advanceFrameCounter(41);
    const resumed = ZnpNv.fromSnapshot(JSON.parse(JSON.stringify(nv.snapshot())));
    expect(Buffer.from(resumed.networkKey()!).equals(key)).toBe(true);
    expect(resumed.panId()).toBe(0x1234);
    expect(resumed.extendedPanId()).toBe('0102030405060708');
    expect(resumed.channel()).toBe(15);
    expect(resumed.frameCounter()).toBe(41);
    resumed.clearNetwork();
    expect(resumed.networkKey()).toBeUndefined();
    expect(resumed.frameCounter()).toBeUndefined();
  });
});
