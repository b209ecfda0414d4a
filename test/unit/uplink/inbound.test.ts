import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import type { LockMode, LockState } from '../../../src/link/frames.js';
import type { LockSummary } from '../../../src/link/manager.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import type { SyncPayload } from '../../../src/uplink/contract.js';
import {
  type CommandTarget,
  firstInvalidUtf8,
  INBOX_MAX_AGE_MS,
  INBOX_MAX_IDS,
  Inbound,
  type ResultSink,
  type ResultTopic,
  type SyncTarget,
} from '../../../src/uplink/inbound.js';
import { conforms } from '../../../src/uplink/validate.js';
import { tempDir } from '../../helpers/tmp.js';

const STATE: LockState = { bolt: 'locked', mode: 'normal', doorOpen: false, batteryPercent: 87, lastSeq: 4, time: 0 };

const summary = (lockId: string): LockSummary => ({
  lockId,
  bearer: 'sim',
  address: `sim:${lockId}`,
  state: 'bound',
  quarantineReason: null,
  connected: true,
  lastSeen: null,
  lastEventSeq: 4,
  sessions: 1,
  failedHandshakes: 0,
  rejectedFrames: 0,
  keyFingerprint: 'ab:cd',
});

interface Deferred {
  resolve(): void;
  promise: Promise<void>;
}
const deferred = (): Deferred => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { resolve, promise };
};

/** A LinkManager stand-in: counts calls; 'GONE' is unreachable; a gate holds a lock's requests. */
class FakeTarget implements CommandTarget {
  readonly calls: string[] = [];
  readonly gates = new Map<string, Deferred>();
  readonly running = new Set<string>();
  maxParallel = 0;
  failWith: unknown;

  list(): LockSummary[] {
    this.calls.push('list');
    return [summary('L1'), summary('L2')];
  }
  lockState(lockId: string): Promise<LockState> {
    return this.#op(`getState ${lockId}`, lockId, STATE);
  }
  open(lockId: string, durationMs: number): Promise<LockState> {
    return this.#op(`open ${lockId} ${durationMs}`, lockId, { ...STATE, bolt: 'unlocked' });
  }
  lockNow(lockId: string): Promise<LockState> {
    return this.#op(`lock ${lockId}`, lockId, STATE);
  }
  setMode(lockId: string, mode: LockMode): Promise<LockState> {
    return this.#op(`setMode ${lockId} ${mode}`, lockId, { ...STATE, mode });
  }

  async #op(call: string, lockId: string, state: LockState): Promise<LockState> {
    this.calls.push(call);
    if (this.running.has(lockId)) throw new Error(`two requests at once for ${lockId}`);
    this.running.add(lockId);
    this.maxParallel = Math.max(this.maxParallel, this.running.size);
    try {
      await this.gates.get(lockId)?.promise;
      if (this.failWith !== undefined) throw this.failWith;
      if (lockId === 'GONE') throw new HubError('lock.unreachable', `lock ${lockId} did not answer`, { hint: 'x' });
      return state;
    } finally {
      this.running.delete(lockId);
    }
  }
}

interface Sent {
  topic: ResultTopic;
  payload: Record<string, unknown>;
}

class FakeSink implements ResultSink {
  readonly enqueued: Sent[] = [];
  readonly published: Sent[] = [];
  failEnqueue = false;
  enqueueMessage(topic: ResultTopic, payload: object): void {
    if (this.failEnqueue) throw new HubError('outbox.full', 'the outbox is full');
    this.enqueued.push({ topic, payload: payload as Record<string, unknown> });
  }
  publishNow(topic: ResultTopic, payload: object): void {
    this.published.push({ topic, payload: payload as Record<string, unknown> });
  }
}

const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

function setup(opts: { sync?: SyncTarget } = {}) {
  const store = Store.open(tempDir());
  stores.push(store);
  const clock = new VirtualClock();
  const target = new FakeTarget();
  const sink = new FakeSink();
  const inbound = new Inbound({ store, clock, log: silentLogger(), target, results: sink, ...opts });
  const send = (topic: 'cmd' | 'sync', body: unknown) => inbound.handle(topic, Buffer.from(JSON.stringify(body)));
  const cmd = (id: string, rest: Record<string, unknown>) => send('cmd', { v: 1, id, ...rest });
  const row = (id: string) =>
    store.db.prepare('SELECT topic, state, result, received_at FROM inbox WHERE id = ?').get(id) as
      | { topic: string; state: string; result: string | null; received_at: number }
      | undefined;
  const inboxCount = () => (store.db.prepare('SELECT COUNT(*) AS n FROM inbox').get() as { n: number }).n;
  return { store, clock, target, sink, inbound, send, cmd, row, inboxCount };
}

