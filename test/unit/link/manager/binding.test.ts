import { describe, expect, it } from 'vitest';
import { SimLock } from '../../../../sim/lock/lock.js';
import { SeededRandom } from '../../../../src/base/random.js';
import { Secret } from '../../../../src/crypto/secret.js';
import { generateKeyPair } from '../../../../src/link/noise.js';
import { expectServing, FAST, reported, Site } from './site.js';

/**
 * Who may bind a lock: only a hub that proves the setup code while the lock is in attach mode. A
 * lock bound elsewhere is refused and quarantined by its former hub; a second hub cannot take a
 * bound lock; a wrong setup code binds nothing on either side.
 */

const A = 'SIM-0001';
const OTHERS = ['SIM-0002', 'SIM-0003'];

async function boundSite(seed: string, link: { quarantineAfter?: number } = {}) {
  const site = await Site.bound({ seed, locks: 3, link });
  return { site, a: site.hub, lock: site.world.lock(A) };
}

describe('attach', () => {
  it('records the lock in the pairing store, bound, once the lock confirmed', async () => {
    const site = await Site.create({ seed: 'attach', locks: 1 });
    const lock = site.world.lock(A);
    lock.presentMaintenanceCard();

    const summary = await site.drive(site.hub.manager.attach(A, Secret.fromUtf8(site.world.sticker(A).setupCode)));

    expect(lock.boundHub()).toEqual(site.hub.manager.hubPublicKey);
    expect(summary).toMatchObject({ lockId: A, state: 'bound', connected: true });
    expect(site.hub.manager.list().map((l) => [l.lockId, l.state])).toEqual([[A, 'bound']]);
  });
});

describe('a lock bound to another hub', () => {
  it('is refused, counted, reported and quarantined after the configured count, never retried in a loop', async () => {
    const { site, a, lock } = await boundSite('other-hub', { quarantineAfter: 4 });
    // Hub A is down while an installer attaches the lock to hub B with the maintenance card.
    await a.stop();
    const b = await site.addHub({ name: 'hub-b', address: 'hub-b' });
    await b.attach(A);
    expect(lock.boundHub()).toEqual(b.manager.hubPublicKey);

    await a.start();
    await site.until(() => a.lock(A).state === 'quarantined', 'hub A quarantines the lock');

    const shown = a.manager.list().find((l) => l.lockId === A);
    expect(shown).toMatchObject({ state: 'quarantined', failedHandshakes: 4, connected: false });
    expect(shown?.quarantineReason).toMatch(/another hub/);
    expect(reported(a, A, 'link.handshake-refused')).toHaveLength(4);
    expect(reported(a, A, 'lock.quarantined')).toEqual([{ reason: shown?.quarantineReason }]);
    // Quarantined: hub A no longer knocks on the lock's door whenever it hears it.
    const refused = lock.refusals()['handshake-failed'];
    // Each connection tries the handshake `attempts` times; the lock refuses each try.
    expect(refused).toBe(4 * (FAST.attempts ?? 1));
    await site.pass(30_000);
    expect(lock.refusals()['handshake-failed']).toBe(refused);
    expect(a.lock(A).failedHandshakes).toBe(4);
    // A technician's open through hub A is refused too; the lock stays hub B's, and both hubs serve.
    // Quarantined: nothing that moves the bolt is sent to it, without even connecting.
    expect(await a.tryOpen(A)).toEqual({ ok: false, code: 'lock.quarantined' });
    expect(a.lock(A).state).toBe('quarantined');
    expect(lock.boundHub()).toEqual(b.manager.hubPublicKey);
    await expectServing(a, OTHERS);
    await expectServing(b, [A]);
  });

  // BUG: over a session that was open before the lock was attached elsewhere, the lock answers
  // `not-attached` (authenticated: it is sealed) and the manager only throws lock.not-attached; the
  // contradiction is neither reported nor quarantined, and the record stays `bound`.
  it('says so over our still-open session: reported and quarantined', async () => {
    const { site, a, lock } = await boundSite('other-hub-live');
    const b = await site.addHub({ name: 'hub-b', address: 'hub-b' });
    await b.attach(A);
    expect(a.lock(A).connected).toBe(true);

    expect(await a.tryOpen(A)).toEqual({ ok: false, code: 'lock.not-attached' });

    expect(lock.state().bolt).toBe('locked');
    expect(a.lock(A).state).toBe('quarantined');
    reported(a, A, 'lock.quarantined');
  });

  it('over our still-open session: refused without opening, quarantined at once (the answer is sealed), no handshake storm', async () => {
    const { site, a, lock } = await boundSite('other-hub-live-2');
    const b = await site.addHub({ name: 'hub-b', address: 'hub-b' });
    await b.attach(A);
    const seq = lock.state().lastSeq;

    expect(await a.tryOpen(A)).toEqual({ ok: false, code: 'lock.not-attached' });
    // Refused: the bolt did not move and the lock logged nothing.
    expect(lock.state()).toMatchObject({ bolt: 'locked', lastSeq: seq });
    expect(a.lock(A).state).toBe('quarantined');
    expect(a.manager.list().find((l) => l.lockId === A)?.quarantineReason).toMatch(/no longer attached/);
    // Quarantined locks are not reconnected whenever they are heard.
    await site.pass(30_000);
    expect(a.lock(A).failedHandshakes).toBe(0);
    expect(lock.boundHub()).toEqual(b.manager.hubPublicKey);
    await expectServing(a, OTHERS);
    await expectServing(b, [A]);
  });
});

