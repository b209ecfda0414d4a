/**
 * Issue 15's targets ("Light enough for a Raspberry Pi"), checked against a run's metrics: the table
 * `npm run bench` prints after its metrics says, for each key the run measured, the target and whether
 * this run met it. A key the run did not measure is left out (a partial run checks what it has).
 */
import type { Metric } from './lib.js';

export interface Target {
  key: string;
  /** Which figure of the metric: p50/p99 of a distribution, or its single value. */
  of: 'p50' | 'p99' | 'value';
  atMost: number;
  unit: string;
}

export const ISSUE_15_TARGETS: Target[] = [
  { key: 'zigbee.framesPerOpen', of: 'value', atMost: 1, unit: 'frames each way' },
  { key: 'ble.framesPerOpen', of: 'value', atMost: 1, unit: 'frames each way' },
  { key: 'zigbee.openOwnCost', of: 'p50', atMost: 1, unit: 'ms' },
  { key: 'zigbee.cpuPerOpen', of: 'value', atMost: 1.5, unit: 'ms CPU' },
  { key: 'command.fsyncsPerOpen', of: 'p50', atMost: 1, unit: 'fsyncs' },
  { key: 'daemon.rssIdle', of: 'p50', atMost: 56, unit: 'MB' },
  { key: 'daemon.rss10kUsers', of: 'p50', atMost: 80, unit: 'MB' },
  { key: 'outbox.drainPeakRss', of: 'value', atMost: 80, unit: 'MB' },
  { key: 'daemon.startupToReady', of: 'p50', atMost: 1200, unit: 'ms' },
  { key: 'cli.status', of: 'p50', atMost: 200, unit: 'ms' },
  { key: 'cli.statusPeakRss', of: 'p50', atMost: 60, unit: 'MB' },
  { key: 'access.offlineFullPush16', of: 'p50', atMost: 5000, unit: 'ms' },
  { key: 'access.decision.digitalKey', of: 'p99', atMost: 1, unit: 'ms' },
];

function figure(m: Metric, of: Target['of']): number | undefined {
  if ('value' in m) return of === 'value' ? m.value : undefined;
  return of === 'value' ? m.p50 : m[of];
}

/** One row per target the run measured: key, figure, target, met. */
export function targetRows(metrics: Record<string, Metric>, targets = ISSUE_15_TARGETS): string[][] {
  const rows: string[][] = [];
  for (const t of targets) {
    const m = metrics[t.key];
    if (!m) continue;
    const v = figure(m, t.of);
    if (v === undefined) continue;
    rows.push([
      `${t.key} ${t.of === 'value' ? '' : t.of}`.trim(),
      String(v),
      `<= ${t.atMost} ${t.unit}`,
      v <= t.atMost ? 'yes' : 'NO',
    ]);
  }
  return rows;
}
