import { describe, expect, it } from 'vitest';
import { MAX_IN_FLIGHT } from '../../../src/app/inbound.js';
import { DEFAULT_OPEN_MS } from '../../../src/commands/remote-commands.js';
import { MAX_INBOUND_BYTES, MAX_SYNC_BYTES } from '../../../src/contract/mqtt.js';
import type { SyncPayload } from '../../../src/contract/mqtt-cloud-messages.js';
import { conforms, firstInvalidUtf8 } from '../../../src/contract/mqtt-validate.js';
import { INBOX_MAX_AGE_MS, PRUNE_INTERVAL_MS } from '../../../src/inbox/inbox.js';
import { commandHarness, deferred, summary, WIRE_STATE } from '../../helpers/commands.js';

/** Let the hub take in what was sent: it handles one message per turn of the event loop. */
const takenIn = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

describe('inbound commands', () => {
  it('act once and answer on cmd/result with the lock’s own answer, recorded as done in the inbox', async () => {
    const t = commandHarness();
    const sent = [
      await t.run({ op: 'ping' }),
      await t.run({ op: 'listLocks' }),
      await t.run({ op: 'getState', lockId: 'L1' }),
      await t.run({ op: 'open', lockId: 'L1', args: { durationMs: 3000 } }),
      await t.run({ op: 'open', lockId: 'L2' }),
      await t.run({ op: 'lock', lockId: 'L1' }),
      await t.run({ op: 'setMode', lockId: 'L2', args: { mode: 'office' } }),
      await t.run({ op: 'attach', lockId: 'NEW-1', args: { setupCode: 'K7Q2-XW9P-33RA' } }),
      await t.run({ op: 'detach', lockId: 'L2' }),
      await t.run({ op: 'syncNow' }),
    ];

    expect(t.target.calls).toEqual([
      'list',
      'getState L1',
      'open L1 3000',
      `open L2 ${DEFAULT_OPEN_MS}`,
      'lock L1',
      'setMode L2 office',
      'attach NEW-1',
      'detach L2',
    ]);
    // The sealed setup code was opened with the OTP key and the cmdId.
    expect(t.target.setupCodes).toEqual(['K7Q2-XW9P-33RA']);
    expect(t.sink.published).toEqual([]);
    const answers = t.sink.enqueued.map((a) => a.payload);
    expect(t.sink.enqueued.map((a) => a.topic)).toEqual(Array(10).fill('cmd/result'));
    for (const [i, a] of answers.entries()) {
      expect(conforms('cmd/result', a)).toBe(true);
      expect(a.id).toBe(sent[i]?.cmdId);
    }
    expect(answers[0]).toEqual({
      v: 1,
      id: sent[0]?.cmdId,
      ok: true,
      result: { pong: true, at: new Date(t.clock.now()).toISOString() },
    });
    expect(answers[1]?.result).toEqual({ locks: [summary('L1'), summary('L2')], next: null });
    expect(answers[2]?.result).toEqual({ state: WIRE_STATE });
    expect(answers[3]?.result).toEqual({ state: { ...WIRE_STATE, bolt: 'unlocked' } });
    expect(answers[6]?.result).toEqual({ state: { ...WIRE_STATE, mode: 'office' } });
    expect(answers[7]?.result).toEqual({ lock: summary('NEW-1') });
    expect(answers[8]?.result).toEqual({ detached: true, state: 'detached' });
    expect(answers[9]).toMatchObject({ ok: false, error: { code: 'sync.unavailable' } });

    const stored = t.row(sent[3]?.cmdId ?? '');
    expect(stored).toMatchObject({
      topic: 'cmd',
      state: 'done',
      received_at: t.clock.now(),
      counter: 4,
      op: 'open',
      lock_id: 'L1',
    });
    expect(JSON.parse(stored?.result ?? '')).toEqual(answers[3]);
    expect(t.lastCounter()).toBe(10);
    expect(t.verifier.stats()).toEqual({ accepted: 10, refused: {}, lockouts: 0, lockedOutUntil: null });
    // Each outcome is journalled.
    const journal = t.store.db.prepare("SELECT detail FROM journal WHERE kind = 'command' ORDER BY id").all() as {
      detail: string;
    }[];
    expect(journal).toHaveLength(10);
    expect(JSON.parse(journal[3]?.detail ?? '')).toEqual({
      cmdId: sent[3]?.cmdId,
      op: 'open',
      lockId: 'L1',
      ok: true,
      code: null,
    });
  });

  it('a redelivered command (QoS 1 duplicate) gets the stored answer again, does not act again and is no failure', async () => {
    const t = commandHarness();
    const open = await t.run({ op: 'open', lockId: 'L1', args: { durationMs: 3000 } });
    await t.send(open);
    await t.send(open);
    expect(t.target.calls).toEqual(['open L1 3000']);
    expect(t.sink.enqueued).toHaveLength(3);
    expect(t.sink.enqueued[1]).toEqual(t.sink.enqueued[0]);
    expect(t.sink.enqueued[2]).toEqual(t.sink.enqueued[0]);
    expect(t.sink.published).toEqual([]);
    expect(t.inboxCount()).toBe(1);
    expect(t.verifier.stats().refused).toEqual({});
    expect(t.lastCounter()).toBe(1);
    // Even once the command has expired: a late redelivery is still answered from the inbox.
    await t.clock.advance(10 * 60_000);
    await t.send(open);
    expect(t.target.calls).toEqual(['open L1 3000']);
    expect(t.last()).toEqual(t.sink.enqueued[0]?.payload);
  });

  it('a redelivery while the first copy is still acting waits for it, does not act twice, and gets the same answer', async () => {
    const t = commandHarness();
    const gate = deferred();
    t.target.gates.set('L1', gate);
    const env = t.sign({ op: 'lock', lockId: 'L1' });
    const first = t.send(env);
    const second = t.send(env);
    await takenIn();
    expect(t.inbound.inFlight).toBe(1);
    gate.resolve();
    await Promise.all([first, second]);
    expect(t.target.calls).toEqual(['lock L1']);
    // Every delivery is answered: the second gets the stored answer of the first.
    expect(t.sink.enqueued).toHaveLength(2);
    expect(t.sink.enqueued[1]?.payload).toEqual(t.sink.enqueued[0]?.payload);
    expect(t.inbound.inFlight).toBe(0);
  });

  it('takes in at most MAX_IN_FLIGHT messages; the rest wait unrecorded (unacknowledged) in arrival order; close() drops them', async () => {
    const t = commandHarness();
    const gate = deferred();
    t.target.gates.set('L1', gate);
    // recorded() may be called more than once for a message (the PUBACK goes once): count each once.
    const recordedOnce = new Set<number>();
    const recorded = { push: (i: number) => recordedOnce.add(i) };
    const firsts = () => [...recordedOnce];
    const envs = Array.from({ length: MAX_IN_FLIGHT + 10 }, () => t.sign({ op: 'open', lockId: 'L1' }));
    const handled = envs.map((env, i) =>
      t.inbound.handle('cmd', Buffer.from(JSON.stringify(env)), () => recorded.push(i)),
    );
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(t.inbound.inFlight).toBe(MAX_IN_FLIGHT);
    expect(t.inboxCount()).toBe(MAX_IN_FLIGHT);
    expect(firsts()).toEqual(Array.from({ length: MAX_IN_FLIGHT }, (_, i) => i));
    // A stop: the waiting ten are never taken in, and never recorded (the broker keeps them).
    t.inbound.close();
    gate.resolve();
    await Promise.all(handled);
    expect(firsts()).toEqual(Array.from({ length: MAX_IN_FLIGHT }, (_, i) => i));
    expect(t.inboxCount()).toBe(MAX_IN_FLIGHT);
    expect(t.target.actions).toHaveLength(MAX_IN_FLIGHT);
  });

  it('20 deliveries of one command at once: it acts once and all 20 are answered alike', async () => {
    const t = commandHarness();
    const gate = deferred();
    t.target.gates.set('L1', gate);
    const env = t.sign({ op: 'open', lockId: 'L1' });
    const deliveries = Array.from({ length: 20 }, () => t.send(env));
    await Promise.resolve();
    gate.resolve();
    await Promise.all(deliveries);
    expect(t.target.actions).toEqual([`open L1 ${DEFAULT_OPEN_MS}`]);
    expect(t.sink.enqueued).toHaveLength(20);
    for (const a of t.sink.enqueued) expect(a.payload).toEqual(t.sink.enqueued[0]?.payload);
    expect(t.sink.enqueued[0]?.payload).toMatchObject({ id: env.cmdId, ok: true });
  });

  it('a genuine command reusing a cmdId with another counter is refused bad_request and does not act', async () => {
    const t = commandHarness();
    await t.run({ op: 'lock', lockId: 'L1' }, { cmdId: 'same' });
    await t.run({ op: 'open', lockId: 'L1' }, { cmdId: 'same' });
    expect(t.target.calls).toEqual(['lock L1']);
    expect(t.last()).toMatchObject({ id: 'same', ok: false, error: { code: 'bad_request' } });
    expect(t.lastCounter()).toBe(1);
  });

  it('a HubError from the lock side becomes ok:false with its code and message; the command was accepted', async () => {
    const t = commandHarness();
    const env = await t.run({ op: 'getState', lockId: 'GONE' });
    expect(t.sink.enqueued[0]?.payload).toEqual({
      v: 1,
      id: env.cmdId,
      ok: false,
      error: { code: 'lock.unreachable', message: 'lock GONE did not answer' },
    });
    expect(t.row(env.cmdId)?.state).toBe('done');
    expect(t.lastCounter()).toBe(1);
    // Failed commands are not retried on redelivery either.
    await t.send(env);
    expect(t.target.calls).toEqual(['getState GONE']);
  });

  it('any other failure is an internal error whose message reveals nothing', async () => {
    const t = commandHarness();
    t.target.failWith = new Error('secret=hunter2 at /var/lib/iq-hub');
    await t.run({ op: 'lock', lockId: 'L1' });
    const answer = t.sink.enqueued[0]?.payload as { ok: boolean; error: { code: string; message: string } };
    expect(answer.ok).toBe(false);
    expect(answer.error.code).toBe('internal');
    expect(JSON.stringify(answer)).not.toContain('hunter2');
  });

  it('commands for one lock run one at a time in arrival order; different locks run concurrently', async () => {
    const t = commandHarness();
    const g1 = deferred();
    const g2 = deferred();
    t.target.gates.set('L1', g1);
    t.target.gates.set('L2', g2);
    const a = t.sign({ op: 'open', lockId: 'L1', args: { durationMs: 1000 } });
    const b = t.sign({ op: 'lock', lockId: 'L1' });
    const c = t.sign({ op: 'getState', lockId: 'L2' });
    const all = [t.send(a), t.send(b), t.send(c)];
    await takenIn();
    expect(t.target.calls).toEqual(['open L1 1000', 'getState L2']);
    expect(t.target.maxParallel).toBe(2);
    g2.resolve();
    await all[2];
    g1.resolve();
    await Promise.all(all);
    expect(t.target.calls).toEqual(['open L1 1000', 'getState L2', 'lock L1']);
    expect(t.sink.enqueued.map((x) => x.payload.id)).toEqual([c.cmdId, a.cmdId, b.cmdId]);
  });

  it('the inbox update and the outbox enqueue commit together: a failed enqueue leaves the command started', async () => {
    const t = commandHarness();
    t.sink.failEnqueue = true;
    const env = await t.run({ op: 'lock', lockId: 'L1' });
    expect(t.row(env.cmdId)).toMatchObject({ state: 'started', result: null });
    // The answer still goes out, best effort.
    expect(t.sink.published.map((p) => p.payload)).toEqual([
      { v: 1, id: env.cmdId, ok: true, result: { state: WIRE_STATE } },
    ]);
    t.sink.failEnqueue = false;
    await t.send(env);
    // Not carried out again: unknown_outcome, with the state read back.
    expect(t.target.actions).toEqual(['lock L1']);
    expect(t.sink.enqueued[0]?.payload).toMatchObject({
      ok: false,
      error: { code: 'unknown_outcome' },
      result: { state: WIRE_STATE },
    });
  });
});

