import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireBuild, start } from '../helpers/daemon.js';
import { killWriterRounds } from '../helpers/killed-writer.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

describe('durability under SIGKILL', () => {
  it('every commit a killed writer reported is in the store, which opens and passes its integrity check (25 kills)', async () => {
    // Killed at a random moment, mid-transaction as often as not.
    const reported = await killWriterRounds({
      fixture: 'test/fixtures/store-writer.js',
      kind: 'crash-test',
      rounds: 25,
      seed: 'crash',
      minDelayMs: 5,
    });
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
