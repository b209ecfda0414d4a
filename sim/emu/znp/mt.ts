import { createRequire } from 'node:module';

/**
 * Z-Stack Monitor-and-Test (MT) framing and parameter coding for the emulator: SOF 0xFE, length,
 * cmd0 (type << 5 | subsystem), cmd1 (command id), data, FCS (XOR of length..data).
 *
 * The command table (ids and parameter lists) is zigbee-herdsman's own
 * (`dist/adapter/z-stack/znp/definition.js`), so the emulator speaks exactly what the driver's
 * library expects; the framing and parameter coding are ours, so a mistake in one side is not
 * silently shared by the other.
 */

export const SOF = 0xfe;
export const MAX_DATA = 250;

export enum MtType {
  POLL = 0,
  SREQ = 1,
  AREQ = 2,
  SRSP = 3,
}

export enum Subsystem {
  RES0 = 0,
  SYS = 1,
  MAC = 2,
  AF = 4,
  ZDO = 5,
  SAPI = 6,
  UTIL = 7,
  DEBUG = 8,
  APP = 9,
  APP_CNF = 15,
  GREENPOWER = 21,
}

/** herdsman's ParameterType. */
enum P {
  UINT8 = 0,
  UINT16 = 1,
  UINT32 = 2,
  IEEEADDR = 3,
  BUFFER = 4,
  BUFFER8 = 5,
  BUFFER16 = 6,
  BUFFER18 = 7,
  BUFFER32 = 8,
  BUFFER42 = 9,
  BUFFER100 = 10,
  LIST_UINT8 = 11,
  LIST_UINT16 = 12,
  LIST_NETWORK = 16,
  INT8 = 18,
}

interface Parameter {
  readonly name: string;
  readonly parameterType: number;
}

export interface MtCommand {
  readonly name: string;
  readonly ID: number;
  readonly type: MtType;
  readonly request?: readonly Parameter[];
  readonly response?: readonly Parameter[];
  readonly zdoClusterId?: number;
}

const require = createRequire(import.meta.url);
const definition = (
  require('zigbee-herdsman/dist/adapter/z-stack/znp/definition.js') as {
    default: Record<number, readonly MtCommand[]>;
  }
).default;

export interface MtFrame {
  readonly type: MtType;
  readonly subsystem: number;
  readonly command: number;
  readonly data: Buffer;
}

export function encodeFrame(frame: MtFrame): Buffer {
  if (frame.data.length > MAX_DATA) throw new RangeError(`MT frame data of ${frame.data.length} bytes > ${MAX_DATA}`);
  const out = Buffer.alloc(frame.data.length + 5);
  out[0] = SOF;
  out[1] = frame.data.length;
  out[2] = ((frame.type << 5) & 0xe0) | (frame.subsystem & 0x1f);
  out[3] = frame.command;
  frame.data.copy(out, 4);
  out[out.length - 1] = fcs(out.subarray(1, out.length - 1));
  return out;
}

export function fcs(bytes: Uint8Array): number {
  let x = 0;
  for (const b of bytes) x ^= b;
  return x;
}

export interface ParserCounters {
  /** Bytes skipped while looking for SOF (line noise, a half frame after a reconnect). */
  garbageBytes: number;
  /** Frames whose FCS did not match: dropped. */
  badFcs: number;
  frames: number;
}

/**
 * Incremental MT parser: feed it whatever the socket delivers. Garbage before a SOF is skipped
 * and a frame with a bad FCS is dropped, both counted; nothing here throws on input.
 */
