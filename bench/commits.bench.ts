import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDevPki, readDevOtpKey } from '../provisioning/dev-pki.js';
import { ReferenceCloud } from '../sim/cloud/cloud.js';
import { devCloudConnection } from '../sim/cloud/connect.js';
import { callDaemon } from '../src/control-socket/socket-client.js';
import { watch } from '../test/helpers/daemon.js';
import { attachSimulatedLock } from './command.bench.js';
import { type Benchmark, benchmarkInTempDir, distribution, type Metric, round, uplinkConfigLines } from './lib.js';
import { wallNow } from './stages.js';
import { broker } from './uplink.bench.js';

const HUB = 'bench-hub';
const WARMUP = 200;
const N = 300;
/** The compiled CLI next to this compiled bench; IQHUB_BENCH_COMMITS_DAEMON names another build's. */
const DAEMON = process.env.IQHUB_BENCH_COMMITS_DAEMON ?? fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
/** The system calls that wait for the disk. */
const SYNCS = ['fsync', 'fdatasync', 'sync_file_range', 'syncfs', 'sync', 'msync'];

/**
 * command.fsyncsPerOpen: the system calls that wait for the disk (fsync, fdatasync, …) the daemon
 * makes during a remote open, counted by `strace -f` on the whole daemon process (every thread;
 * `--seccomp-bpf`, so the other system calls run untraced), with `-ttt` times. The daemon runs
 * as command.remoteOpen's does (the simulated lock at zero latency, its flash written behind: a
 * lock's flash is not the hub's disk), opens one at a time through the reference cloud and a real
 * broker, each once the previous one's `opened` event and lock state reached the cloud.
 * - command.fsyncsPerOpen: the syncs made between the cloud's publish of an open and its receipt
 *   of the answer (the critical path), per open: p50 and p99 over N opens. Target 1: the claim.
 *   A sync that merely overlaps the answer's way back counts too — on a loaded machine the group
 *   commit made after the answer left often falls inside a slow round trip — hence the median;
 *   command.fsyncsPerOpenMean is the mean of the same counts.
 * - command.fsyncsPerOpenTotal: every sync of the daemon from the first measured open until the
 *   last one's event reached the cloud, / N: the claim, the group commit of the answer with the
 *   lock's state and event, WAL checkpoints, anything else the daemon syncs meanwhile.
 * - command.fsyncsPerOpenBackToBack: the same over N opens sent as soon as the previous answer
 *   arrived (the next claim takes the previous open's queued group along).
 * Without strace, nothing is measured (said on stderr).
 */
export const commitsBench: Benchmark = benchmarkInTempDir(
  'commits',
  'fsync/fdatasync calls of the daemon per remote open (strace -f): on the critical path, in all, back to back',
  async (dir, metrics) => {
    if (spawnSync('strace', ['-V']).status !== 0) {
      process.stderr.write('commits: strace is not installed (apt-get install strace); nothing measured\n');
      return;
    }
    const pki = createDevPki({ dir: join(dir, 'pki'), hubId: HUB });
    const b = await broker(join(dir, 'pki'), pki);
    try {
      Object.assign(metrics, await measure(dir, b.url, b.kind.startsWith('mosquitto'), pki));
    } finally {
      await b.close();
    }
  },
);

