import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/base/clock.js';
import { computeOtp } from '../../../src/commands/otp.js';
import { MAX_VALIDITY_MS, parseUtc } from '../../../src/commands/verifier.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';
import {
  capturingLogger,
  commandHarness,
  type Harness,
  KEY,
  KEY_HEX,
  OTHER_KEY,
  WIRE_STATE,
} from '../../helpers/commands.js';

const MIN = 60_000;
const OPEN = { op: 'open', lockId: 'L1', args: { durationMs: 4000 } } as const;

/**
 * What every refusal must leave behind: one ok:false answer with the code, published (not
 * queued), no call to the lock side, and the inbox and the counter as they were.
 */
function expectRefused(t: Harness, cmdId: string, code: string, before: { inbox: number; counter: number }) {
  const answer = t.sink.published.at(-1)?.payload as { id: string; ok: boolean; error: { code: string } };
  expect(answer).toMatchObject({ v: 1, id: cmdId, ok: false, error: { code } });
  expect(conforms('cmd/result', answer)).toBe(true);
  expect(t.target.calls).toEqual([]);
  expect(t.inboxCount()).toBe(before.inbox);
  expect(t.lastCounter()).toBe(before.counter);
}

/** A harness whose cloud has had one command (counter 1) accepted, so replays have something to replay. */
async function withHistory(opts: Parameters<typeof commandHarness>[0] = {}) {
  const t = commandHarness(opts);
  const first = await t.run({ op: 'lock', lockId: 'L2' });
  expect(t.last()).toMatchObject({ id: first.cmdId, ok: true });
  t.target.calls.length = 0;
  return { t, first, before: { inbox: 1, counter: 1 } };
}

