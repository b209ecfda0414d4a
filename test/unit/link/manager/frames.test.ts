import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../../src/base/random.js';
import { encodeMessage } from '../../../../src/contract/link-codec.js';
import { createHandshake } from '../../../../src/link/noise.js';
import { SealedChannel } from '../../../../src/link/transport.js';
import { flipByte, type MitmLink } from '../../../helpers/mitm-bearer.js';
import { expectServing, type Hub, reported, Site } from './site.js';

/**
 * Frames on an established session that the hub must refuse: replayed, tampered with, or sealed by
 * a device that is not the paired lock. Each is refused, counted in the pairing store, reported as a
 * security event, and the daemon goes on serving that lock and the others.
 */

const A = 'SIM-0001';
const OTHERS = ['SIM-0002', 'SIM-0003'];

async function attackedSite(): Promise<{ site: Site; hub: Hub; link: () => MitmLink }> {
  const site = await Site.bound({ seed: 'frames', locks: 3, mitm: true });
  const hub = site.hub;
  const mitm = hub.mitm;
  if (!mitm) throw new Error('the site has no MITM');
  return { site, hub, link: () => mitm.current(site.world.lock(A).address) };
}

function rejections(hub: Hub, reason: string): number {
  return hub.security.filter((e) => e.kind === 'link.frame-rejected' && e.lockId === A && e.detail.reason === reason)
    .length;
}

describe('a replayed frame', () => {
  it('is refused, counted and reported, and the lock and the others keep serving', async () => {
    const { hub, link } = await attackedSite();
    expect(await hub.tryOpen(A)).toEqual({ ok: true });
    const answer = link().transportFrames().at(-1);
    if (!answer) throw new Error('no frame recorded');
    const opensBefore = hub.site.world.lock(A).requestCounts().handled.open;

    link().inject(answer);

    expect(hub.lock(A).rejectedFrames).toBe(1);
    expect(reported(hub, A, 'link.frame-rejected')).toEqual([{ reason: 'replay' }]);
    expect(hub.site.world.lock(A).requestCounts().handled.open).toBe(opensBefore);
    await expectServing(hub, [A, ...OTHERS]);
    expect(hub.lock(A).rejectedFrames).toBe(1);
  });

  it('of a pushed event does not store the event twice', async () => {
    const { site, hub, link } = await attackedSite();
    const lock = site.world.lock(A);
    const mark = link().fromLock.length;
    const tamper = lock.tamper();
    await site.until(() => hub.lock(A).lastEventSeq === tamper.seq, 'the tamper event is collected');
    const push = link().fromLock[mark];
    if (!push) throw new Error('the push was not recorded');

    link().inject(push);
    link().inject(push);
    await site.pass(300);

    expect(hub.lock(A).rejectedFrames).toBe(2);
    expect(rejections(hub, 'replay')).toBe(2);
    expect(hub.storedEvents(A).filter((e) => e.type === 'tamper')).toEqual([tamper]);
    expect(hub.lockEvents.filter((e) => e.lockId === A && e.event.type === 'tamper')).toHaveLength(1);
    // Stored as it came (the next one in sequence); its acknowledgement goes once the link is idle.
    await site.until(() => lock.events().length === 0, 'the acknowledgement', 10_000);
  });

  it('older than the replay window is refused as too old', async () => {
    const { site, hub, link } = await attackedSite();
    const first = link().transportFrames()[0];
    if (!first) throw new Error('no frame recorded');
    for (let i = 0; i < 70; i++) await site.drive(hub.manager.lockState(A));

    link().inject(first);

    expect(hub.lock(A).rejectedFrames).toBe(1);
    expect(reported(hub, A, 'link.frame-rejected')).toEqual([{ reason: 'too-old' }]);
    await expectServing(hub, [A, ...OTHERS]);
  });

  it('from an earlier session does not open in the next one', async () => {
    const { site, hub, link } = await attackedSite();
    const lock = site.world.lock(A);
    for (let i = 0; i < 5; i++) await site.drive(hub.manager.lockState(A));
    const old = link();
    const recorded = old.transportFrames().at(-1);
    if (!recorded) throw new Error('no frame recorded');
    // The link drops; the hub hears the lock again and runs a fresh handshake.
    site.world.radio.disconnect(lock.address);
    await site.until(() => hub.manager.get(A).connected && link() !== old, 'the hub reconnects');
    await site.pass(200);
    expect(hub.lock(A).sessions).toBe(2);

    link().inject(recorded);

    expect(hub.lock(A).rejectedFrames).toBe(1);
    // Its counter is unused in the new session, so it fails authentication under the new keys.
    expect(reported(hub, A, 'link.frame-rejected')).toEqual([{ reason: 'tampered' }]);
    await expectServing(hub, [A, ...OTHERS]);
  });
});

