import type { PeripheralHost, SimPeripheral, SimPeripheralOptions } from '../../../drivers/sim-radio/radio.js';
import { LINK_CLUSTER_ID } from '../../../drivers/zigbee/link-cluster.js';
import { HubError } from '../../../src/base/errors.js';
import { type Random, systemRandom } from '../../../src/base/random.js';
import { ieeeFor, ZnpAir } from './air.js';
import { type CoordinatorRam, freshRam, permitJoinOpen, powerUp, type ZnpContext } from './context.js';
import { type ZnpCounters, type ZnpFaults, zeroCounters } from './counters.js';
import type { EmuDevice } from './device.js';
import { dispatch } from './dispatch.js';
import { InstallCodes } from './install-codes.js';
import { ZnpNv, type ZnpNvSnapshot } from './nv.js';
import { ZnpSerial } from './serial.js';

export type { ZnpCounters, ZnpFaults } from './counters.js';

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
 *
 * This class is the dongle as tests hold it (power, faults, hosted locks); the parts are their own
 * modules: the serial line (serial.ts), the MT codec (mt.ts), request routing (dispatch.ts) and one
 * handler table per subsystem (mt-*.ts), NV (nv.ts), the air and its devices (air.ts), the locks'
 * ZCL firmware (lock-firmware.ts) and install codes (install-codes.ts).
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
  /**
   * How long an AF data request takes on the air, ms (default 3): the device gets the frame after
   * this, the host its dataConfirm 1 ms earlier. 0: at once, in the same burst as the request's
   * SRSP (SRSP, dataConfirm, then whatever the device answers) — an emulator that adds nothing
   * to the host's own time (the benches' "emulator delay 0").
   */
  readonly airDelayMs?: number;
}