describe('crash safety: commands interrupted by a stop', () => {
  /** Leave a command 'started' as a SIGKILL between the claim and the answer would. */
  const interrupted = (
    t: ReturnType<typeof commandHarness>,
    id: string,
    op: string,
    lockId: string | null,
    n: number,
  ) => {
    t.store.transaction(() => {
      t.verifier.advanceCounter(n);
      t.store.db
        .prepare(
          "INSERT INTO inbox (id, topic, state, result, received_at, counter, op, lock_id) VALUES (?, 'cmd', 'started', NULL, 1, ?, ?, ?)",
        )
        .run(id, n, op, lockId);
    });
  };

  it("recover(): every 'started' command is answered unknown_outcome with the lock's state, never carried out again", async () => {
    const t = commandHarness();
    interrupted(t, 'half-open', 'open', 'L1', 1);
    interrupted(t, 'half-ping', 'ping', null, 2);
    interrupted(t, 'half-gone', 'lock', 'GONE', 3);
    expect(await t.inbound.recover()).toBe(3);

    expect(t.target.actions).toEqual([]);
    expect(t.target.calls.sort()).toEqual(['getState GONE', 'getState L1']);
    const answers = new Map(t.sink.enqueued.map((a) => [a.payload.id, a.payload]));
    expect(answers.get('half-open')).toEqual({
      v: 1,
      id: 'half-open',
      ok: false,
      error: { code: 'unknown_outcome', message: expect.stringContaining('not repeated') as unknown },
      result: { state: WIRE_STATE },
    });
    expect(answers.get('half-ping')).toMatchObject({ ok: false, error: { code: 'unknown_outcome' } });
    expect(answers.get('half-ping')?.result).toBeUndefined();
    const gone = answers.get('half-gone') as { error: { message: string }; result?: unknown };
    expect(gone.error.message).toContain('could not be read back (lock.unreachable)');
    expect(gone.result).toBeUndefined();
    for (const a of answers.values()) expect(conforms('cmd/result', a)).toBe(true);
    expect(t.row('half-open')?.state).toBe('done');

    // A redelivery gets the stored unknown_outcome; the open is never sent.
    const calls = t.target.calls.length;
    await t.inbound.recover();
    expect(t.target.calls).toHaveLength(calls);
    expect(t.sink.enqueued).toHaveLength(3);
  });

  it('a redelivery arriving while recover() reads the state back waits for it and gets the same answer', async () => {
    const t = commandHarness();
    const env = t.sign({ op: 'open', lockId: 'L1' });
    interrupted(t, env.cmdId, 'open', 'L1', env.counter);
    const gate = deferred();
    t.target.gates.set('L1', gate);
    const recovering = t.inbound.recover();
    const redelivery = t.send(env);
    await Promise.resolve();
    gate.resolve();
    await Promise.all([recovering, redelivery]);
    expect(t.target.calls).toEqual(['getState L1']);
    // The answer of the recovery, and the same again for the redelivery.
    expect(t.sink.enqueued).toHaveLength(2);
    expect(t.sink.enqueued[0]?.payload).toMatchObject({ id: env.cmdId, error: { code: 'unknown_outcome' } });
    expect(t.sink.enqueued[1]?.payload).toEqual(t.sink.enqueued[0]?.payload);
  });

  it('after a restart on the same store the counter holds: the interrupted command and older ones are refused', async () => {
    const first = commandHarness();
    const env = first.sign({ op: 'open', lockId: 'L1' }, { counter: 7 });
    interrupted(first, env.cmdId, 'open', 'L1', 7);
    first.store.close();
    const t = commandHarness({ dir: first.dir, clock: first.clock });
    await t.inbound.recover();
    expect(t.target.actions).toEqual([]);
    // The same command again, re-signed under a new cmdId: the counter was already used.
    await t.run({ op: 'open', lockId: 'L1' }, { cmdId: 'again', counter: 7 });
    expect(t.last()).toMatchObject({ id: 'again', ok: false, error: { code: 'replayed' } });
    expect(t.target.actions).toEqual([]);
  });
});

