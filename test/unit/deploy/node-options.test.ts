import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { unitEnvironment, unitNodeOptions } from '../../../bench/memory.bench.js';

const UNIT = new URL('../../../systemd/iq-hub.service', import.meta.url);

/**
 * The daemon's node flags live in one place, the unit's `Environment="NODE_OPTIONS=…"`: the
 * memory bench reads them from there, and node must accept every one of them in NODE_OPTIONS (a
 * flag it refuses there stops the daemon from starting at all).
 */
describe("the unit's NODE_OPTIONS", () => {
  const options = unitNodeOptions(readFileSync(UNIT, 'utf8'));

  it('are the young-generation and old-generation limits, read as the bench reads them', () => {
    expect(options).toBe('--max-semi-space-size=1 --max-old-space-size=384');
  });

  it('are accepted by node in NODE_OPTIONS, and take effect', () => {
    const r = spawnSync(
      process.execPath,
      ['-e', 'const v8 = require("node:v8"); process.stdout.write(String(v8.getHeapStatistics().heap_size_limit))'],
      { env: { ...process.env, NODE_OPTIONS: options }, encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    // heap_size_limit = old generation + young generation: well under the default of several GB.
    expect(Number(r.stdout)).toBeLessThan(400 * 1024 * 1024);
    expect(Number(r.stdout)).toBeGreaterThanOrEqual(384 * 1024 * 1024);
  });

  it('parses the unquoted and the quoted forms, and none', () => {
    expect(unitNodeOptions('[Service]\nEnvironment=NODE_OPTIONS=--a\n')).toBe('--a');
    expect(unitNodeOptions('[Service]\nEnvironment="NODE_OPTIONS=--a --b"\n')).toBe('--a --b');
    expect(unitNodeOptions('[Service]\nEnvironment=OTHER=1\n')).toBe('');
    expect(unitEnvironment('Environment="NODE_OPTIONS=--a --b" MALLOC_ARENA_MAX=2\nEnvironment=X=y\n')).toEqual({
      NODE_OPTIONS: '--a --b',
      MALLOC_ARENA_MAX: '2',
      X: 'y',
    });
  });
});
