import { describe, expect, it } from 'vitest';
import { expectServing, reported, Site } from './site.js';

/**
 * Detach: the lock must confirm it forgot the hub before the hub forgets the lock. A lock that
 * cannot be reached stays `detaching` and the detach completes when it is heard again.
 */

const A = 'SIM-0001';
const OTHERS = ['SIM-0002', 'SIM-0003'];

async function boundSite(seed: string, mitm = false) {
  const site = await Site.bound({ seed, locks: 3, mitm });
  return { site, hub: site.hub, lock: site.world.lock(A) };
}

describe('detach', () => {
  it('completes only once the lock confirmed it forgot the hub', async () => {
    const { hub, lock } = await boundSite('detach');
    const atReport: unknown[] = [];
    hub.manager.onSecurityEvent((e) => {
      if (e.kind === 'lock.detached') atReport.push({ lockKnowsHub: lock.boundHub() !== undefined });
    });

    const r = await hub.site.drive(hub.manager.detach(A));

    expect(r).toEqual({ detached: true, state: 'detached' });
    expect(atReport).toEqual([{ lockKnowsHub: false }]);
    expect(lock.boundHub()).toBeUndefined();
    expect(hub.pairing.get(A)).toBeUndefined();
    expect(hub.manager.list().map((l) => l.lockId)).toEqual(OTHERS);
    reported(hub, A, 'lock.detached');
    await expectServing(hub, OTHERS);
  });

  it('whose confirmation is lost leaves the lock `detaching`, and a retry on the session completes it', async () => {
    const { site, hub, lock } = await boundSite('detach-unconfirmed', true);
    const link = hub.mitm?.current(lock.address);
    if (!link) throw new Error('no link');
    // Every answer of the lock is lost on the way back.
    link.intercept = (f) => (f[0] === 1 ? 'drop' : 'pass');

    const r = await site.drive(hub.manager.detach(A));

    expect(r).toEqual({ detached: false, state: 'detaching' });
    // The lock did forget, but the hub cannot know: it keeps the record.
    expect(lock.boundHub()).toBeUndefined();
    expect(hub.lock(A).state).toBe('detaching');
    expect(hub.securityKinds(A)).not.toContain('lock.detached');
    expect(await hub.tryOpen(A)).toEqual({ ok: false, code: 'lock.not-bound' });
    await expectServing(hub, OTHERS);

    link.intercept = undefined;
    expect(await site.drive(hub.manager.detach(A))).toEqual({ detached: true, state: 'detached' });
    expect(hub.pairing.get(A)).toBeUndefined();
    reported(hub, A, 'lock.detached');
  });

  it('of an unreachable lock stays `detaching`, and completes by itself once the lock is heard again', async () => {
    const { site, hub, lock } = await boundSite('detach-away');
    lock.crash();

    expect(await site.drive(hub.manager.detach(A))).toEqual({ detached: false, state: 'detaching' });
    await site.pass(10_000);
    expect(hub.manager.list().find((l) => l.lockId === A)?.state).toBe('detaching');
    expect(hub.securityKinds(A)).not.toContain('lock.detached');
    await expectServing(hub, OTHERS);

    lock.boot();
    await site.until(() => hub.pairing.get(A) === undefined, 'the detach completes');
    expect(lock.boundHub()).toBeUndefined();
    reported(hub, A, 'lock.detached');
    await expectServing(hub, OTHERS);
  });

  it('pending across a hub restart completes when the lock is heard again', async () => {
    const { site, hub, lock } = await boundSite('detach-restart');
    lock.crash();
    expect(await site.drive(hub.manager.detach(A))).toEqual({ detached: false, state: 'detaching' });

    await hub.restart('kill');
    expect(hub.lock(A).state).toBe('detaching');
    lock.boot();
    await site.until(() => hub.pairing.get(A) === undefined, 'the detach completes');

    expect(lock.boundHub()).toBeUndefined();
    reported(hub, A, 'lock.detached');
    await expectServing(hub, OTHERS);
  });

  // BUG: if the lock's confirmation is lost and then the link drops, the lock (which did forget)
  // refuses the next handshake with `not-attached`, and #handshakeFailed quarantines the lock as a
  // contradiction instead of finishing the detach the hub itself started: the detach never
  // completes and a false security alarm is raised.
  it('whose confirmation is lost before the link drops still completes, without a quarantine', async () => {
    const { site, hub, lock } = await boundSite('detach-lost-link', true);
    const link = hub.mitm?.current(lock.address);
    if (!link) throw new Error('no link');
    link.intercept = (f) => (f[0] === 1 ? 'drop' : 'pass');
    expect(await site.drive(hub.manager.detach(A))).toEqual({ detached: false, state: 'detaching' });
    expect(lock.boundHub()).toBeUndefined();

    site.world.radio.disconnect(lock.address);
    await site.pass(10_000);

    expect(hub.securityKinds(A)).not.toContain('lock.quarantined');
    expect(hub.pairing.get(A)).toBeUndefined();
  });
});

describe('forget --force', () => {
  it('drops a destroyed lock without its confirmation, says what it leaves behind, and ignores it after', async () => {
    const { site, hub, lock } = await boundSite('forget');
    lock.crash();

    const r = await site.drive(hub.manager.forget(A));

    expect(r.forgotten).toBe(true);
    expect(r.leftBehind).toMatch(/keeps this hub as its bound hub/);
    expect(hub.pairing.get(A)).toBeUndefined();
    expect(reported(hub, A, 'lock.forgotten')).toEqual([{ forced: true }]);
    // The lock was not destroyed after all: it still holds the binding, and the hub leaves it alone.
    lock.boot();
    await site.pass(5_000);
    expect(lock.boundHub()).toEqual(hub.manager.hubPublicKey);
    expect(lock.requestCounts().handled.getState).toBe(0);
    expect(hub.pairing.get(A)).toBeUndefined();
    await expectServing(hub, OTHERS);
    // The maintenance card and a new attach bind it again.
    await hub.attach(A);
    await expectServing(hub, [A]);
  });
});