describe('answers published ahead of their record (nothing queued waits before them)', () => {
  it('the answer leaves before its record commits; the record then queues the same answer for that publish', async () => {
    const t = commandHarness();
    const states: (string | undefined)[] = [];
    t.sink.enableAhead((s) => states.push(t.row(String(s.payload.id))?.state));
    const env = await t.run({ op: 'open', lockId: 'L1', args: { durationMs: 3000 } });
    // Acted once; when the answer left, the claim was durable and the answer not yet recorded.
    expect(t.target.actions).toEqual(['open L1 3000']);
    expect(states).toEqual(['started']);
    expect(t.sink.ahead.map((a) => a.payload)).toEqual([
      { v: 1, id: env.cmdId, ok: true, result: { state: { ...WIRE_STATE, bolt: 'unlocked' } } },
    ]);
    // Recorded afterwards with its outbox row (which waits for that publish's PUBACK), and journalled.
    expect(t.sink.enqueued).toHaveLength(1);
    expect(t.sink.enqueued[0]?.payload).toEqual(t.sink.ahead[0]?.payload);
    expect(t.sink.enqueued[0]?.ahead).toBeDefined();
    expect(t.sink.published).toEqual([]);
    expect(JSON.parse(t.row(env.cmdId)?.result ?? '')).toEqual(t.sink.ahead[0]?.payload);
    const journal = t.store.db.prepare("SELECT COUNT(*) AS n FROM journal WHERE kind = 'command'").get() as {
      n: number;
    };
    expect(journal.n).toBe(1);
    // A redelivery afterwards: the stored answer, no second action.
    await t.send(env);
    expect(t.target.actions).toEqual(['open L1 3000']);
    expect(t.last()).toEqual(t.sink.ahead[0]?.payload);
  });

  it("an open costs one durable commit before its answer and one group commit after, shared with the lock's state and events of that turn", async () => {
    const t = commandHarness();
    const before = t.store.commitCounts();
    let whenAnswered: ReturnType<typeof t.store.commitCounts> | undefined;
    let setOff: Promise<unknown>[] = [];
    t.sink.enableAhead(() => {
      whenAnswered = t.store.commitCounts();
      // What the lock's answer set off in the same turn: its retained state and its `opened` event.
      setOff = [
        t.store.commitSoon(() => t.store.journal('lock-state', {}, 1), { durable: false }),
        t.store.commitSoon(() => t.store.journal('lock-event', {}, 1)),
      ];
    });
    // Carried out from an I/O callback, as the daemon does when the lock's answer arrives.
    const done = await new Promise<Promise<unknown>>((resolve) =>
      setImmediate(() => resolve(t.run({ op: 'open', lockId: 'L1' }))),
    );
    await done;
    await Promise.all(setOff);
    const after = t.store.commitCounts();
    // Before the answer left: the claim alone.
    expect((whenAnswered?.durable ?? 0) - before.durable).toBe(1);
    // After: one more, the group — the answer's record, the lock's state and its event.
    expect(after.durable - before.durable).toBe(2);
    expect(after.groups - before.groups).toBe(1);
    expect(after.groupWrites - before.groupWrites).toBe(3);
    const kinds = t.store.db.prepare("SELECT kind FROM journal WHERE kind LIKE 'lock-%' OR kind = 'command'").all();
    expect(kinds).toHaveLength(3);
  });

  it('a redelivery between the publish and the record waits for the record: no second action, no unknown_outcome', async () => {
    const t = commandHarness();
    const env = t.sign({ op: 'open', lockId: 'L1' });
    let redelivery: Promise<void> | undefined;
    t.sink.enableAhead(() => {
      redelivery ??= t.send(env);
    });
    await t.send(env);
    await redelivery;
    expect(redelivery).toBeDefined();
    expect(t.target.actions).toEqual([`open L1 ${DEFAULT_OPEN_MS}`]);
    // The answer published ahead, then the redelivery's from the record: the same, never unknown_outcome.
    expect(t.sink.all.map((a) => a.payload.ok)).toEqual([true, true]);
    expect(t.sink.all[1]?.payload).toEqual(t.sink.all[0]?.payload);
    expect(t.row(env.cmdId)?.state).toBe('done');
  });

  it('a stop between the publish and the record: the restarted hub answers unknown_outcome and never acts again', async () => {
    const first = commandHarness();
    const env = first.sign({ op: 'open', lockId: 'L1' });
    // The store goes away right after the answer left (as a SIGKILL within the record's commit).
    first.sink.enableAhead(() => first.store.close());
    await first.send(env);
    expect(first.target.actions).toEqual([`open L1 ${DEFAULT_OPEN_MS}`]);
    expect(first.sink.ahead.map((a) => a.payload.ok)).toEqual([true]);
    // Not published a second time, best effort: it already went.
    expect(first.sink.published).toEqual([]);

    const t = commandHarness({ dir: first.dir, clock: first.clock });
    expect(await t.inbound.recover()).toBe(1);
    expect(t.target.actions).toEqual([]);
    expect(t.sink.enqueued[0]?.payload).toMatchObject({
      id: env.cmdId,
      ok: false,
      error: { code: 'unknown_outcome' },
      result: { state: WIRE_STATE },
    });
    await t.send(env);
    expect(t.target.actions).toEqual([]);
  });
});

