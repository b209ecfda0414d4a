import { describe, expect, it } from 'vitest';
import type { Advertisement, BearerLink, BearerState } from '../../../../hal/bearer.js';
import { HubError } from '../../../../src/base/errors.js';
import { closeReasons, collect, connectedPair, numbered, settle, simRadio, unwrap } from './sim-world.js';

describe('simulated radio: closing and disconnects', () => {
  it('closing the hub end tells the lock, and further sends on either end fail with disconnected', async () => {
    const { clock, hubLink, lockLink } = await connectedPair('hub closes');
    const atHub = closeReasons(hubLink);
    const atLock = closeReasons(lockLink);
    await hubLink.close();
    await clock.advance(0);
    expect(atHub).toEqual(['local']);
    expect(atLock).toEqual(['remote']);
    expect(await hubLink.send(numbered(1))).toMatchObject({
      ok: false,
      error: { code: 'disconnected', reason: 'local', address: 'lock-1' },
    });
    expect(await lockLink.send(numbered(1))).toMatchObject({
      ok: false,
      error: { code: 'disconnected', reason: 'remote', address: 'hub-1' },
    });
    expect(hubLink.isOpen()).toBe(false);
    expect(lockLink.isOpen()).toBe(false);
  });

  it('closing the lock end tells the hub, once, however often close is called', async () => {
    const { clock, hubLink, lockLink } = await connectedPair('lock closes');
    const atHub = closeReasons(hubLink);
    await lockLink.close();
    await lockLink.close();
    await hubLink.close();
    await clock.advance(0);
    expect(atHub).toEqual(['remote']);
  });

  it('a forced disconnect tells both ends the link was lost and discards frames in flight', async () => {
    const { clock, radio, hubLink, lockLink } = await connectedPair('forced', { latencyMs: 20 });
    const atHub = closeReasons(hubLink);
    const atLock = closeReasons(lockLink);
    const received = collect(lockLink);
    await hubLink.send(numbered(1));
    await clock.advance(10);
    expect(radio.disconnect('lock-1')).toBe(1);
    await clock.advance(50);
    expect(atHub).toEqual(['lost']);
    expect(atLock).toEqual(['lost']);
    expect(received).toEqual([]);
    expect(radio.counters()).toMatchObject({ disconnects: 1, discarded: 1, delivered: 0 });
    expect(await hubLink.send(numbered(2))).toMatchObject({
      ok: false,
      error: { code: 'disconnected', reason: 'lost' },
    });
  });

  it('with a disconnect rate, the link drops on some frame and that send reports it', async () => {
    const { radio, hubLink, lockLink } = await connectedPair('flaky', { disconnectRate: 0.05 });
    const atLock = closeReasons(lockLink);
    let failedAt = -1;
    for (let i = 0; i < 1000 && failedAt < 0; i++) {
      const result = await hubLink.send(numbered(i));
      if (!result.ok) {
        failedAt = i;
        expect(result.error).toMatchObject({ code: 'disconnected', reason: 'lost' });
      }
    }
    expect(failedAt).toBeGreaterThanOrEqual(0);
    expect(atLock).toEqual(['lost']);
    expect(radio.counters().disconnects).toBe(1);
  });

  it('a close listener added after the close still hears the reason', async () => {
    const { clock, hubLink, lockLink } = await connectedPair('late listener');
    await lockLink.close();
    const late = closeReasons(hubLink);
    await clock.advance(0);
    expect(late).toEqual(['remote']);
  });

  it('a lock leaving range drops its link and is no longer heard; connects to it then time out', async () => {
    const { clock, lock, bearer, hubLink } = await connectedPair('out of range');
    const atHub = closeReasons(hubLink);
    const heard: Advertisement[] = [];
    bearer.onAdvertisement((ad) => heard.push(ad));
    await clock.advance(500);
    expect(heard.length).toBeGreaterThan(0);
    lock.setInRange(false);
    heard.length = 0;
    await clock.advance(500);
    expect(atHub).toEqual(['lost']);
    expect(heard).toEqual([]);
    const result = await settle(clock, bearer.connect('lock-1', { timeoutMs: 300 }));
    expect(result).toMatchObject({ ok: false, error: { code: 'timeout', address: 'lock-1', timeoutMs: 300 } });
  });

  it('a removed lock drops its links, is then not-found, and frees its address', async () => {
    const { clock, radio, lock, bearer, hubLink } = await connectedPair('removed');
    const atHub = closeReasons(hubLink);
    expect(() =>
      radio.addPeripheral({ address: 'lock-1', advertisement: () => undefined, onConnect: () => {} }),
    ).toThrow(HubError);
    lock.remove();
    await clock.advance(0);
    expect(atHub).toEqual(['lost']);
    const result = await settle(clock, bearer.connect('lock-1', { timeoutMs: 100 }));
    expect(result).toMatchObject({ ok: false, error: { code: 'not-found' } });
    radio.addPeripheral({ address: 'lock-1', advertisement: () => undefined, onConnect: () => {} });
    expect((await settle(clock, bearer.connect('lock-1', { timeoutMs: 100 }))).ok).toBe(true);
  });
});

