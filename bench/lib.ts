import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DevPkiPaths } from '../provisioning/dev-pki.js';
import { requireSocat, SOCAT_MISSING } from '../test/helpers/socat.js';

/** One metric: a distribution ({p50, p99, n}) or a single value. */
export type Metric =
  | { unit: string; p50: number; p99: number; n: number }
  | { unit: string; value: number; n?: number };

export interface Benchmark {
  /** Name used on the command line; metrics it produces start with it. */
  name: string;
  description: string;
  run(): Promise<Record<string, Metric>>;
}

/**
 * A benchmark whose every run has its own temporary directory (`iqhub-bench-<name>-…`, removed
 * afterwards whatever happens): `measure` adds its metrics to the record the run returns.
 */
export function benchmarkInTempDir(
  name: string,
  description: string,
  measure: (dir: string, metrics: Record<string, Metric>) => Promise<void>,
): Benchmark {
  return {
    name,
    description,
    async run() {
      const metrics: Record<string, Metric> = {};
      const dir = mkdtempSync(join(tmpdir(), `iqhub-bench-${name}-`));
      try {
        await measure(dir, metrics);
        return metrics;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

/** Summarise samples (e.g. milliseconds per operation) as p50/p99. */
export function distribution(unit: string, samples: number[]): Metric {
  const sorted = [...samples].sort((a, b) => a - b);
  return { unit, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), n: samples.length };
}

export function round(x: number): number {
  return Math.abs(x) >= 100 ? Math.round(x) : Number(x.toPrecision(4));
}

/** metrics[name] = the ratio of the medians of metrics[over] and metrics[under], when both are distributions. */
export function ratioOfMedians(metrics: Record<string, Metric>, name: string, over: string, under: string): void {
  const a = metrics[over];
  const b = metrics[under];
  if (a && b && 'p50' in a && 'p50' in b && b.p50 > 0)
    metrics[name] = { unit: 'x (p50/p50)', value: round(a.p50 / b.p50) };
}

export function environment(): { date: string; node: string; cpu: string; cores: number } {
  const c = cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
  };
}

export function table(metrics: Record<string, Metric>): string {
  const rows = Object.entries(metrics).map(([name, m]) =>
    'value' in m
      ? [name, m.unit, String(m.value), '', '', String(m.n ?? '')]
      : [name, m.unit, '', String(m.p50), String(m.p99), String(m.n)],
  );
  return textTable(['metric', 'unit', 'value', 'p50', 'p99', 'n'], rows);
}

/** Rows under a head, columns padded: the first two left-aligned, the rest right-aligned. */
export function textTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i >= 2 ? c.padStart(w[i] ?? 0) : c.padEnd(w[i] ?? 0))).join('  ');
  return [line(head), w.map((x) => '-'.repeat(x)).join('  '), ...rows.map(line)].join('\n');
}

/** socat for a bench on the emulated radios; undefined, saying on stderr that bench `name` is skipped and why, where it is missing. */
export function socatOrSkip(name: string): string | undefined {
  const socat = requireSocat();
  if (!socat) process.stderr.write(`${name}: skipped: ${SOCAT_MISSING}\n`);
  return socat;
}

/**
 * The `uplink:` and `commands:` lines of a bench daemon's config: mutual TLS to `url` with the dev
 * PKI's hub certificate (server name localhost), the PKI's OTP key; the MQTT version when given.
 */
export function uplinkConfigLines(
  url: string,
  pki: Pick<DevPkiPaths, 'ca' | 'hub' | 'otpKey'>,
  mqttVersion?: '5' | '3.1.1',
): string[] {
  return [
    'uplink:',
    '  enabled: true',
    `  url: ${url}`,
    `  caFile: ${pki.ca.cert}`,
    `  certFile: ${pki.hub.cert}`,
    `  keyFile: ${pki.hub.key}`,
    '  serverName: localhost',
    ...(mqttVersion === undefined ? [] : [`  mqttVersion: '${mqttVersion}'`]),
    'commands:',
    `  otpKeyFile: ${pki.otpKey}`,
  ];
}
