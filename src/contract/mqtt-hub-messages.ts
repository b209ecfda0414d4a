import { answerSchema, id, isoTime, requestId, v } from './mqtt-topics.js';

/** What the hub publishes: status, events, lock states, health, and the answers to commands and syncs. */

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
   * The site PIN key on the bound locks (absent when the hub has no radio): the hub's current
   * version (0: none yet), how many bound locks there are, how many are not known to hold that
   * version (out of reach since it changed, or refusing it), and the first of those by id.
   */
  pinKeys?: { version: number; locks: number; notCurrent: number; lockIds: string[] };
  /**
   * Remote commands since the hub started (absent until its uplink is up): accepted, refused by
   * code (`otp_mismatch`, `expired`, …), lockouts, and until when one is running (null: none). A
   * lockout publishes a health message at once, so the cloud learns that its commands are being
   * refused and why.
   */
  commands?: { accepted: number; refused: Record<string, number>; lockouts: number; lockedOutUntil: string | null };
  /**
   * Whether the cloud confirms the events it stored (`events/ack`; absent until the uplink is up):
   * `ack` is the configured rule (`off`: delivery is not verified), `state` `not-acknowledged`
   * when events published for `uplink.eventAckFaultSec` have no ack (a broker ACL dropping
   * `events`, or a cloud that does not ack), `refused` when the broker refuses them (MQTT 5).
   */
  delivery?: EventDeliveryHealth;
  /**
   * The disk under the hub's data directory: full (the hub stores no new event; the locks keep
   * them until space returns), with what it means — "disk full at PATH: events are kept on the
   * locks until space returns" — or not (detail null). A change publishes a health message at once.
   */
  disk?: { full: boolean; detail: string | null };
}