describe('simulated radio: connecting', () => {
  it('connect to an address nobody answers fails with not-found after the timeout, not before', async () => {
    const { clock, radio } = simRadio('absent');
    const bearer = radio.bearer();
    await bearer.start();
    let outcome: unknown;
    void bearer.connect('nobody', { timeoutMs: 1000 }).then((r) => {
      outcome = r;
    });
    await clock.advance(999);
    expect(outcome).toBeUndefined();
    await clock.advance(1);
    expect(outcome).toMatchObject({ ok: false, error: { code: 'not-found', address: 'nobody' } });
    expect((outcome as { error: { message: string } }).error.message).toContain('nobody');
  });

  it('connect takes a round trip of latency and tells the lock which hub connected', async () => {
    const { clock, radio } = simRadio('round trip', { latencyMs: 30 });
    const lockLinks: BearerLink[] = [];
    radio.addPeripheral({
      address: 'lock-1',
      rssi: -71,
      advertisement: () => undefined,
      onConnect: (link) => lockLinks.push(link),
    });
    const bearer = radio.bearer({ address: 'hub-A' });
    await bearer.start();
    let link: BearerLink | undefined;
    void bearer.connect('lock-1', { timeoutMs: 1000 }).then((r) => {
      link = unwrap(r);
    });
    await clock.advance(59);
    expect(link).toBeUndefined();
    await clock.advance(1);
    expect(link?.address).toBe('lock-1');
    expect(link?.linkQuality()).toEqual({ rssi: -71 });
    expect(lockLinks.map((l) => l.address)).toEqual(['hub-A']);
  });

  it('a second connect to a lock already linked or being connected is refused as busy', async () => {
    const { clock, radio } = simRadio('busy', { latencyMs: 10 });
    for (const address of ['lock-1', 'lock-2']) {
      radio.addPeripheral({ address, advertisement: () => undefined, onConnect: () => {} });
    }
    const bearer = radio.bearer();
    await bearer.start();
    unwrap(await settle(clock, bearer.connect('lock-1', { timeoutMs: 100 })));
    const linked = await bearer.connect('lock-1', { timeoutMs: 100 });
    expect(linked).toMatchObject({ ok: false, error: { code: 'busy', address: 'lock-1' } });
    const pending = bearer.connect('lock-2', { timeoutMs: 100 });
    const connecting = await bearer.connect('lock-2', { timeoutMs: 100 });
    expect(connecting).toMatchObject({ ok: false, error: { code: 'busy', address: 'lock-2' } });
    expect((await settle(clock, pending)).ok).toBe(true);
  });

  it('a connect beyond the adapter limit is refused as busy', async () => {
    const { clock, radio } = simRadio('limit');
    for (const address of ['lock-1', 'lock-2']) {
      radio.addPeripheral({ address, advertisement: () => undefined, onConnect: () => {} });
    }
    const bearer = radio.bearer({ maxLinks: 1 });
    await bearer.start();
    const first = unwrap(await settle(clock, bearer.connect('lock-1', { timeoutMs: 100 })));
    const beyond = await bearer.connect('lock-2', { timeoutMs: 100 });
    expect(beyond).toMatchObject({ ok: false, error: { code: 'busy', address: 'lock-2' } });
    await first.close();
    expect((await settle(clock, bearer.connect('lock-2', { timeoutMs: 100 }))).ok).toBe(true);
  });

  it('two hubs on one radio each get their own link to the same lock', async () => {
    const { clock, radio } = simRadio('two hubs');
    const lockLinks: BearerLink[] = [];
    radio.addPeripheral({ address: 'lock-1', advertisement: () => undefined, onConnect: (l) => lockLinks.push(l) });
    const [a, b] = [radio.bearer(), radio.bearer()];
    await a.start();
    await b.start();
    const linkA = unwrap(await settle(clock, a.connect('lock-1', { timeoutMs: 100 })));
    unwrap(await settle(clock, b.connect('lock-1', { timeoutMs: 100 })));
    expect(new Set(lockLinks.map((l) => l.address))).toEqual(new Set([a.address, b.address]));
    const atLockFromA = collect(lockLinks[0]!);
    const atLockFromB = collect(lockLinks[1]!);
    await linkA.send(numbered(5));
    await clock.advance(0);
    expect(atLockFromA).toEqual([5]);
    expect(atLockFromB).toEqual([]);
  });
});

