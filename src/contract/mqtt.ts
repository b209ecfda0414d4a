/**
 * The MQTT contract between a hub and its cloud: every topic, the direction of its messages, and
 * the JSON Schema of every payload. The schemas are the single source: the hub validates every
 * inbound message with them, tests validate every outbound one, and docs/mqtt-api.md and
 * docs/asyncapi.yaml describe the same. Payloads carry `v` (the contract version) and request
 * ids, so the contract is the same over MQTT 5 and 3.1.1.
 */
export const CONTRACT_VERSION = 1;

/** MQTT topic segments may not hold these; a hub id or lock id with them is refused everywhere. */
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$';
const id = { type: 'string', pattern: ID_PATTERN } as const;
const requestId = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._:-]+$' } as const;
const isoTime = { type: 'string', minLength: 20, maxLength: 30 } as const;
const v = { const: CONTRACT_VERSION } as const;
const errorObject = {
  type: 'object',
  additionalProperties: false,
  required: ['code', 'message'],
  properties: { code: { type: 'string', maxLength: 64 }, message: { type: 'string', maxLength: 1024 } },
} as const;

export const topics = {
  status: (hubId: string) => `ks/hubs/${hubId}/status`,
  cmd: (hubId: string) => `ks/hubs/${hubId}/cmd`,
  cmdResult: (hubId: string) => `ks/hubs/${hubId}/cmd/result`,
  sync: (hubId: string) => `ks/hubs/${hubId}/sync`,
  syncAck: (hubId: string) => `ks/hubs/${hubId}/sync/ack`,
  events: (hubId: string) => `ks/hubs/${hubId}/events`,
  lockState: (hubId: string, lockId: string) => `ks/hubs/${hubId}/locks/${lockId}/state`,
  health: (hubId: string) => `ks/hubs/${hubId}/health`,
  certRequest: (hubId: string) => `ks/hubs/${hubId}/cert/request`,
  certResponse: (hubId: string) => `ks/hubs/${hubId}/cert/response`,
} as const;

/**
 * Enrollment by claim: a hub that has only the shared claim certificate (CN = the claim id) may
 * use nothing but these two topics (the broker's ACL). Everything else is under `ks/hubs/`.
 */
export const provisioningTopics = {
  request: (claimId: string) => `ks/provisioning/${claimId}/request`,
  response: (claimId: string) => `ks/provisioning/${claimId}/response`,
} as const;

// ----- hub → cloud ---------------------------------------------------------------------------

export interface StatusPayload {
  v: 1;
  state: 'online' | 'offline';
  /** offline: why ('shutdown' when the hub stopped cleanly, 'connection-lost' as the last will). */
  reason?: 'shutdown' | 'connection-lost';
  version?: string;
  startedAt?: string;
  at?: string;
}

export const statusSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'state'],
  properties: {
    v,
    state: { enum: ['online', 'offline'] },
    reason: { enum: ['shutdown', 'connection-lost'] },
    version: { type: 'string', maxLength: 64 },
    startedAt: isoTime,
    at: isoTime,
  },
} as const;

/** One lock event as the cloud sees it. `id` is stable: the same event always has the same id. */
export interface CloudEvent {
  id: string;
  lockId: string;
  /** The lock's own sequence number within `epoch` (one epoch per attach). */
  seq: number;
  epoch: number;
  type: 'opened' | 'denied' | 'door' | 'battery' | 'tamper';
  /** When it happened, by the lock's clock. */
  at: string;
  /** When the hub stored it. */
  receivedAt: string;
  by?: string;
  reason?: string;
  credentialId?: string | null;
  open?: boolean;
  percent?: number;
}

export interface EventsPayload {
  v: 1;
  events: CloudEvent[];
}

const cloudEventSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'lockId', 'seq', 'epoch', 'type', 'at', 'receivedAt'],
  properties: {
    id: { type: 'string', maxLength: 160 },
    lockId: id,
    seq: { type: 'integer', minimum: 1 },
    epoch: { type: 'integer', minimum: 1 },
    type: { enum: ['opened', 'denied', 'door', 'battery', 'tamper'] },
    at: isoTime,
    receivedAt: isoTime,
    by: { type: 'string', maxLength: 32 },
    reason: { type: 'string', maxLength: 32 },
    credentialId: { type: ['string', 'null'], maxLength: 64 },
    open: { type: 'boolean' },
    percent: { type: 'integer', minimum: 0, maximum: 100 },
  },
} as const;

export const eventsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'events'],
  properties: { v, events: { type: 'array', minItems: 1, maxItems: 500, items: cloudEventSchema } },
} as const;

export interface LockStatePayload {
  v: 1;
  lockId: string;
  /** `detached`: the lock left this hub (detached or forgotten); the last message on its topic. */
  pairing: 'attaching' | 'bound' | 'detaching' | 'quarantined' | 'detached';
  connected: boolean;
  bolt?: 'locked' | 'unlocked';
  mode?: 'normal' | 'office' | 'locked';
  doorOpen?: boolean;
  batteryPercent?: number;
  lastSeq?: number;
  at: string;
}

export const lockStateSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'lockId', 'pairing', 'connected', 'at'],
  properties: {
    v,
    lockId: id,
    pairing: { enum: ['attaching', 'bound', 'detaching', 'quarantined', 'detached'] },
    connected: { type: 'boolean' },
    bolt: { enum: ['locked', 'unlocked'] },
    mode: { enum: ['normal', 'office', 'locked'] },
    doorOpen: { type: 'boolean' },
    batteryPercent: { type: 'integer', minimum: 0, maximum: 100 },
    lastSeq: { type: 'integer', minimum: 0 },
    at: isoTime,
  },
} as const;

export interface HealthPayload {
  v: 1;
  at: string;
  uptimeSec: number;
  outbox: { depth: number; oldestAgeSec: number | null; dropped: number };
  radios: { kind: string; state: string; detail?: string }[];
  locks: { total: number; connected: number; quarantined: number };
  certificate: { notAfter: string | null; daysLeft: number | null };
  /**
   * The bound locks' offline lists (absent when the hub keeps none): how many there are, how many
   * are not up to date — a lock out of reach when its list changed still admits its last list
   * alone, a credential revoked since included — and the first of those locks by id.
   */
  offlineLists?: { locks: number; notUpToDate: number; lockIds: string[] };
  /**
   * Remote commands since the hub started (absent until its uplink is up): accepted, refused by
   * code (`otp_mismatch`, `expired`, …), lockouts, and until when one is running (null: none). A
   * lockout publishes a health message at once, so the cloud learns that its commands are being
   * refused and why.
   */
  commands?: { accepted: number; refused: Record<string, number>; lockouts: number; lockedOutUntil: string | null };
}

/** Lock ids listed in `health.offlineLists.lockIds` at the most (the count is whole). */
export const HEALTH_MAX_LOCK_IDS = 32;

