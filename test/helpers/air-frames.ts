import { encodeZcl, LinkCommand, MANUFACTURER_CODE } from '../../drivers/zigbee/link-cluster.js';
import type { RadioSite } from '../../sim/emu/site.js';
import type { SimLock } from '../../sim/lock/lock.js';
import type { LinkManager } from '../../src/link/manager.js';

/**
 * Frames on the air of the emulated radios, counted at the emulators (not by the hub): what the
 * "Frame budget" of docs/link-protocol.md promises, as the air-budget test and bench/frames.bench.ts
 * measure it.
 *
 * - ZigBee: every ZCL frame the coordinator puts on the air to a device (any cluster: link
 *   fragments, ZCL default responses, reads) is `out`; every frame from a device except its periodic
 *   modelId report is `back`.
 * - BLE: writes of the frames characteristic are `out`; notifications plus any ATT Write Response
 *   are `back` (the hub writes without response, so there are none).
 */
export interface AirCount {
  out: number;
  back: number;
}

export function airCount(site: RadioSite, radio: 'ble' | 'zigbee'): AirCount {
  if (radio === 'zigbee') {
    const c = site.znp.counters;
    return { out: c.airFramesToDevices, back: c.airFramesFromDevices - c.airAdvertisements };
  }
  const c = site.hci.emulator.counters();
  return { out: c.frameWrites, back: c.notifications + c.frameWriteResponses };
}

export const airDelta = (a: AirCount, b: AirCount): AirCount => ({ out: b.out - a.out, back: b.back - a.back });

/** Resolves once `check` holds, polling every 10 ms; rejects after `ms`. */
export async function waitFor(check: () => boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves once no frame has crossed the radio's air for `quietMs` (a settle, not a delay that must be long enough). */
export async function airQuiet(
  site: RadioSite,
  radio: 'ble' | 'zigbee',
  quietMs: number,
  maxMs: number,
): Promise<void> {
  let last = airCount(site, radio);
  let since = Date.now();
  await waitFor(
    () => {
      const now = airCount(site, radio);
      if (now.out !== last.out || now.back !== last.back) [last, since] = [now, Date.now()];
      return Date.now() - since >= quietMs;
    },
    `the ${radio} air to fall quiet for ${quietMs} ms`,
    maxMs,
  );
}

/**
 * One open on an established link, counted at the emulator: from the request until the hub has
 * stored the open's event and the air has been quiet for `quietMs` (shorter than the link's
 * ackDelayMs, so an idle acknowledgement is not counted as the open's).
 */
export async function countedOpen(
  site: RadioSite,
  link: LinkManager,
  lock: SimLock,
  radio: 'ble' | 'zigbee',
  quietMs: number,
): Promise<AirCount> {
  const before = airCount(site, radio);
  await link.open(lock.deviceId, 1_000);
  const seq = lock.state().lastSeq;
  await waitFor(
    () => (link.list().find((l) => l.lockId === lock.deviceId)?.lastEventSeq ?? 0) >= seq,
    `${lock.deviceId}: the open's event stored by the hub`,
    20_000,
  );
  await airQuiet(site, radio, quietMs, 20_000);
  return airDelta(before, airCount(site, radio));
}

/**
 * The lock's link dropped (BLE: the controller disconnects; ZigBee: the lock sends a link-cluster
 * close, not counted), then, once the hub saw it closed, an open at once: the frames of opening the link again (the bearer's own link open
 * on ZigBee, Noise KK) and of the open, until its event is stored and the air is quiet. The hub
 * may start reconnecting by itself as it hears the lock: those frames are counted too.
 */
export async function countedConnectAndOpen(
  site: RadioSite,
  link: LinkManager,
  lock: SimLock,
  radio: 'ble' | 'zigbee',
  quietMs: number,
): Promise<AirCount> {
  const connected = () => link.list().find((l) => l.lockId === lock.deviceId)?.connected ?? false;
  if (radio === 'ble') site.hci.emulator.disconnect(lock.address);
  else {
    const close = { clusterSpecific: true, manufacturerCode: MANUFACTURER_CODE, serverToClient: true };
    site.znp.sendRawFromDevice(
      lock.address,
      encodeZcl({
        ...close,
        disableDefaultResponse: true,
        tsn: 0,
        command: LinkCommand.close,
        payload: new Uint8Array(0),
      }),
    );
  }
  await waitFor(() => !connected(), `${lock.deviceId}: the hub saw its link close`, 20_000);
  return countedOpen(site, link, lock, radio, quietMs);
}