async function measure(
  dir: string,
  url: string,
  v5: boolean,
  pki: ReturnType<typeof createDevPki>,
): Promise<Record<string, Metric>> {
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      `dataDir: ${dir}/data`,
      `runDir: ${dir}/run`,
      'simulation:',
      '  enabled: true',
      '  locks: 1',
      '  latencyMs: 0',
      '  flashDurable: false',
      ...uplinkConfigLines(url, pki, v5 ? '5' : '3.1.1'),
      '',
    ].join('\n'),
  );
  const trace = join(dir, 'syncs.trace');
  const strace = spawn(
    'strace',
    [
      '-f',
      '-qq',
      '--seccomp-bpf',
      '-ttt',
      '-e',
      `trace=${SYNCS.join(',')}`,
      '-o',
      trace,
      process.execPath,
      DAEMON,
    ].concat(['run', '--config', config]),
    { env: { ...process.env, NOTIFY_SOCKET: '', WATCHDOG_USEC: '' }, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const daemon = watch(strace);
  const cloud = new ReferenceCloud();
  const windows: [number, number][] = [];
  let spans: { oneAtATime: [number, number]; backToBack: [number, number] } | undefined;
  try {
    await cloud.connect(devCloudConnection(url, pki, v5 ? 5 : 4));
    cloud.setOtpKey(HUB, readDevOtpKey(pki.otpKey));
    await daemon.waitForOutput('iq-hub ready', 60_000);
    const call = (method: string, params: Record<string, unknown> = {}) =>
      callDaemon(join(dir, 'run', 'control.sock'), method, params, 30_000);
    const deviceId = await attachSimulatedLock(dir, call, cloud);

    const open = { op: 'open', lockId: deviceId, args: { durationMs: 1000 } } as const;
    const once = async (record: boolean) => {
      const envelope = cloud.envelope(HUB, open);
      const sent = wallNow();
      const r = await cloud.sendEnvelope(HUB, envelope, { timeoutMs: 10_000 });
      if (record) windows.push([sent, wallNow()]);
      if (!r.ok) throw new Error(`remote open refused: ${r.error?.code} ${r.error?.message}`);
    };
    const opened = () => cloud.events(HUB).filter((e) => e.lockId === deviceId && e.type === 'opened');
    const settled = (count: number) => {
      const events = opened();
      const last = events[events.length - 1];
      return events.length >= count && last !== undefined && (cloud.lockState(HUB, deviceId)?.lastSeq ?? 0) >= last.seq;
    };
    let done = opened().length;
    const settle = () => cloud.waitFor(() => settled(done), 10_000, 'the opened event at the cloud');
    for (let i = 0; i < WARMUP; i++) {
      await once(false);
      done++;
      await settle();
    }
    const start1 = wallNow();
    for (let i = 0; i < N; i++) {
      await once(true);
      done++;
      await settle();
    }
    const end1 = wallNow();
    const start2 = wallNow();
    for (let i = 0; i < N; i++) {
      await once(false);
      done++;
    }
    await settle();
    const end2 = wallNow();
    spans = { oneAtATime: [start1, end1], backToBack: [start2, end2] };
  } finally {
    // The daemon is strace's child: stop it (strace ends with it and writes the whole trace).
    const pid = daemonPid(strace.pid);
    if (pid) process.kill(pid, 'SIGTERM');
    else strace.kill('SIGTERM');
    await daemon.exit;
    await cloud.close();
  }
  if (!spans) return {};
  // IQHUB_BENCH_COMMITS_TRACE=FILE keeps the trace (each sync with its time, thread and file).
  if (process.env.IQHUB_BENCH_COMMITS_TRACE) {
    writeFileSync(
      process.env.IQHUB_BENCH_COMMITS_TRACE,
      `${JSON.stringify({ windows, spans })}\n${readFileSync(trace, 'utf8')}`,
    );
  }
  const times = readFileSync(trace, 'utf8')
    .split('\n')
    .map((line) => /^\d+\s+(\d+\.\d+)\s+(\w+)\(/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && SYNCS.includes(m[2] ?? ''))
    .map((m) => Number(m[1]) * 1000);
  const within = ([from, to]: [number, number]) => times.filter((t) => t >= from && t <= to).length;
  const onPath = windows.map(within);
  const per = (count: number): Metric => ({ unit: 'syncs/open', value: round(count / N), n: N });
  return {
    'command.fsyncsPerOpen': distribution('syncs', onPath),
    'command.fsyncsPerOpenMean': per(onPath.reduce((a, b) => a + b, 0)),
    'command.fsyncsPerOpenTotal': per(within(spans.oneAtATime)),
    'command.fsyncsPerOpenBackToBack': per(within(spans.backToBack)),
  };
}

/** The process strace started (its only child). */
function daemonPid(stracePid: number | undefined): number | undefined {
  if (stracePid === undefined) return undefined;
  try {
    const children = readFileSync(`/proc/${stracePid}/task/${stracePid}/children`, 'utf8').trim().split(/\s+/);
    const pid = Number(children[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
