import { ID_PATTERN, id, requestId, v } from './mqtt-topics.js';

/** What the cloud sends the hub: remote commands (and why one is refused) and syncs of the access rights. */

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
    envelope(
      'listLocks',
      { after: { type: 'string', pattern: ID_PATTERN }, limit: { type: 'integer', minimum: 1, maximum: 10_000 } },
      [],
      false,
    ),
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

/**
 * Most parts one sync may be sent in: 1,024 parts of a 128 KiB broker limit hold more than
 * MAX_SYNC_BYTES, so no genuine set needs more; a larger count is refused `sync.too-large`.
 */
export const MAX_SYNC_PARTS = 1024;

/** Where a part belongs: its sync (the set), its place, how many there are, and the whole's digest. */
export interface SyncPartHeader {
  /** The id of the whole sync: every part of a set carries it, and the applied answer names it. */
  sync: string;
  /** 0 to count - 1. */
  index: number;
  count: number;
  /** Hex SHA-256 of the UTF-8 bytes of every part's `chunk` joined in index order (= the JSON text of `data`). */
  digest: string;
}

/**
 * One part of a sync too large for one message (docs/mqtt-api.md, "Sync in parts"): the sync's
 * `kind`, `version` and `baseVersion` as in a whole one, and instead of `data` a `chunk` of its
 * JSON text. `id` is this part's own message id, answered on `sync/ack` like any message.
 */
export interface SyncPartPayload {
  v: 1;
  id: string;
  kind: 'snapshot' | 'delta';
  version: number;
  baseVersion?: number;
  part: SyncPartHeader;
  chunk: string;
}

/** What arrives on `sync`: a whole sync, or one part of one. */
export type SyncMessage = SyncPayload | SyncPartPayload;

export function isSyncPart(m: SyncMessage): m is SyncPartPayload {
  return 'part' in m;
}

export const syncSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'id', 'kind', 'version'],
  properties: {
    v,
    id: requestId,
    kind: { enum: ['snapshot', 'delta'] },
    version: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    baseVersion: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    data: { type: 'object' },
    part: {
      type: 'object',
      additionalProperties: false,
      required: ['sync', 'index', 'count', 'digest'],
      properties: {
        sync: requestId,
        // Bounded by the schema only loosely: a count above MAX_SYNC_PARTS, or an index not below
        // the count, is answered with its own code (sync.too-large, sync.part-out-of-range).
        index: { type: 'integer', minimum: 0, maximum: 1_000_000 },
        count: { type: 'integer', minimum: 1, maximum: 1_000_000 },
        digest: { type: 'string', pattern: '^[0-9a-f]{64}$' },
      },
    },
    chunk: { type: 'string', minLength: 1 },
  },
  // A whole sync has `data`; a part has `part` and `chunk` and no `data`.
  oneOf: [
    { required: ['data'], properties: { data: true, part: false, chunk: false } },
    { required: ['part', 'chunk'], properties: { part: true, chunk: true, data: false } },
  ],
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

/**
 * An event id as the hub writes it (`{lockId}/{epoch}/{seq}`, docs/mqtt-api.md "Events"): an
 * `events/ack` names only ids of this form.
 */
export const EVENT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}/[0-9]{1,15}/[0-9]{1,15}$';
/** An `events/ack` names at most this many events (the most one `events` message carries). */
export const MAX_ACK_IDS = 500;

/**
 * The cloud's acknowledgement on `events/ack`: the ids of events it has **stored** (durably; a
 * duplicate it already had counts as stored). Only then does the hub remove them from its outbox.
 */
export interface EventsAckPayload {
  v: 1;
  ids: string[];
}

export const eventsAckSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'ids'],
  properties: {
    v,
    ids: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_ACK_IDS,
      uniqueItems: true,
      items: { type: 'string', maxLength: 100, pattern: EVENT_ID_PATTERN },
    },
  },
} as const;
