/**
 * The wire contract between the hub and an iq lock on ZigBee, shared by the driver
 * (drivers/zigbee/) and the Z-Stack emulator's simulated end devices (sim/emu/znp/): one
 * definition, so the two ends cannot drift apart. docs/zigbee.md describes it for firmware authors.
 *
 * - The lock is an end device with one endpoint (1, Home Automation profile) serving genBasic,
 *   closuresDoorLock and the manufacturer-specific link cluster below.
 * - genBasic.modelId says who the lock is and whether it is in attach mode (MODEL_ID_PREFIX).
 * - Link frames (the sealed link of src/link/) travel as cluster-specific, manufacturer-specific
 *   commands of LINK_CLUSTER_ID, cut into fragments that fit one ZCL payload.
 */

/** The manufacturer-specific cluster carrying link frames. */
export const LINK_CLUSTER_ID = 0xfc00;
/**
 * The manufacturer code in every link-cluster frame. 0x1234 is a placeholder for development and the
 * emulator; a product needs the code the Connectivity Standards Alliance allocates to its maker.
 */
export const MANUFACTURER_CODE = 0x1234;
/** The lock's application endpoint. */
export const LOCK_ENDPOINT = 1;
/** Home Automation profile. */
export const HA_PROFILE_ID = 0x0104;
/** ZCL Door Lock device id. */
export const DOOR_LOCK_DEVICE_ID = 0x000a;
export const GEN_BASIC_CLUSTER_ID = 0x0000;
export const DOOR_LOCK_CLUSTER_ID = 0x0101;
/** Door Lock lockState attribute and its values (ZCL 7.3.2.2). */
export const LOCK_STATE_ATTRIBUTE_ID = 0x0000;
export type DoorLockState = 'not-fully-locked' | 'locked' | 'unlocked' | 'undefined';
export const LOCK_STATE_VALUES: Readonly<Record<number, DoorLockState>> = {
  0: 'not-fully-locked',
  1: 'locked',
  2: 'unlocked',
  255: 'undefined',
};

/** Link-cluster commands (same ids both directions). */
export const LinkCommand = {
  /** One fragment of a link frame: FRAGMENT_HEADER_SIZE bytes of header, then data. */
  fragment: 0x00,
  /** Hub → lock: open a link (the lock's onConnect). */
  open: 0x01,
  /** Lock → hub: the link is open. */
  openAck: 0x02,
  /** Either way: the link is closed. */
  close: 0x03,
} as const;
export type LinkCommandId = (typeof LinkCommand)[keyof typeof LinkCommand];

/**
 * The largest ZCL payload one link-cluster command carries. 80 bytes keeps a whole APS frame
 * (ZCL header 5, NWK/APS/MAC headers and security) inside one 127-byte 802.15.4 frame without
 * APS fragmentation, which Z-Stack coordinators and many end devices do not support.
 */
export const ZCL_PAYLOAD_LIMIT = 80;
/** Fragment header: frame id (u8, wraps), fragment index (u8), fragment count (u8). */
export const FRAGMENT_HEADER_SIZE = 3;
export const FRAGMENT_DATA_SIZE = ZCL_PAYLOAD_LIMIT - FRAGMENT_HEADER_SIZE;
/**
 * The largest link frame either end sends or reassembles: part of the wire contract, so fixed
 * here rather than following the port; it must stay >= BEARER_MIN_FRAME_SIZE (a unit test checks).
 */
export const MAX_FRAME_SIZE = 2304;
export const MAX_FRAGMENTS = Math.ceil(MAX_FRAME_SIZE / FRAGMENT_DATA_SIZE);

/** genBasic.modelId of an iq lock: `iqlock:<deviceId>:<attach|normal>`. */
export const MODEL_ID_PREFIX = 'iqlock';
const DEVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function encodeModelId(deviceId: string, attachMode: boolean): string {
  if (!DEVICE_ID.test(deviceId)) {
    throw new RangeError(`zigbee modelId: device id ${JSON.stringify(deviceId)} is not 1-64 of [A-Za-z0-9._-]`);
  }
  return `${MODEL_ID_PREFIX}:${deviceId}:${attachMode ? 'attach' : 'normal'}`;
}

/** The device id and attach flag in a modelId, or undefined for anything that is not an iq lock's. */
export function parseModelId(modelId: unknown): { deviceId: string; attachMode: boolean } | undefined {
  if (typeof modelId !== 'string') return undefined;
  const parts = modelId.split(':');
  if (parts.length !== 3 || parts[0] !== MODEL_ID_PREFIX) return undefined;
  const [, deviceId, mode] = parts as [string, string, string];
  if (!DEVICE_ID.test(deviceId) || (mode !== 'attach' && mode !== 'normal')) return undefined;
  return { deviceId, attachMode: mode === 'attach' };
}

/** Cuts a frame into fragment payloads (header included). Every fragment but the last is full. */
export function fragmentFrame(frameId: number, frame: Uint8Array): Uint8Array[] {
  if (frame.length === 0 || frame.length > MAX_FRAME_SIZE) {
    throw new RangeError(`zigbee link: frame of ${frame.length} bytes is outside 1..${MAX_FRAME_SIZE}`);
  }
  const count = Math.ceil(frame.length / FRAGMENT_DATA_SIZE);
  const out: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const data = frame.subarray(index * FRAGMENT_DATA_SIZE, (index + 1) * FRAGMENT_DATA_SIZE);
    const fragment = new Uint8Array(FRAGMENT_HEADER_SIZE + data.length);
    fragment[0] = frameId & 0xff;
    fragment[1] = index;
    fragment[2] = count;
    fragment.set(data, FRAGMENT_HEADER_SIZE);
    out.push(fragment);
  }
  return out;
}

