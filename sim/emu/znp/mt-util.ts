import { type MtHandlers, ZB_COORD } from './context.js';

/**
 * UTIL subsystem: what the coordinator tells the host about itself and its associated devices.
 * herdsman asks at start-up and when it looks a device up by IEEE address, so the answers come
 * from the same membership the air uses.
 */

/** ZNP device type bits: coordinator, router and end device capable. */
const DEVICE_TYPE_ALL = 7;
const NO_ADDRESS = 0xfffe;

export const UTIL_HANDLERS: MtHandlers = {
  getDeviceInfo: ({ ctx, reply }) => {
    const members = ctx.air.members();
    reply({
      status: 0,
      ieeeaddr: ctx.nv.ieee,
      shortaddr: ctx.ram.deviceState === ZB_COORD ? 0 : NO_ADDRESS,
      devicetype: DEVICE_TYPE_ALL,
      devicestate: ctx.ram.deviceState,
      numassocdevices: members.length,
      assocdeviceslist: members.map((d) => d.nwk),
    });
  },
  assocGetWithAddress: ({ ctx, p, reply }) => {
    const device = ctx.air.device(String(p.extaddr));
    const member = device && ctx.air.isMember(device);
    reply({ nwkaddr: member ? device.nwk : NO_ADDRESS, addridx: 0, noderelation: member ? 1 : 255 });
  },
};
