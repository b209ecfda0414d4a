import { describe, expect, it } from 'vitest';
import { HubError } from '../../../../src/base/errors.js';
import type { LockEvent } from '../../../../src/contract/link-messages.js';
import { expectServing, FAST, type Hub, reported, Site } from './site.js';

/**
 * The hub and the locks restart, cleanly or killed, at any point of a session and of event
 * collection: they reconnect by themselves (the hub connects when it hears a bound lock), the
 * persisted counters never go backwards, and every event the lock logged is stored exactly once.
 */

const A = 'SIM-0001';

interface Watch {
  violations: string[];
  samples: number;
}

/**
 * Samples every persisted counter, hub and lock side, every 20 ms of virtual time; and checks that
 * every event the lock has dropped from its log (acknowledged) is stored by the hub.
 */
function watchCounters(site: Site): Watch {
  const w: Watch = { violations: [], samples: 0 };
  const last = new Map<string, number>();
  const see = (key: string, value: number) => {
    const prev = last.get(key);
    if (prev !== undefined && value < prev) w.violations.push(`${key} went back from ${prev} to ${value}`);
    last.set(key, value);
  };
  site.watch(() => {
    w.samples++;
    for (const hub of site.hubs) {
      if (!hub.running) continue;
      for (const r of hub.pairing.list()) {
        for (const k of ['lastEventSeq', 'sessions', 'failedHandshakes', 'rejectedFrames'] as const) {
          see(`${hub.name}/${r.lockId}/${k}`, r[k]);
        }
      }
    }
    for (const lock of site.world.locks) {
      if (!lock.running) continue;
      const lastSeq = lock.state().lastSeq;
      see(`lock/${lock.deviceId}/lastSeq`, lastSeq);
      const acked = (lock.events()[0]?.seq ?? lastSeq + 1) - 1;
      for (const hub of site.hubs) {
        const stored = hub.running ? hub.pairing.get(lock.deviceId)?.lastEventSeq : undefined;
        if (stored !== undefined && stored < acked) {
          w.violations.push(`${lock.deviceId} dropped events up to ${acked}, ${hub.name} stored up to ${stored}`);
        }
      }
    }
  });
  return w;
}

/** Generates `n` events on the lock at once (a burst the hub collects in several batches). */
/** An interceptor of the lock's frames that loses its first sealed frame (a push) on the radio, once. */
function firstPushLost(): (f: Uint8Array) => 'pass' | 'drop' {
  let lost = false;
  return (f) => {
    if (f[0] !== 1 || lost) return 'pass';
    lost = true;
    return 'drop';
  };
}

function burst(site: Site, id: string, n: number): LockEvent[] {
  const lock = site.world.lock(id);
  const out: LockEvent[] = [];
  for (let i = 0; i < n; i++) {
    const e = i % 3 === 0 ? lock.openByHand() : i % 3 === 1 ? lock.setDoor(!lock.state().doorOpen) : lock.tamper();
    if (e) out.push(e);
  }
  return out;
}

/** The hub holds events 1..lastSeq of the lock exactly once, and the lock's log is empty. */
async function allCollected(site: Site, hub: Hub, id: string): Promise<void> {
  const lock = site.world.lock(id);
  await site.until(
    () => hub.running && hub.lock(id).lastEventSeq === lock.state().lastSeq && lock.events().length === 0,
    `${id}: every event collected and acknowledged`,
  );
  expect(hub.storedEvents(id).map((e) => e.seq)).toEqual(Array.from({ length: lock.state().lastSeq }, (_, i) => i + 1));
}

function expectStored(hub: Hub, id: string, events: LockEvent[]): void {
  const stored = hub.storedEvents(id);
  for (const e of events) expect(stored.filter((s) => s.seq === e.seq)).toEqual([e]);
}

