import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { PtyBridge } from '../sim/emu/pty.js';
import { type RadioSite, startRadioSite } from '../sim/emu/site.js';
import type { HubConfig } from '../src/config/schema.js';
import type { HubStatus } from '../src/contract/control-socket.js';
import { callDaemon } from '../src/control-socket/socket-client.js';
import { type Proc, start } from '../test/helpers/daemon.js';
import { FakeNotifySocket } from '../test/helpers/notify-socket.js';
import { type Benchmark, benchmarkInTempDir, distribution, round, socatOrSkip } from './lib.js';

/** The CLI as compiled: this file runs as dist/bench/startup.bench.js. */
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

const BLE = { deviceId: 'BLE-0001', setupCode: 'BLE1-STRT-CODE', address: 'aa:bb:cc:00:0c:01', radio: 'ble' } as const;
const ZB = { deviceId: 'ZB-0001', setupCode: 'ZB01-STRT-CODE', address: 'zb-start-0001', radio: 'zigbee' } as const;
/** Measured restarts (after one unmeasured priming start that forms the network and attaches both locks). */
const RUNS = 7;
/** How often the bench asks the daemon for its radios (`status` on the control socket), ms. */
const POLL_MS = 5;

/**
 * Start-up of the daemon as systemd sees it, issue 15: `iqhub run` spawned as its own process, the
 * emulated radios (HCI over a socat PTY, Z-Stack over TCP, a SimLock attached on each) in this one.
 *
 * - daemon.startupToReady: from the spawn until READY=1 arrives on the NOTIFY_SOCKET the bench
 *   listens on, data directory resumed (store, storage key, ZigBee network and pairings from the
 *   priming start; the coordinator emulator keeps its network, herdsman resumes).
 * - daemon.startupToRadiosReady: from the same spawn until `iqhub status` (the control socket,
 *   polled every POLL_MS) shows both radio.ble and radio.zigbee running.
 * - daemon.startupToRadiosReady.serialZigbee: the same with ZigBee on a serial port (a socat PTY
 *   bridged to the same emulator) instead of tcp://, as a real USB dongle is. zigbee-herdsman
 *   10.9.5 waits a fixed 1 s on every tcp:// start: its socket path marks the port initialised only
 *   after the bootloader check, whose first ping therefore fails at once ("not initialized"), and
 *   it falls back to the CC2530 bootloader byte and `wait(1000)`. The serial path opens the port
 *   first, the ping is answered, and there is no wait.
 * - daemon.startupCpuToReady: the daemon's own CPU time (user + system) from its start to READY, as
 *   its `iq-hub ready` log line says: what the start costs, less sensitive than wall time to a
 *   machine shared with other work.
 * - daemon.startupLoadAvg1: the 1-minute load average when the runs ended (the machine is shared).
 */
