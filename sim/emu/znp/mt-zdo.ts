import {
  DOOR_LOCK_CLUSTER_ID,
  DOOR_LOCK_DEVICE_ID,
  GEN_BASIC_CLUSTER_ID,
  HA_PROFILE_ID,
  LINK_CLUSTER_ID,
  LOCK_ENDPOINT,
  MANUFACTURER_CODE,
} from '../../../drivers/zigbee/link-cluster.js';
import { type MtHandlers, STATUS, ZB_COORD, type ZnpContext } from './context.js';
import {
  NODE_DESC_MAC_COORDINATOR,
  NODE_DESC_MAC_END_DEVICE,
  nodeDescriptor,
  noSuchEndpoint,
  simpleDescriptor,
} from './descriptors.js';
import { type MtCommand, MtType, Subsystem } from './mt.js';

/**
 * ZDO subsystem: starting the network from NV, network info, endpoint groups, and the ZDO
 * requests herdsman sends to devices (permit-join, leave, and the interview's descriptors).
 * A request to a device is answered the way the air would: later, as a callback, and not at all
 * when the device cannot hear it, so that herdsman's own timeouts are what tests exercise.
 */

/** ZDO cluster ids (requests). */
const ZDO = {
  NODE_DESC: 0x0002,
  SIMPLE_DESC: 0x0004,
  ACTIVE_EP: 0x0005,
  LEAVE: 0x0034,
  PERMIT_JOIN: 0x0036,
} as const;
const LOGICAL_TYPE_END_DEVICE = 2;
const PERMIT_JOIN_FOREVER = 0xff;

export const ZDO_HANDLERS: MtHandlers = {
  startupFromApp: ({ ctx, reply }) => {
    reply({ status: ctx.nv.nib() ? 0 : 1 });
    if (!ctx.nv.nib()) return;
    ctx.later(20, () => {
      ctx.ram.deviceState = ZB_COORD;
      ctx.serial.areq(Subsystem.ZDO, 'stateChangeInd', { state: ZB_COORD });
    });
  },
  extNwkInfo: ({ ctx, reply }) => {
    const nib = ctx.nv.nib();
    reply({
      shortaddr: 0,
      devstate: ctx.ram.deviceState,
      panid: nib?.nwkPanId ?? 0xffff,
      parentaddr: 0,
      extendedpanid: `0x${ctx.nv.extendedPanId() ?? '0000000000000000'}`,
      parentextaddr: '0x0000000000000000',
      channel: nib?.nwkLogicalChannel ?? 0,
    });
  },
  extFindGroup: ({ ctx, p, reply }) => {
    const known = ctx.ram.groups.has(`${p.endpoint}:${p.groupid}`);
    reply({ status: known ? 0 : 1, groupid: Number(p.groupid), namelen: 0, groupname: Buffer.alloc(0) });
  },
  extAddGroup: ({ ctx, p, reply }) => {
    ctx.ram.groups.add(`${p.endpoint}:${p.groupid}`);
    reply({ status: 0 });
  },
};

/** A ZDO request with a cluster id: the SRSP is a status byte, the response comes as an AREQ callback. */
export function zdoRequest(ctx: ZnpContext, command: MtCommand, data: Buffer): void {
  ctx.serial.send({ type: MtType.SRSP, subsystem: Subsystem.ZDO, command: command.ID, data: Buffer.from([0]) });
  const cluster = command.zdoClusterId!;
  if (cluster === ZDO.PERMIT_JOIN) {
    if (data.length < 5) throw new RangeError('short permit-join request');
    const duration = data[3]!;
    ctx.ram.permitJoinUntil =
      duration === 0 ? 0 : Date.now() + (duration === PERMIT_JOIN_FOREVER ? 1e12 : duration * 1000);
    ctx.later(1, () => ctx.serial.zdoAreq('mgmtPermitJoinRsp', 0, Buffer.from([0])));
    return;
  }
  if (data.length < 4 && cluster !== ZDO.LEAVE) throw new RangeError('short ZDO request');
  const target = data.readUInt16LE(0);
  const respond = (name: string, body: Buffer) => ctx.later(2, () => ctx.serial.zdoAreq(name, target, body));
  if (cluster === ZDO.LEAVE) {
    leave(ctx, data, respond);
    return;
  }
  const ofInterest = data.readUInt16LE(2);
  if (ofInterest === 0) {
    coordinatorDescriptor(ctx, cluster, data, respond);
    return;
  }
  const device = ctx.air.members().find((d) => d.nwk === ofInterest);
  if (!device || !ctx.air.isReachable(device)) return; // no answer: herdsman times out, as on air
  switch (cluster) {
    case ZDO.NODE_DESC:
      respond(
        'nodeDescRsp',
        nodeDescriptor(device.nwk, LOGICAL_TYPE_END_DEVICE, NODE_DESC_MAC_END_DEVICE, MANUFACTURER_CODE),
      );
      return;
    case ZDO.ACTIVE_EP:
      respond('activeEpRsp', Buffer.from([0, device.nwk & 0xff, device.nwk >> 8, 1, LOCK_ENDPOINT]));
      return;
    case ZDO.SIMPLE_DESC: {
      if (data[4] !== LOCK_ENDPOINT) {
        respond('simpleDescRsp', noSuchEndpoint(device.nwk));
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
      ctx.counters.unknownCommands++;
  }
}

type Respond = (name: string, body: Buffer) => void;

/** mgmtLeaveReq: {dst nwk, device IEEE (8 bytes LE), flags}; the device leaves once the answer is out. */
function leave(ctx: ZnpContext, data: Buffer, respond: Respond): void {
  if (data.length < 11) throw new RangeError('short leave request');
  const ieee = `0x${Buffer.from(data.subarray(2, 10)).reverse().toString('hex')}`;
  const device = ctx.air.device(ieee);
  if (!device || !ctx.air.isReachable(device)) {
    respond('mgmtLeaveRsp', Buffer.from([STATUS.MAC_NO_ACK]));
    return;
  }
  respond('mgmtLeaveRsp', Buffer.from([0]));
  ctx.later(5, () => ctx.air.leave(device));
}

function coordinatorDescriptor(ctx: ZnpContext, cluster: number, data: Buffer, respond: Respond): void {
  switch (cluster) {
    case ZDO.NODE_DESC:
      respond('nodeDescRsp', nodeDescriptor(0, 0, NODE_DESC_MAC_COORDINATOR, 0));
      return;
    case ZDO.ACTIVE_EP: {
      const eps = [...ctx.ram.endpoints.keys()];
      respond('activeEpRsp', Buffer.from([0, 0, 0, eps.length, ...eps]));
      return;
    }
    case ZDO.SIMPLE_DESC: {
      const ep = ctx.ram.endpoints.get(data[4] ?? 0);
      respond('simpleDescRsp', ep ? simpleDescriptor(0, ep) : noSuchEndpoint(0));
      return;
    }
    default:
      ctx.counters.unknownCommands++;
  }
}
