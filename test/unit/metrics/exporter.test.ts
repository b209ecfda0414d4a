import { lstatSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DecisionCounts } from '../../../src/access/decide.js';
import { HubError } from '../../../src/base/errors.js';
import { isLoopback, parseMetricsListen } from '../../../src/config/metrics-listen.js';
import type { VerifierStats } from '../../../src/contract/control-socket.js';
import type { LockSummary } from '../../../src/link/manager.js';
import { silentLogger } from '../../../src/log/logger.js';
import { type MetricsEndpoint, startMetrics } from '../../../src/metrics/exporter.js';
import type { MetricsSource } from '../../../src/metrics/source.js';
import { capturingLogger, summary } from '../../helpers/commands.js';
import { documentedSeries, get, sample } from '../../helpers/metrics.js';
import { refusal } from '../../helpers/refusal.js';
import { tempDir } from '../../helpers/tmp.js';

class FakeSource implements MetricsSource {
  version = '9.9.9';
  depth = { events: 0, messages: 0, bytes: 0, oldestAgeSec: null as number | null, dropped: 0 };
  stats: VerifierStats | undefined = { accepted: 0, refused: {}, lockouts: 0, lockedOutUntil: null };
  counts: DecisionCounts = { granted: 0, denied: {} };
  lockList: LockSummary[] = [{ ...summary('L1'), failedHandshakes: 2 }];
  outbox = () => this.depth;
  eventsStored = () => 7;
  delivery = () => ({ sent: 3, acknowledged: 2, unacknowledged: 1 });
  commands = () => this.stats;
  decisions = () => this.counts;
  locks = () => this.lockList;
  uplinkConnected = () => true;
  radios = () => [{ kind: 'ble', up: false }];
  storeBytes = () => 4096;
  disk = () => ({ free: 123456, full: false });
}

const open: MetricsEndpoint[] = [];
afterEach(async () => {
  for (const e of open.splice(0)) await e.stop();
});

async function serve(source: MetricsSource, listen: Parameters<typeof startMetrics>[0]['listen']) {
  const ep = await startMetrics({ listen, source, log: silentLogger() });
  open.push(ep);
  return ep;
}

describe('metrics.listen', () => {
  it('takes loopback addresses and unix socket paths', () => {
    expect(parseMetricsListen('127.0.0.1:9464', false)).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 9464 });
    expect(parseMetricsListen('127.8.9.1:1', false)).toEqual({ kind: 'tcp', host: '127.8.9.1', port: 1 });
    expect(parseMetricsListen('[::1]:9464', false)).toEqual({ kind: 'tcp', host: '::1', port: 9464 });
    expect(parseMetricsListen('/run/iq-hub/metrics.sock', false)).toEqual({
      kind: 'unix',
      path: '/run/iq-hub/metrics.sock',
    });
  });

  it('refuses an address outside loopback unless allowRemote, naming the key and what to do', () => {
    for (const a of ['0.0.0.0:9464', '192.168.1.10:9464', '[::]:9464', '[fe80::1]:9464', '[::ffff:10.0.0.1]:9464']) {
      const e = refusal(() => parseMetricsListen(a, false));
      expect(e.code, a).toBe('config.metrics');
      expect(e.message).toContain('not a loopback address');
      expect(e.hint).toContain('metrics.allowRemote');
      expect(parseMetricsListen(a, true).kind).toBe('tcp');
    }
  });

  it('refuses host names, missing or bad ports, and a socket path too long for the kernel', () => {
    for (const a of [
      'localhost:9464',
      '127.0.0.1',
      '127.0.0.1:0',
      '127.0.0.1:70000',
      '[127.0.0.1]:9464',
      '::1:9464',
      '999.0.0.1:80',
    ]) {
      const e = refusal(() => parseMetricsListen(a, true));
      expect(e, a).toBeInstanceOf(HubError);
      expect(e.code).toBe('config.metrics');
      expect(e.hint).toContain('127.0.0.1:9464');
    }
    expect(refusal(() => parseMetricsListen(`/${'x'.repeat(120)}`, true)).message).toContain('at most 107');
  });

  it('knows loopback', () => {
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopback('128.0.0.1')).toBe(false);
    expect(isLoopback('::ffff:10.0.0.1')).toBe(false);
    expect(isLoopback('::')).toBe(false);
  });
});

