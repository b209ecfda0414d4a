import { type MtHandlers, ZB_COORD } from './context.js';
import { Subsystem } from './mt.js';

/**
 * APP_CNF subsystem: BDB commissioning (forming the network herdsman configured in NV) and
 * install codes for the trust center. Formation is where the NIB comes into being, which every
 * later start-up resumes from.
 */

/** bdbStartCommissioning mode bit: network formation. */
const BDB_FORMATION = 0x04;

export const APP_CNF_HANDLERS: MtHandlers = {
  bdbAddInstallCode: ({ ctx, data, reply }) => reply({ status: ctx.installCodes.add(data) }),
  bdbStartCommissioning: ({ ctx, p, reply }) => {
    reply({ status: 0 });
    if (Number(p.mode) !== BDB_FORMATION) return;
    ctx.later(20, () => {
      ctx.nv.formNetwork();
      ctx.ram.deviceState = ZB_COORD;
      ctx.serial.areq(Subsystem.ZDO, 'stateChangeInd', { state: ZB_COORD });
      ctx.serial.areq(Subsystem.APP_CNF, 'bdbComissioningNotifcation', { status: 0 });
    });
  },
};
