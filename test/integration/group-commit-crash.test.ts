import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/base/random.js';
import { Store } from '../../src/store/store.js';
import { distFile, requireBuild, start } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

describe('the group commit under SIGKILL', () => {
  it('every write whose group commit a killed writer was told of is in the store, which opens intact (20 kills)', async () => {
    const dataDir = tempDir();
    const random = new SeededRandom('group-crash');
    let reported = 0;
    for (let round = 0; round < 20; round++) {
      const p = start([dataDir], {}, distFile('test/fixtures/group-writer.js'));
      await p.waitForOutput('ready\n');
      await new Promise((r) => setTimeout(r, 20 + random.int(60)));
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
        (store.db.prepare("SELECT id FROM journal WHERE kind = 'group-crash'").all() as { id: number }[]).map(
          (r) => r.id,
        ),
      );
      const missing = ids.filter((id) => !present.has(id));
      expect(missing, `round ${round}: writes told committed were lost`).toEqual([]);
      store.close();
    }
    expect(reported).toBeGreaterThan(100);
  });
});