export const healthSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'at', 'uptimeSec', 'outbox', 'radios', 'locks', 'certificate'],
  properties: {
    v,
    at: isoTime,
    uptimeSec: { type: 'integer', minimum: 0 },
    outbox: {
      type: 'object',
      additionalProperties: false,
      required: ['depth', 'oldestAgeSec', 'dropped'],
      properties: {
        depth: { type: 'integer', minimum: 0 },
        oldestAgeSec: { type: ['integer', 'null'], minimum: 0 },
        dropped: { type: 'integer', minimum: 0 },
      },
    },
    radios: {
      type: 'array',
      maxItems: 8,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['kind', 'state'],
        properties: {
          kind: { type: 'string', maxLength: 16 },
          state: { type: 'string', maxLength: 32 },
          detail: { type: 'string', maxLength: 256 },
        },
      },
    },
    locks: {
      type: 'object',
      additionalProperties: false,
      required: ['total', 'connected', 'quarantined'],
      properties: {
        total: { type: 'integer', minimum: 0 },
        connected: { type: 'integer', minimum: 0 },
        quarantined: { type: 'integer', minimum: 0 },
      },
    },
    certificate: {
      type: 'object',
      additionalProperties: false,
      required: ['notAfter', 'daysLeft'],
      properties: { notAfter: { type: ['string', 'null'] }, daysLeft: { type: ['integer', 'null'] } },
    },
    offlineLists: {
      type: 'object',
      additionalProperties: false,
      required: ['locks', 'notUpToDate', 'lockIds'],
      properties: {
        locks: { type: 'integer', minimum: 0 },
        notUpToDate: { type: 'integer', minimum: 0 },
        lockIds: { type: 'array', maxItems: HEALTH_MAX_LOCK_IDS, items: id },
      },
    },
    commands: {
      type: 'object',
      additionalProperties: false,
      required: ['accepted', 'refused', 'lockouts', 'lockedOutUntil'],
      properties: {
        accepted: { type: 'integer', minimum: 0 },
        refused: {
          type: 'object',
          maxProperties: 16,
          propertyNames: { type: 'string', pattern: '^[a-z_]{1,32}$' },
          additionalProperties: { type: 'integer', minimum: 0 },
        },
        lockouts: { type: 'integer', minimum: 0 },
        lockedOutUntil: { anyOf: [isoTime, { type: 'null' }] },
      },
    },
  },
} as const;

export interface CmdResultPayload {
  v: 1;
  /** The command's id, echoed; null when the command was too malformed to have one. */
  id: string | null;
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
}

/** An answer to a cloud request on `cmd/result` or `sync/ack`: `{v, id, ok, …, error?}`. */
const answerSchema = (extra: Record<string, object>) =>
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

export const cmdResultSchema = answerSchema({ result: { type: 'object' } });

export interface SyncAckPayload {
  v: 1;
  id: string | null;
  ok: boolean;
  /** The mirror's version after applying the sync. */
  version?: number;
  error?: { code: string; message: string };
}

export const syncAckSchema = answerSchema({ version: { type: 'integer', minimum: 0 } });

// ----- cloud → hub ---------------------------------------------------------------------------

export const COMMAND_OPS = [
  'ping',
  'listLocks',
  'getState',
  'open',
  'lock',
  'setMode',
  'attach',
  'detach',
  'syncNow',
] as const;
export type CommandOp = (typeof COMMAND_OPS)[number];

/**
 * A command as the cloud sends it on `cmd`: the OTP-protected envelope (docs/mqtt-api.md,
 * "Commands"; src/commands/otp.ts for the OTP). Every field but `otp` is covered by the OTP.
 */
export interface CommandEnvelope {
  v: 1;
  cmdId: string;
  hubId: string;
  /** Present exactly for the ops that act on a lock (getState, open, lock, setMode, attach, detach). */
  lockId?: string;
  op: CommandOp;
  /** Per op: open `{durationMs?}`, setMode `{mode}`, attach `{setupCode}` (sealed), others `{}`. */
  args: Record<string, unknown>;
  /** ISO 8601 UTC (`YYYY-MM-DDTHH:MM:SS[.fff]Z`). */
  issuedAt: string;
  expiresAt: string;
  /** Strictly increasing per hub; the hub persists the last one it accepted. */
  counter: number;
  otp: string;
}

/** The times of a command: ISO 8601 in UTC, as `Date.prototype.toISOString` writes them (fractions optional). */
const utcTime = {
  type: 'string',
  minLength: 20,
  maxLength: 30,
  pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$',
} as const;

/**
 * The JSON Schema of the command envelope: one branch per op, each with its own `args`.
 */