describe('refused commands never reach a lock and change nothing', () => {
  it('wrong OTP: otp_mismatch', async () => {
    const { t, before } = await withHistory();
    const env = t.sign(OPEN);
    const forged = env.otp === '12345678' ? '87654321' : '12345678';
    await t.send({ ...env, otp: forged });
    expectRefused(t, env.cmdId, 'otp_mismatch', before);
  });

  it('the OTP of another command: altered args, altered lockId, altered op → otp_mismatch', async () => {
    const { t, before } = await withHistory();
    const a = t.sign(OPEN);
    await t.send({ ...a, args: { durationMs: 600_000 } });
    expectRefused(t, a.cmdId, 'otp_mismatch', before);
    const b = t.sign(OPEN);
    await t.send({ ...b, lockId: 'L2' });
    expectRefused(t, b.cmdId, 'otp_mismatch', before);
    const c = t.sign({ op: 'getState', lockId: 'L1' });
    await t.send({ ...c, op: 'open' });
    expectRefused(t, c.cmdId, 'otp_mismatch', before);
  });

  it('replay of an accepted command with the same cmdId: the stored result, no second action, no failure', async () => {
    const { t, first } = await withHistory();
    const answer = t.last();
    await t.send(first);
    await t.send(first);
    expect(t.target.calls).toEqual([]);
    expect(t.sink.enqueued.map((a) => a.payload)).toEqual([answer, answer, answer]);
    expect(t.sink.published).toEqual([]);
    expect(t.verifier.stats().refused).toEqual({});
  });

  it('replay of an accepted command with a new cmdId: otp_mismatch as sent, replayed when re-signed', async () => {
    const { t, first, before } = await withHistory();
    // A replayer without the key can only change the cmdId, which the OTP covers.
    await t.send({ ...first, cmdId: 'replay-1' });
    expectRefused(t, 'replay-1', 'otp_mismatch', before);
    // Re-signed (by a cloud that has the key) with the used counter: the counter gives it away.
    await t.run({ op: 'lock', lockId: 'L2' }, { cmdId: 'replay-2', counter: first.counter });
    expectRefused(t, 'replay-2', 'replayed', before);
  });

  it('counter going backwards: replayed', async () => {
    const t = commandHarness();
    await t.run({ op: 'ping' }, { counter: 10 });
    await t.run(OPEN, { counter: 9 });
    const env = t.sign(OPEN, { counter: 3 });
    await t.send(env);
    expectRefused(t, env.cmdId, 'replayed', { inbox: 1, counter: 10 });
    expect(t.verifier.stats().refused).toEqual({ replayed: 2 });
  });

  it('expired: issued long ago, or its expiresAt passed', async () => {
    const { t, before } = await withHistory();
    const now = t.clock.now();
    const old = t.sign(OPEN, { issuedAt: now - 10 * MIN, expiresAt: now - 5 * MIN });
    await t.send(old);
    expectRefused(t, old.cmdId, 'expired', before);
    // Within the ±1 time step, but past its own expiry.
    const short = t.sign(OPEN, { issuedAt: now - 20_000, expiresAt: now - 1 });
    await t.send(short);
    expectRefused(t, short.cmdId, 'expired', before);
    // Delivered late: valid when sent, expired on arrival.
    const late = t.sign(OPEN);
    await t.clock.advance(2 * MIN);
    await t.send(late);
    expectRefused(t, late.cmdId, 'expired', before);
  });

  it('expired by its OTP time step alone: issued three steps ago, its own expiresAt still ahead', async () => {
    const { t, before } = await withHistory();
    const now = t.clock.now();
    const stale = t.sign(OPEN, { issuedAt: now - 95_000, expiresAt: now + 5 * MIN });
    await t.send(stale);
    expectRefused(t, stale.cmdId, 'expired', before);
    // One step back is still within the window.
    await t.run(OPEN, { issuedAt: now - 25_000, expiresAt: now + 5 * MIN });
    expect(t.last()).toMatchObject({ ok: true });
  });

  it('not_yet_valid by its OTP time step alone, however large maxSkewSec is', async () => {
    const t = commandHarness({ config: { maxSkewSec: 600 } });
    const now = t.clock.now();
    const early = t.sign(OPEN, { issuedAt: now + 3 * MIN, expiresAt: now + 8 * MIN });
    await t.send(early);
    expect(t.last()).toMatchObject({ id: early.cmdId, ok: false, error: { code: 'not_yet_valid' } });
    expect(t.target.actions).toEqual([]);
  });

  it('future-dated: not_yet_valid, beyond the time step or beyond maxSkewSec', async () => {
    const { t, before } = await withHistory();
    const now = t.clock.now();
    const far = t.sign(OPEN, { issuedAt: now + 10 * MIN, expiresAt: now + 11 * MIN });
    await t.send(far);
    expectRefused(t, far.cmdId, 'not_yet_valid', before);
    // The next time step (allowed) but 45 s ahead, beyond the 30 s skew.
    const skewed = t.sign(OPEN, { issuedAt: now + 45_000 });
    await t.send(skewed);
    expectRefused(t, skewed.cmdId, 'not_yet_valid', before);
    // Within the skew: accepted.
    await t.run(OPEN, { issuedAt: now + 20_000 });
    expect(t.last()).toMatchObject({ ok: true });
  });

  it("another hub's command: wrong_hub, whatever its OTP", async () => {
    const { t, before } = await withHistory();
    const other = t.sign(OPEN, { hubId: 'hub-0002', key: OTHER_KEY });
    await t.send(other);
    expectRefused(t, other.cmdId, 'wrong_hub', before);
    const ours = t.sign(OPEN, { hubId: 'hub-0002' });
    await t.send(ours);
    expectRefused(t, ours.cmdId, 'wrong_hub', before);
  });

  it('unknown lock: unknown_lock for every lock op; attach of a new lock is not refused for it', async () => {
    // unknown_lock does not count toward the lockout (a stale lock list); the headroom is for the other cases.
    const { t, before } = await withHistory({ config: { lockoutFailures: 10 } });
    for (const op of ['getState', 'open', 'lock', 'detach'] as const) {
      const env = t.sign({ op, lockId: 'NOPE' });
      await t.send(env);
      expectRefused(t, env.cmdId, 'unknown_lock', before);
    }
    const mode = t.sign({ op: 'setMode', lockId: 'NOPE', args: { mode: 'office' } });
    await t.send(mode);
    expectRefused(t, mode.cmdId, 'unknown_lock', before);
    await t.run({ op: 'attach', lockId: 'NOPE', args: { setupCode: 'K7Q2-XW9P-33RA' } });
    expect(t.target.calls).toEqual(['attach NOPE']);
  });

  it('no OTP key: every command refused no_otp_key', async () => {
    const t = commandHarness({ otpKey: null });
    const env = await t.run({ op: 'ping' });
    expectRefused(t, env.cmdId, 'no_otp_key', { inbox: 0, counter: 0 });
    expect(t.verifier.hasKey).toBe(false);
  });

  it('bad_request: a validity window that is reversed or longer than 10 minutes, a counter jump beyond the window', async () => {
    const { t, before } = await withHistory();
    const now = t.clock.now();
    const reversed = t.sign(OPEN, { expiresAt: now });
    await t.send(reversed);
    expectRefused(t, reversed.cmdId, 'bad_request', before);
    const long = t.sign(OPEN, { expiresAt: now + MAX_VALIDITY_MS + 1 });
    await t.send(long);
    expectRefused(t, long.cmdId, 'bad_request', before);
    const jump = t.sign(OPEN, { counter: 1 + 1000 + 1 });
    await t.send(jump);
    expectRefused(t, jump.cmdId, 'bad_request', before);
    // At the edges: exactly 10 minutes, exactly the window.
    await t.run(OPEN, { expiresAt: now + MAX_VALIDITY_MS, counter: 1 + 1000 });
    expect(t.last()).toMatchObject({ ok: true });
    expect(t.lastCounter()).toBe(1001);
  });

  it('times that name no moment are bad_request before anything else', async () => {
    const { t, before } = await withHistory();
    const env = t.sign(OPEN);
    await t.send({ ...env, issuedAt: '2026-02-30T00:00:00Z' });
    expectRefused(t, env.cmdId, 'bad_request', before);
    expect(parseUtc('2026-02-30T00:00:00Z')).toBeUndefined();
    expect(parseUtc('2026-01-01T24:00:00Z')).toBeUndefined();
    expect(parseUtc('2026-01-01T00:00:00+01:00')).toBeUndefined();
    expect(parseUtc('2026-01-01T00:00:00.5Z')).toBe(Date.UTC(2026, 0, 1) + 500);
    expect(parseUtc('2026-01-01T00:00:00.123456789Z')).toBe(Date.UTC(2026, 0, 1) + 123);
  });
});

