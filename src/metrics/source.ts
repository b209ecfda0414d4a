import type { DecisionCounts } from '../access/decide.js';
import type { VerifierStats } from '../contract/control-socket.js';
import type { LockSummary } from '../link/manager.js';

/**
 * What the metrics endpoint reads when it is scraped, from the parts that already keep each
 * figure (the hub builds it: `Hub.metricsSource()`). Plain functions and types only: this file is
 * loaded with metrics off too, the exporter (and prom-client) only with them on.
 */
export interface MetricsSource {
  version: string;
  /** Undefined on a hub without an uplink (no outbox). */
  outbox():
    | { events: number; messages: number; bytes: number; oldestAgeSec: number | null; dropped: number }
    | undefined;
  /** Lock events in the store, ever. */
  eventsStored(): number;
  /** Since start; undefined without an uplink. */
  delivery(): { sent: number; acknowledged: number; unacknowledged: number } | undefined;
  /** Undefined until the uplink is up. */
  commands(): VerifierStats | undefined;
  decisions(): DecisionCounts;
  locks(): readonly LockSummary[];
  uplinkConnected(): boolean;
  radios(): readonly { kind: string; up: boolean }[];
  storeBytes(): number;
  disk(): { free: number; full: boolean };
}

/**
 * Observations made where things happen, set only while metrics are on: each call site checks
 * the field and does nothing else when it is undefined.
 */
export interface MetricsHooks {
  /** One access decision took `seconds`. */
  decision?: (seconds: number, granted: boolean) => void;
}
