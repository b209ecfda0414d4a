import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { ZSpec } from 'zigbee-herdsman';
import type { PeripheralHost, SimPeripheral, SimPeripheralOptions } from '../../../drivers/sim-radio/radio.js';
import {
  DOOR_LOCK_CLUSTER_ID,
  DOOR_LOCK_DEVICE_ID,
  decodeZcl,
  encodeModelId,
  encodeZcl,
  GEN_BASIC_CLUSTER_ID,
  HA_PROFILE_ID,
  LINK_CLUSTER_ID,
  LinkCommand,
  LOCK_ENDPOINT,
  LOCK_STATE_ATTRIBUTE_ID,
  MANUFACTURER_CODE,
  ZCL_PAYLOAD_LIMIT,
  type ZclFrame,
} from '../../../drivers/zigbee/link-cluster.js';
import { HubError } from '../../../src/base/errors.js';
import { type Random, systemRandom } from '../../../src/base/random.js';
import { type EmuDevice, LockLink, newDevice } from './device.js';
import {
  commandByName,
  encodeFrame,
  findCommand,
  type MtCommand,
  type MtFrame,
  MtParser,
  MtType,
  type Params,
  readParams,
  Subsystem,
  writeParams,
} from './mt.js';
import { NvId, ZnpNv, type ZnpNvSnapshot } from './nv.js';

/**
 * A Z-Stack 3.x.0 ZNP coordinator (as on a CC2652 with Koenkk's firmware) behind a TCP socket,
 * for zigbee-herdsman's `zstack` adapter (`serialPort.path = tcp://127.0.0.1:PORT`). It keeps
 * its NV memory (ZnpNv), forms the network herdsman asks for, honours permit-join, and hosts
 * simulated locks (any PeripheralHost user, e.g. unmodified SimLocks) as end devices that join,
 * answer the interview, report Door Lock state, and carry link frames in the manufacturer-specific
 * cluster (drivers/zigbee/link-cluster.ts). Faults: air loss, serial corruption, stall, unplug.
 *
 * Scope (docs/zigbee.md): one coordinator, end devices directly under it, no routing, no APS
 * security or real 802.15.4; enough MT commands for herdsman's start-up, backup, restore, join,
 * interview and ZCL traffic. Unknown requests get a zero-filled success reply and are counted.
 */

export interface ZnpEmulatorOptions {
  /** TCP port; 0 (default) picks a free one, kept across unplug/plug. */
  readonly port?: number;
  readonly host?: string;
  /** Resume from a saved NV snapshot (a restarted emulator, the same dongle). */
  readonly nv?: ZnpNvSnapshot;
  /** The coordinator's IEEE address for a fresh NV ("0x" + 16 hex digits). */
  readonly ieee?: string;
  /** Fault decisions and factory secrets (TCLK seed). */
  readonly random?: Random;
  /** How often a device that is not on the network tries to join, ms. */
  readonly joinRetryMs?: number;
  /** How often a joined lock reports its genBasic modelId (its "advertisement"), ms. */
  readonly advertiseIntervalMs?: number;
}

export interface ZnpFaults {
  /** Probability that one ZCL frame on the air (either way) is lost. */
  readonly dropAir: number;
  /** Probability that one MT frame to the host has a byte flipped (its FCS then fails). */
  readonly corruptSerial: number;
}

export interface ZnpCounters {
  framesIn: number;
  framesOut: number;
  garbageBytes: number;
  badFcs: number;
  malformed: number;
  unknownCommands: number;
  ignoredWhileStalled: number;
  connectionsRefused: number;
  joinsAccepted: number;
  joinsRefused: number;
  /**
   * Join attempts (inside an open window) that failed on the link key: the lock has an install
   * code and the trust center holds no key or another key for it, or the trust center holds an
   * install-code key for a lock that has none. The host never hears of them.
   */
  installCodeJoinsRefused: number;
  /** bdbAddInstallCode requests accepted / refused (bad format, length or CRC). */
  installCodesAdded: number;
  installCodesRefused: number;
  leaves: number;
  airDropped: number;
  serialCorrupted: number;
  linkFragmentsFromHub: number;
  linkFragmentsToHub: number;
  linkRejected: number;
  linkFramesWithoutLink: number;
  dataRequestsNoAck: number;
}

interface AfEndpoint {
  readonly endpoint: number;
  readonly profileId: number;
  readonly deviceId: number;
  readonly inClusters: readonly number[];
  readonly outClusters: readonly number[];
}

const ZB_COORD = 9;
const STATUS = { SUCCESS: 0, FAILURE: 1, INVALID_PARAMETER: 2, NV_ITEM_INITIALIZED: 9, MAC_NO_ACK: 0xe9 } as const;
/** APP_CNF bdbAddInstallCode formats: an install code with its CRC, or an already-derived link key. */
const INSTALL_CODE_FORMAT = { CODE_WITH_CRC: 1, KEY: 2 } as const;
/** Z-Stack 3.x takes 16-byte install codes only (18 bytes with the CRC). */
const ZSTACK_INSTALL_CODE_SIZE = 18;
/** The sizes a device's install code may have, CRC included (ZigBee 3.0: 6, 8, 12 or 16 bytes + 2). */
const DEVICE_INSTALL_CODE_SIZES = [8, 10, 14, 18];
/** ZDO cluster ids (requests) and their responses. */
const ZDO = {
  NODE_DESC: 0x0002,
  SIMPLE_DESC: 0x0004,
  ACTIVE_EP: 0x0005,
  LEAVE: 0x0034,
  PERMIT_JOIN: 0x0036,
} as const;
const NODE_DESC_MAC_END_DEVICE = 0x8c; // mains, rx on when idle, allocate address
const NODE_DESC_MAC_COORDINATOR = 0x8f;