describe('recent(): the accepted commands as `iqhub commands` lists them', () => {
  it('newest first with their outcome; acting and interrupted ones said so; nothing secret; refused ones not there', async () => {
    const t = commandHarness();
    const opened = await t.run({ op: 'open', lockId: 'L1' });
    const gone = await t.run({ op: 'getState', lockId: 'GONE' });
    const attach = await t.run({ op: 'attach', lockId: 'NEW-1', args: { setupCode: 'K7Q2-XW9P-33RA' } });
    await t.run({ op: 'open', lockId: 'L1' }, { hubId: 'another-hub' });
    const gate = deferred();
    t.target.gates.set('L2', gate);
    const acting = t.sign({ op: 'lock', lockId: 'L2' });
    const running = t.send(acting);
    await takenIn();

    const recent = t.inbound.recent(10);
    expect(recent.map((c) => [c.cmdId, c.op, c.lockId, c.state, c.ok, c.code])).toEqual([
      [acting.cmdId, 'lock', 'L2', 'acting', null, null],
      [attach.cmdId, 'attach', 'NEW-1', 'answered', true, null],
      [gone.cmdId, 'getState', 'GONE', 'answered', false, 'lock.unreachable'],
      [opened.cmdId, 'open', 'L1', 'answered', true, null],
    ]);
    expect(recent[3]).toMatchObject({ counter: opened.counter, receivedAt: new Date(t.clock.now()).toISOString() });
    expect(t.inbound.recent(1)).toHaveLength(1);
    const text = JSON.stringify(recent);
    expect(text).not.toContain('K7Q2');
    expect(text).not.toContain(String(attach.args.setupCode));
    for (const env of [opened, gone, attach, acting]) expect(text).not.toContain(env.otp);
    gate.resolve();
    await running;

    // A command left started by a stop (not being carried out), before recover() answers it.
    t.store.db
      .prepare(
        "INSERT INTO inbox (id, topic, state, result, received_at, counter, op, lock_id) VALUES ('half', 'cmd', 'started', NULL, 1, 99, 'open', 'L1')",
      )
      .run();
    expect(t.inbound.recent(1)[0]).toMatchObject({ cmdId: 'half', state: 'interrupted', ok: null, code: null });
  });
});

