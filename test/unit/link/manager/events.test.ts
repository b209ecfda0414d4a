import { describe, expect, it } from 'vitest';
import type { LockEvent } from '../../../../src/contract/link-messages.js';
import { DEFAULT_LINK_OPTIONS } from '../../../../src/link/manager.js';
import { Site } from './site.js';

/** Event collection: pushed by the lock, fetched in batches, stored once, then acknowledged. */

const A = 'SIM-0001';

/** A site of one attached lock whose frames to the hub pass through a man in the middle. */
async function onWatchedLink(seed: string) {
  const site = await Site.create({ seed, locks: 1, mitm: true });
  const hub = site.hub;
  await hub.attach(A);
  await site.pass(200);
  const lock = site.world.lock(A);
  const link = hub.mitm?.current(lock.address);
  if (!link) throw new Error('no link');
  return { site, hub, lock, link };
}

/** The attacker's radio holds every frame from the lock; the test hands them on, in its order. */
function holdFromLock(link: Awaited<ReturnType<typeof onWatchedLink>>['link']): Uint8Array[] {
  const held: Uint8Array[] = [];
  link.intercept = (f) => {
    held.push(f.slice());
    return 'drop';
  };
  return held;
}

const microtasks = async () => {
  for (let i = 0; i < 50; i++) await Promise.resolve();
};

