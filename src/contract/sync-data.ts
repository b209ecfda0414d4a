import type { ErrorObject, ValidateFunction } from 'ajv';
import { ID_PATTERN } from './mqtt-topics.js';
import * as generated from './sync-data-validators.generated.js';

/**
 * The `data` of a `sync` message (src/contract/mqtt.ts, `syncSchema`): the access-rights
 * mirror's content as a snapshot (everything) or a delta (upserts and deletions per table).
 * docs/access.md describes the format and its rules; these schemas are its single source.
 */

/** Upper bounds on rows per table in one payload and in the mirror: 10× the IQ2 figures of 10,000. */
export const LIMITS = {
  users: 100_000,
  groups: 10_000,
  memberships: 200_000,
  pins: 100_000,
  tags: 100_000,
  keys: 100_000,
} as const;
export type Table = keyof typeof LIMITS;
export const TABLES = Object.keys(LIMITS) as Table[];

/** The days of a weekly schedule, Monday first (ISO 8601). */
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** Locks one access group may name; intervals one schedule may hold. */
export const MAX_GROUP_LOCKS = 1024;
export const MAX_INTERVALS = 64;

/** Unix milliseconds, or ISO 8601 with `Z` or an explicit offset. */
export type TimeValue = number | string;

export interface SyncUser {
  id: string;
  name?: string;
  validFrom?: TimeValue;
  validUntil?: TimeValue;
  /** May be put on the offline lists of the locks the user has rights to. Default false. */
  offline?: boolean;
  /** Refused everywhere while set, whatever the rest says. Default false. */
  blocked?: boolean;
}

export interface SyncInterval {
  days: Weekday[];
  from: string;
  to: string;
}

export interface SyncGroup {
  id: string;
  lockIds: string[];
  /** Absent: at all times. An empty list admits no time. */
  schedule?: SyncInterval[];
  validFrom?: TimeValue;
  validUntil?: TimeValue;
}

export interface SyncMembership {
  userId: string;
  groupId: string;
}

export interface SyncPin {
  id: string;
  userId: string;
  /** Hex of HMAC-SHA-256(site PIN key, PIN), computed by the cloud; unique in the site. */
  verifier: string;
}

export interface SyncTag {
  id: string;
  userId: string;
  /** Hex of SHA-256 of the DESFire credential id; unique in the site. */
  hash: string;
}

export interface SyncKey {
  id: string;
  userId: string;
  expiresAt: TimeValue;
  revoked?: boolean;
}

/**
 * The site PIN key, in a snapshot or a delta (docs/mqtt-api.md, "PIN key rotation"): the key
 * sealed to the hub exactly as at enrollment (base64 of RSA-OAEP-SHA-256 under the public key of
 * the hub's current certificate), its version (the enrollment key is version 1), and, for a
 * rotation, until when the version before it stays accepted. Absent: the keys stay as they are.
 */
export interface SyncPinKey {
  version: number;
  key: string;
  overlapUntil?: TimeValue;
}

export interface SnapshotData {
  pinKey?: SyncPinKey;
  users: SyncUser[];
  groups: SyncGroup[];
  memberships: SyncMembership[];
  pins: SyncPin[];
  tags: SyncTag[];
  keys: SyncKey[];
}

export interface DeltaData {
  pinKey?: SyncPinKey;
  upsert?: Partial<Omit<SnapshotData, 'pinKey'>>;
  delete?: {
    users?: string[];
    groups?: string[];
    memberships?: SyncMembership[];
    pins?: string[];
    tags?: string[];
    keys?: string[];
  };
}

const id = { type: 'string', pattern: ID_PATTERN } as const;
const digest = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const time = {
  anyOf: [
    { type: 'integer', minimum: 0, maximum: 8.64e15 },
    {
      type: 'string',
      maxLength: 40,
      pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})$',
    },
  ],
} as const;