describe('the metrics endpoint', () => {
  it('serves every documented series in the Prometheus text format, read at each scrape', async () => {
    const src = new FakeSource();
    const ep = await serve(src, { kind: 'tcp', host: '127.0.0.1', port: 0 });
    const port = Number(ep.address.split(':').at(-1));
    const first = await get({ port });
    expect(first.status).toBe(200);
    expect(first.type).toContain('text/plain; version=0.0.4');
    const names = documentedSeries();
    expect(names.length).toBeGreaterThan(20);
    for (const n of names) expect(first.body, n).toMatch(new RegExp(`^# TYPE ${n} `, 'm'));
    expect(sample(first.body, 'iqhub_info{version="9.9.9"}')).toBe(1);
    expect(sample(first.body, 'iqhub_events_stored_total')).toBe(7);
    expect(sample(first.body, 'iqhub_lock_handshake_failures_total{lock_id="L1"}')).toBe(2);
    expect(sample(first.body, 'iqhub_lock_state{lock_id="L1",state="bound"}')).toBe(1);
    expect(sample(first.body, 'iqhub_lock_state{lock_id="L1",state="quarantined"}')).toBe(0);
    expect(sample(first.body, 'iqhub_radio_up{radio="ble"}')).toBe(0);
    expect(sample(first.body, 'iqhub_commands_refused_total{code="expired"}')).toBe(0);
    expect(sample(first.body, 'iqhub_outbox_oldest_age_seconds')).toBe(0);
    expect(first.body).toMatch(/^iqhub_process_cpu_seconds_total /m);

    src.depth = { events: 4, messages: 1, bytes: 900, oldestAgeSec: 30, dropped: 0 };
    src.stats = { accepted: 1, refused: { otp_mismatch: 3 }, lockouts: 1, lockedOutUntil: '2026-01-01T00:00:00.000Z' };
    src.counts = { granted: 2, denied: { 'unknown-credential': 1 } };
    src.lockList = [];
    ep.hooks.decision?.(0.0003, true);
    ep.hooks.decision?.(0.2, false);
    const second = (await get({ port })).body;
    expect(sample(second, 'iqhub_outbox_depth{kind="event"}')).toBe(4);
    expect(sample(second, 'iqhub_outbox_oldest_age_seconds')).toBe(30);
    expect(sample(second, 'iqhub_commands_refused_total{code="otp_mismatch"}')).toBe(3);
    expect(sample(second, 'iqhub_commands_locked_out')).toBe(1);
    expect(sample(second, 'iqhub_access_decisions_total{result="denied",reason="unknown-credential"}')).toBe(1);
    expect(sample(second, 'iqhub_access_decision_seconds_count{result="granted"}')).toBe(1);
    expect(sample(second, 'iqhub_access_decision_seconds_bucket{le="0.0005",result="granted"}')).toBe(1);
    expect(sample(second, 'iqhub_access_decision_seconds_bucket{le="0.1",result="denied"}')).toBe(0);
    // A forgotten lock leaves the per-lock series.
    expect(second).not.toContain('lock_id="L1"');
  });

  it('answers 404 off /metrics and 405 to anything but GET and HEAD, changing nothing', async () => {
    const ep = await serve(new FakeSource(), { kind: 'tcp', host: '127.0.0.1', port: 0 });
    const port = Number(ep.address.split(':').at(-1));
    expect((await get({ port }, '/')).status).toBe(404);
    expect((await get({ port }, '/metrics/../admin')).status).toBe(404);
    expect((await get({ port }, '/metrics', 'POST')).status).toBe(405);
    expect((await get({ port }, '/metrics', 'DELETE')).status).toBe(405);
    expect((await get({ port }, '/metrics', 'HEAD')).status).toBe(200);
  });

  it('a scrape that fails inside answers 500 and the endpoint keeps serving', async () => {
    const src = new FakeSource();
    const ep = await serve(src, { kind: 'tcp', host: '127.0.0.1', port: 0 });
    const port = Number(ep.address.split(':').at(-1));
    src.outbox = () => {
      throw new Error('database is closed');
    };
    expect((await get({ port })).status).toBe(500);
    src.outbox = () => src.depth;
    expect((await get({ port })).status).toBe(200);
  });

  it('on a unix socket: mode 0660, a stale socket replaced, removed at stop', async () => {
    const dir = tempDir();
    const path = join(dir, 'metrics.sock');
    const first = await startMetrics({ listen: { kind: 'unix', path }, source: new FakeSource(), log: silentLogger() });
    expect(statSync(path).mode & 0o777).toBe(0o660);
    expect((await get({ socketPath: path })).status).toBe(200);
    // A second endpoint on a live socket is refused (another daemon answers there).
    await expect(
      startMetrics({ listen: { kind: 'unix', path }, source: new FakeSource(), log: silentLogger() }),
    ).rejects.toMatchObject({
      code: 'metrics.in-use',
    });
    await first.stop();
    expect(() => lstatSync(path)).toThrow();
    const again = await serve(new FakeSource(), { kind: 'unix', path });
    expect(again.address).toBe(path);
  });

  it('never deletes a file that is not a socket at the configured path', async () => {
    const path = join(tempDir(), 'hub.db');
    writeFileSync(path, 'precious');
    await expect(serve(new FakeSource(), { kind: 'unix', path })).rejects.toMatchObject({ code: 'config.metrics' });
    expect(readFileSync(path, 'utf8')).toBe('precious');
  });

  it('a TCP port in use is metrics.in-use (transient: exit 75)', async () => {
    const ep = await serve(new FakeSource(), { kind: 'tcp', host: '127.0.0.1', port: 0 });
    const port = Number(ep.address.split(':').at(-1));
    await expect(serve(new FakeSource(), { kind: 'tcp', host: '127.0.0.1', port })).rejects.toMatchObject({
      code: 'metrics.in-use',
    });
  });

  it('listening outside loopback (allowRemote) is said as a warning at every start', async () => {
    const { log, text } = capturingLogger();
    const ep = await startMetrics({ listen: { kind: 'tcp', host: '0.0.0.0', port: 0 }, source: new FakeSource(), log });
    open.push(ep);
    expect(text()).toMatch(/"level":"warn".*outside loopback, without authentication/);
    const local = capturingLogger();
    open.push(
      await startMetrics({
        listen: { kind: 'tcp', host: '127.0.0.1', port: 0 },
        source: new FakeSource(),
        log: local.log,
      }),
    );
    expect(local.text()).not.toContain('"level":"warn"');
  });
});
