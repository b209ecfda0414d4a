import {
  ATT_HEADER_LEN,
  LOCK_FRAMES_UUID,
  LOCK_SERVICE_UUID,
  MIN_ATT_MTU,
  type Reassembler,
  uuidBytes,
} from '../../../drivers/ble/gatt-frames.js';
import type { WiredLink } from '../../../hal/link-listeners.js';

/**
 * The locks' GATT server as noble discovers and uses it: one service with one characteristic
 * (frames, written by the hub and notified by the lock) and its CCCD, answered over ATT; and the
 * notification path with its faults (dropped or damaged notifications). The database is fixed,
 * so its handles are constants rather than a table to search.
 */

const ATT = {
  error: 0x01,
  mtuReq: 0x02,
  mtuResp: 0x03,
  findInfoReq: 0x04,
  findInfoResp: 0x05,
  readByTypeReq: 0x08,
  readByTypeResp: 0x09,
  readReq: 0x0a,
  readResp: 0x0b,
  readByGroupReq: 0x10,
  readByGroupResp: 0x11,
  writeReq: 0x12,
  writeResp: 0x13,
  notify: 0x1b,
  writeCmd: 0x52,
} as const;
const ERR_INVALID_HANDLE = 0x01;
const ERR_INVALID_PDU = 0x04;
const ERR_NOT_SUPPORTED = 0x06;
const ERR_NOT_FOUND = 0x0a;
const HANDLE_VALUE_CONFIRMATION = 0x1e;
const PRIMARY_SERVICE = 0x2800;
const CHARACTERISTIC = 0x2803;
const CCCD = 0x2902;

// The GATT database: one service, one characteristic, its CCCD.
const H_SERVICE = 1;
const H_CHAR_DECL = 2;
const H_VALUE = 3;
const H_CCCD = 4;
const PROPS_WRITE_NOTIFY = 0x08 | 0x04 | 0x10;

/** What the GATT server keeps per connection. */
export interface AttConnection {
  readonly handle: number;
  mtu: number;
  subscribed: boolean;
  /** Notifications waiting for the host to enable them. */
  held: Buffer[];
  /** Frames from the hub, reassembled from what it writes. */
  readonly reassembler: Reassembler;
  /** The lock's end of the link. */
  readonly end: WiredLink;
}

export interface GattCounters {
  /** ATT PDUs the GATT server could not parse (too short for their opcode). */
  malformedAtt: number;
  notifications: number;
  frameWrites: number;
  frameWriteResponses: number;
  droppedNotifications: number;
  corruptedNotifications: number;
}

export interface GattOptions {
  /** The server's ATT MTU; a connection uses min(host's, this). */
  readonly attMtu: number;
  readonly counters: GattCounters;
  /** An ATT PDU to the host on the connection's ATT channel. */
  send(handle: number, pdu: Buffer): void;
}

export class GattServer {
  readonly #o: GattOptions;
  #dropNext = 0;
  #corruptNext = 0;

  constructor(options: GattOptions) {
    this.#o = options;
  }

  /** The next `n` notifications to the host are lost on the air. */
  dropNext(n: number): void {
    this.#dropNext += n;
  }

  /** The next `n` notifications reach the host with their fragment header damaged. */
  corruptNext(n: number): void {
    this.#corruptNext += n;
  }

  /** A fragment from the lock: notified now, or held until the host enables notifications. */
  fromLock(c: AttConnection, fragment: Buffer): void {
    if (c.subscribed) this.notify(c, fragment, true);
    else c.held.push(fragment);
  }

  /** A Handle Value Notification of the frames characteristic; `faults`: subject to dropNext/corruptNext. */
  notify(c: AttConnection, value: Buffer, faults: boolean): void {
    if (faults && this.#dropNext > 0) {
      this.#dropNext--;
      this.#o.counters.droppedNotifications++;
      return;
    }
    let v = value;
    if (faults && this.#corruptNext > 0) {
      this.#corruptNext--;
      this.#o.counters.corruptedNotifications++;
      v = Buffer.from(value);
      v[0] = (v[0] ?? 0) ^ 0xff; // the version byte: the receiver must reject the fragment
    }
    const room = c.mtu - ATT_HEADER_LEN;
    if (v.length > room) v = v.subarray(0, room);
    const b = Buffer.alloc(3 + v.length);
    b[0] = ATT.notify;
    b.writeUInt16LE(H_VALUE, 1);
    v.copy(b, 3);
    this.#o.counters.notifications++;
    this.#o.send(c.handle, b);
  }

  /** One ATT PDU from the host. */
  handle(c: AttConnection, pdu: Buffer): void {
    const op = pdu[0];
    if (op === undefined) {
      this.#o.counters.malformedAtt++;
      return;
    }
    const need = (n: number) => {
      if (pdu.length >= n) return true;
      this.#o.counters.malformedAtt++;
      if ((op & 0x40) === 0) this.#error(c, op, 0, ERR_INVALID_PDU);
      return false;
    };
    switch (op) {
      case ATT.mtuReq:
        if (need(3)) this.#exchangeMtu(c, pdu);
        return;
      case ATT.readByGroupReq:
        if (need(7)) this.#readByGroupType(c, pdu);
        return;
      case ATT.readByTypeReq:
        if (need(7)) this.#readByType(c, pdu);
        return;
      case ATT.findInfoReq:
        if (need(5)) this.#findInformation(c, pdu);
        return;
      case ATT.readReq:
        if (need(3)) this.#read(c, pdu);
        return;
      case ATT.writeReq:
      case ATT.writeCmd:
        if (need(3)) this.#write(c, op, pdu);
        return;
      default:
        // Commands (bit 6) and confirmations get no answer; unknown requests get "not supported".
        if ((op & 0x40) === 0 && op !== HANDLE_VALUE_CONFIRMATION && op % 2 === 0) {
          this.#error(c, op, 0, ERR_NOT_SUPPORTED);
        }
    }
  }