describe('event collection', () => {
  it('stores every event once, in order, tells listeners once, and only then lets the lock drop it', async () => {
    const site = await Site.create({ seed: 'events', locks: 2, faults: { latencyMs: 1 } });
    const hub = site.hub;
    for (const id of site.ids()) await hub.attach(id);
    const lock = site.world.lock(A);
    const violations: string[] = [];
    site.watch(() => {
      const acked = (lock.events()[0]?.seq ?? lock.state().lastSeq + 1) - 1;
      const stored = hub.lock(A).lastEventSeq;
      if (acked > stored) violations.push(`lock dropped up to ${acked}, hub stored up to ${stored}`);
    }, 1);
    const produced: LockEvent[] = [];

    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 25; i++) produced.push(i % 2 ? lock.openByHand() : lock.tamper());
      await site.pass(7 * round);
    }
    await site.until(() => lock.events().length === 0 && hub.lock(A).lastEventSeq === 100, 'all collected');

    expect(hub.storedEvents(A)).toEqual(produced);
    expect(hub.lockEvents.filter((e) => e.lockId === A).map((e) => e.event)).toEqual(produced);
    expect(hub.storedEvents('SIM-0002')).toEqual([]);
    expect(violations).toEqual([]);
  });

  it("stores an open's pushed event without fetching it again: the answer's lastSeq says it is all there is; one acknowledgement", async () => {
    const site = await Site.create({ seed: 'one-pull', locks: 1 });
    const hub = site.hub;
    await hub.attach(A);
    await site.pass(200);
    const lock = site.world.lock(A);
    const before = lock.requestCounts().handled;
    const state = await site.drive(hub.manager.open(A, 600_000));
    await site.until(() => hub.lock(A).lastEventSeq === state.lastSeq && lock.events().length === 0, 'collected');
    await site.pass(50);
    const after = lock.requestCounts().handled;
    const delta = (op: keyof typeof after) => after[op] - before[op];
    expect({
      open: delta('open'),
      getState: delta('getState'),
      getEvents: delta('getEvents'),
      ackEvents: delta('ackEvents'),
    }).toEqual({
      open: 1,
      getState: 0,
      getEvents: 0,
      ackEvents: 1,
    });
    expect(hub.storedEvents(A).at(-1)).toMatchObject({ seq: state.lastSeq, type: 'opened', by: 'remote' });
  });

  it('events pushed as they happen, each the next in sequence, are stored as they came: no getState, no getEvents, one acknowledgement once idle', async () => {
    const { site, hub, lock } = await onWatchedLink('push-in-sequence');
    await site.pass(5_000);
    expect(lock.events()).toEqual([]);
    const before = lock.requestCounts().handled;
    // A passage: the door opens, and closes a second later (two pushes within the acknowledgement's delay).
    const opened = lock.setDoor(true);
    await site.pass(1_000);
    const closed = lock.setDoor(false);
    await site.until(() => hub.lock(A).lastEventSeq === closed?.seq, 'both stored');
    expect(hub.storedEvents(A).slice(-2)).toEqual([opened, closed]);
    await site.until(() => lock.events().length === 0, 'acknowledged', 10_000);
    await site.pass(5_000);
    const after = lock.requestCounts().handled;
    const delta = (op: keyof typeof after) => after[op] - before[op];
    expect({ getState: delta('getState'), getEvents: delta('getEvents'), ackEvents: delta('ackEvents') }).toEqual({
      getState: 0,
      getEvents: 0,
      ackEvents: 1,
    });
  });

  it('a push that arrives while the previous one is being stored is stored as it came too, not pulled', async () => {
    const { site, hub, lock, link } = await onWatchedLink('push-while-storing');
    await site.pass(5_000);
    const held = holdFromLock(link);
    const before = lock.requestCounts().handled;
    const e1 = lock.setDoor(true);
    const e2 = lock.setDoor(false);
    await microtasks();
    const [pushOf1, pushOf2] = held.splice(0);
    if (!e1 || !e2 || !pushOf1 || !pushOf2) expect.fail('expected two pushes');
    link.intercept = undefined;
    // e1's collection starts and waits for its durable commit (held); e2's push arrives meanwhile.
    hub.holdCommits = true;
    link.inject(pushOf1);
    await site.until(() => hub.heldCommits.length > 0, "e1's commit under way");
    link.inject(pushOf2);
    await site.pass(5);
    hub.holdCommits = false;
    for (const flush of hub.heldCommits.splice(0)) flush();
    await site.until(() => hub.lock(A).lastEventSeq === e2.seq, 'both stored');
    await site.until(() => lock.events().length === 0, 'acknowledged', 10_000);
    const after = lock.requestCounts().handled;
    expect({ getState: after.getState - before.getState, getEvents: after.getEvents - before.getEvents }).toEqual({
      getState: 0,
      getEvents: 0,
    });
    expect(hub.storedEvents(A).slice(-2)).toEqual([e1, e2]);
  });

  it('a push that is not the next in sequence (one before it lost) is pulled: both stored, in order', async () => {
    const { site, hub, lock, link } = await onWatchedLink('push-gap');
    let dropped = 0;
    link.intercept = (f) => (f[0] === 1 && dropped++ === 0 ? 'drop' : 'pass');
    const before = lock.requestCounts().handled;
    const first = lock.tamper(); // its push is lost
    await site.pass(100);
    expect(hub.lock(A).lastEventSeq).toBe(first.seq - 1);
    const second = lock.tamper();
    await site.until(() => hub.lock(A).lastEventSeq === second.seq, 'both collected', 10_000);
    expect(hub.storedEvents(A).slice(-2)).toEqual([first, second]);
    expect(lock.requestCounts().handled.getEvents - before.getEvents).toBeGreaterThan(0);
  });

  it('a push in sequence whose turn brings an answer saying the lock holds more is pulled: the rest comes at once, not at the poll', async () => {
    const { site, hub, lock, link } = await onWatchedLink('push-and-more');
    const held = holdFromLock(link);
    const e1 = lock.tamper();
    const e2 = lock.tamper();
    const asking = hub.manager.lockState(A);
    await microtasks();
    const [pushOf1, pushOf2, stateAnswer] = held.splice(0);
    if (!pushOf1 || !pushOf2 || !stateAnswer) expect.fail('expected two pushes and a state answer');
    // e2's push is lost; e1's push and the answer (lastSeq = e2's) arrive in the same turn.
    link.intercept = undefined;
    link.inject(pushOf1);
    link.inject(stateAnswer);
    expect((await asking).lastSeq).toBe(e2.seq);
    // Well before the poll (30 s): the answer said there is more, so the hub pulled it.
    await site.pass(1_000);
    expect(hub.storedEvents(A).slice(-2)).toEqual([e1, e2]);
  });

  it('a push after a gap, with an answer of its turn older than it, is pulled at once: the old answer does not say there is nothing new', async () => {
    const { site, hub, lock, link } = await onWatchedLink('stale-answer-gap');
    const held = holdFromLock(link);
    const stored = hub.lock(A).lastEventSeq;
    const asking = hub.manager.lockState(A);
    await microtasks();
    const e1 = lock.tamper();
    const e2 = lock.tamper();
    await microtasks();
    const [stateAnswer, pushOf1, pushOf2] = held.splice(0);
    if (!stateAnswer || !pushOf1 || !pushOf2) expect.fail('expected a state answer and two pushes');
    // e1's push is lost; the answer (lastSeq = what is stored) and e2's push arrive in the same turn.
    link.intercept = undefined;
    link.inject(stateAnswer);
    link.inject(pushOf2);
    expect((await asking).lastSeq).toBe(stored);
    await site.pass(1_000);
    expect(hub.storedEvents(A).slice(-2)).toEqual([e1, e2]);
  });

  it('a push that arrives while a pull stores the very event it carries sets off nothing more', async () => {
    const { site, hub, lock, link } = await onWatchedLink('push-during-pull');
    await site.pass(5_000);
    // The lock's sealed frames: the first push lost, the second passed, the third held back.
    let sealed = 0;
    let pushOf3: Uint8Array | undefined;
    link.intercept = (f) => {
      if (f[0] !== 1) return 'pass';
      sealed++;
      if (sealed === 1) return 'drop';
      if (sealed === 3) {
        pushOf3 = f.slice();
        return 'drop';
      }
      return 'pass';
    };
    const before = lock.requestCounts().handled;
    hub.holdCommits = true;
    lock.tamper();
    lock.tamper();
    const e3 = lock.tamper();
    // e2's push is a gap: the hub pulls (getState, getEvents: e1..e3) and stores them (held).
    await site.until(() => hub.heldCommits.length > 0, 'the pull storing e1..e3');
    if (!pushOf3) expect.fail('the third push was not held back');
    link.inject(pushOf3);
    await site.pass(5);
    hub.holdCommits = false;
    for (const flush of hub.heldCommits.splice(0)) flush();
    await site.until(
      () => hub.lock(A).lastEventSeq === e3.seq && lock.events().length === 0,
      'stored and acknowledged',
    );
    await site.pass(1_000);
    // One getState, the pull's: e3's late push found its event stored and asked nothing.
    expect(lock.requestCounts().handled.getState - before.getState).toBe(1);
  });

  it("an idle lock's poll is one exchange (getState): no getEvents when nothing is new", async () => {
    const { site, lock } = await onWatchedLink('idle-poll');
    await site.pass(5_000);
    const before = lock.requestCounts().handled;
    await site.pass(10 * DEFAULT_LINK_OPTIONS.pollMs);
    const after = lock.requestCounts().handled;
    const delta = (op: keyof typeof after) => after[op] - before[op];
    expect(delta('getState')).toBeGreaterThanOrEqual(9);
    expect(delta('getState')).toBeLessThanOrEqual(11);
    expect({ getEvents: delta('getEvents'), ackEvents: delta('ackEvents') }).toEqual({ getEvents: 0, ackEvents: 0 });
  });

  it("an open's answer repeated from the lock's cache, older than events stored since, does not make the lock look reset", async () => {
    const { site, hub, lock, link } = await onWatchedLink('stale-answer');
    // The open's pushed event goes through; its answer (the lock's next frame) is lost on the radio.
    let fromLock = 0;
    link.intercept = () => (++fromLock === 2 ? 'drop' : 'pass');
    const opening = hub.manager.open(A, 600_000);
    await site.until(
      () => lock.requestCounts().handled.open === 1 && hub.lock(A).lastEventSeq === lock.state().lastSeq,
      'the open carried out and its event collected',
    );
    const openedSeq = hub.lock(A).lastEventSeq;
    // Another event, collected before the hub resends the open.
    const alarm = lock.tamper();
    await site.until(() => hub.lock(A).lastEventSeq === alarm.seq, 'the alarm collected');
    // The resent open is answered from the lock's cache: its state is the one of before the alarm.
    const state = await site.drive(opening);
    expect(state.lastSeq).toBe(openedSeq);
    await site.pass(1000);
    expect(hub.lock(A).state).toBe('bound');
    expect(hub.securityKinds(A)).not.toContain('lock.quarantined');
    expect(lock.requestCounts().handled.open).toBe(1);
  });

  it('a state answer overtaken by a collection that stored newer events is not taken for a lock gone backwards', async () => {
    const { site, hub, lock, link } = await onWatchedLink('overtaken-state');
    const held = holdFromLock(link);
    const next = async (what: string) => {
      await microtasks();
      const f = held.shift();
      if (!f) expect.fail(`no frame from the lock for ${what}`);
      expect(held, `only ${what} in flight`).toEqual([]);
      return f;
    };

    const e1 = lock.tamper();
    await next('the push of e1'); // never handed on: lost on the radio
    // The hub asks the lock's state: the answer says lastSeq 1 — held back for now.
    const asking = hub.manager.lockState(A);
    const stateOf1 = await next('the state answer (lastSeq 1)');
    const e2 = lock.tamper();
    const pushOf2 = await next('the push of e2');
    // e2's push arrives: not the next one after what is stored (0), so a collection starts...
    link.inject(pushOf2);
    await site.pass(5);
    link.inject(await next('the collection asking getState (lastSeq 2)'));
    const batch = await next('getEvents answered with e1 and e2');
    // ...and just before its events arrive, the old state answer (lastSeq 1 > 0 stored) does.
    link.inject(stateOf1);
    expect((await asking).lastSeq).toBe(1);
    link.inject(batch);
    link.inject(await next('the acknowledgement'));
    await microtasks();
    expect(hub.lock(A).lastEventSeq).toBe(2);
    // The collection the old answer asked for runs now, with stored (2) above its lastSeq (1).
    link.intercept = undefined;
    for (const f of held.splice(0)) link.inject(f);
    await site.pass(1000);

    expect(hub.lock(A).state).toBe('bound');
    expect(hub.securityKinds(A)).not.toContain('lock.quarantined');
    expect(hub.storedEvents(A)).toEqual([e1, e2]);
  });

  // A push lost on the radio (or tampered with) must not leave its event on the lock until some
  // later event or reconnection, however long that takes (a tamper alarm could wait for days): the
  // lastSeq in every state answer, and a poll, make the hub collect it.
  it('a pushed event lost on the radio is collected without waiting for another event', async () => {
    const { site, hub, lock, link } = await onWatchedLink('lost-push');
    let dropped = 0;
    link.intercept = (f) => (f[0] === 1 && dropped++ === 0 ? 'drop' : 'pass');

    const alarm = lock.tamper();
    // The hub even talks to the lock meanwhile: its answer says lastSeq = 1.
    expect((await site.drive(hub.manager.lockState(A))).lastSeq).toBe(alarm.seq);
    await site.pass(60_000);

    expect(dropped).toBeGreaterThan(0);
    expect(hub.storedEvents(A)).toEqual([alarm]);
  });
});