describe('inbound refusals', () => {
  it('a command that does not match the schema gets bad_request with a precise message and changes nothing', async () => {
    const t = commandHarness();
    const good = t.sign({ op: 'open', lockId: 'L1' });
    await t.sendRaw('cmd', { ...good, cmdId: 'bad1', args: { durationMs: 0 } });
    await t.sendRaw('cmd', { ...good, cmdId: 'bad2', lockId: 'L1/x' });
    await t.sendRaw('cmd', { ...good, cmdId: 'bad3', otp: '1234567' });
    await t.sendRaw('cmd', { ...good, cmdId: 'bad4', issuedAt: '2026-01-01 00:00:00Z' });
    await t.sendRaw('cmd', { v: 1, id: 'old-style', op: 'ping' });
    await t.sendRaw('cmd', Buffer.from('{"v":1,"cmdId":"bad5","op":"ping"'));
    await t.sendRaw('cmd', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]));
    expect(t.target.calls).toEqual([]);
    expect(t.sink.enqueued).toEqual([]);
    expect(t.inboxCount()).toBe(0);
    expect(t.lastCounter()).toBe(0);
    const answers = t.sink.published.map((p) => p.payload);
    for (const a of answers) expect(conforms('cmd/result', a)).toBe(true);
    expect(answers).toEqual([
      { v: 1, id: 'bad1', ok: false, error: { code: 'bad_request', message: '/args/durationMs must be >= 1' } },
      {
        v: 1,
        id: 'bad2',
        ok: false,
        error: { code: 'bad_request', message: expect.stringMatching(/^\/lockId must match pattern/) },
      },
      {
        v: 1,
        id: 'bad3',
        ok: false,
        error: { code: 'bad_request', message: expect.stringMatching(/^\/otp must match pattern/) },
      },
      {
        v: 1,
        id: 'bad4',
        ok: false,
        error: { code: 'bad_request', message: expect.stringMatching(/^\/issuedAt must match pattern/) },
      },
      { v: 1, id: null, ok: false, error: { code: 'bad_request', message: expect.any(String) as unknown } },
      { v: 1, id: null, ok: false, error: { code: 'bad_request', message: 'payload is not valid JSON' } },
      {
        v: 1,
        id: null,
        ok: false,
        error: { code: 'bad_request', message: 'payload is not valid UTF-8 (first bad byte at offset 2)' },
      },
    ]);
    expect(t.verifier.stats().refused).toEqual({ bad_request: 7 });
  });

  it('an attach whose setup code was not sealed for this command is refused bad_request before anything acts', async () => {
    const t = commandHarness();
    const a = t.sign({ op: 'attach', lockId: 'NEW-1', args: { setupCode: 'K7Q2-XW9P-33RA' } });
    // The sealed code of another command, re-signed (by the cloud) into this one.
    const b = t.sign(
      { op: 'attach', lockId: 'NEW-1', args: { setupCode: a.args.setupCode as string } },
      { asIs: true },
    );
    await t.send(b);
    expect(t.target.calls).toEqual([]);
    expect(t.last()).toMatchObject({ id: b.cmdId, ok: false, error: { code: 'bad_request' } });
    expect(JSON.stringify(t.last())).not.toContain('K7Q2');
    expect(t.inboxCount()).toBe(0);
    expect(t.lastCounter()).toBe(0);
  });

  it('an id already used on the other topic is refused and changes nothing', async () => {
    const t = commandHarness({ sync: { apply: async () => ({ version: 1 }) } });
    const env = await t.run({ op: 'ping' });
    await t.sendRaw('sync', { v: 1, id: env.cmdId, kind: 'snapshot', version: 1, data: {} });
    expect(t.sink.published).toEqual([
      {
        topic: 'sync/ack',
        payload: {
          v: 1,
          id: env.cmdId,
          ok: false,
          error: expect.objectContaining({ code: 'payload.id-reused' }) as unknown,
        },
      },
    ]);
    expect(t.row(env.cmdId)?.topic).toBe('cmd');
    expect(t.sink.enqueued).toHaveLength(1);

    await t.sendRaw('sync', { v: 1, id: 's-1', kind: 'snapshot', version: 1, data: {} });
    await t.run({ op: 'ping' }, { cmdId: 's-1' });
    expect(t.last()).toMatchObject({ id: 's-1', ok: false, error: { code: 'bad_request' } });
    expect(t.lastCounter()).toBe(1);
  });

  it('finds the first byte of an invalid UTF-8 sequence', () => {
    const at = (...b: number[]) => firstInvalidUtf8(new Uint8Array(b));
    expect(at(0x41, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x94, 0x92)).toBe(-1);
    expect(at(0x41, 0xc0, 0x80)).toBe(1); // overlong
    expect(at(0x41, 0x41, 0xed, 0xa0, 0x80)).toBe(2); // surrogate
    expect(at(0xf4, 0x90, 0x80, 0x80)).toBe(0); // above U+10FFFF
    expect(at(0x41, 0xe2, 0x82)).toBe(1); // truncated
    expect(at(0x80)).toBe(0); // stray continuation
  });
});

