import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../src/store/store.js';
import { type Benchmark, distribution, round } from './lib.js';

/**
 * store.commit: durable single-row commits (WAL, synchronous=FULL; each commit fsyncs the WAL).
 * The figure is bounded by the disk's fsync latency, which is what an event append costs.
 */
export const storeCommit: Benchmark = {
  name: 'store.commit',
  description: 'durable single-row commits per second (WAL, synchronous=FULL)',
  async run() {
    const dir = mkdtempSync(join(tmpdir(), 'iqhub-bench-'));
    const store = Store.open(dir);
    try {
      const insert = store.db.prepare("INSERT INTO journal (at, kind, detail) VALUES (?, 'bench', ?)");
      const detail = JSON.stringify({ lockId: 'L-0001', seq: 0, kind: 'opened', by: 'pin' });
      const commit = store.db.transaction(() => insert.run(Date.now(), detail));
      for (let i = 0; i < 50; i++) commit.immediate();
      const n = 2000;
      const samples: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const s = performance.now();
        commit.immediate();
        samples.push(performance.now() - s);
      }
      const seconds = (performance.now() - t0) / 1000;
      return {
        'store.commit': { unit: 'commits/s', value: round(n / seconds), n },
        'store.commitLatency': distribution('ms', samples),
      };
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