  #exchangeMtu(c: AttConnection, pdu: Buffer): void {
    const mtu = Math.max(MIN_ATT_MTU, Math.min(this.#o.attMtu, pdu.readUInt16LE(1)));
    c.mtu = mtu;
    const b = Buffer.alloc(3);
    b[0] = ATT.mtuResp;
    b.writeUInt16LE(mtu, 1);
    this.#o.send(c.handle, b);
  }

  #readByGroupType(c: AttConnection, pdu: Buffer): void {
    const start = pdu.readUInt16LE(1);
    const end = pdu.readUInt16LE(3);
    const type = pdu.length === 7 ? pdu.readUInt16LE(5) : -1;
    if (type !== PRIMARY_SERVICE || start > H_SERVICE || end < H_SERVICE) {
      this.#error(c, ATT.readByGroupReq, start, ERR_NOT_FOUND);
      return;
    }
    const b = Buffer.alloc(2 + 20);
    b[0] = ATT.readByGroupResp;
    b[1] = 20;
    b.writeUInt16LE(H_SERVICE, 2);
    b.writeUInt16LE(H_CCCD, 4);
    uuidBytes(LOCK_SERVICE_UUID).copy(b, 6);
    this.#o.send(c.handle, b);
  }

  #readByType(c: AttConnection, pdu: Buffer): void {
    const start = pdu.readUInt16LE(1);
    const end = pdu.readUInt16LE(3);
    const type = pdu.length === 7 ? pdu.readUInt16LE(5) : -1;
    if (type === CHARACTERISTIC && start <= H_CHAR_DECL && end >= H_CHAR_DECL) {
      const b = Buffer.alloc(2 + 21);
      b[0] = ATT.readByTypeResp;
      b[1] = 21;
      b.writeUInt16LE(H_CHAR_DECL, 2);
      b[4] = PROPS_WRITE_NOTIFY;
      b.writeUInt16LE(H_VALUE, 5);
      uuidBytes(LOCK_FRAMES_UUID).copy(b, 7);
      this.#o.send(c.handle, b);
    } else if (type === CCCD && start <= H_CCCD && end >= H_CCCD) {
      const b = Buffer.alloc(6);
      b[0] = ATT.readByTypeResp;
      b[1] = 4;
      b.writeUInt16LE(H_CCCD, 2);
      b.writeUInt16LE(c.subscribed ? 1 : 0, 4);
      this.#o.send(c.handle, b);
    } else {
      this.#error(c, ATT.readByTypeReq, start, ERR_NOT_FOUND);
    }
  }

  #findInformation(c: AttConnection, pdu: Buffer): void {
    const start = pdu.readUInt16LE(1);
    const end = pdu.readUInt16LE(3);
    if (start <= H_CCCD && end >= H_CCCD && start > H_VALUE) {
      this.#o.send(c.handle, Buffer.from([ATT.findInfoResp, 0x01, H_CCCD, 0x00, 0x02, 0x29]));
    } else if (start <= H_VALUE && end >= H_VALUE) {
      const b = Buffer.alloc(2 + 18);
      b[0] = ATT.findInfoResp;
      b[1] = 0x02;
      b.writeUInt16LE(H_VALUE, 2);
      uuidBytes(LOCK_FRAMES_UUID).copy(b, 4);
      this.#o.send(c.handle, b);
    } else {
      this.#error(c, ATT.findInfoReq, start, ERR_NOT_FOUND);
    }
  }

  #read(c: AttConnection, pdu: Buffer): void {
    const handle = pdu.readUInt16LE(1);
    if (handle === H_CCCD) {
      this.#o.send(c.handle, Buffer.from([ATT.readResp, c.subscribed ? 1 : 0, 0]));
    } else if (handle === H_VALUE) {
      this.#o.send(c.handle, Buffer.from([ATT.readResp]));
    } else {
      this.#error(c, ATT.readReq, handle, ERR_INVALID_HANDLE);
    }
  }

  #write(c: AttConnection, op: number, pdu: Buffer): void {
    const handle = pdu.readUInt16LE(1);
    const value = pdu.subarray(3);
    if (handle === H_CCCD) {
      c.subscribed = value.length >= 1 && (value[0]! & 0x01) !== 0;
      if (op === ATT.writeReq) this.#o.send(c.handle, Buffer.from([ATT.writeResp]));
      if (c.subscribed) for (const n of c.held.splice(0)) this.notify(c, n, true);
    } else if (handle === H_VALUE) {
      this.#o.counters.frameWrites++;
      if (op === ATT.writeReq) {
        this.#o.counters.frameWriteResponses++;
        this.#o.send(c.handle, Buffer.from([ATT.writeResp]));
      }
      const frame = c.reassembler.push(value);
      if (frame) c.end.receive(frame);
    } else if (op === ATT.writeReq) {
      this.#error(c, op, handle, ERR_INVALID_HANDLE);
    }
  }

  #error(c: AttConnection, opcode: number, handle: number, code: number): void {
    const b = Buffer.alloc(5);
    b[0] = ATT.error;
    b[1] = opcode;
    b.writeUInt16LE(handle, 2);
    b[4] = code;
    this.#o.send(c.handle, b);
  }
}
