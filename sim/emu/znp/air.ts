import { createHash } from 'node:crypto';
import type { SimPeripheral, SimPeripheralOptions } from '../../../drivers/sim-radio/radio.js';
import { LOCK_ENDPOINT } from '../../../drivers/zigbee/link-cluster.js';
import { HubError } from '../../../src/base/errors.js';
import type { Random } from '../../../src/base/random.js';
import { type CoordinatorRam, permitJoinOpen, STATUS, ZB_COORD } from './context.js';
import type { ZnpCounters, ZnpFaults } from './counters.js';
import { NODE_DESC_MAC_END_DEVICE } from './descriptors.js';
import { type EmuDevice, newDevice } from './device.js';
import type { InstallCodes } from './install-codes.js';
import { LockFirmware } from './lock-firmware.js';
import { Subsystem } from './mt.js';
import type { ZnpNv } from './nv.js';
import type { ZnpSerial } from './serial.js';

/**
 * The emulated network's air and the devices on it: who is hosted, who has joined, join attempts
 * while permit-join is open, leaving, and every ZCL frame between the coordinator and a device,
 * with the air's own fault (a lost frame). Scope: end devices directly under the coordinator, no
 * routing, no 802.15.4 below; enough for the host to see joins, interviews and traffic as on air.
 */

export interface AirOptions {
  readonly nv: ZnpNv;
  readonly ram: CoordinatorRam;
  readonly counters: ZnpCounters;
  readonly serial: ZnpSerial;
  readonly random: Random;
  readonly installCodes: InstallCodes;
  /** How often a joined lock reports its genBasic modelId (its "advertisement"), ms. */
  readonly advertiseIntervalMs: number;
  /** An AF data request's time on the air, ms (ZnpEmulatorOptions.airDelayMs); 0: at once. */
  readonly airDelayMs: number;
  faults(): ZnpFaults;
  later(ms: number, fn: () => void): void;
}

/** A peripheral's address as an IEEE address: itself when it is one, else derived from it. */
export function ieeeFor(address: string): string {
  if (/^0x[0-9a-f]{16}$/.test(address)) return address;
  return `0x${createHash('sha256').update(address).digest('hex').slice(0, 16)}`;
}

export class ZnpAir {
  readonly firmware: LockFirmware;
  readonly #o: AirOptions;
  readonly #devices = new Map<string, EmuDevice>();
  #lastAdvertise = 0;

  constructor(options: AirOptions) {
    this.#o = options;
    this.firmware = new LockFirmware(
      options.counters,
      () => options.nv.ieee,
      (device, clusterId, zcl, dstEndpoint) => this.fromDevice(device, clusterId, zcl, dstEndpoint),
    );
  }

