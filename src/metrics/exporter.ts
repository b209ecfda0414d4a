import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { HubError } from '../base/errors.js';
import { socketAnswers } from '../base/unix-socket.js';
import { isLoopback, type MetricsListen } from '../config/metrics-listen.js';
import { ACCESS_REASONS } from '../contract/link-messages.js';
import { REFUSAL_CODES } from '../contract/mqtt-cloud-messages.js';
import type { Logger } from '../log/logger.js';
import type { MetricsHooks, MetricsSource } from './source.js';

/**
 * The Prometheus endpoint (docs/operations.md, "Metrics"). Loaded only when `metrics.listen` is
 * set: a hub with metrics off never loads prom-client. Every series but the decision histogram is
 * read from `MetricsSource` when scraped.
 */
export interface MetricsEndpoint {
  /** `host:port` (the port actually bound) or the socket path. */
  address: string;
  hooks: MetricsHooks;
  stop(): Promise<void>;
}

const PAIRING_STATES = ['attaching', 'bound', 'detaching', 'quarantined'] as const;
/** From a map lookup (tens of µs) to a digital key's signature checks on a slow board. */
const DECISION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

export function buildRegistry(from: MetricsSource): { registry: Registry; hooks: MetricsHooks } {
  const source = oncePerScrape(from);
  const registry = new Registry();
  const registers = [registry];
  const gauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    collect: (g: Gauge<L>) => void,
  ) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers,
      collect() {
        collect(this);
      },
    });
  // A counter whose total is kept elsewhere: set to that total at each scrape.
  const counter = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    values: () => [Partial<Record<L, string>>, number][],
  ) =>
    new Counter<L>({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const [labels, v] of values()) this.inc(labels, Math.max(0, v));
      },
    });

  gauge('iqhub_info', 'Always 1; the daemon version in a label', ['version'], (g) =>
    g.set({ version: source.version }, 1),
  );
  gauge('iqhub_outbox_depth', 'Rows queued for the cloud', ['kind'], (g) => {
    const o = source.outbox();
    g.set({ kind: 'event' }, o?.events ?? 0);
    g.set({ kind: 'message' }, o?.messages ?? 0);
  });
  gauge('iqhub_outbox_bytes', 'Bytes queued for the cloud', [], (g) => g.set(source.outbox()?.bytes ?? 0));
  gauge('iqhub_outbox_oldest_age_seconds', 'Age of the oldest queued row (0 when empty)', [], (g) =>
    g.set(source.outbox()?.oldestAgeSec ?? 0),
  );
  counter('iqhub_outbox_dropped_total', 'Events dropped under the outbox size bound, ever', [], () => [
    [{}, source.outbox()?.dropped ?? 0],
  ]);
  counter('iqhub_events_stored_total', 'Lock events stored, ever', [], () => [[{}, source.eventsStored()]]);
  counter('iqhub_events_sent_total', 'Events the broker took (PUBACK), since start', [], () => [
    [{}, source.delivery()?.sent ?? 0],
  ]);
  counter('iqhub_events_acknowledged_total', 'Events the cloud acknowledged (events/ack), since start', [], () => [
    [{}, source.delivery()?.acknowledged ?? 0],
  ]);
  gauge('iqhub_events_unacknowledged', 'Events published and awaiting the cloud ack', [], (g) =>
    g.set(source.delivery()?.unacknowledged ?? 0),
  );
  counter('iqhub_commands_accepted_total', 'Remote commands accepted, since start', [], () => [
    [{}, source.commands()?.accepted ?? 0],
  ]);
  counter('iqhub_commands_refused_total', 'Remote commands refused, by code, since start', ['code'], () => {
    const refused = source.commands()?.refused ?? {};
    return REFUSAL_CODES.map((code) => [{ code }, refused[code] ?? 0]);
  });
  counter('iqhub_commands_lockouts_total', 'Remote-command lockouts begun, since start', [], () => [
    [{}, source.commands()?.lockouts ?? 0],
  ]);
  gauge('iqhub_commands_locked_out', '1 while remote commands are locked out', [], (g) =>
    g.set(source.commands()?.lockedOutUntil ? 1 : 0),
  );
  counter('iqhub_access_decisions_total', 'Access decisions, since start', ['result', 'reason'], () => {
    const d = source.decisions();
    const out: [Partial<Record<'result' | 'reason', string>>, number][] = [
      [{ result: 'granted', reason: 'granted' }, d.granted],
    ];
    for (const reason of ACCESS_REASONS) {
      if (reason !== 'granted') out.push([{ result: 'denied', reason }, d.denied[reason] ?? 0]);
    }
    return out;
  });
  const decision = new Histogram<'result'>({
    name: 'iqhub_access_decision_seconds',
    help: 'Time the hub took to decide on an access request',
    labelNames: ['result'],
    buckets: DECISION_BUCKETS,
    registers,
  });
  // Both series exist from the start, so a dashboard sees them before the first denial.
  decision.zero({ result: 'granted' });
  decision.zero({ result: 'denied' });
  const granted = decision.labels({ result: 'granted' });
  const denied = decision.labels({ result: 'denied' });

  gauge('iqhub_lock_connected', '1 while the hub holds a link to the lock', ['lock_id', 'bearer'], (g) => {
    g.reset();
    for (const l of source.locks()) g.set({ lock_id: l.lockId, bearer: l.bearer }, l.connected ? 1 : 0);
  });
  gauge('iqhub_lock_state', "1 for the lock's pairing state, 0 for the others", ['lock_id', 'state'], (g) => {
    g.reset();
    for (const l of source.locks()) {
      for (const state of PAIRING_STATES) g.set({ lock_id: l.lockId, state }, l.state === state ? 1 : 0);
    }
  });
  counter('iqhub_lock_handshake_failures_total', 'Handshakes the lock failed or refused, ever', ['lock_id'], () =>
    source.locks().map((l) => [{ lock_id: l.lockId }, l.failedHandshakes]),
  );
  gauge('iqhub_uplink_connected', '1 while connected to the broker', [], (g) =>
    g.set(source.uplinkConnected() ? 1 : 0),
  );
  gauge('iqhub_radio_up', '1 when the radio is ready', ['radio'], (g) => {
    g.reset();
    for (const r of source.radios()) g.set({ radio: r.kind }, r.up ? 1 : 0);
  });
  gauge('iqhub_store_bytes', "The store's files (database and WAL)", [], (g) => g.set(source.storeBytes()));
  gauge('iqhub_disk_free_bytes', "Bytes the daemon may still write on the data directory's file system", [], (g) =>
    g.set(source.disk().free),
  );
  gauge('iqhub_disk_full', "1 while the data directory's disk is full", [], (g) => g.set(source.disk().full ? 1 : 0));
  collectDefaultMetrics({ register: registry, prefix: 'iqhub_' });

  return {
    registry,
    hooks: { decision: (seconds, ok) => (ok ? granted : denied).observe(seconds) },
  };
}

