/**
 * The MQTT contract between a hub and its cloud (docs/mqtt-api.md, docs/asyncapi.yaml): its
 * version, the ids that may stand in a topic, the topics, and the schema pieces every payload
 * shares. Payloads carry `v` (the contract version) and request ids, so the contract is the same
 * over MQTT 5 and 3.1.1. The payloads are in mqtt-hub-messages.ts (hub → cloud),
 * mqtt-cloud-messages.ts (cloud → hub) and mqtt-certificates.ts; mqtt.ts maps each topic to its
 * payload and schema.
 */
export const CONTRACT_VERSION = 1;

/** MQTT topic segments may not hold these; a hub id or lock id with them is refused everywhere. */
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$';
/** Schema pieces every payload shares (ids, request ids, times, the version, an error). */
export const id = { type: 'string', pattern: ID_PATTERN } as const;
export const requestId = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._:-]+$' } as const;
export const isoTime = { type: 'string', minLength: 20, maxLength: 30 } as const;
export const v = { const: CONTRACT_VERSION } as const;
export const errorObject = {
  type: 'object',
  additionalProperties: false,
  required: ['code', 'message'],
  properties: { code: { type: 'string', maxLength: 64 }, message: { type: 'string', maxLength: 1024 } },
} as const;
/** One PEM certificate (the hub's own, its CA's). */
export const certPem = {
  type: 'string',
  minLength: 64,
  maxLength: 16384,
  pattern: '^-----BEGIN CERTIFICATE-----\\r?\\n[A-Za-z0-9+/=\\r\\n]+-----END CERTIFICATE-----\\r?\\n?$',
} as const;

/** An answer to a cloud request (`cmd/result`, `sync/ack`, `otp-key/ack`): `{v, id, ok, …, error?}`. */
export const answerSchema = <E extends Record<string, object>>(extra: E) =>
  ({
    type: 'object',
    additionalProperties: false,
    required: ['v', 'id', 'ok'],
    properties: {
      v,
      id: { anyOf: [requestId, { type: 'null' }] },
      ok: { type: 'boolean' },
      ...extra,
      error: errorObject,
    },
  }) as const;

export const topics = {
  status: (hubId: string) => `ks/hubs/${hubId}/status`,
  cmd: (hubId: string) => `ks/hubs/${hubId}/cmd`,
  cmdResult: (hubId: string) => `ks/hubs/${hubId}/cmd/result`,
  sync: (hubId: string) => `ks/hubs/${hubId}/sync`,
  syncAck: (hubId: string) => `ks/hubs/${hubId}/sync/ack`,
  events: (hubId: string) => `ks/hubs/${hubId}/events`,
  eventsAck: (hubId: string) => `ks/hubs/${hubId}/events/ack`,
  lockState: (hubId: string, lockId: string) => `ks/hubs/${hubId}/locks/${lockId}/state`,
  health: (hubId: string) => `ks/hubs/${hubId}/health`,
  certRequest: (hubId: string) => `ks/hubs/${hubId}/cert/request`,
  certResponse: (hubId: string) => `ks/hubs/${hubId}/cert/response`,
  firmwareAnnounce: (hubId: string) => `ks/hubs/${hubId}/firmware/announce`,
  firmwareRequest: (hubId: string) => `ks/hubs/${hubId}/firmware/request`,
  firmwareChunk: (hubId: string) => `ks/hubs/${hubId}/firmware/chunk`,
  firmwareProgress: (hubId: string) => `ks/hubs/${hubId}/firmware/progress`,
  // OTP key delivery to an identified hub, and the hub's request for a sync (issue 17).
  otpKeyRequest: (hubId: string) => `ks/hubs/${hubId}/otp-key/request`,
  otpKey: (hubId: string) => `ks/hubs/${hubId}/otp-key`,
  otpKeyAck: (hubId: string) => `ks/hubs/${hubId}/otp-key/ack`,
  syncRequest: (hubId: string) => `ks/hubs/${hubId}/sync/request`,
} as const;

/**
 * Enrollment by claim: a hub that has only the shared claim certificate (CN = the claim id) may
 * use nothing but these two topics (the broker's ACL). Everything else is under `ks/hubs/`.
 */
export const provisioningTopics = {
  request: (claimId: string) => `ks/provisioning/${claimId}/request`,
  response: (claimId: string) => `ks/provisioning/${claimId}/response`,
} as const;
