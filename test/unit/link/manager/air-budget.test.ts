import { afterEach, describe, expect, it } from 'vitest';
import { MemoryLockStorage } from '../../../../sim/lock/storage.js';
import { DEFAULT_LINK_OPTIONS } from '../../../../src/link/manager.js';
import type { MitmLink } from '../../../helpers/mitm-bearer.js';
import { Site } from './site.js';

/**
 * The air budget of an open at the simulated bearer (docs/link-protocol.md "Frame budget"): on an
 * established link one frame to the lock and one back — the answer carries the `opened` event —
 * the hub's acknowledgement riding on its next request, or sent once the link is idle. Counted on
 * the link itself (every bearer frame either way, whatever its kind).
 */

const A = 'SIM-0001';
const sites: Site[] = [];
afterEach(async () => {
  for (const s of sites.splice(0)) await s.close();
});

async function established(seed: string) {
  const site = await Site.bound({ seed, locks: 1, mitm: true });
  sites.push(site);
  const mitm = site.hub.mitm;
  if (!mitm) throw new Error('no MITM');
  const lock = site.world.lock(A);
  // Let the attach's collections and acknowledgements finish: the link is quiet.
  await site.pass(DEFAULT_LINK_OPTIONS.ackDelayMs + 500);
  const link = () => mitm.current(lock.address);
  const count = (l: MitmLink) => ({ out: l.fromHub.length, back: l.fromLock.length });
  return { site, hub: site.hub, lock, link, count };
}

describe('an open on an established link', () => {
  it('is one frame out and one back; the answer carries its event, stored before it is acknowledged', async () => {
    const { site, hub, lock, link, count } = await established('air-open');
    const l = link();
    const before = count(l);
    expect(await hub.tryOpen(A)).toEqual({ ok: true });
    await site.until(() => hub.lock(A).lastEventSeq === lock.state().lastSeq, 'the open event stored');
    const after = count(l);
    expect({ out: after.out - before.out, back: after.back - before.back }).toEqual({ out: 1, back: 1 });
    const opened = hub.storedEvents(A).filter((e) => e.type === 'opened' && e.by === 'remote');
    expect(opened).toHaveLength(1);
    // Stored, and not yet acknowledged: the lock keeps it until the acknowledgement arrives.
    expect(lock.events()).toEqual(opened);
    expect(link()).toBe(l);
  });

  it('a second open carries the first one’s acknowledgement: still one frame each way', async () => {
    const { site, hub, lock, link, count } = await established('air-two');
    const l = link();
    const before = count(l);
    for (let i = 0; i < 3; i++) {
      expect(await hub.tryOpen(A)).toEqual({ ok: true });
      await site.until(() => hub.lock(A).lastEventSeq === lock.state().lastSeq, 'the open event stored');
      // Each open's request acknowledged the events before it: only the newest stays on the lock.
      expect(lock.events().map((e) => e.seq)).toEqual([lock.state().lastSeq]);
    }
    const after = count(l);
    expect({ out: after.out - before.out, back: after.back - before.back }).toEqual({ out: 3, back: 3 });
    // Idle: the last acknowledgement goes on its own after ackDelayMs, one exchange.
    await site.until(() => lock.events().length === 0, 'the delayed acknowledgement', 10_000);
    const idle = count(l);
    expect({ out: idle.out - after.out, back: idle.back - after.back }).toEqual({ out: 1, back: 1 });
  });

  it('an idle lock: opening the link first adds only the KK handshake, one frame each way', async () => {
    const { site, hub, lock, link } = await established('air-connect');
    const old = link();
    await old.close();
    await site.until(() => !hub.lock(A).connected, 'the link closed');
    expect(await hub.tryOpen(A)).toEqual({ ok: true });
    const fresh = link();
    expect(fresh).not.toBe(old);
    await site.until(() => hub.lock(A).lastEventSeq === lock.state().lastSeq, 'the open event stored');
    await site.pass(DEFAULT_LINK_OPTIONS.ackDelayMs - 500);
    // KK message 1 and the open out; KK message 2 and the answer back.
    expect(fresh.fromHub.map((f) => f[0])).toEqual([0x21, 0x01]);
    expect(fresh.fromLock.map((f) => f[0])).toEqual([0x22, 0x01]);
  });

  it('a gap before the carried events (a push lost on the radio) is pulled, never skipped', async () => {
    const { site, hub, lock, link } = await established('air-gap');
    const l = link();
    let dropNext = true;
    l.intercept = (f) => {
      if (f[0] === 1 && dropNext) {
        dropNext = false;
        return 'drop';
      }
      return 'pass';
    };
    const tamper = lock.tamper(); // its push is lost
    await site.pass(5);
    expect(await hub.tryOpen(A)).toEqual({ ok: true });
    await site.until(() => hub.lock(A).lastEventSeq === lock.state().lastSeq, 'every event stored');
    const stored = hub.storedEvents(A);
    expect(stored.map((e) => e.seq)).toEqual([tamper.seq, tamper.seq + 1]);
    expect(stored[0]).toEqual(tamper);
  });

  it('an acknowledgement whose request the lock refused stays owed: it goes again, on its own once idle', async () => {
    const { site, hub, lock } = await established('air-ack-refused');
    expect(await hub.tryOpen(A)).toEqual({ ok: true });
    const first = lock.state().lastSeq;
    await site.until(() => hub.lock(A).lastEventSeq === first, 'the first open stored');
    // The next request carries the acknowledgement of `first`; the lock's flash refuses the write
    // that would forget it, so the lock answers `internal` and still holds the event.
    const save = MemoryLockStorage.prototype.save;
    let refused = 0;
    MemoryLockStorage.prototype.save = function (state) {
      if (refused++ === 0) throw new Error('flash write failed');
      return save.call(this, state);
    };
    try {
      expect(await hub.tryOpen(A)).not.toEqual({ ok: true });
    } finally {
      MemoryLockStorage.prototype.save = save;
    }
    expect(refused).toBeGreaterThan(0);
    expect(lock.events().map((e) => e.seq)).toEqual([first]);
    // An error is not an ok: the hub still owes it, and the delayed ackEvents delivers it.
    await site.until(() => lock.events().length === 0, 'the refused acknowledgement sent again', 10_000);
  });

  it('events the store could not keep are not acknowledged: the lock keeps them and they come later', async () => {
    const { site, hub, lock } = await established('air-store-fails');
    const pairing = hub.pairing;
    const real = pairing.storeEvents.bind(pairing);
    let failures = 0;
    pairing.storeEvents = (...args: Parameters<typeof real>) => {
      if (failures++ === 0) throw new Error('disk I/O error');
      return real(...args);
    };
    expect(await hub.tryOpen(A)).toEqual({ ok: true });
    const seq = lock.state().lastSeq;
    // Past the acknowledgement delay: nothing was owed, so the lock still holds the event.
    await site.pass(DEFAULT_LINK_OPTIONS.ackDelayMs + 500);
    expect(lock.events().map((e) => e.seq)).toEqual([seq]);
    // The next collection (a poll, here asked for by reading the state) stores it, then acknowledges it.
    await site.drive(hub.manager.lockState(A));
    await site.until(() => hub.lock(A).lastEventSeq === seq, 'the event stored after all');
    await site.until(() => lock.events().length === 0, 'acknowledged once stored', 10_000);
    expect(hub.storedEvents(A).filter((e) => e.seq === seq)).toHaveLength(1);
  });
});