/**
 * Each figure read once per scrape, though several series show it (the outbox's four, the locks'
 * three): prom-client calls every collect() in one synchronous run, so a value read is kept until
 * the next microtask, when that run is over.
 */
function oncePerScrape(source: MetricsSource): MetricsSource {
  const cache = new Map<string, unknown>();
  const once =
    <T>(name: string, read: () => T) =>
    (): T => {
      if (!cache.has(name)) {
        if (cache.size === 0) queueMicrotask(() => cache.clear());
        cache.set(name, read());
      }
      return cache.get(name) as T;
    };
  return {
    version: source.version,
    outbox: once('outbox', () => source.outbox()),
    eventsStored: once('eventsStored', () => source.eventsStored()),
    delivery: once('delivery', () => source.delivery()),
    commands: once('commands', () => source.commands()),
    decisions: once('decisions', () => source.decisions()),
    locks: once('locks', () => source.locks()),
    uplinkConnected: once('uplinkConnected', () => source.uplinkConnected()),
    radios: once('radios', () => source.radios()),
    storeBytes: once('storeBytes', () => source.storeBytes()),
    disk: once('disk', () => source.disk()),
  };
}

export async function startMetrics(o: {
  listen: MetricsListen;
  source: MetricsSource;
  log: Logger;
}): Promise<MetricsEndpoint> {
  const { registry, hooks } = buildRegistry(o.source);
  const server = createServer(
    { requestTimeout: 10_000, headersTimeout: 5_000 },
    (req, res) => void serve(registry, o.log, req, res),
  );
  server.maxConnections = 16;
  const where = o.listen.kind === 'unix' ? o.listen.path : `${o.listen.host}:${o.listen.port}`;
  if (o.listen.kind === 'unix') await prepareSocketPath(o.listen.path);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const done = () => {
        server.off('error', reject);
        resolve();
      };
      if (o.listen.kind === 'unix') server.listen(o.listen.path, done);
      else server.listen({ host: o.listen.host, port: o.listen.port, exclusive: true }, done);
    });
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code;
    if (errno === 'EADDRINUSE') {
      throw new HubError('metrics.in-use', `metrics.listen: ${where} is in use by another program`, {
        hint: 'stop what listens there, or choose another metrics.listen',
      });
    }
    throw new HubError('metrics.listen', `metrics.listen: cannot listen on ${where}: ${errno ?? String(e)}`, {
      hint: 'check that the address exists on this machine, or that the socket directory exists and is writable by the daemon (e.g. /run/iq-hub)',
    });
  }
  // Group members may scrape a socket, like the CLI's control socket.
  if (o.listen.kind === 'unix') chmodSync(o.listen.path, 0o660);
  server.on('error', (e) => o.log.error({ err: e }, 'metrics endpoint error'));
  const bound = server.address();
  const address =
    typeof bound === 'object' && bound
      ? `${o.listen.kind === 'tcp' && bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`
      : where;
  if (o.listen.kind === 'tcp' && !isLoopback(o.listen.host)) {
    // metrics.allowRemote: the operator's choice, said once at every start.
    o.log.warn(
      { address },
      'metrics endpoint listening outside loopback, without authentication (metrics.allowRemote)',
    );
  } else {
    o.log.info({ address }, 'metrics endpoint listening');
  }
  return {
    address,
    hooks,
    stop: () => stopServer(server, o.listen),
  };
}

async function serve(registry: Registry, log: Logger, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/metrics') {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: the metrics are at /metrics\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
    return;
  }
  try {
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (e) {
    log.warn({ err: e }, 'metrics scrape failed');
    res
      .writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
      .end('metrics could not be collected; see the log\n');
  }
}

/**
 * A socket file left by a killed daemon is removed; one that answers is another daemon's (refused);
 * anything that is not a socket is never removed (a wrong path must not delete a file).
 */
async function prepareSocketPath(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) {
    throw new HubError('config.metrics', `metrics.listen: ${path} exists and is not a unix socket`, {
      hint: 'name a path of its own for the socket, e.g. /run/iq-hub/metrics.sock',
    });
  }
  const alive = await socketAnswers(path);
  if (alive) {
    throw new HubError('metrics.in-use', `metrics.listen: something is answering on ${path}`, {
      hint: 'stop the other daemon, or choose another metrics.listen',
    });
  }
  unlinkSync(path);
}

async function stopServer(server: Server, listen: MetricsListen): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  if (listen.kind === 'unix') {
    try {
      unlinkSync(listen.path);
    } catch {
      // already gone
    }
  }
}