describe('restarts mid-session', () => {
  it('hub restarts and kills, lock crashes: they reconnect, counters never go back, no event lost or doubled', async () => {
    const site = await Site.create({ seed: 'restarts', locks: 3, mitm: true });
    const ids = site.ids();
    const watch = watchCounters(site);
    for (const id of ids) await site.hub.attach(id);
    const produced: LockEvent[] = [];

    // 1. Events while connected.
    produced.push(...burst(site, A, 5));
    await allCollected(site, site.hub, A);

    // 2. The hub restarts cleanly between collections; events meanwhile wait on the lock.
    await site.hub.stop();
    produced.push(...burst(site, A, 7));
    await site.pass(500);
    await site.hub.start();
    await allCollected(site, site.hub, A);

    // 3. The hub is killed during a collection, right after it stored the first batch. The burst's
    // first push is lost on the radio: the others are not the next in sequence, so the hub pulls.
    const radio = site.hub.mitm?.current(site.world.lock(A).address);
    if (!radio) throw new Error('no link');
    radio.intercept = firstPushLost();
    let killedAt = -1;
    const off = site.hub.manager.onLockEvent(() => {
      if (killedAt < 0) {
        killedAt = site.hub.lock(A).lastEventSeq;
        site.hub.kill();
      }
    });
    produced.push(...burst(site, A, 30));
    await site.until(() => !site.hub.running, 'the hub was killed');
    off();
    expect(killedAt).toBeGreaterThan(12);
    expect(killedAt).toBeLessThan(site.world.lock(A).state().lastSeq);
    await site.pass(300);
    await site.hub.start();
    expect(site.hub.lock(A).lastEventSeq).toBeGreaterThanOrEqual(killedAt);
    await allCollected(site, site.hub, A);

    // 4. The lock crashes mid-collection and reboots a second later.
    let crashed = false;
    const off2 = site.hub.manager.onLockEvent(() => {
      if (!crashed) {
        crashed = true;
        site.world.lock(A).crash();
      }
    });
    produced.push(...burst(site, A, 30));
    await site.until(() => crashed, 'the lock crashed');
    off2();
    await site.pass(1_000);
    site.world.lock(A).boot();
    await allCollected(site, site.hub, A);

    // 5. Both at once: the lock crashes while the hub is down, events before and after.
    site.hub.kill();
    produced.push(...burst(site, A, 4));
    site.world.lock(A).crash();
    await site.pass(200);
    site.world.lock(A).boot();
    produced.push(...burst(site, A, 4));
    await site.hub.start();
    await allCollected(site, site.hub, A);

    expectStored(site.hub, A, produced);
    expect(watch.samples).toBeGreaterThan(100);
    expect(watch.violations).toEqual([]);
    expect(site.hub.lock(A).sessions).toBeGreaterThanOrEqual(5);
    expect(site.hub.security.filter((e) => e.kind === 'lock.quarantined')).toEqual([]);
    await expectServing(site.hub, ids);
  });

  const killCases = [
    ['send', 'of a collection', true],
    ['receive', 'of a collection', true],
    // No push lost: the burst's pushes are stored as they come; the hub dies at each push or answer.
    ['receive', 'of a burst of pushes in sequence', false],
  ] as const;
  for (const [dir, what, losePush] of killCases) {
    it(`the hub killed as it ${dir}s each frame ${what} loses and doubles nothing`, async () => {
      let points = 0;
      for (let k = 1; k <= 60; k++) {
        const site = await Site.bound({
          seed: `hub-kill-${dir}-${losePush ? 'pull' : 'push'}-${k}`,
          locks: 2,
          mitm: true,
        });
        const hub = site.hub;
        const watch = watchCounters(site);
        let count = 0;
        let killed = false;
        // The hub dies at its k-th sealed frame of the collection (sent or received): that frame is lost.
        const killAt = (f: Uint8Array): 'pass' | 'drop' => {
          if (f[0] !== 1 || killed || ++count !== k) return 'pass';
          killed = true;
          hub.kill();
          return 'drop';
        };
        const link = hub.mitm?.current(site.world.lock(A).address);
        if (!link) throw new Error('no link');
        // A burst's pushes in sequence are stored as they come, without a collection's requests: to
        // kill a collection, the first push is lost on the radio, so the rest are a gap and the hub pulls.
        const radio = losePush ? firstPushLost() : () => 'pass' as const;
        if (dir === 'send') {
          link.interceptHub = killAt;
          link.intercept = radio;
        } else link.intercept = (f) => (radio(f) === 'drop' ? 'drop' : killAt(f));
        const events = burst(site, A, 24);
        await site.pass(1_000);
        if (!killed) {
          await site.close();
          break;
        }
        points++;
        await hub.start();
        await site.until(() => hub.lock(A).lastEventSeq === 24, `kill point ${k}: all collected`);
        expectStored(hub, A, events);
        // WORKAROUND: the last batch may stay on the lock unacknowledged (see the it.fails below) until
        // the next event; one more event flushes it.
        const more = burst(site, A, 1);
        await allCollected(site, hub, A);
        expectStored(hub, A, [...events, ...more]);
        expect(watch.violations, `kill point ${k}`).toEqual([]);
        await expectServing(hub, site.ids());
        await site.close();
      }
      expect(points).toBeGreaterThanOrEqual(5);
    });
  }

  it('the lock crashing at every point of a collection loses and doubles nothing', async () => {
    let points = 0;
    for (let k = 1; k <= 40; k++) {
      const site = await Site.bound({ seed: `lock-crash-${k}`, locks: 2, mitm: true });
      const hub = site.hub;
      const lock = site.world.lock(A);
      const watch = watchCounters(site);
      let seen = 0;
      let crashed = false;
      // The lock loses power as its k-th sealed frame of the collection reaches the hub.
      const link = hub.mitm?.current(lock.address);
      if (!link) throw new Error('no link');
      link.intercept = (f) => {
        if (f[0] !== 1 || crashed || ++seen !== k) return 'pass';
        crashed = true;
        lock.crash();
        return 'drop';
      };
      const events = burst(site, A, 24);
      await site.pass(1_000);
      if (!crashed) {
        await site.close();
        break;
      }
      points++;
      lock.boot();
      await allCollected(site, hub, A);
      expectStored(hub, A, events);
      expect(watch.violations, `crash point ${k}`).toEqual([]);
      await expectServing(hub, site.ids());
      await site.close();
    }
    expect(points).toBeGreaterThanOrEqual(20);
  });

  // BUG: #pullEvents acknowledges only when getEvents returned new events. A hub killed after
  // storing the last batch but before its ackEvents reached the lock finds nothing new after the
  // restart, so it never acknowledges: the lock keeps events the hub already holds (and pushes
  // them against its log limit) until some later event happens.
  it('a hub killed between storing the last batch and acknowledging it still empties the lock log', async () => {
    const site = await Site.create({ seed: 'ack-lost', locks: 1 });
    const hub = site.hub;
    await hub.attach(A);
    await site.pass(200);
    const off = hub.manager.onLockEvent(() => hub.kill());
    const events = burst(site, A, 3);
    await site.until(() => !hub.running, 'the hub was killed');
    off();
    await hub.start();
    await site.until(() => hub.lock(A).lastEventSeq === 3 && hub.lock(A).connected, 'reconnected');
    expectStored(hub, A, events);

    await site.pass(5_000);

    expect(site.world.lock(A).events()).toEqual([]);
  });
});