export class MtParser {
  readonly counters: ParserCounters = { garbageBytes: 0, badFcs: 0, frames: 0 };
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): MtFrame[] {
    this.#buffer = this.#buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buffer, chunk]);
    const frames: MtFrame[] = [];
    for (;;) {
      const start = this.#buffer.indexOf(SOF);
      if (start < 0) {
        this.counters.garbageBytes += this.#buffer.length;
        this.#buffer = Buffer.alloc(0);
        break;
      }
      if (start > 0) {
        this.counters.garbageBytes += start;
        this.#buffer = this.#buffer.subarray(start);
      }
      if (this.#buffer.length < 5) break;
      const length = this.#buffer[1]!;
      if (this.#buffer.length < length + 5) break;
      const body = this.#buffer.subarray(1, length + 4);
      if (fcs(body) !== this.#buffer[length + 4]) {
        // Resynchronise on the next SOF rather than trusting a length that may be garbage.
        this.counters.badFcs++;
        this.#buffer = this.#buffer.subarray(1);
        continue;
      }
      frames.push({
        type: (this.#buffer[2]! >> 5) as MtType,
        subsystem: this.#buffer[2]! & 0x1f,
        command: this.#buffer[3]!,
        data: Buffer.from(this.#buffer.subarray(4, length + 4)),
      });
      this.counters.frames++;
      this.#buffer = this.#buffer.subarray(length + 5);
    }
    return frames;
  }
}

export function findCommand(subsystem: number, id: number): MtCommand | undefined {
  return definition[subsystem]?.find((c) => c.ID === id && c.type !== MtType.SRSP);
}

export function commandByName(subsystem: number, name: string): MtCommand {
  const command = definition[subsystem]?.find((c) => c.name === name);
  if (!command) throw new Error(`MT: no command ${name} in subsystem ${subsystem}`);
  return command;
}

export type Params = Record<string, number | string | Buffer | readonly number[]>;

/** Reads a request's parameters; a BUFFER's length is the parameter before it. Throws on short data. */
export function readParams(parameters: readonly Parameter[], data: Buffer): Params {
  const out: Params = {};
  let pos = 0;
  let previous: number | undefined;
  const need = (n: number) => {
    if (pos + n > data.length) throw new RangeError(`MT: parameters need ${pos + n} bytes, frame has ${data.length}`);
  };
  for (const p of parameters) {
    let value: number | string | Buffer | number[];
    switch (p.parameterType) {
      case P.UINT8:
        need(1);
        value = data.readUInt8(pos);
        pos += 1;
        break;
      case P.INT8:
        need(1);
        value = data.readInt8(pos);
        pos += 1;
        break;
      case P.UINT16:
        need(2);
        value = data.readUInt16LE(pos);
        pos += 2;
        break;
      case P.UINT32:
        need(4);
        value = data.readUInt32LE(pos);
        pos += 4;
        break;
      case P.IEEEADDR:
        need(8);
        value = `0x${Buffer.from(data.subarray(pos, pos + 8))
          .reverse()
          .toString('hex')}`;
        pos += 8;
        break;
      case P.BUFFER:
      case P.LIST_UINT8: {
        const n = previous ?? 0;
        need(n);
        value = Buffer.from(data.subarray(pos, pos + n));
        pos += n;
        break;
      }
      case P.LIST_UINT16: {
        const n = previous ?? 0;
        need(2 * n);
        const list: number[] = [];
        for (let i = 0; i < n; i++) list.push(data.readUInt16LE(pos + 2 * i));
        value = list;
        pos += 2 * n;
        break;
      }
      default: {
        const fixed = FIXED_BUFFERS[p.parameterType];
        if (fixed === undefined) throw new RangeError(`MT: parameter type ${p.parameterType} unsupported`);
        need(fixed);
        value = Buffer.from(data.subarray(pos, pos + fixed));
        pos += fixed;
      }
    }
    out[p.name] = value;
    previous = typeof value === 'number' ? value : undefined;
  }
  return out;
}

const FIXED_BUFFERS: Record<number, number> = {
  [P.BUFFER8]: 8,
  [P.BUFFER16]: 16,
  [P.BUFFER18]: 18,
  [P.BUFFER32]: 32,
  [P.BUFFER42]: 42,
  [P.BUFFER100]: 100,
};

/** Writes parameters; a missing number is 0, a missing buffer or list is empty. */
export function writeParams(parameters: readonly Parameter[], values: Params): Buffer {
  const parts: Buffer[] = [];
  for (const p of parameters) {
    const v = values[p.name];
    switch (p.parameterType) {
      case P.UINT8:
      case P.INT8: {
        const b = Buffer.alloc(1);
        b.writeUInt8(Number(v ?? 0) & 0xff);
        parts.push(b);
        break;
      }
      case P.UINT16: {
        const b = Buffer.alloc(2);
        b.writeUInt16LE(Number(v ?? 0) & 0xffff);
        parts.push(b);
        break;
      }
      case P.UINT32: {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(Number(v ?? 0) >>> 0);
        parts.push(b);
        break;
      }
      case P.IEEEADDR:
        parts.push(ieeeToBuffer(typeof v === 'string' ? v : '0x0000000000000000'));
        break;
      case P.LIST_UINT16: {
        const list = (v as readonly number[] | undefined) ?? [];
        const b = Buffer.alloc(2 * list.length);
        list.forEach((n, i) => {
          b.writeUInt16LE(n, 2 * i);
        });
        parts.push(b);
        break;
      }
      default: {
        const fixed = FIXED_BUFFERS[p.parameterType];
        const b = Buffer.isBuffer(v) ? v : Buffer.from((v as readonly number[] | undefined) ?? []);
        parts.push(fixed === undefined ? b : Buffer.concat([b, Buffer.alloc(Math.max(0, fixed - b.length))], fixed));
      }
    }
  }
  return Buffer.concat(parts);
}

/** "0x00124b0001020304" → 8 bytes little-endian, as on the wire. */
export function ieeeToBuffer(ieee: string): Buffer {
  const hex = ieee.startsWith('0x') ? ieee.slice(2) : ieee;
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) throw new RangeError(`not an IEEE address: ${ieee}`);
  return Buffer.from(hex, 'hex').reverse();
}
