import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Proc, start } from '../test/helpers/daemon.js';
import { benchmarkInTempDir, distribution } from './lib.js';

/** The compiled CLI beside this compiled bench (benchmarks run from dist/): the CommonJS entry `iqhub` runs. */
const CLI = fileURLToPath(new URL('../src/cli/main.cjs', import.meta.url));
const RUNS = 20;
/** GNU time: the child's peak RSS (%M, KiB) and CPU time (%U + %S, 10 ms steps) without a wrapper of our own in the child. */
const GNU_TIME = '/usr/bin/time';

/**
 * cli.status: one `iqhub status --socket S` call, as a technician makes it, against a running daemon
 * (`iqhub run` in its own process, no radio, no uplink): wall time from spawn to exit and the
 * child's peak RSS, over 20 calls; cli.nodeFloor is the same for `node -e 0`, what no CLI can beat.
 * cli.statusViaConfig is the call as a hub's technician types it, `iqhub status` finding the socket
 * in the config file (/etc/iq-hub/config.yaml on a hub): it reads and validates the file first.
 * `…Cpu` is the child's CPU time (user + system, all its threads): on a busy machine the wall
 * time mostly measures the wait for a core, the CPU time much less so.
 * Issue 15's targets: ≤ 200 ms and ≤ 60 MB. IQHUB_BENCH_CLI_BEFORE=<another build's
 * dist/src/cli/main.cjs, or this build's ES module entry dist/src/cli/main.js> adds cli.statusBefore and cli.statusViaConfigBefore, the same calls through
 * that build, in the same run.
 */
export const cliBench = benchmarkInTempDir(
  'cli',
  '`iqhub status` against a running daemon: wall time and peak RSS (and `node -e 0` as the floor)',
  async (dir, metrics) => {
    const config = join(dir, 'config.yaml');
    writeFileSync(config, `dataDir: ${dir}/data\nrunDir: ${dir}/run\nlog:\n  level: warn\n`);
    const daemon: Proc = start(['run', '--config', config], {}, CLI);
    try {
      const socket = join(dir, 'run', 'control.sock');
      await waitFor(() => existsSync(socket), daemon, 60_000);
      const before = process.env.IQHUB_BENCH_CLI_BEFORE;
      const variants: [string, string[]][] = [
        ['cli.nodeFloor', ['-e', '0']],
        ['cli.status', [CLI, 'status', '--socket', socket]],
        ['cli.statusViaConfig', [CLI, 'status', '--config', config]],
        ...(before
          ? ([
              ['cli.statusBefore', [before, 'status', '--socket', socket]],
              ['cli.statusViaConfigBefore', [before, 'status', '--config', config]],
            ] as [string, string[]][])
          : []),
      ];
      const samples = new Map(
        variants.map(([name]) => [name, { ms: [] as number[], mb: [] as number[], cpu: [] as number[] }]),
      );
      // Interleaved, so a busy moment of the machine falls on every variant alike; one warm-up each.
      for (let i = -1; i < RUNS; i++) {
        for (const [name, args] of variants) {
          const r = await timed(args);
          if (i < 0) continue;
          const s = samples.get(name);
          s?.ms.push(r.ms);
          if (r.mb !== undefined) s?.mb.push(r.mb);
          if (r.cpuMs !== undefined) s?.cpu.push(r.cpuMs);
        }
      }
      for (const [name, s] of samples) {
        metrics[name] = distribution('ms', s.ms);
        if (s.mb.length > 0) metrics[`${name}PeakRss`] = distribution('MB', s.mb);
        if (s.cpu.length > 0) metrics[`${name}Cpu`] = distribution('ms', s.cpu);
      }
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exit;
    }
  },
);

/** One run of node with args: wall ms, and peak RSS in MB and CPU ms when GNU time is there. Fails on a non-zero exit. */
async function timed(args: string[]): Promise<{ ms: number; mb?: number; cpuMs?: number }> {
  const gnu = existsSync(GNU_TIME);
  const cmd = gnu ? GNU_TIME : process.execPath;
  const argv = gnu ? ['-f', 'IQHUB_MAXRSS_KB=%M IQHUB_CPU_S=%U+%S', process.execPath, ...args] : args;
  const t0 = performance.now();
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`node ${args.join(' ')} exited ${code}: ${err}`);
  const kb = /IQHUB_MAXRSS_KB=(\d+)/.exec(err)?.[1];
  const cpu = /IQHUB_CPU_S=([\d.]+)\+([\d.]+)/.exec(err);
  if (kb === undefined) return { ms };
  return { ms, mb: Number(kb) / 1024, ...(cpu ? { cpuMs: (Number(cpu[1]) + Number(cpu[2])) * 1000 } : {}) };
}

async function waitFor(ok: () => boolean, p: Proc, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (p.child.exitCode !== null || Date.now() > end)
      throw new Error(`the daemon did not open its control socket\n${p.stdout()}\n${p.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