describe('inbound commands', () => {
  it('act once and answer on cmd/result, recorded as done in the inbox', async () => {
    const t = setup();
    await t.cmd('c1', { op: 'ping' });
    await t.cmd('c2', { op: 'listLocks' });
    await t.cmd('c3', { op: 'getState', lockId: 'L1' });
    await t.cmd('c4', { op: 'open', lockId: 'L1', durationMs: 5000 });
    await t.cmd('c5', { op: 'lock', lockId: 'L1' });
    await t.cmd('c6', { op: 'setMode', lockId: 'L2', mode: 'office' });

    expect(t.target.calls).toEqual(['list', 'getState L1', 'open L1 5000', 'lock L1', 'setMode L2 office']);
    expect(t.sink.published).toEqual([]);
    const answers = t.sink.enqueued;
    expect(answers.map((a) => a.topic)).toEqual(Array(6).fill('cmd/result'));
    for (const a of answers) {
      expect(conforms('cmd/result', a.payload)).toBe(true);
      expect(a.payload.ok).toBe(true);
    }
    expect(answers[0]?.payload).toEqual({
      v: 1,
      id: 'c1',
      ok: true,
      result: { pong: true, at: new Date(t.clock.now()).toISOString() },
    });
    expect(answers[1]?.payload.result).toEqual({ locks: [summary('L1'), summary('L2')] });
    expect(answers[2]?.payload.result).toEqual({ state: STATE });
    expect(answers[3]?.payload.result).toEqual({ state: { ...STATE, bolt: 'unlocked' } });
    expect(answers[5]?.payload.result).toEqual({ state: { ...STATE, mode: 'office' } });

    const stored = t.row('c4');
    expect(stored).toMatchObject({ topic: 'cmd', state: 'done', received_at: t.clock.now() });
    expect(JSON.parse(stored?.result ?? '')).toEqual(answers[3]?.payload);
  });

  it('a redelivered id gets the stored answer again and does not act again', async () => {
    const t = setup();
    const open = { op: 'open', lockId: 'L1', durationMs: 3000 };
    await t.cmd('again', open);
    await t.cmd('again', open);
    await t.cmd('again', open);
    expect(t.target.calls).toEqual(['open L1 3000']);
    expect(t.sink.enqueued).toHaveLength(3);
    expect(t.sink.enqueued[1]).toEqual(t.sink.enqueued[0]);
    expect(t.sink.enqueued[2]).toEqual(t.sink.enqueued[0]);
    expect(t.sink.published).toEqual([]);
    expect(t.inboxCount()).toBe(1);
  });

  it('a redelivery while the first copy is still acting waits for it and does not act twice', async () => {
    const t = setup();
    const gate = deferred();
    t.target.gates.set('L1', gate);
    const first = t.cmd('dup', { op: 'lock', lockId: 'L1' });
    const second = t.cmd('dup', { op: 'lock', lockId: 'L1' });
    await Promise.resolve();
    expect(t.inbound.inFlight).toBe(1);
    gate.resolve();
    await Promise.all([first, second]);
    expect(t.target.calls).toEqual(['lock L1']);
    expect(t.sink.enqueued).toHaveLength(1);
    expect(t.inbound.inFlight).toBe(0);
  });

  it("a 'started' row (the hub stopped while acting) is answered cmd.interrupted, never acted on", async () => {
    const t = setup();
    t.store.db
      .prepare("INSERT INTO inbox (id, topic, state, result, received_at) VALUES ('half', 'cmd', 'started', NULL, 1)")
      .run();
    await t.cmd('half', { op: 'open', lockId: 'L1', durationMs: 3000 });
    expect(t.target.calls).toEqual([]);
    expect(t.sink.enqueued).toHaveLength(1);
    const answer = t.sink.enqueued[0]?.payload;
    expect(answer).toMatchObject({ v: 1, id: 'half', ok: false, error: { code: 'cmd.interrupted' } });
    expect(conforms('cmd/result', answer)).toBe(true);
    expect(t.row('half')?.state).toBe('done');

    await t.cmd('half', { op: 'open', lockId: 'L1', durationMs: 3000 });
    expect(t.target.calls).toEqual([]);
    expect(t.sink.enqueued[1]).toEqual(t.sink.enqueued[0]);
  });

  it('a HubError from the target becomes ok:false with its code and message, no hint or stack', async () => {
    const t = setup();
    await t.cmd('gone', { op: 'getState', lockId: 'GONE' });
    const answer = t.sink.enqueued[0]?.payload;
    expect(answer).toEqual({
      v: 1,
      id: 'gone',
      ok: false,
      error: { code: 'lock.unreachable', message: 'lock GONE did not answer' },
    });
    expect(t.row('gone')?.state).toBe('done');
    // Failed commands are not retried on redelivery either.
    await t.cmd('gone', { op: 'getState', lockId: 'GONE' });
    expect(t.target.calls).toEqual(['getState GONE']);
  });

  it('any other failure is an internal error whose message reveals nothing', async () => {
    const t = setup();
    t.target.failWith = new Error('secret=hunter2 at /var/lib/iq-hub');
    await t.cmd('boom', { op: 'lock', lockId: 'L1' });
    const answer = t.sink.enqueued[0]?.payload as { ok: boolean; error: { code: string; message: string } };
    expect(answer.ok).toBe(false);
    expect(answer.error.code).toBe('internal');
    expect(JSON.stringify(answer)).not.toContain('hunter2');
  });

  it('commands for one lock run one at a time in arrival order; different locks run concurrently', async () => {
    const t = setup();
    const g1 = deferred();
    const g2 = deferred();
    t.target.gates.set('L1', g1);
    t.target.gates.set('L2', g2);
    const all = [
      t.cmd('a', { op: 'open', lockId: 'L1', durationMs: 1000 }),
      t.cmd('b', { op: 'lock', lockId: 'L1' }),
      t.cmd('c', { op: 'getState', lockId: 'L2' }),
    ];
    await new Promise((r) => setImmediate(r));
    expect(t.target.calls).toEqual(['open L1 1000', 'getState L2']);
    expect(t.target.maxParallel).toBe(2);
    g2.resolve();
    await all[2];
    g1.resolve();
    await Promise.all(all);
    expect(t.target.calls).toEqual(['open L1 1000', 'getState L2', 'lock L1']);
    expect(t.sink.enqueued.map((a) => a.payload.id)).toEqual(['c', 'a', 'b']);
  });

  it('the inbox update and the outbox enqueue commit together: a failed enqueue leaves the id started', async () => {
    const t = setup();
    t.sink.failEnqueue = true;
    await t.cmd('atomic', { op: 'lock', lockId: 'L1' });
    expect(t.row('atomic')).toMatchObject({ state: 'started', result: null });
    // The answer still goes out, best effort.
    expect(t.sink.published.map((p) => p.payload)).toEqual([
      { v: 1, id: 'atomic', ok: true, result: { state: STATE } },
    ]);
    t.sink.failEnqueue = false;
    await t.cmd('atomic', { op: 'lock', lockId: 'L1' });
    expect(t.target.calls).toEqual(['lock L1']);
    expect(t.sink.enqueued[0]?.payload).toMatchObject({ ok: false, error: { code: 'cmd.interrupted' } });
  });
});

