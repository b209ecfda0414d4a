/**
 * `npm run bench [-- NAME…]`: run all benchmarks, or those whose name starts with a NAME;
 * write bench/results/latest.json and print the same as a table.
 */
import { mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../src/base/atomic-file.js';
import { accessBench } from './access.bench.js';
import { cliBench } from './cli.bench.js';
import { commandBench } from './command.bench.js';
import { commitsBench } from './commits.bench.js';
import { firmwareBench } from './firmware.bench.js';
import { floodBench } from './flood.bench.js';
import {
  type Benchmark,
  distribution,
  environment,
  type Metric,
  ratioOfMedians,
  round,
  table,
  textTable,
} from './lib.js';
import { linkBench } from './link.bench.js';
import { memoryBench } from './memory.bench.js';
import { metricsBench } from './metrics.bench.js';
import { offlineBench } from './offline.bench.js';
import { outboxDrainBench } from './outbox.bench.js';
import { radioBench } from './radio.bench.js';
import { startupBench } from './startup.bench.js';
import { storeCommit } from './store.bench.js';
import { targetRows } from './targets.js';
import { uplinkBench } from './uplink.bench.js';
import { zigbeeOpenBench } from './zigbee-open.bench.js';

export const benchmarks: Benchmark[] = [
  storeCommit,
  linkBench,
  uplinkBench,
  outboxDrainBench,
  floodBench,
  commandBench,
  commitsBench,
  accessBench,
  radioBench,
  cliBench,
  metricsBench,
  firmwareBench,
  (await import('./frames.bench.js')).framesBench,
  zigbeeOpenBench,
  memoryBench,
  offlineBench,
  startupBench,
];

const RESULTS = fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url));

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log('usage: npm run bench [-- NAME...]\n\nbenchmarks:');
    for (const b of benchmarks) console.log(`  ${b.name.padEnd(24)} ${b.description}`);
    return 0;
  }
  const chosen =
    argv.length === 0
      ? benchmarks
      : benchmarks.filter((b) =>
          argv.some((a) => b.name === a || b.name.startsWith(`${a}.`) || a.startsWith(`${b.name}.`)),
        );
  const unknown = argv.filter(
    (a) => !benchmarks.some((b) => b.name === a || b.name.startsWith(`${a}.`) || a.startsWith(`${b.name}.`)),
  );
  if (unknown.length > 0) {
    console.error(`unknown benchmark: ${unknown.join(', ')}; known: ${benchmarks.map((b) => b.name).join(', ')}`);
    return 2;
  }
  const metrics: Record<string, Metric> = {};
  // The machine is shared: the 1-minute load average, sampled every 5 s over the whole run, goes
  // with the results (bench.loadAverage p50/p99; .max), so a figure can be read against it.
  const load: number[] = [];
  const sample = () => load.push(loadavg()[0] ?? Number.NaN);
  sample();
  const sampler = setInterval(sample, 5_000);
  sampler.unref();
  const started = performance.now();
  try {
    for (const b of chosen) {
      process.stderr.write(`running ${b.name}: ${b.description}...\n`);
      Object.assign(metrics, await b.run());
    }
  } finally {
    clearInterval(sampler);
  }
  sample();
  metrics['bench.loadAverage'] = distribution('1-min load', load);
  metrics['bench.loadAverage.max'] = { unit: '1-min load', value: round(Math.max(...load)), n: load.length };
  metrics['bench.durationS'] = { unit: 's', value: round((performance.now() - started) / 1000) };
  // The target: a remote open within 5x the raw MQTT round trip of the same run — here
  // against uplink.mqttRtt (the command bench gives its own ratio against command.mqttRtt, measured
  // just before its remote opens).
  ratioOfMedians(metrics, 'command.remoteOpenPerUplinkMqttRtt', 'command.remoteOpen', 'uplink.mqttRtt');
  const env = environment();
  mkdirSync(dirname(RESULTS), { recursive: true });
  writeFileAtomic(RESULTS, `${JSON.stringify({ ...env, ...metrics }, null, 2)}\n`, 0o644);
  console.log(`\n${env.date}  node ${env.node}  ${env.cpu} (${env.cores} cores)\n`);
  console.log(table(metrics));
  const targets = targetRows(metrics);
  if (targets.length > 0) {
    console.log('\nissue 15 targets (this run)\n');
    console.log(textTable(['key', 'figure', 'target', 'met'], targets));
  }
  console.log(`\nwritten to ${RESULTS}`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