export class ZnpEmulator implements PeripheralHost {
  readonly nv: ZnpNv;
  readonly counters: ZnpCounters = zeroCounters();
  readonly #random: Random;
  readonly #host: string;
  readonly #joinRetryMs: number;
  readonly #advertiseIntervalMs: number;
  readonly #devices = new Map<string, EmuDevice>();
  readonly #endpoints = new Map<number, AfEndpoint>();
  readonly #groups = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /**
   * The trust center's per-device link keys (IEEE → key derived from an install code), from
   * bdbAddInstallCode. A real Z-Stack keeps them in NV: here they survive unplug/plug, and a
   * factory reset clears them. One key per device, the last one registered (as Z-Stack's table).
   */
  readonly #tcLinkKeys = new Map<string, Buffer>();
  /** Hosted locks that have an install code: IEEE → the link key derived from it (on the lock's side). */
  readonly #deviceKeys = new Map<string, Buffer>();
  #faults: ZnpFaults = { dropAir: 0, corruptSerial: 0 };
  #server: Server | undefined;
  #port: number;
  #socket: Socket | undefined;
  #parser = new MtParser();
  #plugged = true;
  #stalled = false;
  #deviceState = 0;
  #permitJoinUntil = 0;
  #tick: NodeJS.Timeout | undefined;
  #lastAdvertise = 0;
  #closed = false;

  private constructor(options: ZnpEmulatorOptions) {
    this.#random = options.random ?? systemRandom;
    this.#host = options.host ?? '127.0.0.1';
    this.#port = options.port ?? 0;
    this.#joinRetryMs = options.joinRetryMs ?? 250;
    this.#advertiseIntervalMs = options.advertiseIntervalMs ?? 1000;
    const ieee = options.ieee ?? `0x00124b00${Buffer.from(this.#random.bytes(4)).toString('hex')}`;
    this.nv = options.nv ? ZnpNv.fromSnapshot(options.nv) : ZnpNv.factory(ieee, (n) => this.#random.bytes(n));
  }

  /** Starts listening; resolves once herdsman can connect to `url`. */
  static async start(options: ZnpEmulatorOptions = {}): Promise<ZnpEmulator> {
    const emulator = new ZnpEmulator(options);
    await emulator.#listen();
    emulator.#tick = setInterval(() => emulator.#onTick(), Math.min(emulator.#joinRetryMs, 250));
    return emulator;
  }

  get port(): number {
    return this.#port;
  }

  /** The serial path for zigbee-herdsman. */
  get url(): string {
    return `tcp://${this.#host}:${this.#port}`;
  }

  get ieee(): string {
    return this.nv.ieee;
  }

  /** The network key the coordinator holds (what herdsman gave it), for tests. */
  networkKey(): Uint8Array | undefined {
    const key = this.nv.networkKey();
    return key ? new Uint8Array(key) : undefined;
  }

  frameCounter(): number | undefined {
    return this.nv.frameCounter();
  }

  nvSnapshot(): ZnpNvSnapshot {
    return this.nv.snapshot();
  }

  permitJoinOpen(): boolean {
    return Date.now() < this.#permitJoinUntil;
  }

  connected(): boolean {
    return this.#socket !== undefined && !this.#socket.destroyed;
  }

  setFaults(patch: Partial<ZnpFaults>): void {
    const next = { ...this.#faults, ...patch };
    for (const [name, p] of Object.entries(next)) {
      if (!(p >= 0 && p <= 1))
        throw new HubError('znp-emulator-config', `ZNP emulator: fault ${name} must be in [0, 1], got ${p}`);
    }
    this.#faults = next;
  }

  /** Stops answering the host (a hung firmware); the TCP connection stays up. */
  stall(stalled: boolean): void {
    this.#stalled = stalled;
  }

  /** Pulls the dongle: the connection drops and new ones are refused until plug(). RAM state is lost. */
  async unplug(): Promise<void> {
    this.#plugged = false;
    this.#socket?.destroy();
    this.#socket = undefined;
    await this.#closeServer();
  }

  /** Plugs it back (a power-up): listening again on the same port, network down until the host starts it. */
  async plug(): Promise<void> {
    if (this.#plugged) return;
    this.#plugged = true;
    this.#powerUp();
    await this.#listen();
  }

  /** A new, unconfigured dongle in place of this one (same IEEE address): nothing commissioned. */
  factoryReset(): void {
    const fresh = ZnpNv.factory(this.nv.ieee, (n) => this.#random.bytes(n));
    this.nv.items.clear();
    this.nv.extended.clear();
    for (const [k, v] of fresh.items) this.nv.items.set(k, v);
    for (const [k, v] of fresh.extended) this.nv.extended.set(k, v);
    this.#tcLinkKeys.clear();
    this.#powerUp();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#tick) clearInterval(this.#tick);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const device of this.#devices.values()) device.link?.closed('stopped');
    this.#socket?.destroy();
    this.#socket = undefined;
    await this.#closeServer();
  }

  // ---- PeripheralHost ------------------------------------------------------------------------

  addPeripheral(options: SimPeripheralOptions): SimPeripheral {
    const ieee = ieeeFor(options.address);
    if (this.#devices.has(ieee)) {
      throw new HubError('znp-duplicate-address', `ZNP emulator: a device already uses address ${options.address}`);
    }
    const device = newDevice(options, ieee);
    this.#devices.set(ieee, device);
    return {
      address: options.address,
      inRange: () => device.inRange,
      setInRange: (inRange) => {
        device.inRange = inRange;
        if (!inRange) device.link?.closed('lost');
      },
      remove: () => {
        if (device.removed) return;
        device.removed = true;
        device.link?.closed('lost');
        this.#devices.delete(ieee);
      },
    };
  }

  /**
   * Gives a hosted lock an install code (bytes with their CRC, as printed on its label): from now
   * on it joins only when the trust center was given the same code for its IEEE address. May be
   * called before the lock is added (the lock's address, or its IEEE address). `undefined` takes
   * the code away (the lock joins with the default key again).
   */
  setInstallCode(address: string, code: Uint8Array | undefined): void {
    const ieee = ieeeFor(address);
    if (code === undefined) {
      this.#deviceKeys.delete(ieee);
      return;
    }
    if (!DEVICE_INSTALL_CODE_SIZES.includes(code.length) || !crcMatches(code)) {
      throw new HubError(
        'znp-emulator-config',
        `ZNP emulator: an install code is 8, 10, 14 or 18 bytes ending with its CRC-16/X-25, got ${code.length} bytes${
          DEVICE_INSTALL_CODE_SIZES.includes(code.length) ? ' with a wrong CRC' : ''
        }`,
      );
    }
    this.#deviceKeys.set(ieee, ZSpec.Utils.aes128MmoHash(Buffer.from(code)));
  }

  /** Whether the trust center holds an install-code link key for this device (tests). */
  hasLinkKeyFor(address: string): boolean {
    return this.#tcLinkKeys.has(ieeeFor(address));
  }

  /** The IEEE address a peripheral has on this network (what the hub sees as its address). */
  ieeeOf(address: string): string {
    return ieeeFor(address);
  }

  /**
   * A trust-center rejoin the stack admits while permit-join is closed (a device that claims to
   * have been on this network): the host sees tcDeviceInd + announce and must refuse it itself.
   */
  forceJoin(address: string): void {
    const device = this.#devices.get(ieeeFor(address));
    if (!device) throw new HubError('znp-unknown-device', `ZNP emulator: no device ${address}`);
    this.#admit(device);
  }

  /** Turns the bolt by hand: the lock reports its new lockState. */
  setLockState(address: string, state: 'locked' | 'unlocked'): void {
    const device = this.#devices.get(ieeeFor(address));
    if (!device) throw new HubError('znp-unknown-device', `ZNP emulator: no device ${address}`);
    device.lockState = state === 'locked' ? 1 : 2;
    this.#reportLockState(device);
  }

  /** Sends raw ZCL bytes from a device in the link cluster (malformed-input tests). */
  sendRawFromDevice(address: string, zcl: Uint8Array, clusterId = LINK_CLUSTER_ID): boolean {
    const device = this.#devices.get(ieeeFor(address));
    if (!device) return false;
    return this.#fromDevice(device, clusterId, Buffer.from(zcl));
  }

  // ---- serial side ---------------------------------------------------------------------------

  async #listen(): Promise<void> {
    const server = createServer((socket) => this.#onConnection(socket));
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address && typeof address === 'object') this.#port = address.port;
    this.#server = server;
  }

  async #closeServer(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #onConnection(socket: Socket): void {
    if (!this.#plugged || this.#closed) {
      this.counters.connectionsRefused++;
      socket.destroy();
      return;
    }
    // A serial port has one host: a new one replaces the old.
    this.#socket?.destroy();
    this.#socket = socket;
    this.#parser = new MtParser();
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.#onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.#socket === socket) this.#socket = undefined;
    });
  }

  #onData(chunk: Buffer): void {
    const before = { ...this.#parser.counters };
    const frames = this.#parser.push(chunk);
    this.counters.garbageBytes += this.#parser.counters.garbageBytes - before.garbageBytes;
    this.counters.badFcs += this.#parser.counters.badFcs - before.badFcs;
    for (const frame of frames) {
      this.counters.framesIn++;
      if (this.#stalled) {
        this.counters.ignoredWhileStalled++;
        continue;
      }
      try {
        this.#handle(frame);
      } catch {
        // A request whose parameters do not parse: a real ZNP answers nothing useful either.
        this.counters.malformed++;
      }
    }
  }

  #send(frame: MtFrame): void {
    const socket = this.#socket;
    if (!socket || socket.destroyed || this.#stalled) return;
    const bytes = encodeFrame(frame);
    if (this.#faults.corruptSerial > 0 && this.#random.float() < this.#faults.corruptSerial) {
      const i = 1 + this.#random.int(bytes.length - 1);
      bytes[i] = bytes[i]! ^ 0x5a;
      this.counters.serialCorrupted++;
    }
    this.counters.framesOut++;
    socket.write(bytes);
  }

  #srsp(command: MtCommand, subsystem: number, values: Params): void {
    this.#send({
      type: MtType.SRSP,
      subsystem,
      command: command.ID,
      data: writeParams(command.response ?? [], values),
    });
  }

  #areq(subsystem: number, name: string, values: Params): void {
    const command = commandByName(subsystem, name);
    this.#send({ type: MtType.AREQ, subsystem, command: command.ID, data: writeParams(command.request ?? [], values) });
  }

  /** A ZDO callback: source address, then the ZDO response body. */
  #zdoAreq(name: string, srcaddr: number, body: Buffer): void {
    const command = commandByName(Subsystem.ZDO, name);
    const data = Buffer.alloc(2 + body.length);
    data.writeUInt16LE(srcaddr, 0);
    body.copy(data, 2);
    this.#send({ type: MtType.AREQ, subsystem: Subsystem.ZDO, command: command.ID, data });
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#closed) fn();
    }, ms);
    this.#timers.add(t);
  }

  #handle(frame: MtFrame): undefined {
    const command = findCommand(frame.subsystem, frame.command);
    if (!command || (frame.type !== MtType.SREQ && frame.type !== MtType.AREQ)) {
      this.counters.unknownCommands++;
      return;
    }
    if (frame.subsystem === Subsystem.ZDO && command.zdoClusterId !== undefined) {
      this.#zdoRequest(command, frame.data);
      return;
    }
    const p = readParams(command.request ?? [], frame.data);
    const reply = (values: Params): undefined => {
      this.#srsp(command, frame.subsystem, values);
    };
    const key = `${Subsystem[frame.subsystem] ?? frame.subsystem}.${command.name}`;
    switch (key) {
      case 'SYS.ping':
        return reply({ capabilities: 0x0159 });
      case 'SYS.version':
        return reply({ transportrev: 2, product: 1, majorrel: 2, minorrel: 7, maintrel: 1, revision: 20230507 });
      case 'SYS.getExtAddr':
        return reply({ extaddress: this.nv.ieee });
      case 'SYS.resetReq':
        this.#reset();
        return;
      case 'SYS.osalNvLength':
        return reply({ length: this.nv.items.get(Number(p.id))?.length ?? 0 });
      case 'SYS.osalNvRead':
      case 'SYS.osalNvReadExt': {
        const item = this.nv.items.get(Number(p.id));
        if (!item) return reply({ status: 0x0a, len: 0, value: Buffer.alloc(0) });
        const value = item.subarray(Number(p.offset), Number(p.offset) + 240);
        return reply({ status: 0, len: value.length, value });
      }
      case 'SYS.osalNvItemInit': {
        if (this.nv.items.has(Number(p.id))) return reply({ status: 0 });
        const item = Buffer.alloc(Number(p.len));
        (p.initvalue as Buffer).copy(item);
        this.nv.items.set(Number(p.id), item);
        return reply({ status: STATUS.NV_ITEM_INITIALIZED });
      }
      case 'SYS.osalNvWrite':
      case 'SYS.osalNvWriteExt': {
        const id = Number(p.id);
        const value = p.value as Buffer;
        const offset = Number(p.offset);
        const item = this.nv.items.get(id) ?? Buffer.alloc(0);
        const next = Buffer.alloc(Math.max(item.length, offset + value.length));
        item.copy(next);
        value.copy(next, offset);
        this.nv.items.set(id, next);
        return reply({ status: 0 });
      }
      case 'SYS.osalNvDelete':
        this.nv.items.delete(Number(p.id));
        return reply({ status: 0 });
      case 'SYS.nvLength':
        return reply({ len: this.nv.extended.get(ZnpNv.extKey(+p.sysid!, +p.itemid!, +p.subid!))?.length ?? 0 });
      case 'SYS.nvRead': {
        const entry = this.nv.extended.get(ZnpNv.extKey(+p.sysid!, +p.itemid!, +p.subid!));
        if (!entry) return reply({ status: 0x0a, len: 0, value: Buffer.alloc(0) });
        const value = entry.subarray(Number(p.offset), Number(p.offset) + Number(p.len));
        return reply({ status: 0, len: value.length, value });
      }
      case 'SYS.nvCreate': {
        const k = ZnpNv.extKey(+p.sysid!, +p.itemid!, +p.subid!);
        if (!this.nv.extended.has(k)) this.nv.extended.set(k, Buffer.alloc(Number(p.len)));
        return reply({ status: 0 });
      }
      case 'SYS.nvWrite': {
        const k = ZnpNv.extKey(+p.sysid!, +p.itemid!, +p.subid!);
        const entry = this.nv.extended.get(k) ?? Buffer.alloc(0);
        const value = p.value as Buffer;
        const next = Buffer.alloc(Math.max(entry.length, Number(p.offset) + value.length));
        entry.copy(next);
        value.copy(next, Number(p.offset));
        this.nv.extended.set(k, next);
        return reply({ status: 0 });
      }
      case 'SYS.nvDelete':
        this.nv.extended.delete(ZnpNv.extKey(+p.sysid!, +p.itemid!, +p.subid!));
        return reply({ status: 0 });
      case 'SYS.stackTune':
        return reply({ value: 0 });
      case 'UTIL.getDeviceInfo': {
        const members = this.#members();
        return reply({
          status: 0,
          ieeeaddr: this.nv.ieee,
          shortaddr: this.#deviceState === ZB_COORD ? 0 : 0xfffe,
          devicetype: 7,
          devicestate: this.#deviceState,
          numassocdevices: members.length,
          assocdeviceslist: members.map((d) => d.nwk),
        });
      }
      case 'UTIL.assocGetWithAddress': {
        const device = this.#devices.get(String(p.extaddr));
        const member = device && this.#isMember(device);
        return reply({ nwkaddr: member ? device.nwk : 0xfffe, addridx: 0, noderelation: member ? 1 : 255 });
      }
      case 'APP_CNF.bdbAddInstallCode':
        return reply({ status: this.#addInstallCode(frame.data) });
      case 'APP_CNF.bdbStartCommissioning':
        reply({ status: 0 });
        if (Number(p.mode) === 0x04) {
          this.#later(20, () => {
            this.nv.formNetwork();
            this.#deviceState = ZB_COORD;
            this.#areq(Subsystem.ZDO, 'stateChangeInd', { state: ZB_COORD });
            this.#areq(Subsystem.APP_CNF, 'bdbComissioningNotifcation', { status: 0 });
          });
        }
        return;
      case 'ZDO.startupFromApp':
        reply({ status: this.nv.nib() ? 0 : 1 });
        if (this.nv.nib()) {
          this.#later(20, () => {
            this.#deviceState = ZB_COORD;
            this.#areq(Subsystem.ZDO, 'stateChangeInd', { state: ZB_COORD });
          });
        }
        return;
      case 'ZDO.extNwkInfo': {
        const nib = this.nv.nib();
        return reply({
          shortaddr: 0,
          devstate: this.#deviceState,
          panid: nib?.nwkPanId ?? 0xffff,
          parentaddr: 0,
          extendedpanid: `0x${this.nv.extendedPanId() ?? '0000000000000000'}`,
          parentextaddr: '0x0000000000000000',
          channel: nib?.nwkLogicalChannel ?? 0,
        });
      }
      case 'ZDO.extFindGroup': {
        const known = this.#groups.has(`${p.endpoint}:${p.groupid}`);
        return reply({ status: known ? 0 : 1, groupid: Number(p.groupid), namelen: 0, groupname: Buffer.alloc(0) });
      }
      case 'ZDO.extAddGroup':
        this.#groups.add(`${p.endpoint}:${p.groupid}`);
        return reply({ status: 0 });
      case 'AF.register': {
        const endpoint = Number(p.endpoint);
        if (this.#endpoints.has(endpoint)) return reply({ status: 0xb8 });
        this.#endpoints.set(endpoint, {
          endpoint,
          profileId: Number(p.appprofid),
          deviceId: Number(p.appdeviceid),
          inClusters: p.appinclusterlist as number[],
          outClusters: p.appoutclusterlist as number[],
        });
        return reply({ status: 0 });
      }
      case 'AF.dataRequest':
        reply({ status: 0 });
        this.#dataRequest(
          Number(p.dstaddr),
          Number(p.destendpoint),
          Number(p.srcendpoint),
          Number(p.clusterid),
          Number(p.transid),
          p.data as Buffer,
        );
        return;
      case 'AF.dataRequestExt':
        // Broadcasts and groups (herdsman's green-power permit-join): nobody here listens to them.
        reply({ status: 0 });
        this.nv.advanceFrameCounter();
        return;
      default:
        if (frame.type === MtType.SREQ) {
          this.counters.unknownCommands++;
          reply({ status: 0 });
        }
    }
  }

  #zdoRequest(command: MtCommand, data: Buffer): void {
    // ZDO SREQs are answered with a status byte; the response comes as an AREQ callback.
    this.#send({ type: MtType.SRSP, subsystem: Subsystem.ZDO, command: command.ID, data: Buffer.from([0]) });
    const cluster = command.zdoClusterId!;
    if (cluster === ZDO.PERMIT_JOIN) {
      if (data.length < 5) throw new RangeError('short permit-join request');
      const duration = data[3]!;
      this.#permitJoinUntil = duration === 0 ? 0 : Date.now() + (duration === 0xff ? 1e12 : duration * 1000);
      this.#later(1, () => this.#zdoAreq('mgmtPermitJoinRsp', 0, Buffer.from([0])));
      return;
    }
    if (data.length < 4 && cluster !== ZDO.LEAVE) throw new RangeError('short ZDO request');
    const target = data.readUInt16LE(0);
    const respond = (name: string, body: Buffer) => this.#later(2, () => this.#zdoAreq(name, target, body));
    if (cluster === ZDO.LEAVE) {
      if (data.length < 11) throw new RangeError('short leave request');
      const ieee = `0x${Buffer.from(data.subarray(2, 10)).reverse().toString('hex')}`;
      const device = this.#devices.get(ieee);
      if (!device || !this.#isReachable(device)) {
        respond('mgmtLeaveRsp', Buffer.from([0xe9]));
        return;
      }
      respond('mgmtLeaveRsp', Buffer.from([0]));
      this.#later(5, () => this.#leave(device));
      return;
    }
    const ofInterest = data.readUInt16LE(2);
    if (ofInterest === 0) {
      this.#coordinatorDescriptor(cluster, data, respond);
      return;
    }
    const device = this.#members().find((d) => d.nwk === ofInterest);
    if (!device || !this.#isReachable(device)) return; // no answer: herdsman times out, as on air
    switch (cluster) {
      case ZDO.NODE_DESC:
        respond('nodeDescRsp', nodeDescriptor(device.nwk, 2, NODE_DESC_MAC_END_DEVICE, MANUFACTURER_CODE));
        return;
      case ZDO.ACTIVE_EP:
        respond('activeEpRsp', Buffer.from([0, device.nwk & 0xff, device.nwk >> 8, 1, LOCK_ENDPOINT]));
        return;
      case ZDO.SIMPLE_DESC: {
        if (data[4] !== LOCK_ENDPOINT) {
          respond('simpleDescRsp', Buffer.from([0x82, device.nwk & 0xff, device.nwk >> 8, 0]));
          return;
        }
        respond(
          'simpleDescRsp',
          simpleDescriptor(device.nwk, {
            endpoint: LOCK_ENDPOINT,
            profileId: HA_PROFILE_ID,
            deviceId: DOOR_LOCK_DEVICE_ID,
            inClusters: [GEN_BASIC_CLUSTER_ID, DOOR_LOCK_CLUSTER_ID, LINK_CLUSTER_ID],
            outClusters: [],
          }),
        );
        return;
      }
      default:
        this.counters.unknownCommands++;
    }
  }

  #coordinatorDescriptor(cluster: number, data: Buffer, respond: (name: string, body: Buffer) => void): void {
    switch (cluster) {
      case ZDO.NODE_DESC:
        respond('nodeDescRsp', nodeDescriptor(0, 0, NODE_DESC_MAC_COORDINATOR, 0));
        return;
      case ZDO.ACTIVE_EP: {
        const eps = [...this.#endpoints.keys()];
        respond('activeEpRsp', Buffer.from([0, 0, 0, eps.length, ...eps]));
        return;
      }
      case ZDO.SIMPLE_DESC: {
        const ep = this.#endpoints.get(data[4] ?? 0);
        respond('simpleDescRsp', ep ? simpleDescriptor(0, ep) : Buffer.from([0x82, 0, 0, 0]));
        return;
      }
      default:
        this.counters.unknownCommands++;
    }
  }

  /** A power-up: RAM state (endpoints, groups, permit-join, running network) is gone. */
  #powerUp(): void {
    this.#deviceState = 0;
    this.#permitJoinUntil = 0;
    this.#endpoints.clear();
    this.#groups.clear();
  }

  #reset(): void {
    const startup = this.nv.items.get(NvId.STARTUP_OPTION)?.[0] ?? 0;
    if (startup & 0x02) this.nv.clearNetwork();
    this.#powerUp();
    this.#later(10, () =>
      this.#areq(Subsystem.SYS, 'resetInd', {
        reason: 0,
        transportrev: 2,
        productid: 1,
        majorrel: 2,
        minorrel: 7,
        hwrev: 1,
      }),
    );
  }

  // ---- the air -------------------------------------------------------------------------------

  #networkUp(): boolean {
    return this.#deviceState === ZB_COORD && this.connected() && !this.#stalled;
  }

  #isMember(device: EmuDevice): boolean {
    const network = this.nv.networkFingerprint();
    return !device.removed && network !== undefined && device.network === network;
  }

  #isReachable(device: EmuDevice): boolean {
    return this.#isMember(device) && device.inRange && this.#deviceState === ZB_COORD;
  }

  #members(): EmuDevice[] {
    return [...this.#devices.values()].filter((d) => this.#isMember(d));
  }

  #onTick(): void {
    if (!this.#networkUp()) return;
    for (const device of this.#devices.values()) {
      if (device.removed || !device.inRange || this.#isMember(device)) continue;
      if (!this.permitJoinOpen()) this.counters.joinsRefused++;
      else if (this.#keysAgree(device)) this.#admit(device);
      else this.counters.installCodeJoinsRefused++;
    }
    const now = Date.now();
    if (now - this.#lastAdvertise >= this.#advertiseIntervalMs) {
      this.#lastAdvertise = now;
      for (const device of this.#members()) {
        // A device that just joined answers its interview before it reports: a report from an address
        // the host does not know yet sends herdsman hunting for it (an IEEE address request).
        if (device.inRange && now - device.joinedAt >= this.#advertiseIntervalMs) this.#advertise(device);
      }
    }
  }

  /**
   * APP_CNF bdbAddInstallCode: {format u8, ieee (8 bytes LE), code or key (the rest)}. herdsman
   * sends the buffer without a length, so the rest of the frame is the code. Answers a status.
   */
  #addInstallCode(data: Buffer): number {
    if (data.length < 9) throw new RangeError('short bdbAddInstallCode request');
    const format = data[0];
    const ieee = `0x${Buffer.from(data.subarray(1, 9)).reverse().toString('hex')}`;
    const code = Buffer.from(data.subarray(9));
    let key: Buffer | undefined;
    if (format === INSTALL_CODE_FORMAT.CODE_WITH_CRC && code.length === ZSTACK_INSTALL_CODE_SIZE && crcMatches(code)) {
      key = ZSpec.Utils.aes128MmoHash(code);
    } else if (format === INSTALL_CODE_FORMAT.KEY && code.length === 16) {
      key = code;
    }
    if (!key) {
      this.counters.installCodesRefused++;
      return STATUS.INVALID_PARAMETER;
    }
    this.#tcLinkKeys.set(ieee, key);
    this.counters.installCodesAdded++;
    return STATUS.SUCCESS;
  }

  /**
   * The trust center sends the network key encrypted with the link key it holds for the device
   * (its install-code key, else the well-known default); the device decrypts it with its own
   * (its install-code key, else the default). Only when both are the same does the join succeed.
   */
  #keysAgree(device: EmuDevice): boolean {
    const tc = this.#tcLinkKeys.get(device.ieee);
    const own = this.#deviceKeys.get(device.ieee);
    if (!tc || !own) return !tc && !own;
    return tc.equals(own);
  }

  /** Association and the trust center's key transport succeeded: the host hears of the device. */
  #admit(device: EmuDevice): void {
    const network = this.nv.networkFingerprint();
    if (!network || !this.#networkUp()) return;
    device.network = network;
    device.joinedAt = Date.now();
    const used = new Set(this.#members().map((d) => d.nwk));
    do device.nwk = 1 + this.#random.int(0xfff6);
    while (used.has(device.nwk));
    this.counters.joinsAccepted++;
    this.nv.advanceFrameCounter(2);
    this.#areq(Subsystem.ZDO, 'tcDeviceInd', { nwkaddr: device.nwk, extaddr: device.ieee, parentaddr: 0 });
    const announce = Buffer.alloc(11);
    announce.writeUInt16LE(device.nwk, 0);
    Buffer.from(device.ieee.slice(2), 'hex').reverse().copy(announce, 2);
    announce[10] = NODE_DESC_MAC_END_DEVICE;
    this.#later(5, () => this.#zdoAreq('endDeviceAnnceInd', device.nwk, announce));
  }

  #leave(device: EmuDevice): void {
    this.counters.leaves++;
    device.link?.closed('lost');
    device.link = undefined;
    device.network = undefined;
    this.#areq(Subsystem.ZDO, 'leaveInd', {
      srcaddr: device.nwk,
      extaddr: device.ieee,
      request: 0,
      removechildren: 0,
      rejoin: 0,
    });
  }

  #advertise(device: EmuDevice): void {
    const advertisement = device.options.advertisement();
    if (!advertisement) return;
    const modelId = Buffer.from(encodeModelId(advertisement.deviceId, advertisement.attachMode), 'ascii');
    const payload = Buffer.concat([Buffer.from([0x05, 0x00, 0x42, modelId.length]), modelId]);
    this.#fromDevice(device, GEN_BASIC_CLUSTER_ID, this.#zcl(device, { global: true, command: 0x0a, payload }));
  }

  #reportLockState(device: EmuDevice): void {
    const payload = Buffer.from([LOCK_STATE_ATTRIBUTE_ID & 0xff, LOCK_STATE_ATTRIBUTE_ID >> 8, 0x30, device.lockState]);
    this.#fromDevice(device, DOOR_LOCK_CLUSTER_ID, this.#zcl(device, { global: true, command: 0x0a, payload }));
  }

  #zcl(
    device: EmuDevice,
    f: { global: boolean; command: number; payload: Uint8Array; tsn?: number; manufacturer?: boolean },
  ): Buffer {
    device.tsn = (device.tsn + 1) & 0xff;
    const frame: ZclFrame = {
      clusterSpecific: !f.global,
      ...(f.manufacturer ? { manufacturerCode: MANUFACTURER_CODE } : {}),
      serverToClient: true,
      disableDefaultResponse: true,
      tsn: f.tsn ?? device.tsn,
      command: f.command,
      payload: f.payload,
    };
    return Buffer.from(encodeZcl(frame));
  }

  /** A frame from a device to the coordinator: an AF incoming message to the host. */
  #fromDevice(device: EmuDevice, clusterId: number, data: Buffer, dstEndpoint = 1): boolean {
    if (!this.#isReachable(device) || !this.#networkUp()) return false;
    if (this.#faults.dropAir > 0 && this.#random.float() < this.#faults.dropAir) {
      this.counters.airDropped++;
      return true;
    }
    this.#areq(Subsystem.AF, 'incomingMsg', {
      groupid: 0,
      clusterid: clusterId,
      srcaddr: device.nwk,
      srcendpoint: LOCK_ENDPOINT,
      dstendpoint: dstEndpoint,
      wasbroadcast: 0,
      linkquality: 200,
      securityuse: 0,
      timestamp: Date.now() >>> 0,
      transseqnumber: 0,
      len: data.length,
      data,
    });
    return true;
  }

  #dataRequest(dst: number, dstEp: number, srcEp: number, clusterId: number, transid: number, data: Buffer): void {
    const device = this.#members().find((d) => d.nwk === dst);
    const reachable = device !== undefined && this.#isReachable(device);
    this.#later(2, () => {
      this.#areq(Subsystem.AF, 'dataConfirm', {
        status: reachable ? STATUS.SUCCESS : STATUS.MAC_NO_ACK,
        endpoint: dstEp,
        transid,
      });
    });
    if (!reachable || !device) {
      this.counters.dataRequestsNoAck++;
      return;
    }
    this.nv.advanceFrameCounter();
    if (this.#faults.dropAir > 0 && this.#random.float() < this.#faults.dropAir) {
      this.counters.airDropped++;
      return;
    }
    this.#later(3, () => this.#onDeviceReceive(device, srcEp, clusterId, data));
  }

  /** The lock's firmware handling one ZCL frame from the coordinator. */
  #onDeviceReceive(device: EmuDevice, srcEp: number, clusterId: number, data: Buffer): void {
    const frame = decodeZcl(data);
    if (!frame) {
      this.counters.malformed++;
      return;
    }
    const reply = (f: { global: boolean; command: number; payload: Uint8Array; manufacturer?: boolean }) =>
      this.#fromDevice(device, clusterId, this.#zcl(device, { ...f, tsn: frame.tsn }), srcEp);
    if (!frame.clusterSpecific && frame.command === 0x00) {
      reply({ global: true, command: 0x01, payload: this.#readAttributes(device, clusterId, frame.payload) });
      return;
    }
    if (clusterId === DOOR_LOCK_CLUSTER_ID && frame.clusterSpecific && (frame.command === 0 || frame.command === 1)) {
      device.lockState = frame.command === 0 ? 1 : 2;
      reply({ global: false, command: frame.command, payload: Buffer.from([0]) });
      this.#reportLockState(device);
      return;
    }
    if (clusterId === LINK_CLUSTER_ID && frame.clusterSpecific && frame.manufacturerCode === MANUFACTURER_CODE) {
      this.#onLinkCommand(device, frame);
      return;
    }
    if (!frame.disableDefaultResponse) {
      // Default Response: UNSUP_COMMAND (0x81).
      reply({ global: true, command: 0x0b, payload: Buffer.from([frame.command, 0x81]) });
    }
  }

  #readAttributes(device: EmuDevice, clusterId: number, request: Uint8Array): Buffer {
    const out: Buffer[] = [];
    for (let i = 0; i + 1 < request.length; i += 2) {
      const id = request[i]! | (request[i + 1]! << 8);
      const head = Buffer.from([id & 0xff, id >> 8]);
      const value = this.#attribute(device, clusterId, id);
      out.push(value ? Buffer.concat([head, Buffer.from([0]), value]) : Buffer.concat([head, Buffer.from([0x86])]));
    }
    return Buffer.concat(out);
  }

  /** Type byte + value, or undefined for UNSUPPORTED_ATTRIBUTE. */
  #attribute(device: EmuDevice, clusterId: number, id: number): Buffer | undefined {
    const string = (s: string) => Buffer.concat([Buffer.from([0x42, s.length]), Buffer.from(s, 'ascii')]);
    if (clusterId === GEN_BASIC_CLUSTER_ID) {
      const advertisement = device.options.advertisement();
      switch (id) {
        case 0x0000:
          return Buffer.from([0x20, 3]); // zclVersion
        case 0x0004:
          return string('iq');
        case 0x0005:
          return advertisement ? string(encodeModelId(advertisement.deviceId, advertisement.attachMode)) : undefined;
        case 0x0007:
          return Buffer.from([0x30, 0x01]); // powerSource: mains
        default:
          return undefined;
      }
    }
    if (clusterId === DOOR_LOCK_CLUSTER_ID && id === LOCK_STATE_ATTRIBUTE_ID)
      return Buffer.from([0x30, device.lockState]);
    return undefined;
  }

  #onLinkCommand(device: EmuDevice, frame: ZclFrame): void {
    switch (frame.command) {
      case LinkCommand.open: {
        device.link?.closed('remote');
        const link = new LockLink(
          this.nv.ieee,
          device,
          (fragment) => this.#linkSend(device, LinkCommand.fragment, fragment),
          () => this.#linkSend(device, LinkCommand.close, new Uint8Array(0)),
        );
        device.link = link;
        this.#linkSend(device, LinkCommand.openAck, new Uint8Array(0));
        device.options.onConnect(link);
        return;
      }
      case LinkCommand.close:
        device.link?.closed('remote');
        device.link = undefined;
        return;
      case LinkCommand.fragment: {
        this.counters.linkFragmentsFromHub++;
        const result = device.reassembler.push(frame.payload);
        if (result.kind === 'rejected') this.counters.linkRejected++;
        if (result.kind !== 'frame') return;
        if (!device.link?.isOpen()) {
          this.counters.linkFramesWithoutLink++;
          return;
        }
        device.link.deliver(result.frame);
        return;
      }
      default:
        this.counters.malformed++;
    }
  }

  #linkSend(device: EmuDevice, command: number, payload: Uint8Array): boolean {
    if (payload.length > ZCL_PAYLOAD_LIMIT) return false;
    if (command === LinkCommand.fragment) this.counters.linkFragmentsToHub++;
    return this.#fromDevice(
      device,
      LINK_CLUSTER_ID,
      this.#zcl(device, { global: false, command, payload, manufacturer: true }),
    );
  }
}

