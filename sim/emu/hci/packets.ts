import { HubError } from '../../../src/base/errors.js';
import { H4_ACL, H4_EVENT } from './h4.js';

/**
 * HCI on the wire: the opcodes the host sends, the status codes, and the bytes the controller
 * answers with (command complete and status, LE meta events, disconnection, completed packets,
 * ACL data carrying L2CAP). Each layout noble parses is written down once, next to its field names.
 */

/** HCI command opcodes (OGF << 10 | OCF). */
export const OP = {
  disconnect: 0x0406,
  setEventMask: 0x0c01,
  reset: 0x0c03,
  readLeHostSupported: 0x0c6c,
  writeLeHostSupported: 0x0c6d,
  readLocalVersion: 0x1001,
  readLocalCommands: 0x1002,
  readBufferSize: 0x1005,
  readBdAddr: 0x1009,
  readRssi: 0x1405,
  leSetEventMask: 0x2001,
  leReadBufferSize: 0x2002,
  leReadFeatures: 0x2003,
  leSetScanParameters: 0x200b,
  leSetScanEnable: 0x200c,
  leCreateConn: 0x200d,
  leCreateConnCancel: 0x200e,
  leConnUpdate: 0x2013,
} as const;

export const STATUS = {
  ok: 0x00,
  unknownCommand: 0x01,
  unknownConnection: 0x02,
  connectionTimeout: 0x08,
  connectionLimit: 0x09,
  disallowed: 0x0c,
  invalidParameters: 0x12,
  remoteUserTerminated: 0x13,
  localHostTerminated: 0x16,
} as const;

/** The L2CAP channel of ATT. */
export const ATT_CID = 0x0004;
/** What the controller advertises to the host: ACL data length and packet count. */
export const ACL_BUFFER_SIZE = 251;
export const ACL_BUFFERS = 8;

const EVENT = {
  disconnectionComplete: 0x05,
  commandComplete: 0x0e,
  commandStatus: 0x0f,
  completedPackets: 0x13,
  leMeta: 0x3e,
} as const;
const LE_CONNECTION_COMPLETE = 0x01;
const LE_ADVERTISING_REPORT = 0x02;

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function macBytes(address: string): Buffer {
  const a = address.toLowerCase();
  if (!MAC.test(a)) {
    throw new HubError('hci-emu.address', `HCI emulator: ${address} is not a BLE address (aa:bb:cc:dd:ee:ff)`);
  }
  return Buffer.from(a.split(':').reverse().join(''), 'hex');
}

export function macString(bytes: Uint8Array): string {
  return Buffer.from(bytes).reverse().toString('hex').match(/../g)!.join(':');
}

function event(code: number, params: Buffer): Buffer {
  return Buffer.concat([Buffer.from([H4_EVENT, code, params.length]), params]);
}

function leMeta(subevent: number, params: Buffer): Buffer {
  return event(EVENT.leMeta, Buffer.concat([Buffer.from([subevent]), params]));
}

export function commandComplete(opcode: number, status: number, result: Buffer = Buffer.alloc(0)): Buffer {
  const p = Buffer.alloc(4 + result.length);
  p[0] = 1; // Num_HCI_Command_Packets
  p.writeUInt16LE(opcode, 1);
  p[3] = status;
  result.copy(p, 4);
  return event(EVENT.commandComplete, p);
}

export function commandStatus(opcode: number, status: number): Buffer {
  const p = Buffer.alloc(4);
  p[0] = status;
  p[1] = 1;
  p.writeUInt16LE(opcode, 2);
  return event(EVENT.commandStatus, p);
}

export function connectionComplete(status: number, handle: number, address: string): Buffer {
  const p = Buffer.alloc(18);
  p[0] = status;
  p.writeUInt16LE(handle, 1);
  p[3] = 0x00; // role: central
  p[4] = 0x01; // peer address type: random (what noble assumes for unknown peers)
  macBytes(address).copy(p, 5);
  p.writeUInt16LE(0x0018, 11); // interval 30 ms
  p.writeUInt16LE(0, 13);
  p.writeUInt16LE(0x002a, 15); // supervision timeout 420 ms
  p[17] = 0;
  return leMeta(LE_CONNECTION_COMPLETE, p);
}

export function disconnectionComplete(handle: number, reason: number): Buffer {
  const p = Buffer.alloc(4);
  p[0] = STATUS.ok;
  p.writeUInt16LE(handle, 1);
  p[3] = reason;
  return event(EVENT.disconnectionComplete, p);
}

/** Number Of Completed Packets for one packet: without it the host stops after ACL_BUFFERS packets. */
export function completedPacket(handle: number): Buffer {
  const p = Buffer.alloc(5);
  p[0] = 1;
  p.writeUInt16LE(handle, 1);
  p.writeUInt16LE(1, 3);
  return event(EVENT.completedPackets, p);
}

/** One advertising report (ADV_IND 0x00, SCAN_RSP 0x04) from a random address. */
export function advertisingReport(eventType: number, address: string, rssi: number, data: Buffer): Buffer {
  const r = Buffer.alloc(10 + data.length + 1);
  r[0] = 1; // one report
  r[1] = eventType;
  r[2] = 0x01; // random address
  macBytes(address).copy(r, 3);
  r[9] = data.length;
  data.copy(r, 10);
  r.writeInt8(Math.max(-127, Math.min(20, rssi)), 10 + data.length);
  return leMeta(LE_ADVERTISING_REPORT, r);
}

/** ACL data, first (and only) fragment from the controller, with its L2CAP header. */
export function aclPacket(handle: number, l2capPayload: Buffer, cid = ATT_CID): Buffer {
  const b = Buffer.alloc(9 + l2capPayload.length);
  b[0] = H4_ACL;
  b.writeUInt16LE(handle | (0x02 << 12), 1);
  b.writeUInt16LE(4 + l2capPayload.length, 3);
  b.writeUInt16LE(l2capPayload.length, 5);
  b.writeUInt16LE(cid, 7);
  l2capPayload.copy(b, 9);
  return b;
}
