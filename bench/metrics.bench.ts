import { systemClock } from '../src/base/clock.js';
import { VERSION } from '../src/base/version.js';
import { Outbox } from '../src/events/outbox.js';
import type { LockSummary } from '../src/link/manager.js';
import { silentLogger } from '../src/log/logger.js';
import { buildRegistry } from '../src/metrics/exporter.js';
import type { MetricsSource } from '../src/metrics/source.js';
import { Store } from '../src/store/store.js';
import { benchmarkInTempDir, distribution, round } from './lib.js';

const QUEUED = 10_000;
const LOCKS = 32;

/**
 * metrics: what the endpoint costs. `metrics.scrape` is one scrape (collect and format every
 * series) on a store whose outbox holds 10,000 rows, with 32 locks: the outbox's COUNT and MIN
 * queries are most of it. `metrics.decisionObserve` is what an access decision pays while metrics
 * are on (one histogram observation); with metrics off it pays one property read.
 */
export const metricsBench = benchmarkInTempDir(
  'metrics',
  'cost of a scrape and of a decision observation',
  async (dir, out) => {
    const store = Store.open(dir);
    try {
      const outbox = new Outbox(store, { clock: systemClock, log: silentLogger() });
      // Rows as the outbox holds them (written directly: the figure is the scrape, not the enqueue).
      const insert = store.db.prepare(
        `INSERT INTO outbox (kind, topic, payload, retain, security, bytes, created_at) VALUES ('event', 'events', ?, 0, 0, ?, ?)`,
      );
      store.db.transaction(() => {
        for (let i = 0; i < QUEUED; i++) {
          const payload = JSON.stringify({
            id: `L-0001/1/${i}`,
            lockId: 'L-0001',
            type: 'opened',
            pad: 'x'.repeat(200),
          });
          insert.run(payload, payload.length, Date.now() - (QUEUED - i) * 1000);
        }
      })();
      const eventsStored = store.db.prepare('SELECT COALESCE(MAX(rowid), 0) AS n FROM lock_events');
      const locks: LockSummary[] = Array.from({ length: LOCKS }, (_, i) => ({
        lockId: `L-${String(i).padStart(4, '0')}`,
        bearer: 'ble',
        address: 'aa:bb:cc:dd:ee:ff',
        state: 'bound',
        quarantineReason: null,
        connected: i % 2 === 0,
        lastSeen: null,
        lastEventSeq: 0,
        sessions: 1,
        failedHandshakes: i,
        rejectedFrames: 0,
        keyFingerprint: 'f',
      }));
      const source: MetricsSource = {
        version: VERSION,
        outbox: () => {
          const d = outbox.depth();
          return { ...d, oldestAgeSec: outbox.oldestAgeSec(), dropped: outbox.dropped() };
        },
        eventsStored: () => (eventsStored.get() as { n: number }).n,
        delivery: () => ({ sent: 10, acknowledged: 9, unacknowledged: 1 }),
        commands: () => ({ accepted: 5, refused: { otp_mismatch: 2 }, lockouts: 0, lockedOutUntil: null }),
        decisions: () => ({ granted: 100, denied: { 'unknown-credential': 3 } }),
        locks: () => locks,
        uplinkConnected: () => true,
        radios: () => [{ kind: 'ble', up: true }],
        storeBytes: () => 0,
        disk: () => ({ free: store.space.free(), full: false }),
      };
      const { registry, hooks } = buildRegistry(source);
      for (let i = 0; i < 20; i++) await registry.metrics();
      const samples: number[] = [];
      let bytes = 0;
      for (let i = 0; i < 200; i++) {
        const t = performance.now();
        bytes = (await registry.metrics()).length;
        samples.push(performance.now() - t);
      }
      out['metrics.scrape'] = distribution('ms', samples);
      out['metrics.scrapeBytes'] = { unit: 'bytes', value: bytes };
      // Of which the outbox's own figures (the same queries the periodic health message runs).
      const outboxSamples: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t = performance.now();
        source.outbox();
        outboxSamples.push(performance.now() - t);
      }
      out['metrics.scrapeOutbox'] = distribution('ms', outboxSamples);

      const observe = hooks.decision as (s: number, ok: boolean) => void;
      const n = 1_000_000;
      for (let i = 0; i < 100_000; i++) observe(0.0002, i % 3 !== 0);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) observe(0.0002 + (i % 7) * 0.00001, i % 3 !== 0);
      out['metrics.decisionObserve'] = { unit: 'ns/decision', value: round(((performance.now() - t0) * 1e6) / n), n };
    } finally {
      store.close();
    }
  },
);
