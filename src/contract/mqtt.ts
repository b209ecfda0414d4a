import {
  type CertRequestPayload,
  type CertResponsePayload,
  certRequestSchema,
  certResponseSchema,
  type EnrollRequestPayload,
  type EnrollResponsePayload,
  enrollRequestSchema,
  enrollResponseSchema,
} from './mqtt-certificates.js';
import {
  type CommandEnvelope,
  commandEnvelopeSchema,
  type EventsAckPayload,
  eventsAckSchema,
  type SyncMessage,
  syncSchema,
} from './mqtt-cloud-messages.js';
import {
  type FirmwareAnnouncePayload,
  type FirmwareChunkPayload,
  type FirmwareProgressPayload,
  type FirmwareRequestPayload,
  firmwareAnnounceSchema,
  firmwareChunkSchema,
  firmwareProgressSchema,
  firmwareRequestSchema,
} from './mqtt-firmware.js';
import {
  type CmdResultPayload,
  cmdResultSchema,
  type EventsPayload,
  eventsSchema,
  type HealthPayload,
  healthSchema,
  type LockStatePayload,
  lockStateSchema,
  type StatusPayload,
  type SyncAckPayload,
  type SyncRequestPayload,
  statusSchema,
  syncAckSchema,
  syncRequestSchema,
} from './mqtt-hub-messages.js';
import {
  type OtpKeyAckPayload,
  type OtpKeyDeliveryPayload,
  type OtpKeyRequestPayload,
  otpKeyAckSchema,
  otpKeyDeliverySchema,
  otpKeyRequestSchema,
} from './mqtt-otp-key.js';

/**
 * The MQTT contract's index: which payload goes on which topic, in which direction, with which
 * schema, and the limits checked before an inbound payload is parsed. The schemas are the single
 * source: the hub validates every inbound message with them, tests validate every outbound one,
 * and docs/mqtt-api.md and docs/asyncapi.yaml describe the same.
 */
/** Inbound payloads larger than this are refused before parsing (`sync`: MAX_SYNC_BYTES). */
export const MAX_INBOUND_BYTES = 256 * 1024;
/**
 * A sync carries a whole site in a snapshot: 10,000 users each with a PIN, a tag and a digital
 * key are ~3.6 MB of JSON, so 32 MiB holds about 90,000. Only the cloud may publish on a hub's
 * sync topic (broker ACL), and the size is still checked before anything is parsed.
 */
export const MAX_SYNC_BYTES = 32 * 1024 * 1024;

/**
 * The largest message either side publishes by default (`uplink.maxMessageBytes`): AWS IoT Core
 * takes at most 128 KiB. Larger syncs come in parts, `listLocks` answers and event batches are
 * paged, and the hub never publishes more (docs/mqtt-api.md, "Message size").
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024;

/** The size limit of an inbound payload on `topic`. */
export function maxInboundBytes(topic: string): number {
  return topic === 'sync' ? MAX_SYNC_BYTES : MAX_INBOUND_BYTES;
}
/** Nesting deeper than this is refused before validation (a hostile payload cannot exhaust the stack). */
export const MAX_INBOUND_DEPTH = 32;

/**
 * The typed map from topic to its payload and direction: relative to `ks/hubs/{hubId}/`, except
 * `provisioning/request` and `provisioning/response`, which are `ks/provisioning/{claimId}/request`
 * and `.../response` (`provisioningTopics`).
 */
export interface TopicMap {
  status: { direction: 'up'; retained: true; payload: StatusPayload };
  cmd: { direction: 'down'; retained: false; payload: CommandEnvelope };
  'cmd/result': { direction: 'up'; retained: false; payload: CmdResultPayload };
  sync: { direction: 'down'; retained: false; payload: SyncMessage };
  'sync/ack': { direction: 'up'; retained: false; payload: SyncAckPayload };
  events: { direction: 'up'; retained: false; payload: EventsPayload };
  'events/ack': { direction: 'down'; retained: false; payload: EventsAckPayload };
  'locks/{lockId}/state': { direction: 'up'; retained: true; payload: LockStatePayload };
  health: { direction: 'up'; retained: false; payload: HealthPayload };
  'cert/request': { direction: 'up'; retained: false; payload: CertRequestPayload };
  'cert/response': { direction: 'down'; retained: false; payload: CertResponsePayload };
  'provisioning/request': { direction: 'up'; retained: false; payload: EnrollRequestPayload };
  'provisioning/response': { direction: 'down'; retained: false; payload: EnrollResponsePayload };
  'firmware/announce': { direction: 'down'; retained: false; payload: FirmwareAnnouncePayload };
  'firmware/request': { direction: 'up'; retained: false; payload: FirmwareRequestPayload };
  'firmware/chunk': { direction: 'down'; retained: false; payload: FirmwareChunkPayload };
  'firmware/progress': { direction: 'up'; retained: false; payload: FirmwareProgressPayload };
  // OTP key delivery to an identified hub; the hub's request for a sync (issue 17).
  'otp-key/request': { direction: 'up'; retained: false; payload: OtpKeyRequestPayload };
  'otp-key': { direction: 'down'; retained: false; payload: OtpKeyDeliveryPayload };
  'otp-key/ack': { direction: 'up'; retained: false; payload: OtpKeyAckPayload };
  'sync/request': { direction: 'up'; retained: false; payload: SyncRequestPayload };
}

export const schemas = {
  status: statusSchema,
  cmd: commandEnvelopeSchema,
  'cmd/result': cmdResultSchema,
  sync: syncSchema,
  'sync/ack': syncAckSchema,
  events: eventsSchema,
  'events/ack': eventsAckSchema,
  'locks/{lockId}/state': lockStateSchema,
  health: healthSchema,
  'cert/request': certRequestSchema,
  'cert/response': certResponseSchema,
  'provisioning/request': enrollRequestSchema,
  'provisioning/response': enrollResponseSchema,
  'firmware/announce': firmwareAnnounceSchema,
  'firmware/request': firmwareRequestSchema,
  'firmware/chunk': firmwareChunkSchema,
  'firmware/progress': firmwareProgressSchema,
  'otp-key/request': otpKeyRequestSchema,
  'otp-key': otpKeyDeliverySchema,
  'otp-key/ack': otpKeyAckSchema,
  'sync/request': syncRequestSchema,
} as const satisfies Record<keyof TopicMap, object>;