describe('inbound refusals', () => {
  it('an invalid command gets a precise error via publishNow and changes nothing', async () => {
    const t = setup();
    await t.cmd('bad1', { op: 'open', lockId: 'L1', durationMs: 0 });
    await t.cmd('bad2', { op: 'open', lockId: 'L1/x', durationMs: 10 });
    await t.inbound.handle('cmd', Buffer.from('{"v":1,"id":"bad3","op":"ping"'));
    await t.inbound.handle('cmd', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]));
    expect(t.target.calls).toEqual([]);
    expect(t.sink.enqueued).toEqual([]);
    expect(t.inboxCount()).toBe(0);
    expect(t.sink.published.map((p) => p.payload)).toEqual([
      { v: 1, id: 'bad1', ok: false, error: { code: 'payload.invalid', message: '/durationMs must be >= 1' } },
      {
        v: 1,
        id: 'bad2',
        ok: false,
        error: { code: 'payload.invalid', message: expect.stringMatching(/^\/lockId must match pattern/) },
      },
      { v: 1, id: null, ok: false, error: { code: 'payload.not-json', message: 'payload is not valid JSON' } },
      {
        v: 1,
        id: null,
        ok: false,
        error: { code: 'payload.not-utf8', message: 'payload is not valid UTF-8 (first bad byte at offset 2)' },
      },
    ]);
  });

  it('an id already used on the other topic is refused and changes nothing', async () => {
    const t = setup();
    await t.cmd('shared', { op: 'ping' });
    await t.send('sync', { v: 1, id: 'shared', kind: 'snapshot', version: 1, data: {} });
    expect(t.sink.published).toEqual([
      {
        topic: 'sync/ack',
        payload: {
          v: 1,
          id: 'shared',
          ok: false,
          error: expect.objectContaining({ code: 'payload.id-reused' }) as unknown,
        },
      },
    ]);
    expect(t.row('shared')?.topic).toBe('cmd');
    expect(t.sink.enqueued).toHaveLength(1);
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

  it('without an access mirror: ok:false sync.unavailable, stored, and the same on redelivery', async () => {
    const t = setup();
    await t.send('sync', sync);
    await t.send('sync', sync);
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
    expect(t.row('s1')).toMatchObject({ topic: 'sync', state: 'done' });
  });

  it('with an access mirror: applied once, acknowledged with its version', async () => {
    const applied: SyncPayload[] = [];
    const t = setup({
      sync: {
        apply: async (p) => {
          applied.push(p);
          return { version: p.version };
        },
      },
    });
    await t.send('sync', sync);
    await t.send('sync', sync);
    expect(applied).toEqual([sync]);
    expect(t.sink.enqueued.map((a) => a.payload)).toEqual([
      { v: 1, id: 's1', ok: true, version: 7 },
      { v: 1, id: 's1', ok: true, version: 7 },
    ]);
  });
});

