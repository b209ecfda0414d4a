import { BEARER_MIN_FRAME_SIZE } from '../../hal/bearer.js';

/**
 * The lock's BLE wire format, shared by the hub's driver (drivers/ble/bearer.ts) and the controller
 * emulator that plays the locks (sim/emu/hci/). docs/ble.md is the prose version of this file.
 *
 * - One primary service, LOCK_SERVICE_UUID, with one characteristic, LOCK_FRAMES_UUID (write +
 *   notify), carrying link frames cut into fragments that fit the negotiated ATT MTU.
 * - Advertising: the service UUID in the advertising packet (so a scan can filter on it), the
 *   device id and the attach-mode flag in the scan response's manufacturer data.
 *
 * Nothing here is trusted: everything is parsed defensively, the sealed link above authenticates.
 */

/** noble spells 128-bit UUIDs as 32 lowercase hex digits without dashes. */
export const LOCK_SERVICE_UUID = '6f1a00015c3e4b7a9d2e8a4c1b0e7f21';
export const LOCK_FRAMES_UUID = '6f1a00025c3e4b7a9d2e8a4c1b0e7f21';

/** Bluetooth SIG company id 0xFFFF: reserved for tests and internal use, until a vendor id is assigned. */
export const MANUFACTURER_COMPANY_ID = 0xffff;
/** Version of the manufacturer-data layout; anything else is rejected, not guessed at. */
export const ADVERTISEMENT_VERSION = 0x01;
const FLAG_ATTACH_MODE = 0x01;
/** A legacy scan response holds 31 bytes: 2 for the AD header, 2 company id, 1 version, 1 flags. */
export const MAX_ADVERTISED_DEVICE_ID = 25;
const DEVICE_ID = /^[\x21-\x7e]+$/;

/** UUID as 16 bytes in the little-endian order of the air. */
export function uuidBytes(uuid: string): Buffer {
  if (!/^[0-9a-f]{32}$/.test(uuid)) throw new Error(`not a 128-bit UUID in noble's spelling: ${uuid}`);
  return Buffer.from(uuid, 'hex').reverse();
}

export interface LockAdvertisementData {
  readonly deviceId: string;
  readonly attachMode: boolean;
}

/** The manufacturer-specific data of a lock's scan response (including the company id, as noble reports it). */
export function encodeManufacturerData(data: LockAdvertisementData): Buffer {
  const id = Buffer.from(data.deviceId, 'ascii');
  if (id.length === 0 || id.length > MAX_ADVERTISED_DEVICE_ID || !DEVICE_ID.test(data.deviceId)) {
    throw new Error(
      `device id ${JSON.stringify(data.deviceId)} cannot be advertised: 1…${MAX_ADVERTISED_DEVICE_ID} printable ASCII characters`,
    );
  }
  const out = Buffer.alloc(4 + id.length);
  out.writeUInt16LE(MANUFACTURER_COMPANY_ID, 0);
  out.writeUInt8(ADVERTISEMENT_VERSION, 2);
  out.writeUInt8(data.attachMode ? FLAG_ATTACH_MODE : 0, 3);
  id.copy(out, 4);
  return out;
}

/** Parses manufacturer data; a string says why it is not a lock advertisement of this format. */
export function decodeManufacturerData(raw: Uint8Array | undefined | null): LockAdvertisementData | string {
  if (!raw) return 'no manufacturer data';
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (b.length < 5) return `manufacturer data of ${b.length} bytes is too short`;
  if (b.readUInt16LE(0) !== MANUFACTURER_COMPANY_ID) return `company id 0x${b.readUInt16LE(0).toString(16)}`;
  if (b[2] !== ADVERTISEMENT_VERSION) return `format version ${b[2]}`;
  const flags = b[3] ?? 0;
  if ((flags & ~FLAG_ATTACH_MODE) !== 0) return `reserved flag bits set (0x${flags.toString(16)})`;
  const id = b.subarray(4);
  if (id.length > MAX_ADVERTISED_DEVICE_ID) return `device id of ${id.length} bytes is too long`;
  const deviceId = id.toString('latin1');
  if (!DEVICE_ID.test(deviceId)) return 'device id is not printable ASCII';
  return { deviceId, attachMode: (flags & FLAG_ATTACH_MODE) !== 0 };
}

/** AD structures: [length, type, ...data]. */
function adStructure(type: number, data: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([data.length + 1, type]), data]);
}

/** The advertising packet: flags (LE general discoverable, no BR/EDR) and the lock service UUID. */
export function advertisingPacket(): Buffer {
  return Buffer.concat([adStructure(0x01, Buffer.from([0x06])), adStructure(0x07, uuidBytes(LOCK_SERVICE_UUID))]);
}

/** The scan response: manufacturer-specific data (0xFF) with the device id and the attach-mode flag. */
export function scanResponsePacket(data: LockAdvertisementData): Buffer {
  return adStructure(0xff, encodeManufacturerData(data));
}

// ── fragmentation ────────────────────────────────────────────────────────────────────────────────

/**
 * Every fragment starts with [version, frame id, index, count]: a frame is cut into `count`
 * fragments numbered 0…count-1, all carrying the same frame id (a counter per link and direction).
 */
