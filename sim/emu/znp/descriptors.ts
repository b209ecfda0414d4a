/**
 * ZDO descriptor bodies as the coordinator answers them, for itself and for the locks it hosts.
 * herdsman's interview reads these before anything else, so their bytes are built in one place
 * and match what a CC2652 and a Door Lock end device send.
 */

/** An application endpoint (AF register on the coordinator; the lock's one endpoint). */
export interface AfEndpoint {
  readonly endpoint: number;
  readonly profileId: number;
  readonly deviceId: number;
  readonly inClusters: readonly number[];
  readonly outClusters: readonly number[];
}

export const NODE_DESC_MAC_END_DEVICE = 0x8c; // mains, rx on when idle, allocate address
export const NODE_DESC_MAC_COORDINATOR = 0x8f;

export function nodeDescriptor(
  nwk: number,
  logicalType: number,
  macCapabilities: number,
  manufacturer: number,
): Buffer {
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

export function simpleDescriptor(nwk: number, ep: AfEndpoint): Buffer {
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

/** A descriptor request for an endpoint the device does not have: NOT_ACTIVE (0x82). */
export function noSuchEndpoint(nwk: number): Buffer {
  return Buffer.from([0x82, nwk & 0xff, nwk >> 8, 0]);
}