describe('inbox bounds', () => {
  const fill = (t: ReturnType<typeof setup>, n: number, at: number, prefix: string, state = 'done') => {
    const ins = t.store.db.prepare(
      "INSERT INTO inbox (id, topic, state, result, received_at) VALUES (?, 'cmd', ?, '{}', ?)",
    );
    t.store.transaction(() => {
      for (let i = 0; i < n; i++) ins.run(`${prefix}${i}`, state, at);
    });
  };

  it(`keeps the newest ${INBOX_MAX_IDS} ids`, async () => {
    const t = setup();
    fill(t, 5, t.clock.now(), 'stuck-', 'started');
    fill(t, INBOX_MAX_IDS + 50, t.clock.now(), 'old-');
    await t.cmd('new', { op: 'ping' });
    // The oldest answered ids went; ids never answered stay (a redelivery must not act on them).
    expect(t.inboxCount()).toBe(INBOX_MAX_IDS + 5);
    expect(t.row('old-0')).toBeUndefined();
    expect(t.row('old-50')).toBeUndefined();
    expect(t.row('old-51')).toBeDefined();
    expect(t.row('stuck-0')?.state).toBe('started');
    expect(t.row('new')?.state).toBe('done');
  });

  it('drops answered ids older than 7 days, a batch per new message', async () => {
    const t = setup();
    fill(t, 2, t.clock.now(), 'stuck-', 'started');
    fill(t, 100, t.clock.now(), 'old-');
    await t.clock.advance(INBOX_MAX_AGE_MS - 1000);
    fill(t, 10, t.clock.now(), 'recent-');
    await t.clock.advance(2000);
    await t.cmd('n1', { op: 'ping' });
    expect(t.inboxCount()).toBe(2 + 100 - 64 + 10 + 1);
    await t.cmd('n2', { op: 'ping' });
    expect(t.inboxCount()).toBe(2 + 10 + 2);
    await t.cmd('n3', { op: 'ping' });
    expect(t.inboxCount()).toBe(2 + 10 + 3);
    expect(t.row('recent-9')).toBeDefined();
    expect(t.row('stuck-1')?.state).toBe('started');
  });
});
