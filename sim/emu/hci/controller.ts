import { createServer, type Server, type Socket } from 'node:net';
import {
  ATT_HEADER_LEN,
  advertisingPacket,
  DEFAULT_MAX_FRAME_SIZE,
  fragmentFrame,
  LOCK_FRAMES_UUID,
  LOCK_SERVICE_UUID,
  MIN_ATT_MTU,
  Reassembler,
  type ReassemblyCounters,
  scanResponsePacket,
  uuidBytes,
  zeroReassemblyCounters,
} from '../../../drivers/ble/gatt-frames.js';
import type { PeripheralHost, SimPeripheral, SimPeripheralOptions } from '../../../drivers/sim-radio/radio.js';
import { type BearerError, type CloseReason, disconnectedError } from '../../../hal/bearer.js';
import { WiredLink } from '../../../hal/link-listeners.js';
import { HubError } from '../../../src/base/errors.js';
import { err, OK, type Result } from '../../../src/base/result.js';
import { H4_ACL, H4_EVENT, type H4Counters, type H4Packet, H4Parser } from './h4.js';

/**
 * A Bluetooth LE controller emulator behind an H4 byte stream (a TCP socket that socat turns into a
 * serial port, see sim/emu/pty.ts): enough of HCI for real noble to start, scan, connect, run GATT
 * and get notifications, with the simulated locks (sim/lock) as its peripherals. It is a
 * PeripheralHost, so an unmodified SimLock goes on the air here exactly as on the SimRadio.
 *
 * One host at a time: a new TCP connection replaces the previous one (a re-plugged adapter).
 * Faults: drop or corrupt the next notifications, inject raw notifications, stall (answer
 * nothing), drop a link, unplug (close the transport).
 */

export interface HciEmulatorOptions {
  /** The controller's BD_ADDR, as the locks see the hub. */
  readonly address?: string;
  /** How often each advertising peripheral is reported while the host scans, ms. */
  readonly advertiseIntervalMs?: number;
  /** The GATT server's ATT MTU; the link uses min(host's, this). */
  readonly attMtu?: number;
  /** The locks' maxFrameSize (reassembly limit for frames from the hub). */
  readonly maxFrameSize?: number;
  readonly reassemblyTimeoutMs?: number;
  /** Concurrent LE connections the controller allows; more fail with "Connection Limit Exceeded". */
  readonly maxConnections?: number;
  /** Time between LE Create Connection and LE Connection Complete, ms. */
  readonly connectDelayMs?: number;
}

export interface HciEmulatorCounters extends H4Counters {
  commands: number;
  /** Commands answered with "Unknown HCI Command". */
  unknownCommands: number;
  aclPackets: number;
  /** ACL packets for a connection handle that does not exist. */
  unknownHandle: number;
  /** ATT PDUs the GATT server could not parse (too short for their opcode). */
  malformedAtt: number;
  /** Packets received while stalled (not answered). */
  ignoredWhileStalled: number;
  notifications: number;
  droppedNotifications: number;
  corruptedNotifications: number;
  /** Peripherals whose advertisement could not be encoded (a device id too long for a scan response). */
  unadvertisable: number;
  /** Host connections accepted (1 + re-plugs). */
  hostConnections: number;
  /** Reassembly of frames from the hub, on the locks' side. */
  reassembly: ReassemblyCounters;
}