describe('the order of the checks', () => {
  it('hub before lockout before OTP before redelivery before time before counter before lock', async () => {
    const t = commandHarness({ config: { lockoutFailures: 1000 } });
    await t.run({ op: 'ping' }, { counter: 5 });
    const now = t.clock.now();
    const cases: [string, ReturnType<typeof t.sign>, string][] = [
      ['wrong hub and wrong OTP', { ...t.sign(OPEN, { hubId: 'hub-x' }), otp: '00000000' }, 'wrong_hub'],
      ['wrong OTP and expired', { ...t.sign(OPEN, { issuedAt: now - 10 * MIN }), otp: '00000000' }, 'otp_mismatch'],
      ['expired and replayed', t.sign(OPEN, { issuedAt: now - 10 * MIN, counter: 1 }), 'expired'],
      ['replayed and unknown lock', t.sign({ op: 'lock', lockId: 'NOPE' }, { counter: 2 }), 'replayed'],
    ];
    for (const [what, env, code] of cases) {
      await t.send(env);
      expect(t.last(), what).toMatchObject({ id: env.cmdId, ok: false, error: { code } });
    }
    expect(t.target.calls).toEqual([]);
  });

  it('a redelivery is recognised after the OTP check: a forged copy of a known cmdId is otp_mismatch', async () => {
    const { t, first, before } = await withHistory();
    await t.send({ ...first, lockId: 'L1' });
    expectRefused(t, first.cmdId, 'otp_mismatch', before);
  });
});

