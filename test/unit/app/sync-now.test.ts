import { describe, expect, it } from 'vitest';
import { GAP_REQUEST_MS } from '../../../src/app/inbound.js';
import { HubError } from '../../../src/base/errors.js';
import type { SyncPayload } from '../../../src/contract/mqtt-cloud-messages.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';
import { commandHarness, KEY, OTHER_KEY } from '../../helpers/commands.js';

const takenIn = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

const delta = (id: string, baseVersion: number): SyncPayload => ({
  v: 1,
  id,
  kind: 'delta',
  baseVersion,
  version: baseVersion + 1,
  data: {},
});

describe('syncNow', () => {
  it('publishes sync/request with the mirror version and answers once it is sent', async () => {
    const calls: [string, string][] = [];
    const t = commandHarness({
      requestSync: async (id, reason) => {
        calls.push([id, reason]);
        return { version: 7 };
      },
    });
    const env = await t.run({ op: 'syncNow' });
    expect(calls).toEqual([[env.cmdId, 'command']]);
    const answer = t.last();
    expect(conforms('cmd/result', answer)).toBe(true);
    expect(answer).toEqual({
      v: 1,
      id: env.cmdId,
      ok: true,
      result: { requested: true, requestId: env.cmdId, version: 7 },
    });
  });

  it('a request that cannot be sent is answered with why; the command is not repeated on redelivery', async () => {
    let n = 0;
    const t = commandHarness({
      requestSync: async () => {
        n++;
        throw new HubError('sync.request-not-sent', 'the uplink is not connected: sync/request was not sent');
      },
    });
    const env = await t.run({ op: 'syncNow' });
    expect(t.last()).toMatchObject({ id: env.cmdId, ok: false, error: { code: 'sync.request-not-sent' } });
    await t.send(env);
    expect(n).toBe(1);
  });

  it('a hub without an uplink answers sync.unavailable', async () => {
    const t = commandHarness();
    await t.run({ op: 'syncNow' });
    expect(t.last()).toMatchObject({ ok: false, error: { code: 'sync.unavailable' } });
  });
});

describe('a gap in the syncs', () => {
  it('a delta that does not fit the mirror makes the hub ask for a sync, at most once per GAP_REQUEST_MS', async () => {
    const calls: [string, string][] = [];
    const t = commandHarness({
      requestSync: async (id, reason) => {
        calls.push([id, reason]);
        return { version: 3 };
      },
      sync: {
        apply: async (p) => {
          if (p.kind === 'delta' && p.baseVersion !== 3) {
            throw new HubError('sync.base-mismatch', `delta ${p.id} is based on version ${p.baseVersion}, not 3`);
          }
          return { version: p.version };
        },
      },
    });
    await t.sendRaw('sync', delta('d1', 5));
    await takenIn();
    expect(t.last()).toMatchObject({ id: 'd1', ok: false, error: { code: 'sync.base-mismatch' } });
    expect(calls.map((c) => c[1])).toEqual(['gap']);
    expect(calls[0]?.[0]).toMatch(/^gap-/);
    // Another one at once: no second request (a burst of stale deltas asks once).
    await t.sendRaw('sync', delta('d2', 6));
    await takenIn();
    expect(calls).toHaveLength(1);
    // A delta that fits asks nothing.
    await t.sendRaw('sync', delta('d3', 3));
    await takenIn();
    expect(calls).toHaveLength(1);
    await t.clock.advance(GAP_REQUEST_MS);
    await t.sendRaw('sync', delta('d4', 8));
    await takenIn();
    expect(calls).toHaveLength(2);
  });
});

describe('an OTP key replaced at run time', () => {
  it('the verifier and the setup codes use the delivered key from then on; the counter carries on', async () => {
    const t = commandHarness();
    await t.run({ op: 'ping' });
    expect(t.last()).toMatchObject({ ok: true });
    t.inbound.replaceOtpKey(OTHER_KEY);
    await t.run({ op: 'ping' }, { key: KEY });
    expect(t.last()).toMatchObject({ ok: false, error: { code: 'otp_mismatch' } });
    await t.run({ op: 'attach', lockId: 'NEW-1', args: { setupCode: 'K7Q2-XW9P-33RA' } }, { key: OTHER_KEY });
    expect(t.last()).toMatchObject({ ok: true });
    expect(t.target.setupCodes).toEqual(['K7Q2-XW9P-33RA']);
    expect(t.lastCounter()).toBe(3);
  });

  it('a hub with no key accepts commands once one is delivered', async () => {
    const t = commandHarness({ otpKey: null });
    await t.run({ op: 'ping' });
    expect(t.last()).toMatchObject({ ok: false, error: { code: 'no_otp_key' } });
    t.inbound.replaceOtpKey(KEY);
    await t.run({ op: 'ping' });
    expect(t.last()).toMatchObject({ ok: true });
  });
});
