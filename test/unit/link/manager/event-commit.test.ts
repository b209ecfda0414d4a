import { describe, expect, it } from 'vitest';
import { Site } from './site.js';

const A = 'SIM-0001';

/** What SQLite does on SQLITE_FULL in the middle of a transaction: it rolls all of it back. */
const diskFullMidTransaction = (site: Site) => () => {
  site.hub.store.db.exec('ROLLBACK');
  throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
};

describe("a lock's events and the store's group commit", () => {
  it('are acknowledged to the lock only once their group commit is done', async () => {
    const site = await Site.create({ seed: 'event-commit', locks: 1 });
    const hub = site.hub;
    await hub.attach(A);
    await site.pass(200);
    const lock = site.world.lock(A);
    const acks = () => lock.requestCounts().handled.ackEvents;
    const before = acks();
    hub.holdCommits = true;
    const alarm = lock.tamper();
    await site.pass(500);
    // Collected and queued for the group commit, which has not run: the lock keeps the event.
    expect(hub.heldCommits.length).toBeGreaterThan(0);
    expect(lock.events().map((e) => e.seq)).toEqual([alarm.seq]);
    expect(acks()).toBe(before);
    hub.holdCommits = false;
    for (const flush of hub.heldCommits.splice(0)) flush();
    await site.until(() => lock.events().length === 0, 'the event acknowledged after its commit');
    expect(hub.storedEvents(A).at(-1)).toEqual(alarm);
    expect(acks()).toBe(before + 1);
  });

  it('a group commit that fails leaves the events on the lock, and they are collected once the store takes writes again', async () => {
    const site = await Site.create({ seed: 'event-commit-fails', locks: 1 });
    const hub = site.hub;
    await hub.attach(A);
    await site.pass(200);
    const lock = site.world.lock(A);
    hub.holdCommits = true;
    const alarm = lock.tamper();
    await site.pass(500);
    expect(hub.heldCommits.length).toBeGreaterThan(0);
    // A durable transaction takes the queued events along, and its commit fails: none is stored.
    expect(() => hub.store.transaction(diskFullMidTransaction(site))).toThrow();
    hub.holdCommits = false;
    hub.heldCommits.splice(0);
    await site.pass(50);
    expect(hub.storedEvents(A)).not.toContainEqual(alarm);
    expect(lock.events().map((e) => e.seq)).toEqual([alarm.seq]);
    // Room again: the next collection stores the event, then acknowledges it.
    hub.store.space.recheck();
    await site.until(() => lock.events().length === 0, 'the event collected again');
    expect(hub.storedEvents(A).at(-1)).toEqual(alarm);
  });
});
