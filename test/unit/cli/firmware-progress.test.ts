import { describe, expect, it } from 'vitest';
import { follow, type Transfer } from '../../../src/cli/firmware.js';

/** `iqhub firmware push` follows the transfers: bars redrawn in place on a terminal, a line per change otherwise. */

const t = (lockId: string, state: Transfer['state'], sent: number, error: string | null = null): Transfer => ({
  lockId,
  sha256: 'ab'.repeat(32),
  model: 'iq-sim-lock',
  version: '1.1.0',
  state,
  sent,
  size: 1000,
  error,
});

function daemonSaying(rounds: Transfer[][]) {
  let i = 0;
  return async (method: string) => {
    expect(method).toBe('firmware.status');
    return rounds[Math.min(i++, rounds.length - 1)];
  };
}

const rounds = [
  [t('A', 'running', 0), t('B', 'queued', 0)],
  [t('A', 'running', 550), t('B', 'queued', 0)],
  [t('A', 'installed', 1000), t('B', 'running', 100)],
  [t('A', 'installed', 1000), t('B', 'failed', 100, 'lock B did not answer fwBlock')],
];

describe('iqhub firmware push: progress', () => {
  it('on a pipe: one plain line per lock per change of state or tenth of the image, then the final states', async () => {
    let out = '';
    const final = await follow(daemonSaying(rounds), ['A', 'B'], { json: false, tty: false, write: (s) => (out += s) });
    expect(final.map((x) => x.state)).toEqual(['installed', 'failed']);
    expect(out.split('\n').filter(Boolean)).toEqual([
      'A: running 0/1000 bytes',
      'B: queued 0/1000 bytes',
      'A: running 550/1000 bytes',
      'A: installed iq-sim-lock 1.1.0',
      'B: running 100/1000 bytes',
      'B: failed: lock B did not answer fwBlock',
    ]);
    expect(out).not.toContain('\x1b[');
  });

  it('on a terminal: a bar per lock, redrawn in place', async () => {
    let out = '';
    await follow(daemonSaying(rounds), ['A', 'B'], { json: false, tty: true, write: (s) => (out += s) });
    expect(out).toContain('\x1b[2A');
    expect(out).toMatch(/A +\[#{17}\.{13}\] +55% running/);
    expect(out).toMatch(/B .*100% |B .*failed: lock B did not answer fwBlock/);
  });

  it('with --json: nothing while it runs (the caller prints the final states)', async () => {
    let out = '';
    await follow(daemonSaying(rounds), ['A', 'B'], { json: true, tty: true, write: (s) => (out += s) });
    expect(out).toBe('');
  });
});