// HCI opcodes (OGF << 10 | OCF)
const OP = {
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

const STATUS = {
  ok: 0x00,
  unknownCommand: 0x01,
  unknownConnection: 0x02,
  connectionTimeout: 0x08,
  connectionLimit: 0x09,
  disallowed: 0x0c,
  remoteUserTerminated: 0x13,
  localHostTerminated: 0x16,
} as const;

// ATT
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
const ATT_CID = 0x0004;
const ERR_INVALID_HANDLE = 0x01;
const ERR_NOT_SUPPORTED = 0x06;
const ERR_NOT_FOUND = 0x0a;

// The GATT database: one service, one characteristic, its CCCD.
const H_SERVICE = 1;
const H_CHAR_DECL = 2;
const H_VALUE = 3;
const H_CCCD = 4;
const PROPS_WRITE_NOTIFY = 0x08 | 0x04 | 0x10;

const ACL_BUFFER_SIZE = 251;
const ACL_BUFFERS = 8;

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function macBytes(address: string): Buffer {
  const a = address.toLowerCase();
  if (!MAC.test(a)) {
    throw new HubError('hci-emu-address', `HCI emulator: ${address} is not a BLE address (aa:bb:cc:dd:ee:ff)`);
  }
  return Buffer.from(a.split(':').reverse().join(''), 'hex');
}

function macString(bytes: Uint8Array): string {
  return Buffer.from(bytes).reverse().toString('hex').match(/../g)!.join(':');
}

interface Peripheral {
  readonly options: SimPeripheralOptions;
  readonly address: string;
  inRange: boolean;
}

interface Connection {
  readonly handle: number;
  readonly peripheral: Peripheral;
  mtu: number;
  subscribed: boolean;
  /** Notifications waiting for the host to enable them. */
  held: Buffer[];
  txFrameId: number;
  readonly end: WiredLink;
  readonly reassembler: Reassembler;
  /** An L2CAP PDU being assembled from ACL fragments. */
  l2cap: Buffer | undefined;
}

export class HciEmulator implements PeripheralHost {
  readonly address: string;
  readonly advertiseIntervalMs: number;
  readonly attMtu: number;
  readonly maxFrameSize: number;
  readonly reassemblyTimeoutMs: number;
  readonly maxConnections: number;
  readonly connectDelayMs: number;
  readonly #server: Server;
  readonly #peripherals = new Map<string, Peripheral>();
  readonly #connections = new Map<number, Connection>();
  readonly #counters: Omit<HciEmulatorCounters, 'reassembly'>;
  readonly #reassembly = zeroReassemblyCounters();
  #socket: Socket | undefined;
  #parser: H4Parser;
  #scanning = false;
  #advertiser: NodeJS.Timeout | undefined;
  #pending: { address: string; timer: NodeJS.Timeout | undefined } | undefined;
  #nextHandle = 0x0040;
  #stalled = false;
  #dropNext = 0;
  #corruptNext = 0;
  #closed = false;

  private constructor(server: Server, options: HciEmulatorOptions) {
    this.#server = server;
    this.address = (options.address ?? 'c0:ff:ee:00:00:01').toLowerCase();
    macBytes(this.address);
    this.advertiseIntervalMs = options.advertiseIntervalMs ?? 100;
    this.attMtu = options.attMtu ?? 185;
    this.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.reassemblyTimeoutMs = options.reassemblyTimeoutMs ?? 5_000;
    this.maxConnections = options.maxConnections ?? 4;
    this.connectDelayMs = options.connectDelayMs ?? 5;
    if (!Number.isInteger(this.attMtu) || this.attMtu < MIN_ATT_MTU || this.attMtu > 517) {
      throw new HubError('hci-emu-config', `HCI emulator: attMtu must be an integer 23…517, got ${this.attMtu}`);
    }
    this.#counters = {
      garbageBytes: 0,
      oversizedPackets: 0,
      commands: 0,
      unknownCommands: 0,
      aclPackets: 0,
      unknownHandle: 0,
      malformedAtt: 0,
      ignoredWhileStalled: 0,
      notifications: 0,
      droppedNotifications: 0,
      corruptedNotifications: 0,
      unadvertisable: 0,
      hostConnections: 0,
    };
    this.#parser = new H4Parser(ACL_BUFFER_SIZE, this.#counters);
    server.on('connection', (socket) => this.#attach(socket));
  }

  /** Listens on 127.0.0.1 on a free port (see `port`). */
  static async start(options: HciEmulatorOptions = {}): Promise<HciEmulator> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return new HciEmulator(server, options);
  }

  get port(): number {
    const a = this.#server.address();
    if (!a || typeof a === 'string') throw new HubError('hci-emu-closed', 'HCI emulator: not listening');
    return a.port;
  }

  /** Whether a host (socat's TCP connection) is attached now. */
  get hostAttached(): boolean {
    return this.#socket !== undefined;
  }

  counters(): HciEmulatorCounters {
    return { ...this.#counters, reassembly: { ...this.#reassembly } };
  }

  // ── PeripheralHost ───────────────────────────────────────────────────────────────────────────

  addPeripheral(options: SimPeripheralOptions): SimPeripheral {
    const address = options.address.toLowerCase();
    macBytes(address);
    if (this.#peripherals.has(address)) {
      throw new HubError('hci-emu-duplicate-address', `HCI emulator: a peripheral already uses address ${address}`);
    }
    const peripheral: Peripheral = { options, address, inRange: true };
    this.#peripherals.set(address, peripheral);
    return {
      address,
      inRange: () => peripheral.inRange,
      setInRange: (inRange) => {
        peripheral.inRange = inRange;
        if (!inRange) this.#dropPeripheral(peripheral, STATUS.connectionTimeout, 'lost');
      },
      remove: () => {
        if (this.#peripherals.get(address) !== peripheral) return;
        this.#peripherals.delete(address);
        this.#dropPeripheral(peripheral, STATUS.connectionTimeout, 'lost');
      },
    };
  }

  // ── faults ───────────────────────────────────────────────────────────────────────────────────

  /** The next `n` notifications to the host are lost on the air. */
  dropNext(n: number): void {
    this.#dropNext += n;
  }

  /** The next `n` notifications reach the host with their fragment header damaged. */
  corruptNext(n: number): void {
    this.#corruptNext += n;
  }

  /** Sends `value` as a notification of the frames characteristic on the link to `address`, as is. */
  injectNotification(address: string, value: Uint8Array): boolean {
    const c = this.#connectionTo(address.toLowerCase());
    if (!c) return false;
    this.#sendNotification(c, Buffer.from(value), false);
    return true;
  }

  /** A hung controller: nothing the host sends is answered, nothing is advertised, until stall(false). */
  stall(stalled: boolean): void {
    this.#stalled = stalled;
  }

  /** Drops every link to `address` (supervision timeout): the host and the lock both see it lost. Returns how many. */
  disconnect(address: string): number {
    const p = this.#peripherals.get(address.toLowerCase());
    return p ? this.#dropPeripheral(p, STATUS.connectionTimeout, 'lost') : 0;
  }

  /** Closes the transport to the host, as pulling the adapter out would (socat then exits). */
  unplug(): void {
    this.#socket?.destroy();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket?.destroy();
    this.#detach(this.#socket);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ── transport ────────────────────────────────────────────────────────────────────────────────

  #attach(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const previous = this.#socket;
    if (previous) {
      previous.destroy();
      this.#detach(previous);
    }
    this.#counters.hostConnections++;
    this.#socket = socket;
    this.#parser = new H4Parser(ACL_BUFFER_SIZE, this.#counters);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.#socket !== socket) return;
      for (const packet of this.#parser.push(chunk)) this.#handle(packet);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.#detach(socket));
  }

  /** The host went away: links are lost, scanning stops. */
  #detach(socket: Socket | undefined): void {
    if (!socket || this.#socket !== socket) return;
    this.#socket = undefined;
    this.#resetState('lost');
  }

  #resetState(lockReason: CloseReason): void {
    this.#scanning = false;
    this.#armAdvertiser();
    if (this.#pending?.timer) clearTimeout(this.#pending.timer);
    this.#pending = undefined;
    for (const c of [...this.#connections.values()]) {
      this.#connections.delete(c.handle);
      c.end.closed(lockReason);
    }
  }

  #write(bytes: Buffer): void {
    const s = this.#socket;
    if (s && !s.destroyed) s.write(bytes);
  }

  #event(code: number, params: Buffer): void {
    this.#write(Buffer.concat([Buffer.from([H4_EVENT, code, params.length]), params]));
  }

  #commandComplete(opcode: number, status: number, result: Buffer = Buffer.alloc(0)): void {
    const p = Buffer.alloc(4 + result.length);
    p[0] = 1; // Num_HCI_Command_Packets
    p.writeUInt16LE(opcode, 1);
    p[3] = status;
    result.copy(p, 4);
    this.#event(0x0e, p);
  }

  #commandStatus(opcode: number, status: number): void {
    const p = Buffer.alloc(4);
    p[0] = status;
    p[1] = 1;
    p.writeUInt16LE(opcode, 2);
    this.#event(0x0f, p);
  }

  #leMeta(subevent: number, params: Buffer): void {
    this.#event(0x3e, Buffer.concat([Buffer.from([subevent]), params]));
  }

  #acl(handle: number, l2capPayload: Buffer, cid = ATT_CID): void {
    const b = Buffer.alloc(9 + l2capPayload.length);
    b[0] = H4_ACL;
    b.writeUInt16LE(handle | (0x02 << 12), 1);
    b.writeUInt16LE(4 + l2capPayload.length, 3);
    b.writeUInt16LE(l2capPayload.length, 5);
    b.writeUInt16LE(cid, 7);
    l2capPayload.copy(b, 9);
    this.#write(b);
  }

  // ── HCI ──────────────────────────────────────────────────────────────────────────────────────

  #handle(packet: H4Packet): void {
    if (this.#stalled) {
      this.#counters.ignoredWhileStalled++;
      return;
    }
    if (packet.type === 'command') this.#command(packet.opcode, packet.params);
    else this.#aclIn(packet.handle, packet.pb, packet.data);
  }

  #command(opcode: number, params: Buffer): void {
    this.#counters.commands++;
    const none = Buffer.alloc(0);
    switch (opcode) {
      case OP.reset:
        this.#resetState('lost');
        this.#commandComplete(opcode, STATUS.ok);
        return;
      case OP.setEventMask:
      case OP.leSetEventMask:
      case OP.writeLeHostSupported:
      case OP.leSetScanParameters:
        this.#commandComplete(opcode, STATUS.ok);
        return;
      case OP.leReadFeatures:
        // No extended advertising, no data length extension: the legacy paths noble knows best.
        this.#commandComplete(opcode, STATUS.ok, Buffer.alloc(8));
        return;
      case OP.readLocalVersion: {
        const r = Buffer.alloc(8);
        r[0] = 0x09; // HCI 5.0 (noble wants >= 6)
        r.writeUInt16LE(0x0001, 1);
        r[3] = 0x09;
        r.writeUInt16LE(0xffff, 4); // manufacturer: none
        r.writeUInt16LE(0x0001, 6);
        this.#commandComplete(opcode, STATUS.ok, r);
        return;
      }
      case OP.readLocalCommands:
        this.#commandComplete(opcode, STATUS.ok, Buffer.alloc(64));
        return;
      case OP.readLeHostSupported:
        this.#commandComplete(opcode, STATUS.ok, Buffer.from([0x01, 0x00]));
        return;
      case OP.leReadBufferSize: {
        const r = Buffer.alloc(3);
        r.writeUInt16LE(ACL_BUFFER_SIZE, 0);
        r[2] = ACL_BUFFERS;
        this.#commandComplete(opcode, STATUS.ok, r);
        return;
      }
      case OP.readBufferSize: {
        const r = Buffer.alloc(7);
        r.writeUInt16LE(ACL_BUFFER_SIZE, 0);
        r.writeUInt16LE(ACL_BUFFERS, 3);
        this.#commandComplete(opcode, STATUS.ok, r);
        return;
      }
      case OP.readBdAddr:
        this.#commandComplete(opcode, STATUS.ok, macBytes(this.address));
        return;
      case OP.leSetScanEnable:
        this.#scanning = params[0] === 0x01;
        this.#armAdvertiser();
        this.#commandComplete(opcode, STATUS.ok);
        return;
      case OP.leCreateConn:
        this.#createConnection(params);
        return;
      case OP.leCreateConnCancel:
        this.#cancelConnection();
        return;
      case OP.disconnect:
        this.#hostDisconnect(params);
        return;
      case OP.leConnUpdate:
        this.#commandStatus(opcode, STATUS.ok);
        return;
      case OP.readRssi: {
        const handle = params.length >= 2 ? params.readUInt16LE(0) : 0;
        const c = this.#connections.get(handle);
        const r = Buffer.alloc(3);
        r.writeUInt16LE(handle, 0);
        r.writeInt8(c?.peripheral.options.rssi ?? -60, 2);
        this.#commandComplete(opcode, c ? STATUS.ok : STATUS.unknownConnection, r);
        return;
      }
      default:
        this.#counters.unknownCommands++;
        this.#commandComplete(opcode, STATUS.unknownCommand, none);
    }
  }

  #createConnection(params: Buffer): void {
    if (params.length < 25) {
      this.#commandStatus(OP.leCreateConn, 0x12); // Invalid HCI Command Parameters
      return;
    }
    if (this.#pending) {
      this.#commandStatus(OP.leCreateConn, STATUS.disallowed);
      return;
    }
    const address = macString(params.subarray(6, 12));
    this.#commandStatus(OP.leCreateConn, STATUS.ok);
    const pending: { address: string; timer: NodeJS.Timeout | undefined } = { address, timer: undefined };
    this.#pending = pending;
    const peripheral = this.#peripherals.get(address);
    // An absent or silent peer: the controller keeps initiating until the host cancels.
    if (!peripheral?.inRange) return;
    pending.timer = setTimeout(() => {
      if (this.#pending !== pending) return;
      this.#pending = undefined;
      if (!peripheral.inRange || this.#peripherals.get(address) !== peripheral || this.#stalled) {
        this.#pending = pending; // still initiating
        pending.timer = undefined;
        return;
      }
      if (this.#connections.size >= this.maxConnections) {
        this.#connComplete(STATUS.connectionLimit, 0, address);
        return;
      }
      this.#establish(peripheral);
    }, this.connectDelayMs);
  }

  #cancelConnection(): void {
    const pending = this.#pending;
    if (!pending) {
      this.#commandComplete(OP.leCreateConnCancel, STATUS.disallowed);
      return;
    }
    if (pending.timer) clearTimeout(pending.timer);
    this.#pending = undefined;
    this.#commandComplete(OP.leCreateConnCancel, STATUS.ok);
    this.#connComplete(STATUS.unknownConnection, 0, pending.address);
  }

  #connComplete(status: number, handle: number, address: string): void {
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
    this.#leMeta(0x01, p);
  }

  #establish(peripheral: Peripheral): void {
    const handle = this.#nextHandle;
    this.#nextHandle = this.#nextHandle >= 0x0eff ? 0x0040 : this.#nextHandle + 1;
    const connection: Connection = {
      handle,
      peripheral,
      mtu: MIN_ATT_MTU,
      subscribed: false,
      held: [],
      txFrameId: 0,
      l2cap: undefined,
      reassembler: new Reassembler({
        maxFrameSize: this.maxFrameSize,
        timeoutMs: this.reassemblyTimeoutMs,
        now: () => performance.now(),
        counters: this.#reassembly,
      }),
      end: new WiredLink(this.address, this.maxFrameSize, {
        send: async (frame) => this.#lockSend(connection, frame),
        close: async () => {
          if (this.#connections.get(handle) !== connection) return;
          this.#connections.delete(handle);
          this.#disconnComplete(handle, STATUS.remoteUserTerminated);
          connection.end.closed('local');
        },
        quality: () => ({ rssi: peripheral.options.rssi ?? -60 }),
      }),
    };
    this.#connections.set(handle, connection);
    this.#connComplete(STATUS.ok, handle, peripheral.address);
    peripheral.options.onConnect(connection.end);
  }

  #disconnComplete(handle: number, reason: number): void {
    const p = Buffer.alloc(4);
    p[0] = STATUS.ok;
    p.writeUInt16LE(handle, 1);
    p[3] = reason;
    this.#event(0x05, p);
  }

  #hostDisconnect(params: Buffer): void {
    const handle = params.length >= 2 ? params.readUInt16LE(0) & 0x0fff : -1;
    const c = this.#connections.get(handle);
    if (!c) {
      this.#commandStatus(OP.disconnect, STATUS.unknownConnection);
      return;
    }
    this.#commandStatus(OP.disconnect, STATUS.ok);
    this.#connections.delete(handle);
    this.#disconnComplete(handle, STATUS.localHostTerminated);
    c.end.closed('remote');
  }

  #dropPeripheral(peripheral: Peripheral, reason: number, lockReason: CloseReason): number {
    let n = 0;
    for (const c of [...this.#connections.values()]) {
      if (c.peripheral !== peripheral) continue;
      this.#connections.delete(c.handle);
      this.#disconnComplete(c.handle, reason);
      c.end.closed(lockReason);
      n++;
    }
    return n;
  }

  #connectionTo(address: string): Connection | undefined {
    for (const c of this.#connections.values()) if (c.peripheral.address === address) return c;
    return undefined;
  }

  // ── advertising ──────────────────────────────────────────────────────────────────────────────

  #armAdvertiser(): void {
    const want = this.#scanning && this.#socket !== undefined && !this.#closed;
    if (want && !this.#advertiser) {
      this.#advertiser = setInterval(() => this.#advertise(), this.advertiseIntervalMs);
    } else if (!want && this.#advertiser) {
      clearInterval(this.#advertiser);
      this.#advertiser = undefined;
    }
  }

  #advertise(): void {
    if (this.#stalled) return;
    for (const p of this.#peripherals.values()) {
      if (!p.inRange) continue;
      const data = p.options.advertisement();
      if (!data) continue;
      let scanResponse: Buffer;
      try {
        scanResponse = scanResponsePacket(data);
      } catch {
        this.#counters.unadvertisable++;
        continue;
      }
      this.#advertisingReport(0x00, p, advertisingPacket()); // ADV_IND
      this.#advertisingReport(0x04, p, scanResponse); // SCAN_RSP
    }
  }

  #advertisingReport(eventType: number, p: Peripheral, data: Buffer): void {
    const r = Buffer.alloc(10 + data.length + 1);
    r[0] = 1; // one report
    r[1] = eventType;
    r[2] = 0x01; // random address
    macBytes(p.address).copy(r, 3);
    r[9] = data.length;
    data.copy(r, 10);
    r.writeInt8(Math.max(-127, Math.min(20, p.options.rssi ?? -60)), 10 + data.length);
    this.#leMeta(0x02, r);
  }

  // ── ACL, L2CAP, ATT ──────────────────────────────────────────────────────────────────────────

  #aclIn(handle: number, pb: number, data: Buffer): void {
    this.#counters.aclPackets++;
    const c = this.#connections.get(handle);
    if (!c) {
      this.#counters.unknownHandle++;
      return;
    }
    // Number Of Completed Packets: without it the host stops after ACL_BUFFERS packets.
    const nocp = Buffer.alloc(5);
    nocp[0] = 1;
    nocp.writeUInt16LE(handle, 1);
    nocp.writeUInt16LE(1, 3);
    this.#event(0x13, nocp);

    if (pb === 0x01) {
      if (!c.l2cap) {
        this.#counters.malformedAtt++;
        return;
      }
      c.l2cap = Buffer.concat([c.l2cap, data]);
    } else {
      c.l2cap = data;
    }
    if (c.l2cap.length < 4) return;
    const len = c.l2cap.readUInt16LE(0);
    if (c.l2cap.length < 4 + len) return;
    const cid = c.l2cap.readUInt16LE(2);
    const pdu = c.l2cap.subarray(4, 4 + len);
    c.l2cap = undefined;
    if (cid === ATT_CID) this.#att(c, pdu);
  }

  #attError(c: Connection, opcode: number, handle: number, code: number): void {
    const b = Buffer.alloc(5);
    b[0] = ATT.error;
    b[1] = opcode;
    b.writeUInt16LE(handle, 2);
    b[4] = code;
    this.#acl(c.handle, b);
  }

  #att(c: Connection, pdu: Buffer): void {
    const op = pdu[0];
    if (op === undefined) {
      this.#counters.malformedAtt++;
      return;
    }
    const need = (n: number) => {
      if (pdu.length >= n) return true;
      this.#counters.malformedAtt++;
      if ((op & 0x40) === 0) this.#attError(c, op, 0, 0x04); // Invalid PDU
      return false;
    };
    switch (op) {
      case ATT.mtuReq: {
        if (!need(3)) return;
        const mtu = Math.max(MIN_ATT_MTU, Math.min(this.attMtu, pdu.readUInt16LE(1)));
        c.mtu = mtu;
        const b = Buffer.alloc(3);
        b[0] = ATT.mtuResp;
        b.writeUInt16LE(mtu, 1);
        this.#acl(c.handle, b);
        return;
      }
      case ATT.readByGroupReq: {
        if (!need(7)) return;
        const start = pdu.readUInt16LE(1);
        const end = pdu.readUInt16LE(3);
        const type = pdu.length === 7 ? pdu.readUInt16LE(5) : -1;
        if (type !== 0x2800 || start > H_SERVICE || end < H_SERVICE) {
          this.#attError(c, op, start, ERR_NOT_FOUND);
          return;
        }
        const b = Buffer.alloc(2 + 20);
        b[0] = ATT.readByGroupResp;
        b[1] = 20;
        b.writeUInt16LE(H_SERVICE, 2);
        b.writeUInt16LE(H_CCCD, 4);
        uuidBytes(LOCK_SERVICE_UUID).copy(b, 6);
        this.#acl(c.handle, b);
        return;
      }
      case ATT.readByTypeReq: {
        if (!need(7)) return;
        const start = pdu.readUInt16LE(1);
        const end = pdu.readUInt16LE(3);
        const type = pdu.length === 7 ? pdu.readUInt16LE(5) : -1;
        if (type === 0x2803 && start <= H_CHAR_DECL && end >= H_CHAR_DECL) {
          const b = Buffer.alloc(2 + 21);
          b[0] = ATT.readByTypeResp;
          b[1] = 21;
          b.writeUInt16LE(H_CHAR_DECL, 2);
          b[4] = PROPS_WRITE_NOTIFY;
          b.writeUInt16LE(H_VALUE, 5);
          uuidBytes(LOCK_FRAMES_UUID).copy(b, 7);
          this.#acl(c.handle, b);
        } else if (type === 0x2902 && start <= H_CCCD && end >= H_CCCD) {
          const b = Buffer.alloc(6);
          b[0] = ATT.readByTypeResp;
          b[1] = 4;
          b.writeUInt16LE(H_CCCD, 2);
          b.writeUInt16LE(c.subscribed ? 1 : 0, 4);
          this.#acl(c.handle, b);
        } else {
          this.#attError(c, op, start, ERR_NOT_FOUND);
        }
        return;
      }
      case ATT.findInfoReq: {
        if (!need(5)) return;
        const start = pdu.readUInt16LE(1);
        const end = pdu.readUInt16LE(3);
        if (start <= H_CCCD && end >= H_CCCD && start > H_VALUE) {
          const b = Buffer.from([ATT.findInfoResp, 0x01, H_CCCD, 0x00, 0x02, 0x29]);
          this.#acl(c.handle, b);
        } else if (start <= H_VALUE && end >= H_VALUE) {
          const b = Buffer.alloc(2 + 18);
          b[0] = ATT.findInfoResp;
          b[1] = 0x02;
          b.writeUInt16LE(H_VALUE, 2);
          uuidBytes(LOCK_FRAMES_UUID).copy(b, 4);
          this.#acl(c.handle, b);
        } else {
          this.#attError(c, op, start, ERR_NOT_FOUND);
        }
        return;
      }
      case ATT.readReq: {
        if (!need(3)) return;
        const handle = pdu.readUInt16LE(1);
        if (handle === H_CCCD) {
          this.#acl(c.handle, Buffer.from([ATT.readResp, c.subscribed ? 1 : 0, 0]));
        } else if (handle === H_VALUE) {
          this.#acl(c.handle, Buffer.from([ATT.readResp]));
        } else {
          this.#attError(c, op, handle, ERR_INVALID_HANDLE);
        }
        return;
      }
      case ATT.writeReq:
      case ATT.writeCmd: {
        if (!need(3)) return;
        const handle = pdu.readUInt16LE(1);
        const value = pdu.subarray(3);
        if (handle === H_CCCD) {
          c.subscribed = value.length >= 1 && (value[0]! & 0x01) !== 0;
          if (op === ATT.writeReq) this.#acl(c.handle, Buffer.from([ATT.writeResp]));
          if (c.subscribed) for (const n of c.held.splice(0)) this.#sendNotification(c, n, true);
        } else if (handle === H_VALUE) {
          if (op === ATT.writeReq) this.#acl(c.handle, Buffer.from([ATT.writeResp]));
          const frame = c.reassembler.push(value);
          if (frame) c.end.receive(frame);
        } else if (op === ATT.writeReq) {
          this.#attError(c, op, handle, ERR_INVALID_HANDLE);
        }
        return;
      }
      default:
        // Commands (bit 6) and confirmations get no answer; unknown requests get "not supported".
        if ((op & 0x40) === 0 && op !== 0x1e && op % 2 === 0) this.#attError(c, op, 0, ERR_NOT_SUPPORTED);
    }
  }

  #lockSend(c: Connection, frame: Uint8Array): Result<void, BearerError> {
    if (!c.end.isOpen() || this.#connections.get(c.handle) !== c) {
      return err(disconnectedError(this.address, c.end.closedBy() ?? 'lost'));
    }
    if (frame.length > this.maxFrameSize) {
      return err({
        code: 'frame-too-large',
        message: `frame of ${frame.length} bytes exceeds the link's limit of ${this.maxFrameSize} bytes`,
        size: frame.length,
        maxFrameSize: this.maxFrameSize,
      });
    }
    const fragments = fragmentFrame(frame, c.txFrameId, c.mtu);
    c.txFrameId = (c.txFrameId + 1) & 0xff;
    for (const f of fragments) {
      if (c.subscribed) this.#sendNotification(c, f, true);
      else c.held.push(f);
    }
    return OK;
  }

  #sendNotification(c: Connection, value: Buffer, faults: boolean): void {
    if (faults && this.#dropNext > 0) {
      this.#dropNext--;
      this.#counters.droppedNotifications++;
      return;
    }
    let v = value;
    if (faults && this.#corruptNext > 0) {
      this.#corruptNext--;
      this.#counters.corruptedNotifications++;
      v = Buffer.from(value);
      v[0] = (v[0] ?? 0) ^ 0xff; // the version byte: the receiver must reject the fragment
    }
    const room = c.mtu - ATT_HEADER_LEN;
    if (v.length > room) v = v.subarray(0, room);
    const b = Buffer.alloc(3 + v.length);
    b[0] = ATT.notify;
    b.writeUInt16LE(H_VALUE, 1);
    v.copy(b, 3);
    this.#counters.notifications++;
    this.#acl(c.handle, b);
  }
}
