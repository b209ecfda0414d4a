import type { Bearer } from '../../hal/bearer.js';
import { type Clock, systemClock } from '../base/clock.js';
import type { Component } from '../base/component.js';
import { describeError, HubError } from '../base/errors.js';
import { processHeapSettle } from '../base/heap-settle.js';
import { type Random, systemRandom } from '../base/random.js';
import { VERSION } from '../base/version.js';
import { loadConfig } from '../config/load.js';
import { type MetricsListen, parseMetricsListen } from '../config/metrics-listen.js';
import type { HubConfig } from '../config/schema.js';
import type { ControlServer } from '../control-socket/socket-server.js';
import type { LinkOptions } from '../link/manager.js';
import { routeConsole } from '../log/console.js';
import { prefixLines } from '../log/journal.js';
import { createLogger, type Logger, onJournal } from '../log/logger.js';
import { startFailureExit } from './exit-codes.js';
import { Hub } from './hub.js';
import { hubMetricsSource } from './metrics-source.js';
import { loadDrivers } from './radios.js';
import { createNotifier, startWatchdog, watchdogIntervalMs } from './sd-notify.js';

export { EXIT_CONFIG, EXIT_TEMPFAIL } from './exit-codes.js';

/**
 * A simulated site as the daemon hosts it (simulated locks on an in-memory radio). The daemon
 * never imports the simulation itself: the entry point that may run one (`iqhub run`, the demo,
 * the benches) hands over a loader, called only when `simulation.enabled` is set — so a
 * production start loads no simulated code at all.
 */
export interface SimulatedSite<W> {
  /** The site itself, handed to `onBuilt` (the demo drives its locks). */
  world: W;
  locks: number;
  bearer: Bearer;
  /** Started before the hub's own components, stopped after them. */
  component: Component;
  /** The physical acts on simulated locks, on the control socket. */
  registerMethods(control: ControlServer): void;
}

export type SimulationFactory<W> = (config: HubConfig, clock: Clock, random: Random) => SimulatedSite<W>;

export interface DaemonOptions<W = unknown> {
  /** Config file; undefined = the default path, null = defaults only (the demo). */
  configPath?: string | null | undefined;
  overrides?: Partial<HubConfig>;
  logPretty?: boolean;
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
  random?: Random;
  /** Loads the simulated site; called only when the config enables simulation. */
  simulation?: () => Promise<SimulationFactory<W>>;
  /** Called with the built hub (and the simulated site, if any) before it starts. */
  onBuilt?: (hub: Hub, world: W | undefined) => void;
  /** Called with the started hub, before waiting for a signal (the demo adds its scenario here). */
  onStarted?: (hub: Hub, log: Logger) => Promise<void> | void;
  /** Install SIGTERM/SIGINT handlers (true for `iqhub run`). */
  handleSignals?: boolean;
  /**
   * Route the libraries' console output (noble's warnings) through the logger, once per change,
   * while the daemon runs; `handleSignals` by default (the process is the daemon's own).
   */
  routeConsole?: boolean;
  /** Timing of the lock link; defaults suit real radios. */
  linkOptions?: Partial<LinkOptions>;
}

export interface RunningDaemon {
  hub: Hub;
  log: Logger;
  /** Resolves with the exit code once the daemon has stopped, or once stopping took too long. */
  done: Promise<number>;
  shutdown(reason: string): Promise<number>;
  /** True when `done` came from shutdown.timeoutMs running out while the components still stopped. */
  stopTimedOut(): boolean;
}

/**
 * Start the daemon: config, logger, hub, systemd notification and watchdog, signal handling.
 * Throws a HubError if start-up fails; the caller maps it to an exit code.
 */
