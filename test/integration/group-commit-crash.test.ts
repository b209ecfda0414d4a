import { describe, expect, it } from 'vitest';
import { requireBuild } from '../helpers/daemon.js';
import { killWriterRounds } from '../helpers/killed-writer.js';

requireBuild();

describe('the group commit under SIGKILL', () => {
  it('every write whose group commit a killed writer was told of is in the store, which opens intact (20 kills)', async () => {
    const reported = await killWriterRounds({
      fixture: 'test/fixtures/group-writer.js',
      kind: 'group-crash',
      rounds: 20,
      seed: 'group-crash',
      minDelayMs: 20,
    });
    expect(reported).toBeGreaterThan(100);
  });
});