describe('lockout', () => {
  it('20 wrong OTPs in a row: locked_out after 5, even for a valid command; a security event; recovery after lockoutSec', async () => {
    const t = commandHarness();
    const codes: string[] = [];
    for (let i = 0; i < 20; i++) {
      const env = t.sign(OPEN);
      await t.send({ ...env, otp: env.otp === '00000000' ? '11111111' : '00000000' });
      codes.push((t.last()?.error as { code: string } | undefined)?.code ?? 'none');
    }
    expect(codes).toEqual([...Array(5).fill('otp_mismatch'), ...Array(15).fill('locked_out')]);
    const valid = await t.run(OPEN);
    expect(t.last()).toMatchObject({ id: valid.cmdId, ok: false, error: { code: 'locked_out' } });
    expect(t.target.calls).toEqual([]);
    expect(t.lastCounter()).toBe(0);
    expect(t.inboxCount()).toBe(0);
    expect(t.verifier.lockedOut).toBe(true);
    expect(t.verifier.stats()).toMatchObject({
      accepted: 0,
      refused: { otp_mismatch: 5, locked_out: 16 },
      lockouts: 1,
      lockedOutUntil: new Date(t.clock.now() + 60_000).toISOString(),
    });
    const events = t.securityEvents();
    expect(events.map((e) => e.kind)).toEqual(['commands.locked-out']);
    expect(JSON.parse(events[0]?.detail ?? '')).toMatchObject({
      failures: 5,
      lockoutSec: 60,
      lastCode: 'otp_mismatch',
    });

    await t.clock.advance(59_000);
    await t.run(OPEN);
    expect(t.last()).toMatchObject({ ok: false, error: { code: 'locked_out' } });
    await t.clock.advance(1000);
    const after = await t.run(OPEN);
    expect(t.last()).toMatchObject({
      id: after.cmdId,
      ok: true,
      result: { state: { ...WIRE_STATE, bolt: 'unlocked' } },
    });
    expect(t.target.calls).toEqual(['open L1 4000']);
    expect(t.verifier.stats().lockedOutUntil).toBeNull();
    expect(t.securityEvents()).toHaveLength(1);
  });

  it('failures older than the window do not count; bad_request and redeliveries never count', async () => {
    const t = commandHarness();
    const forge = async () => {
      const env = t.sign(OPEN);
      await t.send({ ...env, otp: env.otp === '00000000' ? '11111111' : '00000000' });
    };
    for (let i = 0; i < 4; i++) await forge();
    await t.clock.advance(61_000);
    for (let i = 0; i < 4; i++) await forge();
    for (let i = 0; i < 10; i++) await t.sendRaw('cmd', { v: 1, cmdId: `junk-${i}`, op: 'ping' });
    const ok = await t.run({ op: 'ping' });
    for (let i = 0; i < 10; i++) await t.send(ok);
    expect(t.verifier.lockedOut).toBe(false);
    await t.run({ op: 'ping' });
    expect(t.last()).toMatchObject({ ok: true });
    // The fifth counted failure within the window locks out.
    await forge();
    expect(t.verifier.lockedOut).toBe(true);
  });
});

