import type { BearerError } from '../../hal/bearer.js';
import { describeError } from '../../src/base/errors.js';
import { err, OK, type Result } from '../../src/base/result.js';
import type { Coordinator, HerdsmanDevice } from './coordinator.js';
import { zclFrameSender } from './herdsman-controller.js';
import { LINK_CLUSTER_ID, LinkCommand, LOCK_ENDPOINT, MANUFACTURER_CODE } from './link-cluster.js';

/**
 * Our manufacturer-specific link cluster as herdsman must be told about it: herdsman knows only
 * the clusters of the ZCL specification, so each lock's device gets the cluster added before a
 * command can name it, and each command goes out without a ZCL response, confirmed by the radio
 * alone and bounded in time (the link layer above numbers and retries). The frames are built here
 * (the registered cluster and command objects, no lookups) and handed to herdsman's adapter
 * directly, not through Endpoint.command (see zclFrameSender).
 */

/** The name the link cluster is registered under in herdsman (messages carry it as their cluster). */
export const LINK_CLUSTER_NAME = 'iqhubLink';

const COMMAND_NAMES: Record<number, string> = {
  [LinkCommand.fragment]: 'fragment',
  [LinkCommand.open]: 'open',
  [LinkCommand.openAck]: 'openAck',
  [LinkCommand.close]: 'close',
};

export function addLinkCluster(c: Coordinator, device: HerdsmanDevice): void {
  if (device.customClusters[LINK_CLUSTER_NAME]) return;
  const BUFFER = c.herdsman!.Zcl.BuffaloZclDataType.BUFFER;
  const commands = {
    fragment: { ID: LinkCommand.fragment, name: 'fragment', parameters: [{ name: 'data', type: BUFFER }] },
    open: { ID: LinkCommand.open, name: 'open', parameters: [] },
    openAck: { ID: LinkCommand.openAck, name: 'openAck', parameters: [] },
    close: { ID: LinkCommand.close, name: 'close', parameters: [] },
  };
  device.addCustomCluster(LINK_CLUSTER_NAME, {
    ID: LINK_CLUSTER_ID,
    name: LINK_CLUSTER_NAME,
    manufacturerCode: MANUFACTURER_CODE,
    attributes: {},
    commands,
    commandsResponse: commands,
  });
}

/** One link-cluster command to a lock, through the controller of `generation` only. */
export async function sendLinkCommand(
  c: Coordinator,
  generation: number,
  device: HerdsmanDevice,
  command: number,
  payload: Uint8Array,
  sendTimeoutMs: number,
): Promise<Result<void, BearerError>> {
  const unavailable = c.unavailable();
  if (unavailable) return err(unavailable);
  if (generation !== c.generation) {
    return err({
      code: 'disconnected',
      message: 'ZigBee: the adapter restarted since this link opened',
      address: device.ieeeAddr,
      reason: 'adapter-unavailable',
    });
  }
  const endpoint = device.getEndpoint(LOCK_ENDPOINT);
  if (!endpoint)
    return err({
      code: 'not-found',
      message: `ZigBee: ${device.ieeeAddr} has no endpoint 1`,
      address: device.ieeeAddr,
    });
  const name = COMMAND_NAMES[command]!;
  const fields =
    command === LinkCommand.fragment
      ? { data: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) }
      : {};
  try {
    const sender = zclFrameSender(c.controller!);
    const cluster = device.customClusters[LINK_CLUSTER_NAME];
    const definition = cluster?.commands[name];
    let sent: Promise<unknown>;
    if (sender && cluster && definition) {
      // What Endpoint.command builds and sends for these options, without its layers (herdsman-controller.ts).
      const { Zcl } = c.herdsman!;
      const frame = Zcl.Frame.create(
        Zcl.FrameType.SPECIFIC,
        Zcl.Direction.CLIENT_TO_SERVER,
        true,
        MANUFACTURER_CODE,
        c.nextTsn(),
        definition,
        cluster,
        fields,
        device.customClusters,
      );
      sent = sender.sendZclFrameToEndpoint(
        device.ieeeAddr,
        device.networkAddress,
        LOCK_ENDPOINT,
        frame,
        sendTimeoutMs,
        true,
        true,
      );
    } else {
      sent = endpoint.command(LINK_CLUSTER_ID, command, fields, {
        manufacturerCode: MANUFACTURER_CODE,
        disableDefaultResponse: true,
        disableResponse: true,
        disableRecovery: true,
        timeout: sendTimeoutMs,
        sendPolicy: 'immediate',
      });
    }
    await c.bounded(sent, sendTimeoutMs + 2_000, `the ${name} command`);
    if (command === LinkCommand.fragment) c.counters.fragmentsOut++;
    return OK;
  } catch (e) {
    return err({
      code: 'radio-error',
      message: `ZigBee: ${name} to ${device.ieeeAddr} failed: ${c.clean(describeError(e))}`,
      address: device.ieeeAddr,
    });
  }
}
