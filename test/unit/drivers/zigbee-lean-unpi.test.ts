import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import type { Controller } from 'zigbee-herdsman';
import { leanTransform, unpiFrameClass, useLeanUnpi } from '../../../drivers/zigbee/lean-unpi.js';

/** The lean unpi framing finds exactly the frames herdsman's own parser finds, on the same bytes. */

const require = createRequire(import.meta.url);
const { Parser } = require('zigbee-herdsman/dist/adapter/z-stack/unpi/parser.js') as {
  Parser: new () => import('node:stream').Transform & { buffer: Buffer };
};
const Frame = unpiFrameClass()!;
const quiet = () => {};
(require('zigbee-herdsman') as typeof import('zigbee-herdsman')).setLogger({
  debug: quiet,
  info: quiet,
  warning: quiet,
  error: quiet,
});

function frame(type: number, subsystem: number, command: number, data: number[], badFcs = false): Buffer {
  const b = Buffer.alloc(5 + data.length);
  b[0] = 0xfe;
  b[1] = data.length;
  b[2] = (type << 5) | subsystem;
  b[3] = command;
  Buffer.from(data).copy(b, 4);
  let fcs = 0;
  for (let i = 1; i < 4 + data.length; i++) fcs ^= b[i]!;
  b[4 + data.length] = badFcs ? fcs ^ 0x5a : fcs;
  return b;
}

/** A deterministic pseudo-random source (the test must be repeatable). */
function prng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

function stream(rand: (n: number) => number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    const kind = rand(10);
    const data = Array.from({ length: rand(kind === 0 ? 250 : 100) }, () => rand(256));
    if (kind === 1)
      parts.push(Buffer.from(Array.from({ length: 1 + rand(8) }, () => rand(256)))); // line noise
    else if (kind === 2)
      parts.push(frame(2, 4, 0x81, data, true)); // bad checksum
    else if (kind === 3)
      parts.push(frame(3, 4, 1, data).subarray(0, 3)); // a frame cut short
    else parts.push(frame(rand(4), rand(16), rand(256), data));
  }
  return Buffer.concat(parts);
}

/** Feeds `bytes` in chunks of random sizes; returns the frames found and what is left buffered. */
function run(lean: boolean, bytes: Buffer, rand: (n: number) => number) {
  const parser = new Parser();
  if (lean) (parser as unknown as { _transform: unknown })._transform = leanTransform(Frame);
  const found: string[] = [];
  parser.on('parsed', (f: { type: number; subsystem: number; commandID: number; data: Buffer }) =>
    found.push(`${f.type}/${f.subsystem}/${f.commandID}/${f.data.toString('hex')}`),
  );
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + rand(120);
    parser.write(bytes.subarray(at, at + n));
    at += n;
  }
  return { found, left: parser.buffer.toString('hex') };
}

describe('lean unpi framing', () => {
  it('finds the same frames as herdsman’s parser in streams with noise, bad checksums and cut frames', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const bytes = stream(prng(seed));
      const theirs = run(false, bytes, prng(seed * 7));
      const ours = run(true, bytes, prng(seed * 7));
      expect(ours).toEqual(theirs);
      expect(theirs.found.length).toBeGreaterThan(0);
    }
  });

  it('a frame split byte by byte, and several in one chunk, come out whole and in order', () => {
    const a = frame(3, 4, 1, [0]);
    const b = frame(2, 4, 0x80, [0, 1, 0x47]);
    const bytes = Buffer.concat([a, b, a]);
    const byByte = run(true, bytes, () => 0);
    expect(byByte).toEqual(run(false, bytes, () => 0));
    expect(byByte.found).toHaveLength(3);
    expect(run(true, bytes, () => 500).found).toHaveLength(3);
  });

  it('is put on a controller only when its ZNP parser and writer are there as expected', () => {
    const parser = new Parser();
    const pushed: Buffer[] = [];
    const stock = (_frame: { toBuffer(): Buffer }) => {};
    const writer = { writeFrame: stock, push: (b: Buffer) => pushed.push(b) > 0 };
    const controller = { adapter: { znp: { unpiParser: parser, unpiWriter: writer } } } as unknown as Controller;
    expect(useLeanUnpi(controller, Frame)).toBe(true);
    expect(writer.writeFrame).not.toBe(stock);
    (writer.writeFrame as (this: typeof writer, f: { toBuffer(): Buffer }) => void).call(writer, {
      toBuffer: () => Buffer.from([1, 2]),
    });
    expect(pushed).toEqual([Buffer.from([1, 2])]);
    expect(useLeanUnpi({ adapter: {} } as unknown as Controller, Frame)).toBe(false);
    expect(useLeanUnpi(controller, undefined)).toBe(false);
  });
});