const object = (required: string[], properties: Record<string, unknown>) => ({
  type: 'object',
  additionalProperties: false,
  required,
  properties,
});
const list = (items: object, maxItems: number) => ({ type: 'array', maxItems, items });

const user = object(['id'], {
  id,
  name: { type: 'string', minLength: 1, maxLength: 128 },
  validFrom: time,
  validUntil: time,
  offline: { type: 'boolean' },
  blocked: { type: 'boolean' },
});
const interval = object(['days', 'from', 'to'], {
  days: {
    type: 'array',
    minItems: 1,
    maxItems: 7,
    uniqueItems: true,
    items: { enum: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] },
  },
  from: { type: 'string', pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' },
  to: { type: 'string', pattern: '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$' },
});
const group = object(['id', 'lockIds'], {
  id,
  lockIds: { type: 'array', maxItems: MAX_GROUP_LOCKS, uniqueItems: true, items: id },
  schedule: list(interval, MAX_INTERVALS),
  validFrom: time,
  validUntil: time,
});
const membership = object(['userId', 'groupId'], { userId: id, groupId: id });
const pin = object(['id', 'userId', 'verifier'], { id, userId: id, verifier: digest });
const tag = object(['id', 'userId', 'hash'], { id, userId: id, hash: digest });
const key = object(['id', 'userId', 'expiresAt'], { id, userId: id, expiresAt: time, revoked: { type: 'boolean' } });

const rows = {
  users: list(user, LIMITS.users),
  groups: list(group, LIMITS.groups),
  memberships: list(membership, LIMITS.memberships),
  pins: list(pin, LIMITS.pins),
  tags: list(tag, LIMITS.tags),
  keys: list(key, LIMITS.keys),
} as const satisfies Record<Table, object>;

const pinKey = object(['version', 'key'], {
  version: { type: 'integer', minimum: 1, maximum: 4294967295 },
  key: { type: 'string', minLength: 16, maxLength: 1400, pattern: '^[A-Za-z0-9+/]+={0,2}$' },
  overlapUntil: time,
});

export const snapshotDataSchema = object([...TABLES], { ...rows, pinKey });

export const deltaDataSchema = object([], {
  pinKey,
  upsert: object([], rows),
  delete: object([], {
    users: list(id, LIMITS.users),
    groups: list(id, LIMITS.groups),
    memberships: list(membership, LIMITS.memberships),
    pins: list(id, LIMITS.pins),
    tags: list(id, LIMITS.tags),
    keys: list(id, LIMITS.keys),
  }),
});

// Both schemas compiled at build time (test/helpers/generate-validators.ts), not at run time.
const validateSnapshot = generated.validateSnapshot as ValidateFunction<SnapshotData>;
const validateDelta = generated.validateDelta as ValidateFunction<DeltaData>;

function describe(e: ErrorObject | undefined): string {
  if (!e) return 'invalid';
  const where = `data${e.instancePath}`;
  if (e.keyword === 'additionalProperties') {
    const field = (e.params as { additionalProperty: string }).additionalProperty;
    return `${where}: unknown field ${JSON.stringify(field).slice(0, 70)}`;
  }
  return `${where} ${e.message ?? 'is invalid'}`;
}

/** Check `data` against the schema of its kind: the data, or what is wrong with it and where. */
export function checkSyncData(
  kind: 'snapshot',
  data: unknown,
): { ok: true; data: SnapshotData } | { ok: false; message: string };
export function checkSyncData(
  kind: 'delta',
  data: unknown,
): { ok: true; data: DeltaData } | { ok: false; message: string };
export function checkSyncData(
  kind: 'snapshot' | 'delta',
  data: unknown,
): { ok: true; data: SnapshotData | DeltaData } | { ok: false; message: string } {
  const validate = kind === 'snapshot' ? validateSnapshot : validateDelta;
  if (validate(data)) return { ok: true, data: data as SnapshotData | DeltaData };
  return { ok: false, message: describe(validate.errors?.[0]) };
}