function zeroCounters(): ZnpCounters {
  return {
    framesIn: 0,
    framesOut: 0,
    garbageBytes: 0,
    badFcs: 0,
    malformed: 0,
    unknownCommands: 0,
    ignoredWhileStalled: 0,
    connectionsRefused: 0,
    joinsAccepted: 0,
    joinsRefused: 0,
    installCodeJoinsRefused: 0,
    installCodesAdded: 0,
    installCodesRefused: 0,
    leaves: 0,
    airDropped: 0,
    serialCorrupted: 0,
    linkFragmentsFromHub: 0,
    linkFragmentsToHub: 0,
    linkRejected: 0,
    linkFramesWithoutLink: 0,
    dataRequestsNoAck: 0,
  };
}

/** Whether an install code's last two bytes are the CRC-16/X-25 of the others (little-endian). */
function crcMatches(code: Uint8Array): boolean {
  const crc = ZSpec.Utils.crc16X25(Buffer.from(code.subarray(0, -2)));
  return code[code.length - 2] === (crc & 0xff) && code[code.length - 1] === crc >> 8;
}

/** A peripheral's address as an IEEE address: itself when it is one, else derived from it. */
function ieeeFor(address: string): string {
  if (/^0x[0-9a-f]{16}$/.test(address)) return address;
  return `0x${createHash('sha256').update(address).digest('hex').slice(0, 16)}`;
}