describe('a lock whose state contradicts the pairing store', () => {
  it('that forgot this hub (reset on its side) is quarantined, reported, and not retried in a loop', async () => {
    const site = await Site.bound({ seed: 'forgot', locks: 3, lockFiles: true });
    const hub = site.hub;
    const lock = site.world.lock(A);
    lock.crash();
    site.editFlash(A, (p) => {
      p.boundHub = null;
    });
    lock.boot();

    await site.until(() => hub.lock(A).state === 'quarantined', 'the hub quarantines the lock');

    const shown = hub.manager.list().find((l) => l.lockId === A);
    expect(shown?.quarantineReason).toMatch(/not attached/);
    const tries = shown?.failedHandshakes ?? 0;
    expect(tries).toBeGreaterThanOrEqual(1);
    expect(tries).toBeLessThanOrEqual(3);
    expect(reported(hub, A, 'link.handshake-refused')).toEqual(
      Array(tries).fill({ failure: 'refused', refusal: 'not-attached' }),
    );
    expect(reported(hub, A, 'lock.quarantined')).toEqual([{ reason: shown?.quarantineReason }]);
    const knocks = tries * (FAST.attempts ?? 1);
    expect(lock.refusals()['not-attached']).toBe(knocks);
    await site.pass(30_000);
    expect(lock.refusals()['not-attached']).toBe(knocks);
    await expectServing(
      hub,
      site.ids().filter((id) => id !== A),
    );
    // Quarantined: nothing that moves the bolt is sent to it, without even connecting.
    expect(await hub.tryOpen(A)).toEqual({ ok: false, code: 'lock.quarantined' });
    // The daemon is killed and starts again: it reads the quarantine back and does not knock either.
    await hub.restart('kill');
    await site.pass(5_000);
    expect(hub.lock(A).state).toBe('quarantined');
    expect(lock.refusals()['not-attached']).toBe(knocks);
    await expectServing(
      hub,
      site.ids().filter((id) => id !== A),
    );
  });

  it('whose event numbering went backwards (restored or cloned flash) is quarantined; stored events stay', async () => {
    const site = await Site.create({ seed: 'seq-back', locks: 3, lockFiles: true });
    const hub = site.hub;
    for (const id of site.ids()) await hub.attach(id);
    const events = burst(site, A, 6);
    await allCollected(site, hub, A);
    const lock = site.world.lock(A);
    lock.crash();
    site.editFlash(A, (p) => {
      p.nextSeq = 1;
      p.events = [];
    });
    lock.boot();

    await site.until(() => hub.lock(A).state === 'quarantined', 'the hub quarantines the lock');

    expect(hub.lock(A).quarantineReason).toMatch(/went backwards/);
    reported(hub, A, 'lock.quarantined');
    expect(hub.lock(A).lastEventSeq).toBe(6);
    const reused = burst(site, A, 2);
    await site.pass(2_000);
    expect(hub.storedEvents(A)).toEqual(events);
    expect(reused.map((e) => e.seq)).toEqual([1, 2]);
    expect(hub.lock(A).lastEventSeq).toBe(6);
    await expectServing(
      hub,
      site.ids().filter((id) => id !== A),
    );
  });
});

describe('a hub restart does not wait for a lock', () => {
  it('that is off: the manager starts, serves the others, and connects when it hears the lock', async () => {
    const site = await Site.create({ seed: 'late-lock', locks: 3 });
    const hub = site.hub;
    for (const id of site.ids()) await hub.attach(id);
    const lock = site.world.lock(A);
    lock.crash();
    await hub.restart('kill');
    await expectServing(
      hub,
      site.ids().filter((id) => id !== A),
    );
    await expect(site.drive(hub.manager.open(A, 1_000))).rejects.toBeInstanceOf(HubError);
    lock.boot();
    const e = lock.tamper();
    await site.until(() => hub.lock(A).connected && hub.lock(A).lastEventSeq === e.seq, 'reconnected');
    expect(hub.storedEvents(A)).toEqual([e]);
  });
});
