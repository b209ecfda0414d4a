import type { ComponentStatus } from '../base/component.js';
import type { RefusalCode } from './mqtt-cloud-messages.js';

export type { ComponentStatus };

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

export interface HubStatus {
  version: string;
  pid: number;
  startedAt: string;
  uptimeSec: number;
  configSource: string | null;
  dataDir: string;
  /** fingerprint: of the key (src/crypto/store-identity.ts), never the key; absent from an older daemon. */
  storageKey: { origin: string; path: string; fingerprint?: string };
  /** diskFull: what a full disk under the data directory means now ("disk full at PATH: …"), null with room. */
  store: { ok: boolean; schemaVersion: number; walPages: number; path: string; diskFull: string | null };
  components: ComponentStatus[];
}

// ----- what the methods answer (the CLI formats these) -------------------------------------------

/**
 * `health.check` (`iqhub status --check`, the container's and the image's health checks): healthy
 * only when every component runs and the store and its disk are fine; each problem in a sentence.
 */
export interface HealthCheck {
  healthy: boolean;
  problems: string[];
}

/** Remote commands since the daemon started: `iqhub commands`, `iqhub diag` and `health.commands`. */
export interface VerifierStats {
  accepted: number;
  /** Refusals by code since start-up (including `bad_request` for commands that failed the schema). */
  refused: Partial<Record<RefusalCode, number>>;
  lockouts: number;
  /** ISO 8601, while a lockout lasts. */
  lockedOutUntil: string | null;
}

/** A remote command as the inbox recorded it (`iqhub commands`): what was asked and what came of it. */
export interface RecentCommand {
  cmdId: string;
  op: string | null;
  lockId: string | null;
  counter: number | null;
  /** When the hub accepted it (ISO 8601). */
  receivedAt: string;
  /**
   * `answered`: its result was recorded (`ok`, `code`); `acting`: being carried out now;
   * `interrupted`: accepted and never answered (a stop; answered unknown_outcome at the next start).
   */
  state: 'answered' | 'acting' | 'interrupted';
  ok: boolean | null;
  /** The error code of a failed result (`lock.unreachable`, `unknown_outcome`, …). */
  code: string | null;
}

/** `commands.list`: the counts since start-up and the newest accepted commands. */
export interface CommandsView {
  stats: VerifierStats;
  recent: RecentCommand[];
}

/** One lock's offline list as `iqhub offline` shows it. */
export interface OfflineListRow {
  lockId: string;
  /** Entries the lock holds, as far as the hub knows; null: not known now (an update is due). */
  held: number | null;
  capacity: number;
  /** Credentials left out of the list for capacity. */
  leftOut: number;
  /** When the lock last acknowledged an update, or its list was found up to date (ISO 8601). */
  lastUpdatedAt: string | null;
  /** Why the last update failed (the hub retries); null when it did not. */
  lastError: string | null;
  /** The hub knows what the lock holds and its last update did not fail. */
  upToDate: boolean;
  /** The site PIN key version the lock said it holds (0: none; null: not known since start-up). */
  pinKeyVersion: number | null;
  /** It holds the site's current PIN key version. */
  pinKeyCurrent: boolean;
}

// ----- `iqhub diag` ---------------------------------------------------------------------------------

export type Verdict = 'ok' | 'warn' | 'fail';

export interface DiagCheck {
  name: string;
  verdict: Verdict;
  detail: string;
  /** What to do about it; null when nothing needs doing. */
  action: string | null;
}

export interface DiagReport {
  /** Who ran the checks: the running daemon, or the CLI alone. */
  source: 'daemon' | 'local';
  at: string;
  /** The worst verdict. */
  verdict: Verdict;
  checks: DiagCheck[];
}

/** The certificate the uplink uses (or would use). */
export interface CertSummary {
  hubId: string;
  notBefore: string;
  notAfter: string;
  fingerprint: string;
  /** Where it is: a file path. */
  source: string;
}
