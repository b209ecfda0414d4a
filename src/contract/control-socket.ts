/**
 * The control socket's wire format: one JSON object per line, in both directions.
 *   request:  {"id": 1, "method": "status", "params": {}}
 *   response: {"id": 1, "ok": true, "result": {...}}  |  {"id": 1, "ok": false, "error": {code, message, hint?}}
 * Requests are validated before anything runs; a bad one gets an error response, never a crash.
 */
export const MAX_LINE_BYTES = 64 * 1024;
export const SOCKET_NAME = 'control.sock';

export interface ControlRequest {
  id: number;
  method: string;
  params: Record<string, unknown>;
}

export interface ControlError {
  code: string;
  message: string;
  hint?: string;
}

export type ControlResponse =
  | { id: number | null; ok: true; result: unknown }
  | { id: number | null; ok: false; error: ControlError };

export const requestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'method'],
  properties: {
    id: { type: 'integer', minimum: 0, maximum: 2 ** 31 },
    method: { type: 'string', pattern: '^[a-z][a-zA-Z.]{0,63}$' },
    params: { type: 'object', default: {} },
  },
} as const;

import type { ComponentStatus } from '../base/component.js';

export type { ComponentStatus };

export interface HubStatus {
  version: string;
  pid: number;
  startedAt: string;
  uptimeSec: number;
  configSource: string | null;
  dataDir: string;
  storageKey: { origin: string; path: string };
  store: { ok: boolean; schemaVersion: number; walPages: number; path: string };
  components: ComponentStatus[];
}
