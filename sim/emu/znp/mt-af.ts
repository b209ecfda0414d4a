import type { MtHandlers } from './context.js';

/**
 * AF subsystem: the host's application endpoints, and data requests, which are how ZCL frames
 * leave the coordinator for a hosted device. What happens on the air is air.ts's business; AF
 * only accepts the request and hands it on.
 */

/** AF register for an endpoint that is already registered. */
const AF_DUPLICATE_ENDPOINT = 0xb8;

export const AF_HANDLERS: MtHandlers = {
  register: ({ ctx, p, reply }) => {
    const endpoint = Number(p.endpoint);
    if (ctx.ram.endpoints.has(endpoint)) return reply({ status: AF_DUPLICATE_ENDPOINT });
    ctx.ram.endpoints.set(endpoint, {
      endpoint,
      profileId: Number(p.appprofid),
      deviceId: Number(p.appdeviceid),
      inClusters: p.appinclusterlist as number[],
      outClusters: p.appoutclusterlist as number[],
    });
    reply({ status: 0 });
  },
  dataRequest: ({ ctx, p, reply }) => {
    reply({ status: 0 });
    ctx.air.dataRequest(
      Number(p.dstaddr),
      Number(p.destendpoint),
      Number(p.srcendpoint),
      Number(p.clusterid),
      Number(p.transid),
      p.data as Buffer,
    );
  },
  dataRequestExt: ({ ctx, reply }) => {
    // Broadcasts and groups (herdsman's green-power permit-join): nobody here listens to them.
    reply({ status: 0 });
    ctx.nv.advanceFrameCounter();
  },
};