export const startupBench: Benchmark = benchmarkInTempDir(
  'daemon.startup',
  'iqhub run spawned → READY (sd_notify) and → both radios running, resumed data dir, BLE and ZigBee on the emulators, p50/p99',
  async (dir, metrics) => {
    const socat = socatOrSkip('daemon.startup');
    if (!socat) return;
    let site: RadioSite | undefined;
    let bridge: PtyBridge | undefined;
    try {
      site = await startRadioSite({ socat, locks: [BLE, ZB], seed: 'startup-bench' });
      const config = join(dir, 'config.yaml');
      const runDir = join(dir, 'run');
      const writeConfig = (radios: HubConfig['radios']) => {
        // info: the `iq-hub ready` line carries the daemon's own start-up CPU time.
        const hub = { dataDir: join(dir, 'data'), runDir, log: { level: 'info', pretty: false }, radios };
        writeFileSync(config, stringify(hub));
      };
      writeConfig(site.radios);
      const socket = join(runDir, 'control.sock');

      // Priming: the network formed, both locks attached; not measured.
      const first = await timedRun(config, socket, join(dir, 'notify-0.sock'), async () => {
        for (const spec of [BLE, ZB]) {
          site?.locks.get(spec.deviceId)?.presentMaintenanceCard();
          await callDaemon(socket, 'locks.attach', { deviceId: spec.deviceId, setupCode: spec.setupCode }, 60_000);
        }
      });
      process.stderr.write(`daemon.startup: primed (first start ${Math.round(first.radios)} ms to radios)\n`);

      const ready: number[] = [];
      const radios: number[] = [];
      const cpu: number[] = [];
      for (let i = 1; i <= RUNS; i++) {
        const t = await timedRun(config, socket, join(dir, `notify-${i}.sock`));
        ready.push(t.ready);
        radios.push(t.radios);
        cpu.push(t.cpuToReady);
      }
      metrics['daemon.startupToReady'] = distribution('ms', ready);
      metrics['daemon.startupToRadiosReady'] = distribution('ms', radios);
      metrics['daemon.startupCpuToReady'] = distribution('ms', cpu);

      // The same coordinator behind a serial port, as a real dongle.
      bridge = await PtyBridge.open({ socat, path: join(dir, 'znp.pty'), port: Number(new URL(site.znp.url).port) });
      writeConfig({ ...site.radios, zigbee: { ...site.radios.zigbee, port: bridge.path } });
      const serial: number[] = [];
      for (let i = 1; i <= RUNS; i++)
        serial.push((await timedRun(config, socket, join(dir, `notify-s${i}.sock`))).radios);
      metrics['daemon.startupToRadiosReady.serialZigbee'] = distribution('ms', serial);
      metrics['daemon.startupLoadAvg1'] = { unit: 'load', value: round(loadavg()[0] ?? 0) };
    } finally {
      await bridge?.close();
      await site?.close();
    }
  },
);

/**
 * One spawned `iqhub run`: ms from the spawn to READY=1 and to both radios running; then `whileUp`
 * (if any), SIGTERM, and its exit awaited (a clean stop, or the bench fails).
 */
async function timedRun(
  config: string,
  socket: string,
  notifyPath: string,
  whileUp?: () => Promise<void>,
): Promise<{ ready: number; radios: number; cpuToReady: number }> {
  const notify = new FakeNotifySocket(notifyPath);
  let proc: Proc | undefined;
  try {
    const t0 = performance.now();
    proc = start(['run', '--config', config], { NOTIFY_SOCKET: notifyPath }, CLI);
    const exited = proc.exit.then((e) => {
      throw new Error(`the daemon exited during start-up (${e.code ?? e.signal}): ${proc?.stderr()}`);
    });
    exited.catch(() => {});
    const readyAt = await Promise.race([notify.waitFor('READY=1', 60_000), exited]);
    let radiosAt: number | undefined;
    const deadline = t0 + 60_000;
    while (radiosAt === undefined) {
      const status = (await callDaemon(socket, 'status', {}, 5_000).catch(() => undefined)) as HubStatus | undefined;
      const running = (name: string) => status?.components.some((c) => c.name === name && c.state === 'running');
      if (running('radio.ble') && running('radio.zigbee')) radiosAt = performance.now();
      else if (performance.now() > deadline) throw new Error(`radios not running: ${JSON.stringify(status)}`);
      else await new Promise((r) => setTimeout(r, POLL_MS));
    }
    await whileUp?.();
    proc.child.kill('SIGTERM');
    const { code } = await proc.exit;
    if (code !== 0) throw new Error(`the daemon stopped with ${code}: ${proc.stderr()}`);
    // The daemon's own CPU time (user + system) until READY, from its `iq-hub ready` log line.
    const line = proc
      .stdout()
      .split('\n')
      .find((l) => l.includes('"iq-hub ready"'));
    const cpuToReady = line ? ((JSON.parse(line) as { startupCpuMs?: number }).startupCpuMs ?? Number.NaN) : Number.NaN;
    return { ready: readyAt.at - t0, radios: radiosAt - t0, cpuToReady };
  } finally {
    if (proc && proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
    notify.close();
  }
}