const envelope = (op: string, args: Record<string, unknown>, argsRequired: string[], lock: boolean) => ({
  type: 'object',
  additionalProperties: false,
  required: [
    'v',
    'cmdId',
    'hubId',
    'op',
    'args',
    'issuedAt',
    'expiresAt',
    'counter',
    'otp',
    ...(lock ? ['lockId'] : []),
  ],
  properties: {
    v,
    cmdId: requestId,
    hubId: id,
    ...(lock ? { lockId: id } : {}),
    op: { const: op },
    args: { type: 'object', additionalProperties: false, required: argsRequired, properties: args },
    issuedAt: utcTime,
    expiresAt: utcTime,
    counter: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    otp: { type: 'string', pattern: '^[0-9]{8}$' },
  },
});

export const commandEnvelopeSchema = {
  type: 'object',
  required: ['op'],
  properties: {
    op: { enum: COMMAND_OPS },
  },
  discriminator: { propertyName: 'op' },
  oneOf: [
    envelope('ping', {}, [], false),
    envelope('listLocks', {}, [], false),
    envelope('syncNow', {}, [], false),
    envelope('getState', {}, [], true),
    envelope('open', { durationMs: { type: 'integer', minimum: 1, maximum: 600_000 } }, [], true),
    envelope('lock', {}, [], true),
    envelope('setMode', { mode: { enum: ['normal', 'office', 'locked'] } }, ['mode'], true),
    envelope(
      'attach',
      { setupCode: { type: 'string', minLength: 16, maxLength: 200, pattern: '^[A-Za-z0-9+/=]+$' } },
      ['setupCode'],
      true,
    ),
    envelope('detach', {}, [], true),
  ],
} as const;

export interface SyncPayload {
  v: 1;
  id: string;
  kind: 'snapshot' | 'delta';
  version: number;
  baseVersion?: number;
  data: Record<string, unknown>;
}

export const syncSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'id', 'kind', 'version', 'data'],
  properties: {
    v,
    id: requestId,
    kind: { enum: ['snapshot', 'delta'] },
    version: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    baseVersion: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    data: { type: 'object' },
  },
} as const;

/**
 * Why a remote command was refused. None of these reaches a radio, and none changes the inbox or
 * the command counter.
 */
export const REFUSAL_CODES = [
  'bad_request',
  'wrong_hub',
  'locked_out',
  'no_otp_key',
  'otp_mismatch',
  'expired',
  'not_yet_valid',
  'replayed',
  'unknown_lock',
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

// ----- certificates: enrollment by claim and rotation ------------------------------------------

/** A PEM certificate signing request (PKCS #10), as `-----BEGIN CERTIFICATE REQUEST-----` text. */
const csrPem = {
  type: 'string',
  minLength: 64,
  maxLength: 16384,
  pattern: '^-----BEGIN CERTIFICATE REQUEST-----\\r?\\n[A-Za-z0-9+/=\\r\\n]+-----END CERTIFICATE REQUEST-----\\r?\\n?$',
} as const;
/** One PEM certificate. */
const certPem = {
  type: 'string',
  minLength: 64,
  maxLength: 16384,
  pattern: '^-----BEGIN CERTIFICATE-----\\r?\\n[A-Za-z0-9+/=\\r\\n]+-----END CERTIFICATE-----\\r?\\n?$',
} as const;
/** A secret encrypted to the hub: base64 of RSA-OAEP (SHA-256, MGF1-SHA-256) under the public key of its CSR. */
const wrappedSecret = { type: 'string', minLength: 16, maxLength: 1400, pattern: '^[A-Za-z0-9+/]+={0,2}$' } as const;
/** The `error.code`s of a refused enrollment or renewal (the reference cloud's; a hub logs any code). */
export const CERT_ERROR_CODES = [
  'bad_csr',
  'cn_mismatch',
  'unknown_hub',
  'already_enrolled',
  'not_allowed',
  'internal',
] as const;
export type CertErrorCode = (typeof CERT_ERROR_CODES)[number];

/**
 * hub → cloud on `ks/provisioning/{claimId}/request`, over the claim certificate: the hub's CSR
 * (CN = `hubId`, made on the hub; its private key never leaves it).
 */
export interface EnrollRequestPayload {
  v: 1;
  requestId: string;
  hubId: string;
  csr: string;
}

export const enrollRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'requestId', 'hubId', 'csr'],
  properties: { v, requestId, hubId: id, csr: csrPem },
} as const;

