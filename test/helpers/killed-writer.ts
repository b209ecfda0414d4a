import { expect } from 'vitest';
import { SeededRandom } from '../../src/base/random.js';
import { Store } from '../../src/store/store.js';
import { distFile, start } from './daemon.js';
import { tempDir } from './tmp.js';

/**
 * Kill a writer fixture with SIGKILL at a random moment, `rounds` times on one data directory, and
 * after each kill check that the store opens intact and holds every journal row of `kind` whose id
 * the writer printed (it prints an id only once the write was reported durable). Returns how many
 * ids were reported in all, so a test can require that the writers got real work done.
 */
export async function killWriterRounds(o: {
  fixture: string;
  kind: string;
  rounds: number;
  seed: string;
  /** Kill this long after the writer is ready, plus a random 0–60 ms. */
  minDelayMs: number;
}): Promise<number> {
  const dataDir = tempDir();
  const random = new SeededRandom(o.seed);
  let reported = 0;
  for (let round = 0; round < o.rounds; round++) {
    const p = start([dataDir], {}, distFile(o.fixture));
    await p.waitForOutput('ready\n');
    await new Promise((r) => setTimeout(r, o.minDelayMs + random.int(60)));
    p.child.kill('SIGKILL');
    const { signal } = await p.exit;
    expect(signal).toBe('SIGKILL');
    const ids = p
      .stdout()
      .split('\n')
      .filter((l) => /^\d+$/.test(l))
      .map(Number);
    reported += ids.length;

    const store = Store.open(dataDir);
    try {
      expect(store.info.integrity).toBe('ok');
      const present = new Set(
        (store.db.prepare('SELECT id FROM journal WHERE kind = ?').all(o.kind) as { id: number }[]).map((r) => r.id),
      );
      const missing = ids.filter((id) => !present.has(id));
      expect(missing, `round ${round}: writes reported durable were lost`).toEqual([]);
    } finally {
      store.close();
    }
  }
  return reported;
}
