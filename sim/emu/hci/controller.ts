import { createServer, type Server, type Socket } from 'node:net';
import {
  DEFAULT_MAX_FRAME_SIZE,
  MIN_ATT_MTU,
  type ReassemblyCounters,
  zeroReassemblyCounters,
} from '../../../drivers/ble/gatt-frames.js';
import type { PeripheralHost, SimPeripheral, SimPeripheralOptions } from '../../../drivers/sim-radio/radio.js';
import type { CloseReason } from '../../../hal/bearer.js';
import { HubError } from '../../../src/base/errors.js';
import { Advertiser } from './advertiser.js';
import { type CommandContext, handleCommand } from './commands.js';
import { GattServer } from './gatt.js';
import { type H4Counters, type H4Packet, H4Parser } from './h4.js';
import { LinkLayer, type Peripheral } from './links.js';
import { ACL_BUFFER_SIZE, aclPacket, macBytes, STATUS } from './packets.js';

export { macBytes } from './packets.js';

/**
 * A Bluetooth LE controller emulator behind an H4 byte stream (a TCP socket that socat turns into a
 * serial port, see sim/emu/pty.ts): enough of HCI for real noble to start, scan, connect, run GATT
 * and get notifications, with the simulated locks (sim/lock) as its peripherals. It is a
 * PeripheralHost, so an unmodified SimLock goes on the air here exactly as on the SimRadio.
 *
 * One host at a time: a new TCP connection replaces the previous one (a re-plugged adapter).
 * Faults: drop or corrupt the next notifications, inject raw notifications, stall (answer
 * nothing), drop a link, unplug (close the transport).
 *
 * This class is the adapter as tests hold it (transport, hosted locks, faults); the layers are
 * their own modules: H4 framing (h4.ts), HCI packets (packets.ts), commands (commands.ts),
 * scanning reports (advertiser.ts), connections and L2CAP (links.ts), the GATT server (gatt.ts).
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
  /** Socket writes to the host: what the controller answers to one read is one burst, one write. */
  hostWrites: number;
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
  /** Writes of the frames characteristic (one link fragment each), with or without response. */
  frameWrites: number;
  /** Write Responses to those writes (an ATT PDU back per write when the host writes with response). */
  frameWriteResponses: number;
  droppedNotifications: number;
  corruptedNotifications: number;
  /** Peripherals whose advertisement could not be encoded (a device id too long for a scan response). */
  unadvertisable: number;
  /** Host connections accepted (1 + re-plugs). */
  hostConnections: number;
  /** Reassembly of frames from the hub, on the locks' side. */
  reassembly: ReassemblyCounters;
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
  readonly #counters: Omit<HciEmulatorCounters, 'reassembly'>;
  readonly #reassembly = zeroReassemblyCounters();
  readonly #gatt: GattServer;
  readonly #links: LinkLayer;
  readonly #advertiser: Advertiser;
  readonly #commands: CommandContext;
  #socket: Socket | undefined;
  #parser: H4Parser;
  #stalled = false;
  #closed = false;
  /** Packets to the host while one read from it is handled, written together at its end (see #attach). */
  #out: Buffer[] | undefined;

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
      throw new HubError('hci-emu.config', `HCI emulator: attMtu must be an integer 23…517, got ${this.attMtu}`);
    }
    this.#counters = {
      hostWrites: 0,
      garbageBytes: 0,
      oversizedPackets: 0,
      commands: 0,
      unknownCommands: 0,
      aclPackets: 0,
      unknownHandle: 0,
      malformedAtt: 0,
      ignoredWhileStalled: 0,
      notifications: 0,
      frameWrites: 0,
      frameWriteResponses: 0,
      droppedNotifications: 0,
      corruptedNotifications: 0,
      unadvertisable: 0,
      hostConnections: 0,
    };
    this.#parser = new H4Parser(ACL_BUFFER_SIZE, this.#counters);
    const send = (bytes: Buffer) => this.#write(bytes);
    const stalled = () => this.#stalled;
    this.#gatt = new GattServer({
      attMtu: this.attMtu,
      counters: this.#counters,
      send: (handle, pdu) => this.#write(aclPacket(handle, pdu)),
    });
    this.#links = new LinkLayer({
      address: this.address,
      maxConnections: this.maxConnections,
      connectDelayMs: this.connectDelayMs,
      maxFrameSize: this.maxFrameSize,
      reassemblyTimeoutMs: this.reassemblyTimeoutMs,
      reassembly: this.#reassembly,
      counters: this.#counters,
      peripherals: this.#peripherals,
      gatt: this.#gatt,
      send,
      stalled,
    });
    this.#advertiser = new Advertiser({
      intervalMs: this.advertiseIntervalMs,
      peripherals: this.#peripherals,
      counters: this.#counters,
      send,
      stalled,
    });
    this.#commands = {
      address: this.address,
      links: this.#links,
      counters: this.#counters,
      send,
      reset: () => this.#resetState('lost'),
      scan: (enabled) => this.#scan(enabled),
    };
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
    if (!a || typeof a === 'string') throw new HubError('hci-emu.closed', 'HCI emulator: not listening');
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
      throw new HubError('hci-emu.duplicate-address', `HCI emulator: a peripheral already uses address ${address}`);
    }
    const peripheral: Peripheral = { options, address, inRange: true };
    this.#peripherals.set(address, peripheral);
    return {
      address,
      inRange: () => peripheral.inRange,
      setInRange: (inRange) => {
        peripheral.inRange = inRange;
        if (!inRange) this.#links.drop(peripheral, STATUS.connectionTimeout, 'lost');
      },
      remove: () => {
        if (this.#peripherals.get(address) !== peripheral) return;
        this.#peripherals.delete(address);
        this.#links.drop(peripheral, STATUS.connectionTimeout, 'lost');
      },
    };
  }

  // ── faults ───────────────────────────────────────────────────────────────────────────────────

  /** The next `n` notifications to the host are lost on the air. */
  dropNext(n: number): void {
    this.#gatt.dropNext(n);
  }

  /** The next `n` notifications reach the host with their fragment header damaged. */
  corruptNext(n: number): void {
    this.#gatt.corruptNext(n);
  }

  /** Sends `value` as a notification of the frames characteristic on the link to `address`, as is. */
  injectNotification(address: string, value: Uint8Array): boolean {
    const c = this.#links.to(address.toLowerCase());
    if (!c) return false;
    this.#gatt.notify(c, Buffer.from(value), false);
    return true;
  }

  /** A hung controller: nothing the host sends is answered, nothing is advertised, until stall(false). */
  stall(stalled: boolean): void {
    this.#stalled = stalled;
  }

  /** Drops every link to `address` (supervision timeout): the host and the lock both see it lost. Returns how many. */
  disconnect(address: string): number {
    const p = this.#peripherals.get(address.toLowerCase());
    return p ? this.#links.drop(p, STATUS.connectionTimeout, 'lost') : 0;
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
      // Everything the controller answers to one read (Number Of Completed Packets, an ATT
      // response, the lock's notification) leaves in one write, in order, as one burst on the UART.
      const out: Buffer[] = [];
      this.#out = out;
      try {
        for (const packet of this.#parser.push(chunk)) this.#handle(packet);
      } finally {
        this.#out = undefined;
        if (out.length > 0) this.#write(out.length === 1 ? out[0]! : Buffer.concat(out));
      }
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
    this.#scan(false);
    this.#links.reset(lockReason);
  }

  /** Reports go out while the host scans and is attached. */
  #scan(enabled: boolean): void {
    this.#advertiser.set(enabled && this.#socket !== undefined && !this.#closed);
  }

  #write(bytes: Buffer): void {
    if (this.#out) {
      this.#out.push(bytes);
      return;
    }
    const s = this.#socket;
    if (s && !s.destroyed) {
      this.#counters.hostWrites++;
      s.write(bytes);
    }
  }

  #handle(packet: H4Packet): void {
    if (this.#stalled) {
      this.#counters.ignoredWhileStalled++;
      return;
    }
    if (packet.type === 'acl') {
      this.#links.aclIn(packet.handle, packet.pb, packet.data);
      return;
    }
    handleCommand(this.#commands, packet.opcode, packet.params);
  }
}