describe('simulated radio: advertisements', () => {
  it('advertising locks are heard at every interval with their device id, address, attach mode and rssi', async () => {
    const { clock, radio } = simRadio('adverts', {}, { advertiseIntervalMs: 200 });
    let attachMode = false;
    radio.addPeripheral({
      address: 'aa:01',
      rssi: -55,
      advertisement: () => ({ deviceId: 'LOCK-0001', attachMode }),
      onConnect: () => {},
    });
    radio.addPeripheral({ address: 'aa:02', advertisement: () => undefined, onConnect: () => {} });
    const bearer = radio.bearer();
    await bearer.start();
    const heard: Advertisement[] = [];
    bearer.onAdvertisement((ad) => heard.push(ad));
    await clock.advance(199);
    expect(heard).toEqual([]);
    await clock.advance(1);
    expect(heard).toEqual([
      { deviceId: 'LOCK-0001', address: 'aa:01', attachMode: false, rssi: -55, seenAt: clock.now() },
    ]);
    attachMode = true;
    await clock.advance(400);
    expect(heard.map((ad) => ad.attachMode)).toEqual([false, true, true]);
    expect(heard.every((ad) => ad.address === 'aa:01')).toBe(true);
  });

  it('advertisements are heard only while the bearer is started, including by listeners added before start', async () => {
    const { clock, radio } = simRadio('scan lifecycle');
    radio.addPeripheral({
      address: 'aa:01',
      advertisement: () => ({ deviceId: 'D', attachMode: true }),
      onConnect: () => {},
    });
    const bearer = radio.bearer();
    let count = 0;
    bearer.onAdvertisement(() => count++);
    await clock.advance(1000);
    expect(count).toBe(0);
    await bearer.start();
    await clock.advance(1000);
    expect(count).toBe(10);
    await bearer.stop();
    await clock.advance(1000);
    expect(count).toBe(10);
  });

  it('nothing is heard after unsubscribing, and the scan then stops arming timers', async () => {
    const { clock, radio } = simRadio('unsubscribe');
    radio.addPeripheral({
      address: 'aa:01',
      advertisement: () => ({ deviceId: 'D', attachMode: false }),
      onConnect: () => {},
    });
    const bearer = radio.bearer();
    await bearer.start();
    let count = 0;
    const unsubscribe = bearer.onAdvertisement(() => count++);
    await clock.advance(1000);
    expect(count).toBe(10);
    unsubscribe();
    await clock.runAll();
    expect(count).toBe(10);
    expect(clock.pending).toBe(0);
  });
});

describe('simulated radio: bearer lifecycle', () => {
  it('stop() closes every link, fails pending connects, and later connects say stopped', async () => {
    const { clock, radio, bearer, hubLink, lockLink } = await connectedPair('stop', { latencyMs: 50 });
    radio.addPeripheral({ address: 'lock-2', advertisement: () => undefined, onConnect: () => {} });
    const atHub = closeReasons(hubLink);
    const atLock = closeReasons(lockLink);
    const pending = bearer.connect('lock-2', { timeoutMs: 1000 });
    await bearer.stop();
    expect(await pending).toMatchObject({ ok: false, error: { code: 'stopped' } });
    await clock.advance(0);
    expect(atHub).toEqual(['stopped']);
    expect(atLock).toEqual(['remote']);
    expect(bearer.state()).toEqual({ status: 'stopped' });
    expect(await bearer.connect('lock-1', { timeoutMs: 100 })).toMatchObject({ ok: false, error: { code: 'stopped' } });
  });

  it('an unplugged adapter is unavailable with a reason, drops links and refuses connects until plugged back', async () => {
    const { clock, bearer, hubLink, lockLink } = await connectedPair('unplug');
    const states: BearerState[] = [];
    bearer.onStateChange((s) => states.push(s));
    const atHub = closeReasons(hubLink);
    const atLock = closeReasons(lockLink);
    let heard = 0;
    bearer.onAdvertisement(() => heard++);
    bearer.unplug('dongle removed');
    await clock.advance(500);
    expect(heard).toBe(0);
    expect(bearer.state()).toEqual({ status: 'unavailable', reason: 'dongle removed' });
    expect(atHub).toEqual(['adapter-unavailable']);
    expect(atLock).toEqual(['lost']);
    expect(await bearer.connect('lock-1', { timeoutMs: 100 })).toMatchObject({
      ok: false,
      error: { code: 'adapter-unavailable', reason: 'dongle removed' },
    });
    bearer.plug();
    expect(bearer.state()).toEqual({ status: 'ready' });
    expect(states.map((s) => s.status)).toEqual(['unavailable', 'ready']);
    await clock.advance(500);
    expect(heard).toBe(5);
    const again = await settle(clock, bearer.connect('lock-1', { timeoutMs: 100 }));
    expect(again.ok).toBe(true);
  });

  it('a bearer started while unplugged reports unavailable, not ready', async () => {
    const { radio } = simRadio('start unplugged');
    const bearer = radio.bearer();
    bearer.unplug('no dongle');
    await bearer.start();
    expect(bearer.state()).toEqual({ status: 'unavailable', reason: 'no dongle' });
  });

  it('connect before start says stopped', async () => {
    const { radio } = simRadio('not started');
    const result = await radio.bearer().connect('x', { timeoutMs: 10 });
    expect(result).toMatchObject({ ok: false, error: { code: 'stopped' } });
  });
});