describe('secrets stay out of logs and answers', () => {
  it('the OTP key, the expected OTP of a forged command and the setup code appear nowhere', async () => {
    const { log, text } = capturingLogger();
    const t = commandHarness({ log });
    const SETUP = 'K7Q2-XW9P-33RA';
    await t.run({ op: 'attach', lockId: 'NEW-1', args: { setupCode: SETUP } });
    await t.run(OPEN);
    const env = t.sign(OPEN);
    const expectedOtp = computeOtp(KEY, env);
    const forged = expectedOtp === '00000000' ? '11111111' : '00000000';
    for (let i = 0; i < 6; i++) await t.send({ ...env, otp: forged });
    await t.send(t.sign(OPEN, { hubId: 'hub-0002' }));
    await t.sendRaw('cmd', { ...env, otp: 'x' });
    expect(t.target.setupCodes).toEqual([SETUP]);

    const answers = JSON.stringify(t.sink.all);
    const logs = text();
    expect(logs).toContain('remote command refused');
    expect(logs).toContain('commands.locked-out');
    const keyBytes = Buffer.from(KEY_HEX, 'hex');
    for (const secret of [KEY_HEX, KEY_HEX.toUpperCase(), keyBytes.toString('base64'), SETUP, expectedOtp]) {
      expect(logs).not.toContain(secret);
      expect(answers).not.toContain(secret);
    }
    const stored = JSON.stringify(t.store.db.prepare('SELECT * FROM inbox').all());
    expect(stored).not.toContain(SETUP);
    // The lockout's security event and the journal name codes and ids, never the key or an OTP.
    const events = JSON.stringify(t.securityEvents());
    const journal = JSON.stringify(t.store.db.prepare('SELECT * FROM journal').all());
    expect(events).toContain('commands.locked-out');
    for (const secret of [KEY_HEX, keyBytes.toString('base64'), SETUP, expectedOtp, forged]) {
      expect(events).not.toContain(secret);
      expect(journal).not.toContain(secret);
    }
  });
});

describe('what counts toward the lockout (only wrong-key evidence)', () => {
  it('wrong_hub five times, then a genuine open: ok — anyone who can publish on the topic cannot lock the cloud out', async () => {
    const t = commandHarness();
    for (let i = 0; i < 5; i++) await t.send(t.sign(OPEN, { hubId: 'hub-0002' }));
    expect(t.verifier.stats().refused).toEqual({ wrong_hub: 5 });
    await t.run(OPEN);
    expect(t.last()).toMatchObject({ ok: true });
    expect(t.verifier.lockedOut).toBe(false);
  });

  it('a genuine command for an unknown lock, or one that is stale or early, is refused without counting', async () => {
    const t = commandHarness();
    for (let i = 0; i < 5; i++) await t.run({ op: 'open', lockId: 'NOT-HERE' });
    await t.run(OPEN);
    expect(t.last()).toMatchObject({ ok: true });
    for (let i = 0; i < 5; i++) {
      await t.send(t.sign(OPEN, { issuedAt: t.clock.now() - 5 * 60_000, expiresAt: t.clock.now() - 60_000 }));
    }
    await t.run(OPEN);
    expect(t.last()).toMatchObject({ ok: true });
    for (let i = 0; i < 5; i++) {
      await t.send(t.sign(OPEN, { issuedAt: t.clock.now() + 5 * 60_000, expiresAt: t.clock.now() + 6 * 60_000 }));
    }
    expect(t.verifier.stats().refused).toEqual({ unknown_lock: 5, expired: 5, not_yet_valid: 5 });
    await t.run(OPEN);
    expect(t.last()).toMatchObject({ ok: true });
    expect(t.verifier.lockedOut).toBe(false);
  });

  it('replays count: five commands under used counters lock out', async () => {
    const t = commandHarness();
    await t.run(OPEN, { counter: 100 });
    for (let i = 0; i < 5; i++) await t.send(t.sign(OPEN, { counter: 50 + i }));
    expect(t.verifier.stats().refused).toMatchObject({ replayed: 5 });
    expect(t.verifier.lockedOut).toBe(true);
  });
});

/** A virtual clock whose wall time can be set apart from its monotonic time (NTP, an operator). */
class JumpingClock extends VirtualClock {
  offset = 0;
  override now(): number {
    return super.now() + this.offset;
  }
}

