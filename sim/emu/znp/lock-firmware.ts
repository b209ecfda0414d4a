import {
  DOOR_LOCK_CLUSTER_ID,
  decodeZcl,
  encodeModelId,
  encodeZcl,
  GEN_BASIC_CLUSTER_ID,
  LINK_CLUSTER_ID,
  LinkCommand,
  LOCK_STATE_ATTRIBUTE_ID,
  MANUFACTURER_CODE,
  ZCL_PAYLOAD_LIMIT,
  type ZclFrame,
} from '../../../drivers/zigbee/link-cluster.js';
import type { ZnpCounters } from './counters.js';
import { type EmuDevice, LockLink } from './device.js';

/**
 * The ZCL side of a hosted lock's firmware: genBasic and Door Lock attributes, lock and unlock
 * commands, the lock-state report, the modelId "advertisement", and the manufacturer-specific
 * link cluster that carries the sealed link's frames. It only builds and reads ZCL; getting a
 * frame across the air (or losing it) is the caller's job.
 */

/** How a hosted device's ZCL frame goes to the coordinator; false when it cannot be sent now. */
export type ToCoordinator = (device: EmuDevice, clusterId: number, zcl: Buffer, dstEndpoint?: number) => boolean;

interface ZclOut {
  global: boolean;
  command: number;
  payload: Uint8Array;
  tsn?: number;
  manufacturer?: boolean;
}

const ZCL_READ_ATTRIBUTES = 0x00;
const ZCL_READ_ATTRIBUTES_RSP = 0x01;
const ZCL_REPORT_ATTRIBUTES = 0x0a;
const ZCL_DEFAULT_RSP = 0x0b;
const ZCL_UNSUPPORTED_ATTRIBUTE = 0x86;
const ZCL_UNSUP_COMMAND = 0x81;
const ZCL_CHAR_STRING = 0x42;
const ZCL_ENUM8 = 0x30;
const LOCK_STATE = { locked: 1, unlocked: 2 } as const;

export class LockFirmware {
  readonly #counters: ZnpCounters;
  readonly #coordinatorIeee: () => string;
  readonly #send: ToCoordinator;

  constructor(counters: ZnpCounters, coordinatorIeee: () => string, send: ToCoordinator) {
    this.#counters = counters;
    this.#coordinatorIeee = coordinatorIeee;
    this.#send = send;
  }

  /** The lock's firmware handling one ZCL frame from the coordinator. */
  receive(device: EmuDevice, srcEp: number, clusterId: number, data: Buffer): void {
    const frame = decodeZcl(data);
    if (!frame) {
      this.#counters.malformed++;
      return;
    }
    const reply = (f: Omit<ZclOut, 'tsn'>) =>
      this.#send(device, clusterId, this.#zcl(device, { ...f, tsn: frame.tsn }), srcEp);
    if (!frame.clusterSpecific && frame.command === ZCL_READ_ATTRIBUTES) {
      reply({
        global: true,
        command: ZCL_READ_ATTRIBUTES_RSP,
        payload: this.#readAttributes(device, clusterId, frame.payload),
      });
      return;
    }
    if (clusterId === DOOR_LOCK_CLUSTER_ID && frame.clusterSpecific && (frame.command === 0 || frame.command === 1)) {
      device.lockState = frame.command === 0 ? LOCK_STATE.locked : LOCK_STATE.unlocked;
      reply({ global: false, command: frame.command, payload: Buffer.from([0]) });
      this.#reportLockState(device);
      return;
    }
    if (clusterId === LINK_CLUSTER_ID && frame.clusterSpecific && frame.manufacturerCode === MANUFACTURER_CODE) {
      this.#onLinkCommand(device, frame);
      return;
    }
    if (!frame.disableDefaultResponse) {
      reply({ global: true, command: ZCL_DEFAULT_RSP, payload: Buffer.from([frame.command, ZCL_UNSUP_COMMAND]) });
    }
  }

