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
    // Parsed in place (an index into the bytes, no copy per step); only an unfinished frame is kept.
    const b = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: MtFrame[] = [];
    let i = 0;
    for (;;) {
      const start = b.indexOf(SOF, i);
      if (start < 0) {
        this.counters.garbageBytes += b.length - i;
        i = b.length;
        break;
      }
      this.counters.garbageBytes += start - i;
      i = start;
      if (b.length - i < 5) break;
      const length = b[i + 1]!;
      if (b.length - i < length + 5) break;
      let x = 0;
      for (let k = i + 1; k < i + length + 4; k++) x ^= b[k]!;
      if (x !== b[i + length + 4]) {
        // Resynchronise on the next SOF rather than trusting a length that may be garbage.
        this.counters.badFcs++;
        i += 1;
        continue;
      }
      frames.push({
        type: (b[i + 2]! >> 5) as MtType,
        subsystem: b[i + 2]! & 0x1f,
        command: b[i + 3]!,
        data: Buffer.from(b.subarray(i + 4, i + 4 + length)),
      });
      this.counters.frames++;
      i += length + 5;
    }
    this.#buffer = i >= b.length ? EMPTY : Buffer.from(b.subarray(i));
    return frames;
  }
}

const EMPTY = Buffer.alloc(0);

/** Requests and indications by subsystem and id (the first that is not an SRSP, as herdsman lists them). */
const BY_ID = new Map<number, MtCommand>();
/** Commands by subsystem and name (the first of that name). */
const BY_NAME = new Map<number, Map<string, MtCommand>>();
for (const [subsystem, commands] of Object.entries(definition)) {
  const names = new Map<string, MtCommand>();
  for (const c of commands) {
    const key = (Number(subsystem) << 8) | c.ID;
    if (c.type !== MtType.SRSP && !BY_ID.has(key)) BY_ID.set(key, c);
    if (!names.has(c.name)) names.set(c.name, c);
  }
  BY_NAME.set(Number(subsystem), names);
}

export function findCommand(subsystem: number, id: number): MtCommand | undefined {
  return BY_ID.get(((subsystem & 0xffffff) << 8) | (id & 0xff));
}

export function commandByName(subsystem: number, name: string): MtCommand {
  const command = BY_NAME.get(subsystem)?.get(name);
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
  // Two passes over the parameters (sizes, then bytes) into one buffer: no buffer per field.
  let size = 0;
  for (const p of parameters) size += paramSize(p, values[p.name]);
  const out = Buffer.alloc(size);
  let pos = 0;
  for (const p of parameters) {
    const v = values[p.name];
    switch (p.parameterType) {
      case P.UINT8:
      case P.INT8:
        out[pos] = Number(v ?? 0) & 0xff;
        pos += 1;
        break;
      case P.UINT16:
        out.writeUInt16LE(Number(v ?? 0) & 0xffff, pos);
        pos += 2;
        break;
      case P.UINT32:
        out.writeUInt32LE(Number(v ?? 0) >>> 0, pos);
        pos += 4;
        break;
      case P.IEEEADDR:
        ieeeToBuffer(typeof v === 'string' ? v : '0x0000000000000000').copy(out, pos);
        pos += 8;
        break;
      case P.LIST_UINT16: {
        const list = (v as readonly number[] | undefined) ?? [];
        for (const n of list) {
          out.writeUInt16LE(n, pos);
          pos += 2;
        }
        break;
      }
      default: {
        // A fixed-size buffer is zero-padded (Buffer.alloc) or cut to its size.
        const n = paramSize(p, v);
        asBytes(v).copy(out, pos, 0, n);
        pos += n;
      }
    }
  }
  return out;
}

/** The bytes writeParams gives one parameter. */
function paramSize(p: Parameter, v: Params[string] | undefined): number {
  switch (p.parameterType) {
    case P.UINT8:
    case P.INT8:
      return 1;
    case P.UINT16:
      return 2;
    case P.UINT32:
      return 4;
    case P.IEEEADDR:
      return 8;
    case P.LIST_UINT16:
      return 2 * ((v as readonly number[] | undefined) ?? []).length;
    default:
      return FIXED_BUFFERS[p.parameterType] ?? asBytes(v).length;
  }
}

/** A buffer parameter's bytes: the Buffer itself, or a list of bytes (or a string) made one. */
function asBytes(v: Params[string] | undefined): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from((v as readonly number[] | undefined) ?? []);
}

/** "0x00124b0001020304" → 8 bytes little-endian, as on the wire. */
export function ieeeToBuffer(ieee: string): Buffer {
  const hex = ieee.startsWith('0x') ? ieee.slice(2) : ieee;
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) throw new RangeError(`not an IEEE address: ${ieee}`);
  return Buffer.from(hex, 'hex').reverse();
}