describe('the lockout survives a restart', () => {
  const forge = async (t: Harness) => {
    const env = t.sign(OPEN);
    await t.send({ ...env, otp: env.otp === '00000000' ? '11111111' : '00000000' });
  };
  /** The same data directory under a new store, verifier and clock (a reboot: monotonic time starts again). */
  const restart = (t: Harness, wallMs: number, clock = new VirtualClock(wallMs)) => {
    t.store.close();
    return commandHarness({ dir: t.dir, clock });
  };
  const code = (t: Harness) => (t.last() as { ok: boolean; error?: { code: string } }).error?.code ?? 'ok';

  it('5 forged commands lock out; after a restart still locked_out until the end; then a genuine command works', async () => {
    const t = commandHarness();
    for (let i = 0; i < 5; i++) await forge(t);
    expect(t.verifier.lockedOut).toBe(true);
    const end = t.verifier.stats().lockedOutUntil;
    expect(end).toBe(new Date(t.clock.now() + 60_000).toISOString());

    const t2 = restart(t, t.clock.now() + 20_000);
    expect(t2.verifier.lockedOut).toBe(true);
    expect(t2.verifier.stats().lockedOutUntil).toBe(end);
    await t2.run(OPEN);
    expect(code(t2)).toBe('locked_out');
    expect(t2.target.calls).toEqual([]);
    await t2.clock.advance(39_000);
    await t2.run(OPEN);
    expect(code(t2)).toBe('locked_out');
    await t2.clock.advance(1000);
    await t2.run(OPEN);
    expect(t2.last()).toMatchObject({ ok: true });
    expect(t2.target.calls).toEqual(['open L1 4000']);
    // Over, and over on disk: a third start does not revive it.
    const t3 = restart(t2, t2.clock.now());
    expect(t3.verifier.lockedOut).toBe(false);
  });

  it('counted failures survive a restart within the window, and stop counting once older than it', async () => {
    const t = commandHarness();
    for (let i = 0; i < 4; i++) await forge(t);
    const t2 = restart(t, t.clock.now() + 30_000);
    expect(t2.verifier.lockedOut).toBe(false);
    await forge(t2);
    expect(t2.verifier.lockedOut).toBe(true);

    const u = commandHarness();
    for (let i = 0; i < 4; i++) await forge(u);
    const u2 = restart(u, u.clock.now() + 61_000);
    await forge(u2);
    expect(u2.verifier.lockedOut).toBe(false);
    await u2.run(OPEN);
    expect(u2.last()).toMatchObject({ ok: true });
  });

  it('a wall clock set back across the restart cannot stretch the lockout beyond lockoutSec', async () => {
    const t = commandHarness();
    for (let i = 0; i < 5; i++) await forge(t);
    // Restarted with the clock a day behind: the stored end is a day and a minute away.
    const t2 = restart(t, t.clock.now() - 86_400_000);
    expect(t2.verifier.lockedOut).toBe(true);
    await t2.clock.advance(59_000);
    expect(t2.verifier.lockedOut).toBe(true);
    await t2.clock.advance(1000);
    expect(t2.verifier.lockedOut).toBe(false);
    await t2.run(OPEN);
    expect(t2.last()).toMatchObject({ ok: true });
  });

  it('a wall clock jump while locked out neither ends nor stretches it, and a restart after it keeps the rest', async () => {
    const clock = new JumpingClock();
    const t = commandHarness({ clock });
    for (let i = 0; i < 5; i++) await forge(t);
    clock.offset = 3_600_000;
    await clock.advance(10_000);
    expect(t.verifier.lockedOut).toBe(true);
    await t.run(OPEN);
    expect(code(t)).toBe('locked_out');
    // A restart in the jumped time: 50 s are left, not none.
    const t2 = restart(t, clock.now());
    expect(t2.verifier.lockedOut).toBe(true);
    await t2.clock.advance(49_000);
    expect(t2.verifier.lockedOut).toBe(true);
    await t2.clock.advance(1000);
    expect(t2.verifier.lockedOut).toBe(false);

    const back = new JumpingClock();
    const u = commandHarness({ clock: back });
    for (let i = 0; i < 5; i++) await forge(u);
    back.offset = -3_600_000;
    await back.advance(60_000);
    expect(u.verifier.lockedOut).toBe(false);
    await u.run(OPEN);
    expect(u.last()).toMatchObject({ ok: true });
  });
});