export const FRAGMENT_VERSION = 0x01;
export const FRAGMENT_HEADER_LEN = 4;
/** A frame is at most this many fragments (the count is one byte). */
export const MAX_FRAGMENTS = 255;
/** What the hub's driver and the emulator accept per frame by default: 2 KiB, or the port's minimum if that is more. */
export const DEFAULT_MAX_FRAME_SIZE = Math.max(2048, BEARER_MIN_FRAME_SIZE);
/** ATT: a notification or write carries MTU - 3 bytes of value. */
export const ATT_HEADER_LEN = 3;
/** The smallest ATT MTU (BLE 4.0 default). */
export const MIN_ATT_MTU = 23;

/** Cuts one frame into fragments whose size fits `mtu` (ATT value = mtu - 3). */
export function fragmentFrame(frame: Uint8Array, frameId: number, mtu: number): Buffer[] {
  const room = Math.max(MIN_ATT_MTU, mtu) - ATT_HEADER_LEN - FRAGMENT_HEADER_LEN;
  const count = Math.max(1, Math.ceil(frame.length / room));
  if (count > MAX_FRAGMENTS) {
    throw new Error(
      `a frame of ${frame.length} bytes needs ${count} fragments at MTU ${mtu}; the limit is ${MAX_FRAGMENTS}`,
    );
  }
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const part = frame.subarray(i * room, (i + 1) * room);
    const b = Buffer.alloc(FRAGMENT_HEADER_LEN + part.length);
    b[0] = FRAGMENT_VERSION;
    b[1] = frameId & 0xff;
    b[2] = i;
    b[3] = count;
    b.set(part, FRAGMENT_HEADER_LEN);
    out.push(b);
  }
  return out;
}

/** Why a fragment or a partial frame was thrown away; each has its counter. */
export type FragmentRejection =
  /** Shorter than the header, or an unknown version, or a count of 0, or index >= count. */
  | 'malformed'
  /** Did not continue the frame in progress (another id, a gap, another count): the partial frame is dropped. */
  | 'inconsistent'
  /** The frame would exceed maxFrameSize: dropped. */
  | 'oversized'
  /** The rest of the frame did not come within the reassembly timeout: the partial frame is dropped. */
  | 'timeout';

export type ReassemblyCounters = Record<FragmentRejection, number> & { frames: number };

export function zeroReassemblyCounters(): ReassemblyCounters {
  return { frames: 0, malformed: 0, inconsistent: 0, oversized: 0, timeout: 0 };
}

export interface ReassemblerOptions {
  readonly maxFrameSize: number;
  /** A partial frame older than this (monotonic ms) is dropped when the next fragment comes. */
  readonly timeoutMs: number;
  readonly now: () => number;
  /** Every rejection is counted here (shared by all links of a bearer if the caller wants totals). */
  readonly counters: ReassemblyCounters;
}

/**
 * Reassembles one direction of one link. Fragments of one frame come in order (ATT on one
 * connection is ordered); anything else is an inconsistency and drops the frame in progress,
 * never the link: the sealed link above retries.
 */
export class Reassembler {
  readonly #o: ReassemblerOptions;
  #id = -1;
  #count = 0;
  #next = 0;
  #parts: Buffer[] = [];
  #size = 0;
  #startedAt = 0;

  constructor(options: ReassemblerOptions) {
    this.#o = options;
  }

  /** One fragment in; a whole frame out when it was the last one. */
  push(fragment: Uint8Array): Uint8Array | undefined {
    const c = this.#o.counters;
    if (this.#next > 0 && this.#o.now() - this.#startedAt > this.#o.timeoutMs) {
      c.timeout++;
      this.#reset();
    }
    if (fragment.length < FRAGMENT_HEADER_LEN || fragment[0] !== FRAGMENT_VERSION) {
      c.malformed++;
      return undefined;
    }
    const id = fragment[1] as number;
    const index = fragment[2] as number;
    const count = fragment[3] as number;
    if (count === 0 || index >= count) {
      c.malformed++;
      return undefined;
    }
    if (index === 0) {
      if (this.#next > 0) c.inconsistent++; // a new frame started before the last one ended
      this.#reset();
      this.#id = id;
      this.#count = count;
      this.#startedAt = this.#o.now();
    } else if (this.#next === 0 || id !== this.#id || count !== this.#count || index !== this.#next) {
      c.inconsistent++;
      this.#reset();
      return undefined;
    }
    const payload = Buffer.from(fragment.subarray(FRAGMENT_HEADER_LEN));
    if (this.#size + payload.length > this.#o.maxFrameSize) {
      c.oversized++;
      this.#reset();
      return undefined;
    }
    this.#parts.push(payload);
    this.#size += payload.length;
    this.#next = index + 1;
    if (this.#next < this.#count) return undefined;
    const frame = new Uint8Array(Buffer.concat(this.#parts, this.#size));
    this.#reset();
    c.frames++;
    return frame;
  }

  #reset(): void {
    this.#id = -1;
    this.#count = 0;
    this.#next = 0;
    this.#parts = [];
    this.#size = 0;
  }
}