  /** The lock's "advertisement": a genBasic modelId report naming it and its attach mode. */
  advertise(device: EmuDevice): boolean {
    const advertisement = device.options.advertisement();
    if (!advertisement) return false;
    const modelId = Buffer.from(encodeModelId(advertisement.deviceId, advertisement.attachMode), 'ascii');
    const payload = Buffer.concat([Buffer.from([0x05, 0x00, ZCL_CHAR_STRING, modelId.length]), modelId]);
    return this.#send(
      device,
      GEN_BASIC_CLUSTER_ID,
      this.#zcl(device, { global: true, command: ZCL_REPORT_ATTRIBUTES, payload }),
    );
  }

  /** The bolt turned by hand: the lock reports its new lockState. */
  turnByHand(device: EmuDevice, state: keyof typeof LOCK_STATE): void {
    device.lockState = LOCK_STATE[state];
    this.#reportLockState(device);
  }

  #reportLockState(device: EmuDevice): void {
    const payload = Buffer.from([
      LOCK_STATE_ATTRIBUTE_ID & 0xff,
      LOCK_STATE_ATTRIBUTE_ID >> 8,
      ZCL_ENUM8,
      device.lockState,
    ]);
    this.#send(
      device,
      DOOR_LOCK_CLUSTER_ID,
      this.#zcl(device, { global: true, command: ZCL_REPORT_ATTRIBUTES, payload }),
    );
  }

  #zcl(device: EmuDevice, f: ZclOut): Buffer {
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

  #readAttributes(device: EmuDevice, clusterId: number, request: Uint8Array): Buffer {
    const out: Buffer[] = [];
    for (let i = 0; i + 1 < request.length; i += 2) {
      const id = request[i]! | (request[i + 1]! << 8);
      const head = Buffer.from([id & 0xff, id >> 8]);
      const value = this.#attribute(device, clusterId, id);
      out.push(
        value
          ? Buffer.concat([head, Buffer.from([0]), value])
          : Buffer.concat([head, Buffer.from([ZCL_UNSUPPORTED_ATTRIBUTE])]),
      );
    }
    return Buffer.concat(out);
  }

  /** Type byte + value, or undefined for UNSUPPORTED_ATTRIBUTE. */
  #attribute(device: EmuDevice, clusterId: number, id: number): Buffer | undefined {
    const string = (s: string) => Buffer.concat([Buffer.from([ZCL_CHAR_STRING, s.length]), Buffer.from(s, 'ascii')]);
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
          return Buffer.from([ZCL_ENUM8, 0x01]); // powerSource: mains
        default:
          return undefined;
      }
    }
    if (clusterId === DOOR_LOCK_CLUSTER_ID && id === LOCK_STATE_ATTRIBUTE_ID)
      return Buffer.from([ZCL_ENUM8, device.lockState]);
    return undefined;
  }

  #onLinkCommand(device: EmuDevice, frame: ZclFrame): void {
    switch (frame.command) {
      case LinkCommand.open: {
        device.link?.closed('remote');
        const link = new LockLink(
          this.#coordinatorIeee(),
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
        this.#counters.linkFragmentsFromHub++;
        const result = device.reassembler.push(frame.payload);
        if (result.kind === 'rejected') this.#counters.linkRejected++;
        if (result.kind !== 'frame') return;
        if (!device.link?.isOpen()) {
          this.#counters.linkFramesWithoutLink++;
          return;
        }
        device.link.deliver(result.frame);
        return;
      }
      default:
        this.#counters.malformed++;
    }
  }

  #linkSend(device: EmuDevice, command: number, payload: Uint8Array): boolean {
    if (payload.length > ZCL_PAYLOAD_LIMIT) return false;
    if (command === LinkCommand.fragment) this.#counters.linkFragmentsToHub++;
    return this.#send(
      device,
      LINK_CLUSTER_ID,
      this.#zcl(device, { global: false, command, payload, manufacturer: true }),
    );
  }
}