export async function startDaemon<W = unknown>(opts: DaemonOptions<W> = {}): Promise<RunningDaemon> {
  const env = opts.env ?? process.env;
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? systemRandom;
  const loaded = loadConfig(opts.configPath, opts.overrides);
  const config = loaded.config;
  const log = createLogger({
    level: config.log.level,
    pretty: opts.logPretty ?? config.log.pretty,
    // Under systemd: each line with its priority, so `journalctl -p err` finds the errors.
    journal: onJournal(env),
  });
  const onBuilt = opts.onBuilt;
  const notifier = createNotifier(env, (e) => log.warn({ err: e }, 'systemd notification failed'));
  const restoreConsole =
    (opts.routeConsole ?? opts.handleSignals) ? routeConsole(log, { now: () => clock.now() }) : undefined;

  log.info({ version: VERSION, config: loaded.source ?? '(defaults)', dataDir: config.dataDir }, 'iq-hub starting');
  let hub: Hub;
  let metrics: { stop(): Promise<void> } | undefined;
  let started: Hub | undefined;
  try {
    // Checked before anything is opened: a refused address is a configuration error (exit 78).
    const metricsAt =
      config.metrics.listen === null
        ? undefined
        : parseMetricsListen(config.metrics.listen, config.metrics.allowRemote);
    const site = config.simulation.enabled ? (await loadSimulation(opts))(config, clock, random) : undefined;
    if (site) log.warn({ locks: site.locks }, 'simulation mode: the locks are simulated, not real');
    const drivers = await loadDrivers(config.radios);
    hub = Hub.build({
      drivers,
      config,
      configSource: loaded.source,
      clock,
      random,
      log,
      env,
      ...(site ? { bearer: site.bearer, before: [site.component] } : {}),
      ...(opts.linkOptions ? { linkOptions: opts.linkOptions } : {}),
    });
    site?.registerMethods(hub.control);
    onBuilt?.(hub, site?.world);
    await hub.start();
    started = hub;
    if (metricsAt) metrics = await startMetricsEndpoint(hub, metricsAt, log);
  } catch (e) {
    notifier.close();
    restoreConsole?.();
    // Started, then the metrics endpoint failed: stop what runs, so the store is closed cleanly.
    await started?.stop().catch(() => undefined);
    throw e;
  }

  const interval = watchdogIntervalMs(env);
  const watchdog = interval && notifier.enabled ? startWatchdog(notifier, interval, clock) : undefined;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  let stopping: Promise<number> | undefined;
  let timedOut = false;

  const shutdown = (reason: string): Promise<number> => {
    stopping ??= (async () => {
      log.info({ reason }, 'iq-hub stopping');
      notifier.notify('STOPPING=1', `STATUS=stopping (${reason})`);
      const deadline = clock.setTimeout(() => {
        log.error({ timeoutMs: config.shutdown.timeoutMs }, 'shutdown took too long; exiting anyway');
        timedOut = true;
        resolveDone(1);
      }, config.shutdown.timeoutMs);
      let code = 0;
      try {
        await metrics?.stop().catch((e) => log.warn({ err: e }, 'the metrics endpoint did not stop cleanly'));
        await hub.stop();
      } catch (e) {
        log.error({ err: e }, 'error while stopping');
        code = 1;
      }
      watchdog?.stop();
      processHeapSettle.cancel(); // a collection still waiting for quiet: none after the stop
      clock.clearTimeout(deadline);
      notifier.close();
      restoreConsole?.();
      log.info({ code }, 'iq-hub stopped');
      resolveDone(code);
      return done;
    })();
    return stopping;
  };

  // Handlers before READY: a stop asked for the moment the daemon is up is an orderly one.
  if (opts.handleSignals) {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void shutdown(sig));
    process.on('SIGHUP', () => log.info('SIGHUP ignored: restart the service to apply a new configuration'));
  }

  // READY once the store, the control socket and the uplink's first attempt are up; the radios
  // start in the background (src/app/radio-start.ts) and STATUS says when they are.
  const running = `running; store schema v${hub.store.info.schemaVersion}`;
  const radios = hub.radios;
  notifier.notify('READY=1', `STATUS=${running}${radios ? '; radios starting' : ''}`, `MAINPID=${process.pid}`);
  // What the start cost this process until now (CPU, and wall time since the process began).
  const cpu = process.cpuUsage();
  log.info(
    {
      socket: hub.control.path,
      watchdogMs: interval ?? null,
      startupMs: Math.round(process.uptime() * 1000),
      startupCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    },
    'iq-hub ready',
  );
  // The start's garbage (the config read, the radios' start) is spread over pages an idle hub keeps:
  // collected once the start is over, and the code only the start ran aged until V8 drops it
  // (docs/operations.md, "Memory").
  if (!radios) processHeapSettle.afterStart();
  void radios?.started().then(() => {
    if (stopping) return;
    processHeapSettle.afterStart();
    const states = radios.members.map((m) => `${m.kind} ${m.state().status}`).join(', ');
    notifier.notify(`STATUS=${running}; radios: ${states}`);
    log.info({ radios: states }, 'radios started');
  });

  try {
    await opts.onStarted?.(hub, log);
  } catch (e) {
    log.error({ err: e }, 'start-up task failed');
    await shutdown('start-up task failed');
  }
  return { hub, log, done, shutdown, stopTimedOut: () => timedOut };
}

/** `iqhub run`: start, wait for a signal, stop, and return the process exit code. */
export async function runDaemon<W>(opts: DaemonOptions<W>): Promise<number> {
  try {
    const d = await startDaemon({ ...opts, handleSignals: true });
    const code = await d.done;
    // Stopping ran past shutdown.timeoutMs: whatever still runs (a lock that does not answer, a
    // broker that does not) must not keep the process alive; systemd would kill it anyway.
    if (d.stopTimedOut()) process.exit(code);
    return code;
  } catch (e) {
    const text = `iq-hub: cannot start: ${describeError(e)}\n`;
    // The journal stores stderr at the unit's SyslogLevel (info) unless the line says otherwise.
    process.stderr.write(onJournal(opts.env ?? process.env, 2) ? prefixLines(text, 3) : text);
    return startFailureExit(e);
  }
}

/** prom-client is imported here only: a hub with metrics off never loads it. */
async function startMetricsEndpoint(hub: Hub, listen: MetricsListen, log: Logger): Promise<{ stop(): Promise<void> }> {
  const { startMetrics } = await import('../metrics/exporter.js');
  const endpoint = await startMetrics({
    listen,
    source: hubMetricsSource(hub),
    log: log.child({ component: 'metrics' }),
  });
  Object.assign(hub.metricsHooks, endpoint.hooks);
  return {
    stop: async () => {
      hub.metricsHooks.decision = undefined;
      await endpoint.stop();
    },
  };
}

function loadSimulation<W>(opts: DaemonOptions<W>): Promise<SimulationFactory<W>> {
  if (!opts.simulation) {
    throw new HubError(
      'config.simulation',
      'simulation.enabled is set, but this program does not include the simulation',
      {
        hint: 'set simulation.enabled to false on a real hub; the simulation runs under `iqhub run`, `iqhub demo` and the tests',
      },
    );
  }
  return opts.simulation();
}
