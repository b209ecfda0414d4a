import { errorObject, id, isoTime, requestId, v } from './mqtt-topics.js';

/**
 * Lock firmware over MQTT (docs/mqtt-api.md, "Firmware"): the cloud announces an image and the
 * locks it is for; the hub fetches the file in chunks it asks for (each answer within
 * `uplink.maxMessageBytes`), verifies it whole (src/firmware/image.ts) and relays it to the locks,
 * reporting each lock's progress.
 */

/** The largest image file the contract describes (the hub's own limit is `firmware.maxImageBytes`). */
export const MAX_FIRMWARE_FILE_BYTES = 16 * 1024 * 1024 + 1024;
/** Base64 characters in one chunk: its raw bytes stay under the inbound limit (256 KiB) with room for the JSON. */
export const MAX_FIRMWARE_CHUNK_CHARS = 240 * 1024;
const sha256Hex = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;

/** Cloud → hub: an image to install on these locks. */
export interface FirmwareAnnouncePayload {
  v: 1;
  announceId: string;
  model: string;
  version: string;
  /** SHA-256 of the whole image file (the manifest's own digest is checked after the fetch). */
  fileSha256: string;
  fileSize: number;
  lockIds: string[];
}

export const firmwareAnnounceSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'announceId', 'model', 'version', 'fileSha256', 'fileSize', 'lockIds'],
  properties: {
    v,
    announceId: requestId,
    model: { type: 'string', pattern: '^[\\x21-\\x7e]{1,32}$' },
    version: { type: 'string', pattern: '^[0-9]{1,5}\\.[0-9]{1,5}\\.[0-9]{1,5}$' },
    fileSha256: sha256Hex,
    fileSize: { type: 'integer', minimum: 1, maximum: MAX_FIRMWARE_FILE_BYTES },
    lockIds: { type: 'array', minItems: 1, maxItems: 1000, uniqueItems: true, items: id },
  },
} as const;

/** Hub → cloud: send me these bytes of the announced file. */
export interface FirmwareRequestPayload {
  v: 1;
  announceId: string;
  offset: number;
  length: number;
}

export const firmwareRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'announceId', 'offset', 'length'],
  properties: {
    v,
    announceId: requestId,
    offset: { type: 'integer', minimum: 0, maximum: MAX_FIRMWARE_FILE_BYTES },
    length: { type: 'integer', minimum: 1, maximum: (MAX_FIRMWARE_CHUNK_CHARS / 4) * 3 },
  },
} as const;

/** Cloud → hub: the bytes asked for (base64), or why not (`error`, the fetch stops). */
export interface FirmwareChunkPayload {
  v: 1;
  announceId: string;
  offset: number;
  data?: string;
  error?: { code: string; message: string };
}

export const firmwareChunkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'announceId', 'offset'],
  properties: {
    v,
    announceId: requestId,
    offset: { type: 'integer', minimum: 0, maximum: MAX_FIRMWARE_FILE_BYTES },
    data: { type: 'string', minLength: 1, maxLength: MAX_FIRMWARE_CHUNK_CHARS, pattern: '^[A-Za-z0-9+/]+={0,2}$' },
    error: errorObject,
  },
} as const;

export const FIRMWARE_PROGRESS_STATES = ['fetching', 'refused', 'queued', 'running', 'installed', 'failed'] as const;

/**
 * Hub → cloud: where an announced (or technician-pushed) image stands on one lock, at each change
 * of state and every few seconds while it runs. `refused`: the image failed the hub's checks and
 * reached no lock; `lockId` is then null.
 */
export interface FirmwareProgressPayload {
  v: 1;
  /** The announce it answers; null for an image a technician pushed with the CLI. */
  announceId: string | null;
  lockId: string | null;
  model: string;
  version: string;
  state: (typeof FIRMWARE_PROGRESS_STATES)[number];
  sent: number;
  size: number;
  error: { code: string; message: string } | null;
  at: string;
}

export const firmwareProgressSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'announceId', 'lockId', 'model', 'version', 'state', 'sent', 'size', 'error', 'at'],
  properties: {
    v,
    announceId: { anyOf: [requestId, { type: 'null' }] },
    lockId: { anyOf: [id, { type: 'null' }] },
    model: { type: 'string', maxLength: 64 },
    version: { type: 'string', maxLength: 20 },
    state: { type: 'string', enum: [...FIRMWARE_PROGRESS_STATES] },
    sent: { type: 'integer', minimum: 0 },
    size: { type: 'integer', minimum: 0 },
    error: { anyOf: [errorObject, { type: 'null' }] },
    at: isoTime,
  },
} as const;