export class ZnpEmulator implements PeripheralHost {
  readonly nv: ZnpNv;
  readonly counters: ZnpCounters = zeroCounters();
  readonly #random: Random;
  readonly #joinRetryMs: number;
  readonly #ram: CoordinatorRam = freshRam();
  readonly #installCodes = new InstallCodes(this.counters);
  readonly #serial: ZnpSerial;
  readonly #air: ZnpAir;
  readonly #context: ZnpContext;
  readonly #timers = new Set<NodeJS.Timeout>();
  #faults: ZnpFaults = { dropAir: 0, corruptSerial: 0 };
  #plugged = true;
  #tick: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(options: ZnpEmulatorOptions) {
    this.#random = options.random ?? systemRandom;
    this.#joinRetryMs = options.joinRetryMs ?? 250;
    const ieee = options.ieee ?? `0x00124b00${Buffer.from(this.#random.bytes(4)).toString('hex')}`;
    this.nv = options.nv ? ZnpNv.fromSnapshot(options.nv) : ZnpNv.factory(ieee, (n) => this.#random.bytes(n));
    const later = (ms: number, fn: () => void) => this.#later(ms, fn);
    this.#serial = new ZnpSerial({
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 0,
      random: this.#random,
      counters: this.counters,
      faults: () => this.#faults,
      accepts: () => this.#plugged && !this.#closed,
      onFrame: (frame) => dispatch(this.#context, frame),
    });
    this.#air = new ZnpAir({
      nv: this.nv,
      ram: this.#ram,
      counters: this.counters,
      serial: this.#serial,
      random: this.#random,
      installCodes: this.#installCodes,
      advertiseIntervalMs: options.advertiseIntervalMs ?? 1000,
      airDelayMs: airDelay(options.airDelayMs),
      faults: () => this.#faults,
      later,
    });
    this.#context = {
      nv: this.nv,
      ram: this.#ram,
      counters: this.counters,
      serial: this.#serial,
      air: this.#air,
      installCodes: this.#installCodes,
      later,
    };
  }

  /** Starts listening; resolves once herdsman can connect to `url`. */
  static async start(options: ZnpEmulatorOptions = {}): Promise<ZnpEmulator> {
    const emulator = new ZnpEmulator(options);
    await emulator.#serial.listen();
    emulator.#tick = setInterval(
      () => emulator.#serial.burst(() => emulator.#air.tick()),
      Math.min(emulator.#joinRetryMs, 250),
    );
    return emulator;
  }

  get port(): number {
    return this.#serial.port;
  }

  /** The serial path for zigbee-herdsman. */
  get url(): string {
    return `tcp://${this.#serial.host}:${this.#serial.port}`;
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
    return permitJoinOpen(this.#ram);
  }

  connected(): boolean {
    return this.#serial.connected();
  }

  setFaults(patch: Partial<ZnpFaults>): void {
    const next = { ...this.#faults, ...patch };
    for (const [name, p] of Object.entries(next)) {
      if (!(p >= 0 && p <= 1))
        throw new HubError('znp-emu.config', `ZNP emulator: fault ${name} must be in [0, 1], got ${p}`);
    }
    this.#faults = next;
  }

  /** Stops answering the host (a hung firmware); the TCP connection stays up. */
  stall(stalled: boolean): void {
    this.#serial.stalled = stalled;
  }

  /** Pulls the dongle: the connection drops and new ones are refused until plug(). RAM state is lost. */
  async unplug(): Promise<void> {
    this.#plugged = false;
    await this.#serial.close();
  }

  /** Plugs it back (a power-up): listening again on the same port, network down until the host starts it. */
  async plug(): Promise<void> {
    if (this.#plugged) return;
    this.#plugged = true;
    powerUp(this.#ram);
    await this.#serial.listen();
  }

  /** A new, unconfigured dongle in place of this one (same IEEE address): nothing commissioned. */
  factoryReset(): void {
    const fresh = ZnpNv.factory(this.nv.ieee, (n) => this.#random.bytes(n));
    this.nv.items.clear();
    this.nv.extended.clear();
    for (const [k, v] of fresh.items) this.nv.items.set(k, v);
    for (const [k, v] of fresh.extended) this.nv.extended.set(k, v);
    this.#installCodes.forgetTrustCenterKeys();
    powerUp(this.#ram);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#tick) clearInterval(this.#tick);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const device of this.#air.devices()) device.link?.closed('stopped');
    await this.#serial.close();
  }

  // ---- PeripheralHost and the hosted locks ---------------------------------------------------

  addPeripheral(options: SimPeripheralOptions): SimPeripheral {
    return this.#air.add(options);
  }

  /**
   * Gives a hosted lock an install code (bytes with their CRC, as printed on its label): from now
   * on it joins only when the trust center was given the same code for its IEEE address. May be
   * called before the lock is added (the lock's address, or its IEEE address). `undefined` takes
   * the code away (the lock joins with the default key again).
   */
  setInstallCode(address: string, code: Uint8Array | undefined): void {
    this.#installCodes.setDeviceCode(ieeeFor(address), code);
  }

  /** Whether the trust center holds an install-code link key for this device (tests). */
  hasLinkKeyFor(address: string): boolean {
    return this.#installCodes.trustCenterHas(ieeeFor(address));
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
    this.#air.admit(this.#need(address));
  }

  /** Turns the bolt by hand: the lock reports its new lockState. */
  setLockState(address: string, state: 'locked' | 'unlocked'): void {
    this.#air.firmware.turnByHand(this.#need(address), state);
  }

  /** Sends raw ZCL bytes from a device in the link cluster (malformed-input tests). */
  sendRawFromDevice(address: string, zcl: Uint8Array, clusterId = LINK_CLUSTER_ID): boolean {
    const device = this.#air.device(ieeeFor(address));
    if (!device) return false;
    return this.#air.fromDevice(device, clusterId, Buffer.from(zcl));
  }

  #need(address: string): EmuDevice {
    const device = this.#air.device(ieeeFor(address));
    if (!device) throw new HubError('znp-emu.unknown-device', `ZNP emulator: no device ${address}`);
    return device;
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#closed) this.#serial.burst(fn);
    }, ms);
    this.#timers.add(t);
  }
}

function airDelay(ms: number | undefined): number {
  if (ms === undefined) return 3;
  if (!(Number.isInteger(ms) && ms >= 0 && ms <= 60_000))
    throw new HubError('znp-emu.config', `ZNP emulator: airDelayMs must be an integer 0…60000, got ${ms}`);
  return ms;
}