function nodeDescriptor(nwk: number, logicalType: number, macCapabilities: number, manufacturer: number): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0; // status
  b.writeUInt16LE(nwk, 1);
  b[3] = logicalType;
  b[4] = 0x40; // 2.4 GHz band
  b[5] = macCapabilities;
  b.writeUInt16LE(manufacturer, 6);
  b[8] = 80; // max buffer size
  b.writeUInt16LE(160, 9); // max incoming transfer size
  b.writeUInt16LE(0, 11); // server mask
  b.writeUInt16LE(160, 13); // max outgoing transfer size
  b[15] = 0;
  return b;
}

function simpleDescriptor(nwk: number, ep: AfEndpoint): Buffer {
  const body = Buffer.alloc(8 + 2 * ep.inClusters.length + 1 + 2 * ep.outClusters.length);
  let pos = 0;
  body[pos++] = ep.endpoint;
  body.writeUInt16LE(ep.profileId, pos);
  pos += 2;
  body.writeUInt16LE(ep.deviceId, pos);
  pos += 2;
  body[pos++] = 0;
  body[pos++] = ep.inClusters.length;
  for (const c of ep.inClusters) {
    body.writeUInt16LE(c, pos);
    pos += 2;
  }
  body[pos++] = ep.outClusters.length;
  for (const c of ep.outClusters) {
    body.writeUInt16LE(c, pos);
    pos += 2;
  }
  const head = Buffer.alloc(4);
  head[0] = 0;
  head.writeUInt16LE(nwk, 1);
  head[3] = pos;
  return Buffer.concat([head, body.subarray(0, pos)]);
}