export type RejectReason =
  | 'short-fragment'
  | 'bad-count'
  | 'bad-index'
  | 'count-mismatch'
  | 'bad-fragment-size'
  | 'duplicate-fragment';

export type ReassemblyResult =
  | { readonly kind: 'frame'; readonly frame: Uint8Array }
  | { readonly kind: 'partial' }
  | { readonly kind: 'rejected'; readonly reason: RejectReason };

/**
 * Puts fragments of one direction of one link back together. One frame at a time: a fragment of
 * a new frame id abandons the unfinished one (the link layer retries), so a peer cannot make us
 * hold more than MAX_FRAME_SIZE bytes. Every refusal is returned (and counted by the caller).
 */
export class Reassembler {
  /** Unfinished frames dropped because a fragment of a newer frame arrived. */
  abandoned = 0;
  #id = -1;
  #count = 0;
  #parts: (Uint8Array | undefined)[] = [];
  #received = 0;

  push(fragment: Uint8Array): ReassemblyResult {
    if (fragment.length <= FRAGMENT_HEADER_SIZE) return rejected('short-fragment');
    const id = fragment[0]!;
    const index = fragment[1]!;
    const count = fragment[2]!;
    const data = fragment.subarray(FRAGMENT_HEADER_SIZE);
    if (count < 1 || count > MAX_FRAGMENTS) return rejected('bad-count');
    if (index >= count) return rejected('bad-index');
    const last = index === count - 1;
    if ((!last && data.length !== FRAGMENT_DATA_SIZE) || data.length > FRAGMENT_DATA_SIZE) {
      return rejected('bad-fragment-size');
    }
    if (id !== this.#id || this.#received === 0) {
      if (this.#received > 0) this.abandoned++;
      this.#start(id, count);
    } else if (count !== this.#count) {
      this.#reset();
      return rejected('count-mismatch');
    }
    if (this.#parts[index] !== undefined) return rejected('duplicate-fragment');
    this.#parts[index] = Uint8Array.from(data);
    this.#received++;
    if (this.#received < this.#count) return { kind: 'partial' };
    const frame = concat(this.#parts as Uint8Array[]);
    this.#reset();
    return { kind: 'frame', frame };
  }

  #start(id: number, count: number): void {
    this.#id = id;
    this.#count = count;
    this.#parts = new Array(count).fill(undefined);
    this.#received = 0;
  }

  #reset(): void {
    this.#id = -1;
    this.#count = 0;
    this.#parts = [];
    this.#received = 0;
  }
}

function rejected(reason: RejectReason): ReassemblyResult {
  return { kind: 'rejected', reason };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** A ZCL frame as both ends need it: header fields and payload (ZCL 2.4). */
export interface ZclFrame {
  /** Cluster-specific (true) or a global (foundation) command. */
  readonly clusterSpecific: boolean;
  readonly manufacturerCode?: number;
  /** Server → client (true): responses, reports and everything a lock sends. */
  readonly serverToClient: boolean;
  readonly disableDefaultResponse: boolean;
  readonly tsn: number;
  readonly command: number;
  readonly payload: Uint8Array;
}

export function encodeZcl(frame: ZclFrame): Uint8Array {
  const manufacturer = frame.manufacturerCode !== undefined;
  const header = manufacturer ? 5 : 3;
  const out = new Uint8Array(header + frame.payload.length);
  out[0] =
    (frame.clusterSpecific ? 0x01 : 0x00) |
    (manufacturer ? 0x04 : 0x00) |
    (frame.serverToClient ? 0x08 : 0x00) |
    (frame.disableDefaultResponse ? 0x10 : 0x00);
  let pos = 1;
  if (manufacturer) {
    out[1] = frame.manufacturerCode! & 0xff;
    out[2] = (frame.manufacturerCode! >> 8) & 0xff;
    pos = 3;
  }
  out[pos] = frame.tsn & 0xff;
  out[pos + 1] = frame.command & 0xff;
  out.set(frame.payload, header);
  return out;
}

/** Parses a ZCL frame, or undefined when it is too short or uses reserved frame types. Never throws. */
export function decodeZcl(bytes: Uint8Array): ZclFrame | undefined {
  if (bytes.length < 3) return undefined;
  const control = bytes[0]!;
  const frameType = control & 0x03;
  if (frameType > 1) return undefined;
  const manufacturer = (control & 0x04) !== 0;
  const header = manufacturer ? 5 : 3;
  if (bytes.length < header) return undefined;
  return {
    clusterSpecific: frameType === 1,
    ...(manufacturer ? { manufacturerCode: bytes[1]! | (bytes[2]! << 8) } : {}),
    serverToClient: (control & 0x08) !== 0,
    disableDefaultResponse: (control & 0x10) !== 0,
    tsn: bytes[header - 2]!,
    command: bytes[header - 1]!,
    payload: bytes.slice(header),
  };
}