describe('a tampered frame', () => {
  it('in flight is refused, counted and reported; the open completes from a clean resend, executed once', async () => {
    const { site, hub, link } = await attackedSite();
    const lock = site.world.lock(A);
    const hubMark = link().transportFramesFromHub().length;
    let tampered = 0;
    // Everything the lock sends is tampered with until the hub sends its request again.
    link().intercept = (frame) => {
      if (frame[0] !== 1 || link().transportFramesFromHub().length > hubMark + 1) return 'pass';
      tampered++;
      return flipByte(frame, 12);
    };

    expect(await hub.tryOpen(A)).toEqual({ ok: true });

    expect(tampered).toBeGreaterThanOrEqual(1);
    expect(hub.lock(A).rejectedFrames).toBe(tampered);
    expect(reported(hub, A, 'link.frame-rejected')).toEqual(Array(tampered).fill({ reason: 'tampered' }));
    // The answer was lost to the tampering: the hub asked again and the lock answered from its cache.
    expect(lock.requestCounts().handled.open).toBe(1);
    expect(lock.requestCounts().repeated).toBeGreaterThanOrEqual(1);
    expect(lock.state().bolt).toBe('unlocked');
    await expectServing(hub, OTHERS);
  });

  it.each([
    { what: 'a ciphertext byte flipped', mutate: (f: Uint8Array) => flipByte(f, 10), reason: 'tampered' },
    { what: 'a tag byte flipped', mutate: (f: Uint8Array) => flipByte(f, -1), reason: 'tampered' },
    { what: 'its counter changed', mutate: (f: Uint8Array) => flipByte(f, 1), reason: 'tampered' },
    { what: 'its tag cut short', mutate: (f: Uint8Array) => f.slice(0, f.length - 3), reason: 'tampered' },
    { what: 'less than a header and a tag', mutate: (f: Uint8Array) => f.slice(0, 20), reason: 'truncated' },
    { what: 'bytes appended', mutate: (f: Uint8Array) => Uint8Array.of(...f, 0), reason: 'tampered' },
  ])('with $what is refused as $reason, counted and reported', async ({ mutate, reason }) => {
    const { site, hub, link } = await attackedSite();
    const lock = site.world.lock(A);
    let done = false;
    link().intercept = (frame) => {
      if (frame[0] !== 1 || done) return 'pass';
      done = true;
      return mutate(frame);
    };

    const state = await site.drive(hub.manager.lockState(A));

    expect(done).toBe(true);
    expect(state).toEqual({ ...lock.state(), time: state.time });
    expect(hub.lock(A).rejectedFrames).toBe(1);
    expect(reported(hub, A, 'link.frame-rejected')).toEqual([{ reason }]);
    expect(lock.requestCounts().repeated).toBe(1);
    await expectServing(hub, [A, ...OTHERS]);
  });
});

describe('a frame from an unpaired device', () => {
  it('sealed in an unrelated session is refused, counted and reported, and its content ignored', async () => {
    const { site, hub, link } = await attackedSite();
    // The attacker runs a handshake of its own and seals a convincing event under those keys.
    const random = new SeededRandom('rogue');
    const initiator = createHandshake({ pattern: 'NN', initiator: true, random });
    const responder = createHandshake({ pattern: 'NN', initiator: false, random });
    responder.readMessage(initiator.writeMessage());
    initiator.readMessage(responder.writeMessage());
    initiator.split();
    const rogue = new SealedChannel(responder.split());
    const forged = encodeMessage({ type: 'event', event: { seq: 999, at: site.clock.now(), type: 'tamper' } });
    // Spend counters until they are beyond any the hub has seen, so only authentication can stop it.
    let frame = rogue.seal(forged);
    for (let i = 0; i < 200; i++) frame = rogue.seal(forged);

    link().inject(frame);
    await site.pass(300);

    expect(hub.lock(A).rejectedFrames).toBe(1);
    expect(reported(hub, A, 'link.frame-rejected')).toEqual([{ reason: 'tampered' }]);
    expect(hub.lock(A).lastEventSeq).toBe(0);
    expect(hub.storedEvents(A)).toEqual([]);
    await expectServing(hub, [A, ...OTHERS]);
  });
});
