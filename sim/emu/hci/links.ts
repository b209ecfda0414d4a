import { fragmentFrame, MIN_ATT_MTU, Reassembler, type ReassemblyCounters } from '../../../drivers/ble/gatt-frames.js';
import type { SimPeripheralOptions } from '../../../drivers/sim-radio/radio.js';
import { type BearerError, type CloseReason, disconnectedError } from '../../../hal/bearer.js';
import { WiredLink } from '../../../hal/link-listeners.js';
import { err, OK, type Result } from '../../../src/base/result.js';
import type { AttConnection, GattServer } from './gatt.js';
import {
  ATT_CID,
  commandComplete,
  commandStatus,
  completedPacket,
  connectionComplete,
  disconnectionComplete,
  macString,
  OP,
  STATUS,
} from './packets.js';

/**
 * The controller's LE connections: creating one (and the wait while the peer is absent),
 * cancelling, disconnecting from either side, and ACL data in and out of each, with L2CAP
 * reassembly in front of the GATT server. Both ends are told when a link ends, so the host and
 * the lock never disagree about whether they are connected.
 */

/** A hosted lock as the controller sees it. */
export interface Peripheral {
  readonly options: SimPeripheralOptions;
  readonly address: string;
  inRange: boolean;
}

export interface Connection extends AttConnection {
  readonly peripheral: Peripheral;
  txFrameId: number;
  /** An L2CAP PDU being assembled from ACL fragments. */
  l2cap: Buffer | undefined;
}

export interface LinkCounters {
  aclPackets: number;
  /** ACL packets for a connection handle that does not exist. */
  unknownHandle: number;
  malformedAtt: number;
}

export interface LinkLayerOptions {
  /** The controller's BD_ADDR: the hub's address as the locks see it. */
  readonly address: string;
  readonly maxConnections: number;
  /** Time between LE Create Connection and LE Connection Complete, ms. */
  readonly connectDelayMs: number;
  /** The locks' maxFrameSize (reassembly limit for frames from the hub). */
  readonly maxFrameSize: number;
  readonly reassemblyTimeoutMs: number;
  readonly reassembly: ReassemblyCounters;
  readonly counters: LinkCounters;
  readonly peripherals: ReadonlyMap<string, Peripheral>;
  readonly gatt: GattServer;
  /** Bytes to the host. */
  send(bytes: Buffer): void;
  stalled(): boolean;
}

const FIRST_HANDLE = 0x0040;
const LAST_HANDLE = 0x0eff;
const PB_CONTINUATION = 0x01;

export class LinkLayer {
  readonly #o: LinkLayerOptions;
  readonly #connections = new Map<number, Connection>();
  #pending: { address: string; timer: NodeJS.Timeout | undefined } | undefined;
  #nextHandle = FIRST_HANDLE;

  constructor(options: LinkLayerOptions) {
    this.#o = options;
  }

  get(handle: number): Connection | undefined {
    return this.#connections.get(handle);
  }