export const DELIVERY_STATES = ['ok', 'not-acknowledged', 'refused'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export interface EventDeliveryHealth {
  ack: 'required' | 'off';
  state: DeliveryState;
  /** Events the broker accepted (PUBACK) and the cloud has not yet acknowledged. */
  unacknowledged: number;
  /** Seconds since the oldest of them was first published; null when there is none. */
  oldestUnacknowledgedSec: number | null;
  /** The cloud's last `events/ack` that removed something (ISO 8601), null: none since start. */
  lastAckAt: string | null;
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
    pinKeys: {
      type: 'object',
      additionalProperties: false,
      required: ['version', 'locks', 'notCurrent', 'lockIds'],
      properties: {
        version: { type: 'integer', minimum: 0, maximum: 4294967295 },
        locks: { type: 'integer', minimum: 0 },
        notCurrent: { type: 'integer', minimum: 0 },
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
    delivery: {
      type: 'object',
      additionalProperties: false,
      required: ['ack', 'state', 'unacknowledged', 'oldestUnacknowledgedSec', 'lastAckAt'],
      properties: {
        ack: { enum: ['required', 'off'] },
        state: { enum: DELIVERY_STATES },
        unacknowledged: { type: 'integer', minimum: 0 },
        oldestUnacknowledgedSec: { type: ['integer', 'null'], minimum: 0 },
        lastAckAt: { anyOf: [isoTime, { type: 'null' }] },
      },
    },
    disk: {
      type: 'object',
      additionalProperties: false,
      required: ['full', 'detail'],
      properties: {
        full: { type: 'boolean' },
        detail: { type: ['string', 'null'], maxLength: 1024 },
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

/**
 * A lock's own state as `cmd/result` carries it: the lock's answer, its clock as ISO 8601 UTC like
 * every time of the contract (the link gives it in Unix milliseconds).
 */
export interface WireLockState {
  bolt: 'locked' | 'unlocked';
  mode: 'normal' | 'office' | 'locked';
  doorOpen: boolean;
  batteryPercent: number;
  lastSeq: number;
  /** The lock's clock when it answered. */
  time: string;
}

export function wireLockState<S extends { time: number }>(s: S): Omit<S, 'time'> & { time: string } {
  return { ...s, time: new Date(s.time).toISOString() };
}

const wireLockStateSchema = {
  type: 'object',
  description: "The lock's own answer; time is the lock's clock.",
  additionalProperties: false,
  required: ['bolt', 'mode', 'doorOpen', 'batteryPercent', 'lastSeq', 'time'],
  properties: {
    bolt: { enum: ['locked', 'unlocked'] },
    mode: { enum: ['normal', 'office', 'locked'] },
    doorOpen: { type: 'boolean' },
    batteryPercent: { type: 'integer', minimum: 0, maximum: 100 },
    lastSeq: { type: 'integer', minimum: 0 },
    time: isoTime,
  },
} as const;

/** A lock as `listLocks` and `attach` describe it (no key material; a later version may add fields). Its size is bounded by uplink.maxMessageBytes, not field by field. */
const lockSummarySchema = {
  type: 'object',
  required: ['lockId', 'bearer', 'state', 'connected', 'lastSeen', 'keyFingerprint'],
  properties: {
    lockId: id,
    bearer: { type: 'string' },
    address: { type: 'string' },
    state: { enum: ['attaching', 'bound', 'detaching', 'quarantined', 'detached'] },
    quarantineReason: { type: ['string', 'null'] },
    connected: { type: 'boolean' },
    lastSeen: { anyOf: [isoTime, { type: 'null' }] },
    lastEventSeq: { type: 'integer', minimum: 0 },
    sessions: { type: 'integer', minimum: 0 },
    failedHandshakes: { type: 'integer', minimum: 0 },
    rejectedFrames: { type: 'integer', minimum: 0 },
    keyFingerprint: { type: 'string' },
  },
} as const;

/**
 * `cmd/result.result` by op (docs/mqtt-api.md, "Commands"). The answer does not repeat the op:
 * the cloud knows it by the command's id, so the schema is the union, each branch titled by its op.
 */
export const cmdResultBodySchema = {
  description: 'By the op of the command answered (the answer carries its id, not its op).',
  anyOf: [
    {
      title: 'ping',
      type: 'object',
      additionalProperties: false,
      required: ['pong', 'at'],
      properties: { pong: { const: true }, at: isoTime },
    },
    {
      title: 'listLocks',
      description:
        'One page: locks in the order of their ids; next is the lock id to send as after, null on the last page.',
      type: 'object',
      additionalProperties: false,
      required: ['locks', 'next'],
      properties: { locks: { type: 'array', items: lockSummarySchema }, next: { anyOf: [id, { type: 'null' }] } },
    },
    {
      title: 'getState, open, lock, setMode; and unknown_outcome (ok false) when the state could be read back',
      type: 'object',
      additionalProperties: false,
      required: ['state'],
      properties: { state: wireLockStateSchema },
    },
    {
      title: 'attach',
      type: 'object',
      additionalProperties: false,
      required: ['lock'],
      properties: { lock: lockSummarySchema },
    },
    {
      title: 'detach',
      description:
        "detached false: the lock is out of reach; it stays 'detaching' and the hub finishes when it hears it.",
      type: 'object',
      additionalProperties: false,
      required: ['detached', 'state'],
      properties: { detached: { type: 'boolean' }, state: { enum: ['detached', 'detaching'] } },
    },
    {
      title: 'syncNow',
      description:
        "sync/request was published with the mirror's version (requestId = the command's id): asked, not yet synchronised; the sync comes on sync and is acknowledged on sync/ack.",
      type: 'object',
      additionalProperties: false,
      required: ['requested', 'requestId', 'version'],
      properties: {
        requested: { const: true },
        requestId,
        version: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      },
    },
  ],
} as const;

export const cmdResultSchema = answerSchema({ result: cmdResultBodySchema });

export interface SyncAckPayload {
  v: 1;
  id: string | null;
  ok: boolean;
  /** The mirror's version after applying the sync. */
  version?: number;
  /** The answer to one part of a sync (or to its set, expired): its set and the parts held of it. */
  part?: { sync: string; received: number; count: number };
  error?: { code: string; message: string };
}

export const syncAckSchema = answerSchema({
  version: { type: 'integer', minimum: 0 },
  part: {
    type: 'object',
    additionalProperties: false,
    required: ['sync', 'received', 'count'],
    properties: {
      sync: requestId,
      received: { type: 'integer', minimum: 0 },
      count: { type: 'integer', minimum: 1 },
    },
  },
});

/**
 * hub → cloud on `sync/request`: "bring my mirror up to date" — sent for a `syncNow` command
 * (`requestId` = its cmdId) and by the hub itself when a delta does not fit its mirror
 * (`reason: 'gap'`). The cloud answers on `sync` with a delta from `version` if it knows that
 * version's content, else a snapshot, and may answer nothing when the hub is already current.
 */
export interface SyncRequestPayload {
  v: 1;
  requestId: string;
  /** The mirror's version now (0: never synced). */
  version: number;
  reason: 'command' | 'gap';
}

export const syncRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'requestId', 'version', 'reason'],
  properties: {
    v,
    requestId,
    version: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    reason: { enum: ['command', 'gap'] },
  },
} as const;
