import { describe, expect, it } from 'vitest';
import { commandSummary, healthCheck, offlineSummary, pinKeySummary } from '../../../src/app/health.js';
import type { HubStatus } from '../../../src/contract/control-socket.js';
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

describe('health: the offline lists', () => {
  it('counts the locks whose list is not up to date and names the first of them by id, within the contract', () => {
    const locks = Array.from({ length: 40 }, (_, i) => ({
      lockId: `L-${String(39 - i).padStart(2, '0')}`,
      upToDate: i < 5,
    }));
    const summary = offlineSummary(locks);
    expect(summary.locks).toBe(40);
    expect(summary.notUpToDate).toBe(35);
    expect(summary.lockIds).toHaveLength(HEALTH_MAX_LOCK_IDS);
    expect(summary.lockIds[0]).toBe('L-00');
    expect(summary.lockIds).toEqual([...summary.lockIds].sort());
    expect(conforms('health', { ...base, offlineLists: summary })).toBe(true);
    // Without lists (a hub that keeps none) the field is absent, and that conforms too.
    expect(conforms('health', base)).toBe(true);
  });

  it('the contract refuses a longer list of ids or a negative count', () => {
    const ids = Array.from({ length: HEALTH_MAX_LOCK_IDS + 1 }, (_, i) => `L-${i}`);
    expect(conforms('health', { ...base, offlineLists: { locks: 40, notUpToDate: 33, lockIds: ids } })).toBe(false);
    expect(conforms('health', { ...base, offlineLists: { locks: 1, notUpToDate: -1, lockIds: [] } })).toBe(false);
    expect(conforms('health', { ...base, offlineLists: { locks: 1, notUpToDate: 0, lockIds: ['../x'] } })).toBe(false);
  });
});

describe('health: remote commands', () => {
  it('the verifier counts as the contract has them: refused codes with a count only, the lockout time or null', () => {
    const running = commandSummary({
      accepted: 12,
      refused: { otp_mismatch: 5, locked_out: 3, expired: 0 },
      lockouts: 1,
      lockedOutUntil: '2026-11-28T01:01:00.000Z',
    });
    expect(running).toEqual({
      accepted: 12,
      refused: { otp_mismatch: 5, locked_out: 3 },
      lockouts: 1,
      lockedOutUntil: '2026-11-28T01:01:00.000Z',
    });
    expect(conforms('health', { ...base, commands: running })).toBe(true);
    const quiet = commandSummary({ accepted: 0, refused: {}, lockouts: 0, lockedOutUntil: null });
    expect(conforms('health', { ...base, commands: quiet })).toBe(true);
  });

  it('the contract refuses a negative count, a code that is not one, or a missing lockout field', () => {
    const ok = { accepted: 1, refused: {}, lockouts: 0, lockedOutUntil: null };
    expect(conforms('health', { ...base, commands: { ...ok, accepted: -1 } })).toBe(false);
    expect(conforms('health', { ...base, commands: { ...ok, refused: { 'otp mismatch!': 1 } } })).toBe(false);
    expect(conforms('health', { ...base, commands: { ...ok, refused: { otp_mismatch: -2 } } })).toBe(false);
    const { lockedOutUntil: _gone, ...partial } = ok;
    expect(conforms('health', { ...base, commands: partial })).toBe(false);
  });
});

describe('health: event delivery', () => {
  it('the delivery state is in the contract; an unknown state, rule or a negative count is not', () => {
    const delivery = {
      ack: 'required',
      state: 'not-acknowledged',
      unacknowledged: 12,
      oldestUnacknowledgedSec: 301,
      lastAckAt: null,
    } as const;
    expect(conforms('health', { ...base, delivery })).toBe(true);
    expect(conforms('health', { ...base, delivery: { ...delivery, state: 'refused', ack: 'off' } })).toBe(true);
    expect(conforms('health', { ...base, delivery: { ...delivery, state: 'lost' } })).toBe(false);
    expect(conforms('health', { ...base, delivery: { ...delivery, ack: 'maybe' } })).toBe(false);
    expect(conforms('health', { ...base, delivery: { ...delivery, unacknowledged: -1 } })).toBe(false);
    expect(conforms('health', { ...base, delivery: { ...delivery, extra: 1 } })).toBe(false);
  });
});

describe('health: the disk', () => {
  it('full with what it means, or not full with no detail, within the contract; nothing else', () => {
    const detail = 'disk full at /var/lib/iq-hub: events are kept on the locks until space returns';
    expect(conforms('health', { ...base, disk: { full: true, detail } })).toBe(true);
    expect(conforms('health', { ...base, disk: { full: false, detail: null } })).toBe(true);
    expect(conforms('health', { ...base, disk: { full: true } })).toBe(false);
    expect(conforms('health', { ...base, disk: { full: 'yes', detail: null } })).toBe(false);
    expect(conforms('health', { ...base, disk: { full: false, detail: null, freeMB: 3 } })).toBe(false);
  });
});

describe('health check (iqhub status --check)', () => {
  const status = (over: Partial<HubStatus> = {}): HubStatus => ({
    version: '0.1.0',
    pid: 1,
    startedAt: '2026-12-07T06:00:00.000Z',
    uptimeSec: 60,
    configSource: null,
    dataDir: '/var/lib/iq-hub',
    storageKey: { origin: 'key-file', path: '/var/lib/iq-hub/storage-key' },
    store: { ok: true, schemaVersion: 7, walPages: 0, path: '/var/lib/iq-hub/hub.db', diskFull: null },
    components: [
      { name: 'disk', state: 'running' },
      { name: 'uplink', state: 'running', detail: 'hub-1 connected' },
      { name: 'radio.ble', state: 'running' },
    ],
    ...over,
  });

  it('healthy when every component runs and the store and its disk are fine', () => {
    expect(healthCheck(status(), undefined)).toEqual({ healthy: true, problems: [] });
  });

  it('degraded with the uplink down, a radio down, the disk full or the store failing, each named', () => {
    const down = status({
      components: [
        { name: 'uplink', state: 'degraded', detail: 'hub-1 disconnected, last error ECONNREFUSED' },
        { name: 'radio.zigbee', state: 'degraded', detail: 'no adapter' },
      ],
    });
    const r = healthCheck(down, undefined);
    expect(r.healthy).toBe(false);
    expect(r.problems).toEqual([
      'uplink degraded: hub-1 disconnected, last error ECONNREFUSED',
      'radio.zigbee degraded: no adapter',
    ]);
    const full = healthCheck(
      status({ store: { ...status().store, ok: false, diskFull: 'disk full at /var/lib/iq-hub: …' } }),
      undefined,
    );
    expect(full.healthy).toBe(false);
    expect(full.problems).toEqual(['store failing (/var/lib/iq-hub/hub.db)', 'disk full at /var/lib/iq-hub: …']);
    const stopped = healthCheck(status({ components: [{ name: 'uplink', state: 'stopped' }] }), undefined);
    expect(stopped).toEqual({ healthy: false, problems: ['uplink stopped'] });
  });

  it('the health message saying the disk is full is enough', () => {
    const health = { disk: { full: true, detail: 'below the reserve' } } as unknown as HealthPayload;
    expect(healthCheck(status(), health)).toEqual({ healthy: false, problems: ['disk full: below the reserve'] });
  });
});

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