  to(address: string): Connection | undefined {
    for (const c of this.#connections.values()) if (c.peripheral.address === address) return c;
    return undefined;
  }

  /** LE Create Connection. */
  create(params: Buffer): void {
    if (params.length < 25) {
      this.#o.send(commandStatus(OP.leCreateConn, STATUS.invalidParameters));
      return;
    }
    if (this.#pending) {
      this.#o.send(commandStatus(OP.leCreateConn, STATUS.disallowed));
      return;
    }
    const address = macString(params.subarray(6, 12));
    this.#o.send(commandStatus(OP.leCreateConn, STATUS.ok));
    const pending: { address: string; timer: NodeJS.Timeout | undefined } = { address, timer: undefined };
    this.#pending = pending;
    const peripheral = this.#o.peripherals.get(address);
    // An absent or silent peer: the controller keeps initiating until the host cancels.
    if (!peripheral?.inRange) return;
    pending.timer = setTimeout(() => {
      if (this.#pending !== pending) return;
      this.#pending = undefined;
      if (!peripheral.inRange || this.#o.peripherals.get(address) !== peripheral || this.#o.stalled()) {
        this.#pending = pending; // still initiating
        pending.timer = undefined;
        return;
      }
      if (this.#connections.size >= this.#o.maxConnections) {
        this.#o.send(connectionComplete(STATUS.connectionLimit, 0, address));
        return;
      }
      this.#establish(peripheral);
    }, this.#o.connectDelayMs);
  }

  /** LE Create Connection Cancel. */
  cancel(): void {
    const pending = this.#pending;
    if (!pending) {
      this.#o.send(commandComplete(OP.leCreateConnCancel, STATUS.disallowed));
      return;
    }
    if (pending.timer) clearTimeout(pending.timer);
    this.#pending = undefined;
    this.#o.send(commandComplete(OP.leCreateConnCancel, STATUS.ok));
    this.#o.send(connectionComplete(STATUS.unknownConnection, 0, pending.address));
  }

  /** HCI Disconnect from the host. */
  hostDisconnect(params: Buffer): void {
    const handle = params.length >= 2 ? params.readUInt16LE(0) & 0x0fff : -1;
    const c = this.#connections.get(handle);
    if (!c) {
      this.#o.send(commandStatus(OP.disconnect, STATUS.unknownConnection));
      return;
    }
    this.#o.send(commandStatus(OP.disconnect, STATUS.ok));
    this.#connections.delete(handle);
    this.#o.send(disconnectionComplete(handle, STATUS.localHostTerminated));
    c.end.closed('remote');
  }

  /** Every link to `peripheral` is lost; the host is told why. Returns how many. */
  drop(peripheral: Peripheral, reason: number, lockReason: CloseReason): number {
    let n = 0;
    for (const c of [...this.#connections.values()]) {
      if (c.peripheral !== peripheral) continue;
      this.#connections.delete(c.handle);
      this.#o.send(disconnectionComplete(c.handle, reason));
      c.end.closed(lockReason);
      n++;
    }
    return n;
  }

  /** A controller reset or a host gone: initiating stops, every link ends for the locks (the host is not told). */
  reset(lockReason: CloseReason): void {
    if (this.#pending?.timer) clearTimeout(this.#pending.timer);
    this.#pending = undefined;
    for (const c of [...this.#connections.values()]) {
      this.#connections.delete(c.handle);
      c.end.closed(lockReason);
    }
  }

  /** ACL data from the host: acknowledged, reassembled into an L2CAP PDU, and ATT handed to the GATT server. */
  aclIn(handle: number, pb: number, data: Buffer): void {
    this.#o.counters.aclPackets++;
    const c = this.#connections.get(handle);
    if (!c) {
      this.#o.counters.unknownHandle++;
      return;
    }
    this.#o.send(completedPacket(handle));

    if (pb === PB_CONTINUATION) {
      if (!c.l2cap) {
        this.#o.counters.malformedAtt++;
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
    if (cid === ATT_CID) this.#o.gatt.handle(c, pdu);
  }

  #establish(peripheral: Peripheral): void {
    const handle = this.#nextHandle;
    this.#nextHandle = this.#nextHandle >= LAST_HANDLE ? FIRST_HANDLE : this.#nextHandle + 1;
    const connection: Connection = {
      handle,
      peripheral,
      mtu: MIN_ATT_MTU,
      subscribed: false,
      held: [],
      txFrameId: 0,
      l2cap: undefined,
      reassembler: new Reassembler({
        maxFrameSize: this.#o.maxFrameSize,
        timeoutMs: this.#o.reassemblyTimeoutMs,
        now: () => performance.now(),
        counters: this.#o.reassembly,
      }),
      end: new WiredLink(this.#o.address, this.#o.maxFrameSize, {
        send: async (frame) => this.#lockSend(connection, frame),
        close: async () => {
          if (this.#connections.get(handle) !== connection) return;
          this.#connections.delete(handle);
          this.#o.send(disconnectionComplete(handle, STATUS.remoteUserTerminated));
          connection.end.closed('local');
        },
        quality: () => ({ rssi: peripheral.options.rssi ?? -60 }),
      }),
    };
    this.#connections.set(handle, connection);
    this.#o.send(connectionComplete(STATUS.ok, handle, peripheral.address));
    peripheral.options.onConnect(connection.end);
  }

  /** A frame from the lock: fragmented to the connection's MTU and notified (or held for the host). */
  #lockSend(c: Connection, frame: Uint8Array): Result<void, BearerError> {
    if (!c.end.isOpen() || this.#connections.get(c.handle) !== c) {
      return err(disconnectedError(this.#o.address, c.end.closedBy() ?? 'lost'));
    }
    if (frame.length > this.#o.maxFrameSize) {
      return err({
        code: 'frame-too-large',
        message: `frame of ${frame.length} bytes exceeds the link's limit of ${this.#o.maxFrameSize} bytes`,
        size: frame.length,
        maxFrameSize: this.#o.maxFrameSize,
      });
    }
    const fragments = fragmentFrame(frame, c.txFrameId, c.mtu);
    c.txFrameId = (c.txFrameId + 1) & 0xff;
    for (const f of fragments) this.#o.gatt.fromLock(c, f);
    return OK;
  }
}
