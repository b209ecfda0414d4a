import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Attack, type CommandSpec, ReferenceCloud } from '../../../sim/cloud/cloud.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { SeededRandom } from '../../../src/base/random.js';
import { type CommandEnvelope, openSetupCode, otpMatches } from '../../../src/commands/otp.js';
import { CommandVerifier } from '../../../src/commands/verifier.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';
import { Secret } from '../../../src/crypto/secret.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import { tempDir } from '../../helpers/tmp.js';

const HUB = 'hub-0001';
const LOCK = 'SIM-0001';
const open: CommandSpec = { op: 'open', lockId: LOCK, args: { durationMs: 1000 } };

/** The reference cloud's envelopes, judged by the hub's own verifier (no broker: nothing is sent). */
describe('ReferenceCloud: signed envelopes and attacks', () => {
  let clock: VirtualClock;
  let cloud: ReferenceCloud;
  let key: Secret;
  let store: Store;
  let verifier: CommandVerifier;

  beforeEach(() => {
    clock = new VirtualClock(Date.parse('2026-03-01T12:00:00.000Z'));
    const random = new SeededRandom('cloud-test');
    key = new Secret(random.bytes(32));
    cloud = new ReferenceCloud({ clock, random });
    cloud.setOtpKey(HUB, key, { counter: 7 });
    store = Store.open(tempDir());
    verifier = new CommandVerifier({
      hubId: HUB,
      otpKey: key,
      config: { lockoutFailures: 1000, lockoutWindowSec: 60, lockoutSec: 60, maxSkewSec: 30, counterWindow: 1000 },
      store,
      clock,
      log: silentLogger(),
      knownLock: (id) => id === LOCK,
    });
  });

  afterEach(() => store.close());

  /** As the hub does: verify, then record the counter of an accepted command. */
  const judge = (e: CommandEnvelope) => {
    expect(conforms('cmd', e), JSON.stringify(e)).toBe(true);
    const v = verifier.verify(e);
    if (v.ok && !v.duplicate) verifier.advanceCounter(e.counter);
    return v.ok ? 'ok' : v.code;
  };

  it('signs a command: the contract, the hub id, now to now + 60 s, the counter from its start value, +1 each', () => {
    const a = cloud.envelope(HUB, open);
    const b = cloud.envelope(HUB, { op: 'ping' });
    expect(a).toMatchObject({
      v: 1,
      hubId: HUB,
      lockId: LOCK,
      op: 'open',
      args: { durationMs: 1000 },
      issuedAt: '2026-03-01T12:00:00.000Z',
      expiresAt: '2026-03-01T12:01:00.000Z',
      counter: 7,
    });
    expect(a.otp).toMatch(/^[0-9]{8}$/);
    expect(otpMatches(key, a)).toBe(true);
    expect(b.counter).toBe(8);
    expect(b).not.toHaveProperty('lockId');
    expect(b.cmdId).not.toBe(a.cmdId);
    expect(cloud.nextCounter(HUB)).toBe(9);
    expect(judge(a)).toBe('ok');
    expect(judge(b)).toBe('ok');
  });

  it('takes the flat form too, and seals the setup code of an attach to its cmdId', () => {
    const flat = cloud.envelope(HUB, { op: 'open', lockId: LOCK, durationMs: 500 });
    expect(flat.args).toEqual({ durationMs: 500 });
    const attach = cloud.envelope(HUB, { op: 'attach', lockId: 'SIM-0002', args: { setupCode: 'ABCD-EFGH-JKLM' } });
    expect(attach.args.setupCode).not.toContain('ABCD');
    expect(conforms('cmd', attach)).toBe(true);
    expect(openSetupCode(key, attach.cmdId, attach.args.setupCode as string)).toBe('ABCD-EFGH-JKLM');
  });

  it('builds each attack so that the hub refuses it with its code', () => {
    const accepted = cloud.envelope(HUB, open);
    expect(judge(accepted)).toBe('ok');
    // Counters move on (a ping), as between the test's genuine command and its attacks.
    expect(judge(cloud.envelope(HUB, { op: 'ping' }))).toBe('ok');
    const cases: [Attack, string][] = [
      [{ kind: 'forgedOtp', command: open }, 'otp_mismatch'],
      [{ kind: 'alteredArgs', command: open, args: { durationMs: 600_000 } }, 'otp_mismatch'],
      [{ kind: 'alteredLockId', command: open, lockId: 'SIM-0002' }, 'otp_mismatch'],
      [{ kind: 'replayNewId', of: accepted }, 'otp_mismatch'],
      [{ kind: 'replayResigned', of: accepted }, 'replayed'],
      // Nothing was sent, so the cloud does not know what the hub accepted: name the counter.
      [{ kind: 'counterBackwards', command: open, counter: accepted.counter }, 'replayed'],
      [{ kind: 'expired', command: open }, 'expired'],
      [{ kind: 'futureDated', command: open }, 'not_yet_valid'],
      [{ kind: 'otherHub', command: open, hubId: 'hub-0002' }, 'wrong_hub'],
    ];
    for (const [attack, code] of cases) {
      const e = cloud.attack(HUB, attack);
      expect(judge(e), attack.kind).toBe(code);
    }
    // The identical envelope is a redelivery: genuine, answered from the inbox, never acted on again.
    const replay = cloud.attack(HUB, { kind: 'replay', of: accepted });
    expect(replay).toEqual(accepted);
    expect(verifier.verify(replay, (id) => id === accepted.cmdId)).toEqual({ ok: true, duplicate: true });
    // And a genuine command still goes through.
    expect(judge(cloud.envelope(HUB, open))).toBe('ok');
  });

  it('a counterBackwards attack needs an accepted command to go below, or a counter', () => {
    expect(() => cloud.attack(HUB, { kind: 'counterBackwards', command: open })).toThrow(/accepted no command/);
    expect(cloud.attack(HUB, { kind: 'counterBackwards', command: open, counter: 3 }).counter).toBe(3);
  });

  it('without a key for the hub nothing is signed, and nothing was sent or accepted', () => {
    expect(() => cloud.envelope('hub-unknown', open)).toThrow(/no OTP key for hub hub-unknown/);
    expect(cloud.sentEnvelopes(HUB)).toEqual([]);
    expect(cloud.acceptedCounter(HUB)).toBe(0);
  });
});
