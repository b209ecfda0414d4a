import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Controller } from 'zigbee-herdsman';
import { takeLinkFrames, type ZclPayloadLike, zclFrameSender } from '../../../drivers/zigbee/herdsman-controller.js';

/** The two reaches into herdsman's controller that the link cluster's frames take (herdsman-controller.ts). */

const LINK = 0xfc00;
const frame = (clusterID: number, address: number | string = 0x1234): ZclPayloadLike => ({
  clusterID,
  address,
  data: Buffer.from([0x1d, 0x34, 0x12, 0x01, 0x00]),
  linkquality: 200,
});

/** A controller whose adapter has herdsman's listeners on zclPayload, as controller.start() leaves it. */
function controllerWith(listeners: number) {
  const adapter = new EventEmitter();
  const seen: ZclPayloadLike[] = [];
  for (let i = 0; i < listeners; i++) adapter.on('zclPayload', (p: ZclPayloadLike) => seen.push(p));
  return { controller: { adapter } as unknown as Controller, adapter, seen };
}

describe('takeLinkFrames', () => {
  it('gives the link cluster’s frames to the driver and every other frame to herdsman', () => {
    const { controller, adapter, seen } = controllerWith(1);
    const taken: ZclPayloadLike[] = [];
    const take = (p: ZclPayloadLike) => {
      taken.push(p);
      return true;
    };
    expect(takeLinkFrames(controller, LINK, take)).toBe(true);
    expect(adapter.listenerCount('zclPayload')).toBe(1);
    const link = frame(LINK);
    const basic = frame(0x0000);
    adapter.emit('zclPayload', link);
    adapter.emit('zclPayload', basic);
    expect(taken).toEqual([link]);
    expect(seen).toEqual([basic]);
  });

  it('a frame the driver declines (a device herdsman must identify first) still reaches herdsman', () => {
    const { controller, adapter, seen } = controllerWith(1);
    takeLinkFrames(controller, LINK, () => false);
    const link = frame(LINK, 0x9999);
    adapter.emit('zclPayload', link);
    expect(seen).toEqual([link]);
  });

  it('changes nothing when herdsman’s adapter is not as expected (no listener, or several)', () => {
    for (const n of [0, 2]) {
      const { controller, adapter, seen } = controllerWith(n);
      expect(takeLinkFrames(controller, LINK, () => true)).toBe(false);
      expect(adapter.listenerCount('zclPayload')).toBe(n);
      adapter.emit('zclPayload', frame(LINK));
      expect(seen).toHaveLength(n);
    }
    expect(takeLinkFrames({} as Controller, LINK, () => true)).toBe(false);
  });
});

describe('zclFrameSender', () => {
  it('is the adapter when it can send a ZCL frame to an endpoint, else undefined (Endpoint.command then)', () => {
    const adapter = { sendZclFrameToEndpoint: async () => undefined };
    expect(zclFrameSender({ adapter } as unknown as Controller)).toBe(adapter);
    expect(zclFrameSender({ adapter: {} } as unknown as Controller)).toBeUndefined();
    expect(zclFrameSender({} as Controller)).toBeUndefined();
  });
});