describe('a second hub attaching a bound lock outside attach mode', () => {
  it('is refused (attach.not-in-attach-mode); the lock stays bound to the first hub, which keeps serving', async () => {
    const { site, a, lock } = await boundSite('second-hub');
    const b = await site.addHub({ name: 'hub-b', address: 'hub-b' });

    expect(await b.attachFails(A, site.world.sticker(A).setupCode, 2_000)).toBe('attach.not-in-attach-mode');

    expect(b.manager.list()).toEqual([]);
    expect(lock.boundHub()).toEqual(a.manager.hubPublicKey);
    await expectServing(a, [A, ...OTHERS]);
  });

  it('is refused and counted by the lock itself when the hub ignores the advertised flag', async () => {
    const { site, a, lock } = await boundSite('second-hub-liar');
    const b = await site.addHub({ name: 'hub-b', address: 'hub-b', mitm: true });
    // Hub B believes (or pretends) every lock is in attach mode, and runs the attach handshake.
    if (b.mitm) b.mitm.rewriteAd = (ad) => ({ ...ad, attachMode: true });
    expect(lock.refusals()['not-in-attach-mode']).toBe(0);

    expect(await b.attachFails(A, site.world.sticker(A).setupCode, 2_000)).toBe('attach.not-in-attach-mode');

    expect(lock.refusals()['not-in-attach-mode']).toBe(1);
    expect(b.mitm?.links.get(lock.address)).toHaveLength(1);
    expect(b.manager.list()).toEqual([]);
    expect(lock.boundHub()).toEqual(a.manager.hubPublicKey);
    await expectServing(a, [A, ...OTHERS]);
  });
});

describe('a handshake with the wrong setup code', () => {
  it('is refused (attach.wrong-setup-code) and reported; the lock stays unbound and nothing is stored', async () => {
    const site = await Site.create({ seed: 'wrong-code', locks: 3 });
    const hub = site.hub;
    for (const id of OTHERS) await hub.attach(id);
    const lock = site.world.lock(A);
    lock.presentMaintenanceCard();

    expect(await hub.attachFails(A, 'WRNG-C0DE-9999')).toBe('attach.wrong-setup-code');

    expect(reported(hub, A, 'attach.proof-mismatch')).toHaveLength(1);
    expect(lock.boundHub()).toBeUndefined();
    expect(hub.pairing.get(A)).toBeUndefined();
    expect(hub.manager.list().map((l) => [l.lockId, l.state])).toEqual(OTHERS.map((id) => [id, 'bound']));
    await expectServing(hub, OTHERS);
    // The installer types the right code while the lock is still in attach mode: it binds.
    expect(lock.inAttachMode()).toBe(true);
    await site.drive(hub.startAttach(A));
    expect(lock.boundHub()).toEqual(hub.manager.hubPublicKey);
    await expectServing(hub, [A]);
  });

  it('is what an impostor in attach mode gets: it cannot prove the sticker code, and learns no hub proof', async () => {
    const site = await Site.create({ seed: 'impostor-attach', locks: 3 });
    const hub = site.hub;
    for (const id of OTHERS) await hub.attach(id);
    // A device advertising lock A's id in attach mode, with its own key and without A's setup code.
    const rogue = new SimLock({
      deviceId: A,
      keyPair: generateKeyPair(new SeededRandom('rogue')),
      setupCode: 'ROGU-EC0D-E000',
      radio: site.world.radio,
      address: 'sim:rogue',
      clock: site.clock,
      random: new SeededRandom('rogue/radio'),
    });
    site.world.lock(A).crash();
    rogue.boot();
    rogue.presentMaintenanceCard();

    expect(await hub.attachFails(A, site.world.sticker(A).setupCode)).toBe('attach.wrong-setup-code');

    expect(reported(hub, A, 'attach.proof-mismatch')).toHaveLength(1);
    expect(rogue.boundHub()).toBeUndefined();
    expect(rogue.refusals()['bad-proof']).toBe(0);
    expect(hub.pairing.get(A)).toBeUndefined();
    await expectServing(hub, OTHERS);
    rogue.crash();
  });
});