describe('inbound syncs', () => {
  const sync = { v: 1, id: 's1', kind: 'snapshot', version: 7, data: { users: [] } };

  it('without an access mirror: ok:false sync.unavailable, not stored (it changed nothing), and the same on redelivery', async () => {
    const t = commandHarness();
    // Even where a command's answer would be published ahead: a sync's is recorded first.
    t.sink.enableAhead();
    await t.sendRaw('sync', sync);
    await t.sendRaw('sync', sync);
    expect(t.sink.ahead).toEqual([]);
    expect(t.sink.published).toEqual([]);
    expect(t.sink.enqueued).toHaveLength(2);
    const ack = t.sink.enqueued[0];
    expect(ack?.topic).toBe('sync/ack');
    expect(ack?.payload).toMatchObject({ v: 1, id: 's1', ok: false, error: { code: 'sync.unavailable' } });
    expect((ack?.payload.error as { message: string } | undefined)?.message).toContain(
      'access mirror is not available',
    );
    expect(conforms('sync/ack', ack?.payload)).toBe(true);
    expect(t.sink.enqueued[1]).toEqual(ack);
    expect(t.row('s1')).toBeUndefined();
  });

  it('with an access mirror: applied once, acknowledged with its version', async () => {
    const applied: SyncPayload[] = [];
    const t = commandHarness({
      sync: {
        apply: async (p) => {
          applied.push(p);
          return { version: p.version };
        },
      },
    });
    await t.sendRaw('sync', sync);
    await t.sendRaw('sync', sync);
    expect(applied).toEqual([sync]);
    expect(t.sink.enqueued.map((a) => a.payload)).toEqual([
      { v: 1, id: 's1', ok: true, version: 7 },
      { v: 1, id: 's1', ok: true, version: 7 },
    ]);
  });

  it('a snapshot of several MB is taken whole; a sync above 32 MiB is refused payload.too-large, a command above 256 KiB too', async () => {
    const applied: number[] = [];
    const t = commandHarness({
      sync: {
        apply: async (p) => {
          applied.push(JSON.stringify(p).length);
          return { version: p.version };
        },
      },
    });
    const users = Array.from({ length: 40_000 }, (_, i) => ({ id: `user-${i}`, name: 'A'.repeat(60) }));
    await t.sendRaw('sync', { ...sync, id: 'big', data: { users } });
    expect(applied).toHaveLength(1);
    expect(applied[0]).toBeGreaterThan(MAX_INBOUND_BYTES * 10);
    expect(t.last()).toMatchObject({ id: 'big', ok: true });
    const huge = { ...sync, id: 'huge', data: { users, padding: 'A'.repeat(MAX_SYNC_BYTES) } };
    await t.sendRaw('sync', huge);
    expect(t.last()).toMatchObject({ id: null, ok: false, error: { code: 'payload.too-large' } });
    expect(applied).toHaveLength(1);
    expect(t.row('huge')).toBeUndefined();
  });

  it('an invalid sync keeps its payload.* codes', async () => {
    const t = commandHarness();
    await t.sendRaw('sync', { ...sync, version: 0 });
    expect(t.last()).toMatchObject({ id: 's1', ok: false, error: { code: 'payload.invalid' } });
  });

  it("a sync left 'started' by a stop is answered sync.interrupted at start-up, never applied; a redelivery gets the same", async () => {
    const applied: SyncPayload[] = [];
    const apply = async (p: SyncPayload) => {
      applied.push(p);
      return { version: 1 };
    };
    const t = commandHarness({ sync: { apply } });
    t.store.db
      .prepare("INSERT INTO inbox (id, topic, state, result, received_at) VALUES ('s1', 'sync', 'started', NULL, 1)")
      .run();
    expect(await t.inbound.recover()).toBe(1);
    expect(t.last()).toMatchObject({ id: 's1', ok: false, error: { code: 'sync.interrupted' } });
    expect(t.row('s1')?.state).toBe('done');
    await t.sendRaw('sync', sync);
    expect(t.last()).toMatchObject({ id: 's1', ok: false, error: { code: 'sync.interrupted' } });
    expect(applied).toEqual([]);
    expect(await t.inbound.recover()).toBe(0);
  });
});

