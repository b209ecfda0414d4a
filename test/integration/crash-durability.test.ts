import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/base/random.js';
import { Store } from '../../src/store/store.js';
import { distFile, requireBuild, start } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

describe('durability under SIGKILL', () => {
  it('every commit a killed writer reported is in the store, which opens and passes its integrity check (25 kills)', async () => {
    const dataDir = tempDir();
    const random = new SeededRandom('crash');
    let reported = 0;
    for (let round = 0; round < 25; round++) {
      const p = start([dataDir], {}, distFile('test/fixtures/store-writer.js'));
      await p.waitForOutput('ready\n');
      // Kill at a random moment, mid-transaction as often as not.
      await new Promise((r) => setTimeout(r, 5 + random.int(60)));
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
      expect(store.info.integrity).toBe('ok');
      const present = new Set(
        (store.db.prepare("SELECT id FROM journal WHERE kind = 'crash-test'").all() as { id: number }[]).map(
          (r) => r.id,
        ),
      );
      const missing = ids.filter((id) => !present.has(id));
      expect(missing, `round ${round}: acknowledged commits lost`).toEqual([]);
      store.close();
    }
    // The test only means something if the writers got real work done before dying.
    expect(reported).toBeGreaterThan(100);
  });

  it('the daemon killed with SIGKILL starts again on the same data directory and answers', async () => {
    const base = tempDir();
    const config = join(base, 'config.yaml');
    writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\n`);
    for (let round = 0; round < 5; round++) {
      const d = start(['run', '--config', config]);
      await d.waitForOutput('iq-hub ready');
      d.child.kill('SIGKILL');
      await d.exit;
    }
    const d = start(['run', '--config', config]);
    await d.waitForOutput('iq-hub ready');
    const status = start(['status', '--config', config, '--json']);
    const { code } = await status.exit;
    expect(code, status.stderr()).toBe(0);
    const s = JSON.parse(status.stdout()) as { store: { ok: boolean } };
    expect(s.store.ok).toBe(true);
    d.child.kill('SIGTERM');
    expect((await d.exit).code).toBe(0);
  });
});
