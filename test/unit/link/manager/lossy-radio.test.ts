import { describe, expect, it } from 'vitest';
import type { SimCounters } from '../../../../drivers/sim-radio/radio.js';
import { HubError } from '../../../../src/base/errors.js';
import type { LockEvent } from '../../../../src/contract/link-messages.js';
import { type Hub, Site } from './site.js';

/**
 * Attach, open, events and detach over a radio that loses, duplicates and reorders 5% of frames
 * each, from a seeded source: everything completes, every event is stored exactly once in sequence
 * order, and the same seed gives the same run.
 */

const FAULTS = { lossRate: 0.05, duplicateRate: 0.05, reorderRate: 0.05, latencyMs: 2 };
const LOCKS = 6;
/** Rounds of an open and a burst of physical events, per lock. */
const ROUNDS = 5;
/** Operations are retried at most this many times by the test (a step may time out under loss). */
const TRIES = 5;

interface Transcript {
  attachTries: number[];
  openTries: number[];
  detachTries: number[];
  events: Record<string, (LockEvent & { receivedAt: number })[]>;
  counters: SimCounters;
  security: string[];
  rejectedFrames: number;
  /** Links the test renewed to have a lost push collected. */
  renewals: number;
}

async function retry(what: string, attempt: () => Promise<boolean>): Promise<number> {
  for (let i = 1; i <= TRIES; i++) if (await attempt()) return i;
  return expect.fail(`${what} did not succeed in ${TRIES} tries`);
}

/** Waits until the hub holds every event the lock logged and the lock's unacknowledged log is empty. */
async function collected(site: Site, hub: Hub, id: string, t: Transcript): Promise<void> {
  const lock = site.world.lock(id);
  const done = () => hub.lock(id).lastEventSeq === lock.state().lastSeq && lock.events().length === 0;
  for (let round = 0; round < TRIES && !done(); round++) {
    const start = site.clock.monotonic();
    while (!done() && site.clock.monotonic() - start < 5_000) await site.clock.advance(5);
    // WORKAROUND: a pushed event lost on the radio is collected only at the next push or the next
    // connection (events.test.ts shows it); renew the link so the hub collects.
    if (!done()) t.renewals += site.world.radio.disconnect(lock.address);
  }
  expect(done(), `${id}: every event collected and acknowledged`).toBe(true);
}