describe('inbox bounds', () => {
  // The inbox is trimmed on the turn after a message is recorded, off the command's path.
  const trimmed = () => new Promise((r) => setImmediate(r));
  const fill = (t: ReturnType<typeof commandHarness>, n: number, at: number, prefix: string, state = 'done') => {
    const ins = t.store.db.prepare(
      "INSERT INTO inbox (id, topic, state, result, received_at) VALUES (?, 'sync', ?, '{}', ?)",
    );
    t.store.transaction(() => {
      for (let i = 0; i < n; i++) ins.run(`${prefix}${i}`, state, at);
    });
  };

  it('keeps every record younger than 7 days, however much else came since: a redelivered open still gets its stored ok', async () => {
    const t = commandHarness();
    const open = await t.run({ op: 'open', lockId: 'L1' });
    fill(t, 5, t.clock.now(), 'stuck-', 'started');
    fill(t, 10_050, t.clock.now(), 'other-');
    await t.run({ op: 'ping' }, { cmdId: 'new' });
    await trimmed();
    expect(t.inboxCount()).toBe(1 + 5 + 10_050 + 1);
    await t.send(open);
    expect(t.target.actions).toEqual([`open L1 ${DEFAULT_OPEN_MS}`]);
    expect(t.last()).toMatchObject({ id: open.cmdId, ok: true });
    expect(t.row('stuck-0')?.state).toBe('started');
  });

  it('a refused sync leaves no record: 50 of them, and the inbox holds only what was accepted', async () => {
    const t = commandHarness();
    await t.run({ op: 'ping' }, { cmdId: 'kept' });
    for (let i = 0; i < 50; i++)
      await t.sendRaw('sync', { v: 1, id: `refused-${i}`, kind: 'snapshot', version: 1, data: {} });
    // This hub has no mirror: every sync is answered sync.unavailable, and none is stored.
    expect(t.last()).toMatchObject({ id: 'refused-49', ok: false, error: { code: 'sync.unavailable' } });
    expect(t.inboxCount()).toBe(1);
    // A redelivery is checked again and meets the same refusal.
    await t.sendRaw('sync', { v: 1, id: 'refused-0', kind: 'snapshot', version: 1, data: {} });
    expect(t.last()).toMatchObject({ id: 'refused-0', ok: false, error: { code: 'sync.unavailable' } });
  });

  it('drops answered ids older than 7 days, a batch per new message at most once a minute', async () => {
    const t = commandHarness();
    fill(t, 2, t.clock.now(), 'stuck-', 'started');
    fill(t, 100, t.clock.now(), 'old-');
    await t.clock.advance(INBOX_MAX_AGE_MS - 1000);
    fill(t, 10, t.clock.now(), 'recent-');
    await t.clock.advance(2000);
    await t.run({ op: 'ping' });
    await trimmed();
    expect(t.inboxCount()).toBe(2 + 100 - 64 + 10 + 1);
    // Within the minute: no pruning (a transaction per command for nothing).
    await t.run({ op: 'ping' });
    await trimmed();
    expect(t.inboxCount()).toBe(2 + 100 - 64 + 10 + 2);
    await t.clock.advance(PRUNE_INTERVAL_MS);
    await t.run({ op: 'ping' });
    await trimmed();
    expect(t.inboxCount()).toBe(2 + 10 + 3);
    await t.clock.advance(PRUNE_INTERVAL_MS);
    await t.run({ op: 'ping' });
    await trimmed();
    expect(t.inboxCount()).toBe(2 + 10 + 4);
    expect(t.row('recent-9')).toBeDefined();
    expect(t.row('stuck-1')?.state).toBe('started');
  });
});
