import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDevPki } from '../provisioning/dev-pki.js';
import type { ReferenceCloud } from '../sim/cloud/cloud.js';
import { connectReferenceCloud } from '../sim/cloud/connect.js';
import { callDaemon } from '../src/control-socket/socket-client.js';
import { writeSiteConfig } from '../test/helpers/cloud-site.js';
import { type Proc, start } from '../test/helpers/daemon.js';
import { findMosquitto, startMosquitto } from '../test/helpers/mosquitto.js';
import { benchmarkInTempDir, distribution, type Metric, round } from './lib.js';

const HUB = 'bench-flood';
/** The compiled CLI beside this compiled bench (benchmarks run from dist/). */
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const FLOOD = 20_000;
const BACKLOG = 10_000;

/**
 * The hub under a flood of cloud messages, in its own process (`iqhub run`) behind mosquitto, as
 * in production:
 * - uplink.floodStatusLatency: `iqhub status` (the control socket) every 20 ms while 20,000 signed
 *   commands arrive as fast as the cloud can publish them: the hub must keep answering its
 *   technician (issue: p99 within 250 ms).
 * - uplink.floodRate: commands answered per second during that flood.
 * - uplink.stopUnderBacklog: SIGTERM to exit with 10,000 commands waiting at the broker (the stop
 *   finishes what was taken in and leaves the rest unacknowledged; bound: shutdown.timeoutMs).
 * Needs mosquitto (the embedded aedes broker has no persistent sessions to hold a backlog).
 */
export const floodBench = benchmarkInTempDir(
  'flood',
  'status latency during a 20,000-command flood; SIGTERM with 10,000 commands waiting (own process, mosquitto)',
  async (dir, metrics) => {
    if (!findMosquitto()) {
      process.stderr.write('flood: skipped, mosquitto is not installed (apt-get install mosquitto)\n');
      return;
    }
    const pki = createDevPki({ dir: join(dir, 'pki'), hubId: HUB });
    const broker = await startMosquitto({ pkiDir: join(dir, 'pki'), extra: ['max_queued_messages 0'] });
    if (!broker) throw new Error('mosquitto did not start');
    const config = writeSiteConfig({
      base: dir,
      brokerUrl: broker.url,
      pki,
      locks: 0,
      commands: ['  lockoutFailures: 1000'],
      // Only problems: a reader of the hub's stdout must not be what the flood measures.
      extra: ['log:', '  level: warn'],
    });
    const cloud = await connectReferenceCloud(broker.url, pki, { otpHubId: HUB });
    let hub: Proc | undefined;
    try {
      hub = await startHub(cloud, config);
      const socket = join(dir, 'run', 'control.sock');
      await flood(cloud, socket, metrics);
      hub = await stopUnderBacklog(cloud, hub, config, metrics);
    } finally {
      hub?.child.kill('SIGKILL');
      await hub?.exit;
      await cloud.close();
      await broker.close();
    }
  },
);

async function startHub(cloud: ReferenceCloud, config: string): Promise<Proc> {
  const seen = cloud.statusHistory(HUB).length;
  const hub = start(['run', '--config', config], {}, CLI);
  await cloud.waitForOnline(HUB, seen, 60_000, 'hub online');
  return hub;
}

/** Envelopes signed now, valid for nine minutes (the longest a backlog may wait is one OTP step). */
function pings(cloud: ReferenceCloud, n: number) {
  return Array.from({ length: n }, () => cloud.envelope(HUB, { op: 'ping' }, { expiresAt: Date.now() + 9 * 60_000 }));
}

async function flood(cloud: ReferenceCloud, socket: string, metrics: Record<string, Metric>): Promise<void> {
  const answered0 = cloud.results(HUB).size;
  const envelopes = pings(cloud, FLOOD).map((e) => JSON.stringify(e));
  const latencies: number[] = [];
  let flooding = true;
  const poll = (async () => {
    while (flooding) {
      const t0 = performance.now();
      await callDaemon(socket, 'status', {}, 30_000);
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const t0 = performance.now();
  await cloud.sendAll(HUB, 'cmd', envelopes);
  await cloud.waitFor((c) => c.results(HUB).size - answered0 >= FLOOD, 600_000, 'the flood answered');
  const seconds = (performance.now() - t0) / 1000;
  flooding = false;
  await poll;
  metrics['uplink.floodStatusLatency'] = distribution('ms', latencies);
  metrics['uplink.floodRate'] = { unit: 'commands/s', value: round(FLOOD / seconds), n: FLOOD };
}

async function stopUnderBacklog(
  cloud: ReferenceCloud,
  hub: Proc,
  config: string,
  metrics: Record<string, Metric>,
): Promise<Proc> {
  hub.child.kill('SIGTERM');
  await hub.exit;
  const answered0 = cloud.results(HUB).size;
  await cloud.sendAll(
    HUB,
    'cmd',
    pings(cloud, BACKLOG).map((e) => JSON.stringify(e)),
  );
  const next = await startHub(cloud, config);
  await cloud.waitFor((c) => c.results(HUB).size - answered0 >= 100, 120_000, 'the backlog under way');
  const t0 = performance.now();
  next.child.kill('SIGTERM');
  const { code } = await next.exit;
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`uplink.stopUnderBacklog: the hub exited ${code}`);
  metrics['uplink.stopUnderBacklog'] = { unit: 'ms', value: round(ms), n: 1 };
  // The rest of the backlog is answered by the next start (and the bench's broker is closed after).
  const last = await startHub(cloud, config);
  await cloud.waitFor((c) => c.results(HUB).size - answered0 >= BACKLOG, 600_000, 'the backlog answered');
  return last;
}