  /** Hosts a peripheral as an end device that will try to join. */
  add(options: SimPeripheralOptions): SimPeripheral {
    const ieee = ieeeFor(options.address);
    if (this.#devices.has(ieee)) {
      throw new HubError('znp-emu.duplicate-address', `ZNP emulator: a device already uses address ${options.address}`);
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

  device(ieee: string): EmuDevice | undefined {
    return this.#devices.get(ieee);
  }

  devices(): IterableIterator<EmuDevice> {
    return this.#devices.values();
  }

  isMember(device: EmuDevice): boolean {
    const network = this.#o.nv.networkFingerprint();
    return !device.removed && network !== undefined && device.network === network;
  }

  isReachable(device: EmuDevice): boolean {
    return this.isMember(device) && device.inRange && this.#o.ram.deviceState === ZB_COORD;
  }

  members(): EmuDevice[] {
    return [...this.#devices.values()].filter((d) => this.isMember(d));
  }

  /** Join attempts of devices not on the network, and the members' periodic reports. */
  tick(): void {
    if (!this.#networkUp()) return;
    for (const device of this.#devices.values()) {
      if (device.removed || !device.inRange || this.isMember(device)) continue;
      if (!permitJoinOpen(this.#o.ram)) this.#o.counters.joinsRefused++;
      else if (this.#o.installCodes.agree(device.ieee)) this.admit(device);
      else this.#o.counters.installCodeJoinsRefused++;
    }
    const now = Date.now();
    if (now - this.#lastAdvertise >= this.#o.advertiseIntervalMs) {
      this.#lastAdvertise = now;
      for (const device of this.members()) {
        // A device that just joined answers its interview before it reports: a report from an address
        // the host does not know yet sends herdsman hunting for it (an IEEE address request).
        if (device.inRange && now - device.joinedAt >= this.#o.advertiseIntervalMs && this.firmware.advertise(device))
          this.#o.counters.airAdvertisements++;
      }
    }
  }

  /** Association and the trust center's key transport succeeded: the host hears of the device. */
  admit(device: EmuDevice): void {
    const network = this.#o.nv.networkFingerprint();
    if (!network || !this.#networkUp()) return;
    device.network = network;
    device.joinedAt = Date.now();
    const used = new Set(this.members().map((d) => d.nwk));
    do device.nwk = 1 + this.#o.random.int(0xfff6);
    while (used.has(device.nwk));
    this.#o.counters.joinsAccepted++;
    this.#o.nv.advanceFrameCounter(2);
    this.#o.serial.areq(Subsystem.ZDO, 'tcDeviceInd', { nwkaddr: device.nwk, extaddr: device.ieee, parentaddr: 0 });
    const announce = Buffer.alloc(11);
    announce.writeUInt16LE(device.nwk, 0);
    Buffer.from(device.ieee.slice(2), 'hex').reverse().copy(announce, 2);
    announce[10] = NODE_DESC_MAC_END_DEVICE;
    this.#o.later(5, () => this.#o.serial.zdoAreq('endDeviceAnnceInd', device.nwk, announce));
  }

  leave(device: EmuDevice): void {
    this.#o.counters.leaves++;
    device.link?.closed('lost');
    device.link = undefined;
    device.network = undefined;
    this.#o.serial.areq(Subsystem.ZDO, 'leaveInd', {
      srcaddr: device.nwk,
      extaddr: device.ieee,
      request: 0,
      removechildren: 0,
      rejoin: 0,
    });
  }

  /** A frame from a device to the coordinator: an AF incoming message to the host. */
  fromDevice(device: EmuDevice, clusterId: number, data: Buffer, dstEndpoint = 1): boolean {
    if (!this.isReachable(device) || !this.#networkUp()) return false;
    this.#o.counters.airFramesFromDevices++;
    if (this.#airDrops()) return true;
    this.#o.serial.areq(Subsystem.AF, 'incomingMsg', {
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

  /** AF dataRequest from the host: confirmed (or not acknowledged) as on air, then received by the device. */
  dataRequest(dst: number, dstEp: number, srcEp: number, clusterId: number, transid: number, data: Buffer): void {
    const device = this.#memberAt(dst);
    const reachable = device !== undefined && this.isReachable(device);
    const delay = this.#o.airDelayMs;
    const confirm = () =>
      this.#o.serial.areq(Subsystem.AF, 'dataConfirm', {
        status: reachable ? STATUS.SUCCESS : STATUS.MAC_NO_ACK,
        endpoint: dstEp,
        transid,
      });
    // The confirm always comes before the device's answer, as on air (the MAC ack precedes it).
    if (delay === 0) confirm();
    else this.#o.later(Math.max(0, delay - 1), confirm);
    if (!reachable || !device) {
      this.#o.counters.dataRequestsNoAck++;
      return;
    }
    this.#o.nv.advanceFrameCounter();
    this.#o.counters.airFramesToDevices++;
    if (this.#airDrops()) return;
    if (delay === 0) this.firmware.receive(device, srcEp, clusterId, data);
    else this.#o.later(delay, () => this.firmware.receive(device, srcEp, clusterId, data));
  }

  /** The first member with this short address (members() order), without building the list. */
  #memberAt(nwk: number): EmuDevice | undefined {
    for (const d of this.#devices.values()) if (d.nwk === nwk && this.isMember(d)) return d;
    return undefined;
  }

  #networkUp(): boolean {
    return this.#o.ram.deviceState === ZB_COORD && this.#o.serial.connected() && !this.#o.serial.stalled;
  }

  /** Whether the air loses this frame (the dropAir fault); counted when it does. */
  #airDrops(): boolean {
    const { dropAir } = this.#o.faults();
    if (!(dropAir > 0 && this.#o.random.float() < dropAir)) return false;
    this.#o.counters.airDropped++;
    return true;
  }
}
