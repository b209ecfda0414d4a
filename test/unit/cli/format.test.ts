import { describe, expect, it } from 'vitest';
import { formatCommands } from '../../../src/cli/format.js';
import type { RecentCommand } from '../../../src/contract/control-socket.js';

const stats = { accepted: 3, refused: {}, lockouts: 0, lockedOutUntil: null };
const command = (over: Partial<RecentCommand>): RecentCommand => ({
  cmdId: 'c1',
  op: 'open',
  lockId: 'SIM-0001',
  counter: 7,
  receivedAt: '2026-11-28T03:00:00.000Z',
  state: 'answered',
  ok: true,
  code: null,
  ...over,
});

describe('iqhub commands, for people', () => {
  it('counts, then one line per command with its outcome', () => {
    const out = formatCommands({
      stats: { ...stats, refused: { otp_mismatch: 2, expired: 1 } },
      recent: [
        command({ cmdId: 'c3', state: 'acting', ok: null }),
        command({ cmdId: 'c2', ok: false, code: 'lock.unreachable', op: 'getState' }),
        command({ cmdId: 'c1', op: 'ping', lockId: null, counter: null }),
      ],
    });
    expect(out).toContain('since the daemon started: 3 accepted, 3 refused (expired 1, otp_mismatch 2); 0 lockout(s)');
    expect(out).not.toContain('LOCKED OUT');
    const lines = out.trimEnd().split('\n');
    expect(lines.at(-4)).toMatch(/^accepted\s+cmdId\s+op\s+lock\s+counter\s+outcome$/);
    expect(lines.at(-3)).toMatch(/c3\s+open\s+SIM-0001\s+7\s+acting now$/);
    expect(lines.at(-2)).toMatch(/c2\s+getState\s+SIM-0001\s+7\s+lock\.unreachable$/);
    expect(lines.at(-1)).toMatch(/c1\s+ping\s+-\s+-\s+ok$/);
  });

  it('says a lockout loudly, explains an interrupted command, and says when nothing was accepted', () => {
    const locked = formatCommands({
      stats: { ...stats, lockouts: 1, lockedOutUntil: '2026-11-28T03:01:00.000Z' },
      recent: [command({ state: 'interrupted', ok: null })],
    });
    expect(locked).toContain('LOCKED OUT until 2026-11-28T03:01:00.000Z');
    expect(locked).toMatch(/interrupted\n\ninterrupted: the hub stopped while carrying it out/);
    expect(formatCommands({ stats, recent: [] })).toContain(
      'no remote command accepted (refused ones are only counted)',
    );
  });
});