async function run(seed: string): Promise<Transcript> {
  const site = await Site.create({ seed, locks: LOCKS, faults: FAULTS });
  const hub = site.hub;
  const ids = site.ids();
  const t: Transcript = {
    attachTries: [],
    openTries: [],
    detachTries: [],
    events: {},
    counters: site.world.radio.counters(),
    security: [],
    rejectedFrames: 0,
    renewals: 0,
  };

  for (const id of ids) {
    const lock = site.world.lock(id);
    t.attachTries.push(
      await retry(`attach ${id}`, async () => {
        if (hub.pairing.get(id)?.state === 'bound') return true;
        lock.presentMaintenanceCard();
        try {
          await site.drive(hub.startAttach(id));
          return true;
        } catch (e) {
          if (!(e instanceof HubError)) throw e;
          // The lock may have bound with its confirmation lost: the hub settles that when it reconnects.
          await site.pass(1_000);
          return hub.pairing.get(id)?.state === 'bound';
        }
      }),
    );
    expect(lock.boundHub(), `${id} bound to the hub`).toEqual(hub.manager.hubPublicKey);
    expect(hub.lock(id).state).toBe('bound');
  }

  const produced = new Map<string, LockEvent[]>(ids.map((id) => [id, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const id of ids) {
      const lock = site.world.lock(id);
      t.openTries.push(
        await retry(`open ${id}`, async () => {
          try {
            const state = await site.drive(hub.manager.open(id, 2_000));
            return state.bolt === 'unlocked';
          } catch (e) {
            if (e instanceof HubError) return false;
            throw e;
          }
        }),
      );
      expect(lock.state().bolt).toBe('unlocked');
      const acts = [
        () => lock.openByHand(),
        () => lock.setDoor(true),
        () => lock.tamper(),
        () => lock.setDoor(false),
        () => lock.setBattery(90 - round),
      ];
      for (const act of acts) {
        const e = act();
        if (e) produced.get(id)?.push(e);
        await site.pass(10);
      }
    }
  }
  await site.pass(2_000);
  for (const id of ids) await collected(site, hub, id, t);

  for (const id of ids) {
    const lock = site.world.lock(id);
    const stored = hub.storedEvents(id);
    // Exactly once, in sequence order, nothing missing: 1..lastSeq.
    expect(
      stored.map((e) => e.seq),
      `${id} events`,
    ).toEqual(Array.from({ length: lock.state().lastSeq }, (_, i) => i + 1));
    for (const e of produced.get(id) ?? []) expect(stored).toContainEqual(e);
    expect(stored.filter((e) => e.type === 'opened' && e.by === 'remote').length).toBeGreaterThanOrEqual(ROUNDS);
    t.events[id] = hub.pairing.events(id, 1_000).reverse();
    t.rejectedFrames += hub.lock(id).rejectedFrames;
  }

  for (const id of ids) {
    const lock = site.world.lock(id);
    t.detachTries.push(
      await retry(`detach ${id}`, async () => {
        if (!hub.pairing.get(id)) return true;
        return (await site.drive(hub.manager.detach(id))).detached;
      }),
    );
    expect(lock.boundHub(), `${id} forgot the hub`).toBeUndefined();
    expect(hub.pairing.get(id)).toBeUndefined();
  }
  expect(hub.manager.list()).toEqual([]);

  t.counters = site.world.radio.counters();
  t.security = hub.security.map((e) => `${e.kind} ${e.lockId} ${JSON.stringify(e.detail)}`);
  return t;
}

describe('over a radio with 5% loss, 5% duplication and 5% reordering', () => {
  it('attach, open, event collection and detach all complete, and each event is stored once, in order', async () => {
    const t = await run('lossy-1');

    // The faults did happen (else this test would prove nothing).
    expect(t.counters.dropped).toBeGreaterThan(10);
    expect(t.counters.duplicated).toBeGreaterThan(10);
    expect(t.counters.reordered).toBeGreaterThan(10);
    // Duplicated frames are refused as replays and counted.
    expect(t.rejectedFrames).toBeGreaterThan(0);
    expect(t.attachTries.every((n) => n <= TRIES)).toBe(true);
    expect(t.security.filter((s) => s.startsWith('lock.attached'))).toHaveLength(LOCKS);
    expect(t.security.filter((s) => s.startsWith('lock.detached'))).toHaveLength(LOCKS);
    expect(t.security.filter((s) => s.startsWith('lock.quarantined'))).toEqual([]);
  });

  it('is reproducible: the same seed gives the same events, faults and retries; another seed does not', async () => {
    const first = await run('lossy-2');
    const again = await run('lossy-2');
    const other = await run('lossy-3');

    expect(again).toEqual(first);
    expect(other.counters).not.toEqual(first.counters);
  });
});

describe('a radio with jitter', () => {
  // BUG: the manager hands clock.now() to the pairing store as is, and its columns are STRICT
  // INTEGER. A clock whose time has a fraction of a millisecond (the VirtualClock after a jittered
  // delivery; SimLock floors its own time for that reason) makes attach throw SqliteError "cannot
  // store REAL value in INTEGER column locks.last_seen".
  it('does not break attach: timestamps with a fraction of a millisecond are stored', async () => {
    const site = await Site.create({ seed: 'jitter', locks: 1, faults: { latencyMs: 2, jitterMs: 1 } });

    await site.hub.attach('SIM-0001');

    expect(site.hub.lock('SIM-0001').state).toBe('bound');
  });
});