/**
 * cloud → hub on `ks/provisioning/{claimId}/response`: the hub's own certificate, the CA the hub
 * trusts from now on, and the hub's secrets encrypted to the key of its CSR (RSA-OAEP-SHA-256);
 * or `ok: false` and why. Every hub enrolling with the same claim sees every response: they are
 * matched by `requestId` (and `hubId`), and only the hub holding the CSR's key can open `secrets`.
 */
export interface EnrollResponsePayload {
  v: 1;
  requestId: string;
  hubId: string;
  ok: boolean;
  cert?: string;
  ca?: string;
  secrets?: { otpKey: string; pinKey?: string };
  error?: { code: string; message: string };
}

export const enrollResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'requestId', 'hubId', 'ok'],
  properties: {
    v,
    requestId,
    hubId: id,
    ok: { type: 'boolean' },
    cert: certPem,
    ca: certPem,
    secrets: {
      type: 'object',
      additionalProperties: false,
      required: ['otpKey'],
      properties: { otpKey: wrappedSecret, pinKey: wrappedSecret },
    },
    error: errorObject,
  },
} as const;

/** hub → cloud on `cert/request`: renewal of the hub's certificate for a new key (rotation). */
export interface CertRequestPayload {
  v: 1;
  requestId: string;
  csr: string;
}

export const certRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'requestId', 'csr'],
  properties: { v, requestId, csr: csrPem },
} as const;

/** cloud → hub on `cert/response`: the renewed certificate, or `ok: false` and why. */
export interface CertResponsePayload {
  v: 1;
  requestId: string;
  ok: boolean;
  cert?: string;
  error?: { code: string; message: string };
}

export const certResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'requestId', 'ok'],
  properties: { v, requestId, ok: { type: 'boolean' }, cert: certPem, error: errorObject },
} as const;

/** Inbound payloads larger than this are refused before parsing (`sync`: MAX_SYNC_BYTES). */
export const MAX_INBOUND_BYTES = 256 * 1024;
/**
 * A sync carries a whole site in a snapshot: 10,000 users each with a PIN, a tag and a digital
 * key are ~3.6 MB of JSON, so 32 MiB holds about 90,000. Only the cloud may publish on a hub's
 * sync topic (broker ACL), and the size is still checked before anything is parsed.
 */
export const MAX_SYNC_BYTES = 32 * 1024 * 1024;

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
  sync: { direction: 'down'; retained: false; payload: SyncPayload };
  'sync/ack': { direction: 'up'; retained: false; payload: SyncAckPayload };
  events: { direction: 'up'; retained: false; payload: EventsPayload };
  'locks/{lockId}/state': { direction: 'up'; retained: true; payload: LockStatePayload };
  health: { direction: 'up'; retained: false; payload: HealthPayload };
  'cert/request': { direction: 'up'; retained: false; payload: CertRequestPayload };
  'cert/response': { direction: 'down'; retained: false; payload: CertResponsePayload };
  'provisioning/request': { direction: 'up'; retained: false; payload: EnrollRequestPayload };
  'provisioning/response': { direction: 'down'; retained: false; payload: EnrollResponsePayload };
}

export const schemas = {
  status: statusSchema,
  cmd: commandEnvelopeSchema,
  'cmd/result': cmdResultSchema,
  sync: syncSchema,
  'sync/ack': syncAckSchema,
  events: eventsSchema,
  'locks/{lockId}/state': lockStateSchema,
  health: healthSchema,
  'cert/request': certRequestSchema,
  'cert/response': certResponseSchema,
  'provisioning/request': enrollRequestSchema,
  'provisioning/response': enrollResponseSchema,
} as const satisfies Record<keyof TopicMap, object>;
