import type { EventEmitter } from 'node:events';
import type { Controller } from 'zigbee-herdsman';
import type { Coordinator, HerdsmanModule } from './coordinator.js';
import type { DataPaths, NetworkParameters } from './network.js';
import type { ZigbeeBearerOptions } from './options.js';

/**
 * Making and unmaking herdsman's Controller, the one place that knows what its public API does not
 * cover: a controller for the hub's network with the driver's admission policy, its own daily
 * backup timer cleared, and a stop that leaves no timers behind and does not wait out a hung
 * adapter. What reaches into herdsman's private fields is here, so an upgrade has one file to check.
 */

export function createController(
  herdsman: HerdsmanModule,
  options: ZigbeeBearerOptions,
  paths: DataPaths,
  params: NetworkParameters,
  acceptJoin: (ieee: string) => boolean,
): Controller {
  return new herdsman.Controller({
    network: {
      panID: params.panId,
      extendedPanID: Array.from(params.extendedPanId),
      channelList: [params.channel],
      networkKey: Array.from(params.networkKey),
    },
    serialPort: {
      path: options.serialPath,
      adapter: 'zstack',
      ...(options.baudRate ? { baudRate: options.baudRate } : {}),
      ...(options.rtscts !== undefined ? { rtscts: options.rtscts } : {}),
    },
    databasePath: paths.databasePath,
    databaseBackupPath: paths.databaseBackupPath,
    backupPath: paths.herdsmanBackupPath,
    adapter: { disableLED: false },
    acceptJoiningDeviceHandler: (ieee) => Promise.resolve(acceptJoin(ieee)),
  });
}

/** herdsman's adapter API for one ZCL frame to one endpoint (`Adapter.sendZclFrameToEndpoint`). */
export interface ZclFrameSender {
  sendZclFrameToEndpoint(
    ieeeAddr: string,
    networkAddress: number,
    endpoint: number,
    zclFrame: unknown,
    timeout: number,
    disableResponse: boolean,
    disableRecovery: boolean,
  ): Promise<unknown>;
}

/**
 * The controller's adapter, to send the link cluster's frames through without Endpoint.command's
 * layers (a Request object with an Error captured per frame, option defaults and cluster lookups
 * again, a debug line's closure): with sendPolicy 'immediate', no response awaited and no recovery,
 * Endpoint.command ends in exactly this call, so the frame on the wire and the confirm awaited
 * (the radio's AF_DATA_CONFIRM) are the same. Undefined when the private field is not there (an
 * upgrade renamed it): the caller then goes through Endpoint.command as before. (Private; checked.)
 */
export function zclFrameSender(controller: Controller): ZclFrameSender | undefined {
  const adapter = (controller as unknown as { adapter?: Partial<ZclFrameSender> }).adapter;
  return typeof adapter?.sendZclFrameToEndpoint === 'function' ? (adapter as ZclFrameSender) : undefined;
}

/** What herdsman's adapter emits for each ZCL frame received (its `zclPayload` event; the fields used here). */
export interface ZclPayloadLike {
  readonly clusterID: number;
  readonly address: number | string;
  readonly data: Buffer;
  readonly linkquality: number;
}

/**
 * Hands the link cluster's frames to `take` before herdsman's controller sees them: the controller
 * would parse each again (ZCL frame and a debug line formatted whether or not it is printed), look
 * for pending requests to flush (a promise per endpoint), answer with a default response when the
 * frame asks for one, and emit 'message' and 'lastSeenChanged' — for a frame whose bytes the driver
 * takes as they are. `take` returns false to leave a frame to herdsman (a device it does not know,
 * for herdsman to identify). Wraps the controller's one `zclPayload` listener on the adapter, so it
 * runs after controller.start() registered it; returns false (and changes nothing) when the adapter
 * or that listener is not there as expected: the frames then come through 'message' as before.
 * (Private; checked.)
 */
export function takeLinkFrames(
  controller: Controller,
  clusterId: number,
  take: (payload: ZclPayloadLike) => boolean,
): boolean {
  const adapter = (controller as unknown as { adapter?: Partial<EventEmitter> }).adapter;
  if (typeof adapter?.listeners !== 'function' || typeof adapter.on !== 'function') return false;
  const listeners = adapter.listeners('zclPayload');
  const theirs = listeners[0] as ((payload: ZclPayloadLike) => unknown) | undefined;
  if (listeners.length !== 1 || !theirs) return false;
  adapter.removeListener?.('zclPayload', theirs);
  adapter.on('zclPayload', (payload: ZclPayloadLike) => {
    if (payload.clusterID === clusterId && take(payload)) return;
    void theirs(payload);
  });
  return true;
}

/**
 * herdsman's own daily backup would leave its clear coordinator_backup.json on disk until our next
 * one: ours (sealed at once) replace it.
 */
export function stopOwnBackups(controller: Controller): void {
  clearInterval((controller as unknown as { backupTimer?: NodeJS.Timeout }).backupTimer);
}

/**
 * Stops a controller. Graceful: herdsman closes joining and takes its last backup (the caller
 * seals it). Forced (a hung adapter): the port is closed first and herdsman is told the adapter is
 * gone, as its own disconnect path does, so stop() does not wait out its request timeouts.
 */
export async function stopController(c: Coordinator, controller: Controller, graceful: boolean): Promise<void> {
  const internals = controller as unknown as {
    adapter?: { stop(): Promise<void>; deviceAnnounceRouteDiscoveryDebouncers?: Map<number, { clear?: () => void }> };
    adapterDisconnected: boolean;
  };
  // herdsman's zstack adapter keeps a 60 s debounce timer per announced end device and its stop()
  // leaves them running: the process would linger a minute after the hub stopped. (Private; checked.)
  const clearDebouncers = () => {
    for (const d of internals.adapter?.deviceAnnounceRouteDiscoveryDebouncers?.values() ?? []) d.clear?.();
  };
  clearDebouncers();
  if (!graceful && !controller.isAdapterDisconnected()) {
    try {
      await internals.adapter?.stop();
    } catch (e) {
      c.herdsmanError('closing a hung adapter', e);
    }
    internals.adapterDisconnected = true;
  }
  try {
    await c.bounded(controller.stop(), 20_000, 'stopping herdsman');
  } catch (e) {
    c.herdsmanError('stopping herdsman', e);
    // herdsman's stop() gives up before closing the port when its final backup fails.
    try {
      await internals.adapter?.stop();
    } catch {}
  }
  clearDebouncers();
}
