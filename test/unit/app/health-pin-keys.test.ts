import { describe, expect, it } from 'vitest';
import { pinKeySummary } from '../../../src/app/health.js';
import { HEALTH_MAX_LOCK_IDS, type HealthPayload } from '../../../src/contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION } from '../../../src/contract/mqtt-topics.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';

const base: HealthPayload = {
  v: CONTRACT_VERSION,
  at: '2026-11-28T01:00:00.000Z',
  uptimeSec: 5,
  outbox: { depth: 0, oldestAgeSec: null, dropped: 0 },
  radios: [],
  locks: { total: 40, connected: 5, quarantined: 0 },
  certificate: { notAfter: null, daysLeft: null },
};

describe('health: the site PIN key on the locks', () => {
  it('counts the locks not known to hold the current version and names the first of them, within the contract', () => {
    const locks = Array.from({ length: 40 }, (_, i) => ({
      lockId: `L-${String(39 - i).padStart(2, '0')}`,
      version: i < 5 ? 2 : i < 20 ? 1 : undefined,
    }));
    const summary = pinKeySummary({ version: 2, locks });
    expect(summary).toMatchObject({ version: 2, locks: 40, notCurrent: 35 });
    expect(summary.lockIds).toHaveLength(HEALTH_MAX_LOCK_IDS);
    expect(summary.lockIds).toEqual([...summary.lockIds].sort());
    expect(conforms('health', { ...base, pinKeys: summary })).toBe(true);
    expect(conforms('health', { ...base, pinKeys: { ...summary, version: -1 } })).toBe(false);
    expect(conforms('health', { ...base, pinKeys: { ...summary, key: 'x' } })).toBe(false);
    expect(pinKeySummary({ version: 0, locks: [] })).toEqual({ version: 0, locks: 0, notCurrent: 0, lockIds: [] });
  });
});
