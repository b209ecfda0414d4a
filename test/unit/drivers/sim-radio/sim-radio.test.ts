import { describe, expect, it } from 'vitest';
import { type SimFaults, SimRadio } from '../../../../drivers/sim-radio/radio.js';
import type { BearerLink } from '../../../../hal/bearer.js';
import { systemClock } from '../../../../src/base/clock.js';
import { HubError } from '../../../../src/base/errors.js';
import { SeededRandom } from '../../../../src/base/random.js';
import { collect, connectedPair, numbered, numberOf, simRadio } from './sim-world.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Frame numbers that arrived after a frame sent later than them. */
function overtaken(order: number[]): number[] {
  const late: number[] = [];
  let highest = -1;
  for (const n of order) {
    if (n < highest) late.push(n);
    highest = Math.max(highest, n);
  }
  return late;
}

describe('simulated radio: delivery', () => {
  it('with no faults, frames arrive in order, once each, in both directions', async () => {
    const { clock, radio, hubLink, lockLink } = await connectedPair('no faults');
    const atLock = collect(lockLink);
    const atHub = collect(hubLink);
    for (const i of range(100)) {
      expect((await hubLink.send(numbered(i))).ok).toBe(true);
      expect((await lockLink.send(numbered(1000 + i))).ok).toBe(true);
    }
    await clock.advance(0);
    expect(atLock).toEqual(range(100));
    expect(atHub).toEqual(range(100).map((i) => 1000 + i));
    expect(radio.counters()).toMatchObject({ sent: 200, delivered: 200, dropped: 0, duplicated: 0, reordered: 0 });
  });

  it('a frame arrives after the configured latency, not before', async () => {
    const { clock, hubLink, lockLink } = await connectedPair('latency', { latencyMs: 40 });
    const atLock = collect(lockLink);
    await hubLink.send(numbered(7));
    await clock.advance(39);
    expect(atLock).toEqual([]);
    await clock.advance(1);
    expect(atLock).toEqual([7]);
  });

  it('jitter alone never reorders a link', async () => {
    const { clock, hubLink, lockLink } = await connectedPair('jitter', { latencyMs: 5, jitterMs: 50 });
    const arrivals: Array<{ n: number; at: number }> = [];
    lockLink.onFrame((frame) => arrivals.push({ n: numberOf(frame), at: clock.monotonic() }));
    const sentAt: number[] = [];
    for (const i of range(200)) {
      sentAt.push(clock.monotonic());
      await hubLink.send(numbered(i));
      await clock.advance(1);
    }
    await clock.advance(100);
    expect(arrivals.map((a) => a.n)).toEqual(range(200));
    // The jitter is real: transit times vary well beyond the base latency.
    const transit = arrivals.map((a) => a.at - (sentAt[a.n] ?? 0));
    expect(Math.min(...transit)).toBeGreaterThanOrEqual(5);
    expect(Math.max(...transit)).toBeGreaterThan(30);
  });

  it('the loss rate is about as configured, and every lost frame is counted', async () => {
    const { clock, radio, hubLink, lockLink } = await connectedPair('loss', { lossRate: 0.2 });
    const atLock = collect(lockLink);
    for (const i of range(2000)) await hubLink.send(numbered(i));
    await clock.advance(0);
    const { sent, dropped, delivered } = radio.counters();
    expect(sent).toBe(2000);
    expect(dropped / sent).toBeGreaterThan(0.17);
    expect(dropped / sent).toBeLessThan(0.23);
    expect(atLock.length).toBe(sent - dropped);
    expect(delivered).toBe(atLock.length);
    // What survives is in order and never invented.
    expect(overtaken(atLock)).toEqual([]);
    expect(new Set(atLock).size).toBe(atLock.length);
  });

  it('duplicated frames arrive twice and each duplicate is counted', async () => {
    const { clock, radio, hubLink, lockLink } = await connectedPair('duplication', { duplicateRate: 0.25 });
    const atLock = collect(lockLink);
    for (const i of range(1000)) await hubLink.send(numbered(i));
    await clock.advance(0);
    const { duplicated } = radio.counters();
    expect(duplicated).toBeGreaterThan(200);
    expect(duplicated).toBeLessThan(300);
    expect(atLock.length).toBe(1000 + duplicated);
    const seen = new Map<number, number>();
    for (const n of atLock) seen.set(n, (seen.get(n) ?? 0) + 1);
    expect(seen.size).toBe(1000);
    expect([...seen.values()].filter((times) => times === 2).length).toBe(duplicated);
    expect([...seen.values()].every((times) => times <= 2)).toBe(true);
  });

  it('a held-back frame is overtaken by later ones, and only held-back frames arrive late', async () => {
    const { clock, radio, hubLink, lockLink } = await connectedPair('reorder', {
      latencyMs: 2,
      reorderRate: 0.1,
      reorderDelayMs: 10,
    });
    const atLock = collect(lockLink);
    for (const i of range(500)) {
      await hubLink.send(numbered(i));
      await clock.advance(1);
    }
    await clock.advance(50);
    const { reordered } = radio.counters();
    expect(reordered).toBeGreaterThan(20);
    expect([...atLock].sort((a, b) => a - b)).toEqual(range(500));
    const late = overtaken(atLock);
    expect(late.length).toBeGreaterThan(0);
    expect(late.length).toBeLessThanOrEqual(reordered);
  });

  it('faults changed at run time apply to the frames sent afterwards', async () => {
    const { clock, radio, hubLink, lockLink } = await connectedPair('runtime', { lossRate: 1 });
    const atLock = collect(lockLink);
    for (const i of range(10)) await hubLink.send(numbered(i));
    radio.setFaults({ lossRate: 0 });
    for (const i of range(10)) await hubLink.send(numbered(10 + i));
    await clock.advance(0);
    expect(atLock).toEqual(range(10).map((i) => 10 + i));
    expect(radio.counters().dropped).toBe(10);
  });

  it.each<[string, Partial<SimFaults>]>([
    ['lossRate', { lossRate: 1.5 }],
    ['duplicateRate', { duplicateRate: -0.1 }],
    ['latencyMs', { latencyMs: Number.NaN }],
    ['reorderDelayMs', { reorderDelayMs: -1 }],
  ])('a meaningless %s is refused with an error naming it', (field, faults) => {
    expect(() => simRadio('config', faults)).toThrow(HubError);
    expect(() => simRadio('config', faults)).toThrow(field);
    const { radio } = simRadio('config');
    expect(() => radio.setFaults(faults)).toThrow(field);
    expect(radio.faults().lossRate).toBe(0);
  });

  it('the receiver gets what was sent, even if the sender reuses its buffer', async () => {
    const { clock, hubLink, lockLink } = await connectedPair('copy', { latencyMs: 10 });
    const atLock = collect(lockLink);
    const buffer = numbered(1);
    await hubLink.send(buffer);
    buffer.set(numbered(99));
    await clock.advance(10);
    expect(atLock).toEqual([1]);
  });

  it('frames that arrive before anyone listens are kept for the first listener, in order', async () => {
    const { clock, hubLink, lockLink } = await connectedPair('early');
    for (const i of range(3)) await lockLink.send(numbered(i));
    await clock.advance(10);
    const atHub = collect(hubLink);
    await lockLink.send(numbered(3));
    await clock.advance(0);
    expect(atHub).toEqual([0, 1, 2, 3]);
  });

  it('a frame larger than maxFrameSize is refused, not sent, and the link stays usable', async () => {
    const { clock, radio, hubLink, lockLink } = await connectedPair('size');
    const atLock: Uint8Array[] = [];
    lockLink.onFrame((frame) => atLock.push(frame));
    expect(hubLink.maxFrameSize).toBe(radio.maxFrameSize);
    const tooBig = await hubLink.send(new Uint8Array(hubLink.maxFrameSize + 1));
    expect(tooBig).toMatchObject({ ok: false, error: { code: 'frame-too-large', size: hubLink.maxFrameSize + 1 } });
    const justFits = await hubLink.send(new Uint8Array(hubLink.maxFrameSize));
    expect(justFits.ok).toBe(true);
    await clock.advance(0);
    expect(atLock.map((f) => f.length)).toEqual([hubLink.maxFrameSize]);
    expect(radio.counters().sent).toBe(1);
    expect(hubLink.isOpen()).toBe(true);
  });
});

describe('simulated radio: on the system clock', () => {
  it('frames arrive in order with and without latency', async () => {
    const radio = new SimRadio({ clock: systemClock, random: new SeededRandom('system'), faults: { latencyMs: 2 } });
    const links: BearerLink[] = [];
    radio.addPeripheral({ address: 'lock-1', advertisement: () => undefined, onConnect: (l) => links.push(l) });
    const bearer = radio.bearer();
    await bearer.start();
    const result = await bearer.connect('lock-1', { timeoutMs: 1000 });
    expect(result.ok).toBe(true);
    const hubLink = (result as { value: BearerLink }).value;
    const atLock = collect(links[0]!);
    for (const i of range(20)) await hubLink.send(numbered(i));
    radio.setFaults({ latencyMs: 0 });
    for (const i of range(20)) await hubLink.send(numbered(20 + i));
    for (let waited = 0; atLock.length < 40 && waited < 2000; waited += 5) await systemClock.sleep(5);
    expect(atLock).toEqual(range(40));
    await bearer.stop();
  });
});

describe('simulated radio: reproducibility', () => {
  const allFaults: Partial<SimFaults> = {
    latencyMs: 5,
    jitterMs: 10,
    lossRate: 0.1,
    duplicateRate: 0.1,
    reorderRate: 0.1,
    reorderDelayMs: 15,
  };

  async function trace(seed: string): Promise<string[]> {
    const { clock, hubLink, lockLink } = await connectedPair(seed, allFaults);
    const events: string[] = [];
    lockLink.onFrame((frame) => events.push(`${clock.monotonic()} lock<-${numberOf(frame)}`));
    hubLink.onFrame((frame) => events.push(`${clock.monotonic()} hub<-${numberOf(frame)}`));
    for (const i of range(200)) {
      await hubLink.send(numbered(i));
      if (i % 3 === 0) await lockLink.send(numbered(i));
      await clock.advance(2);
    }
    await clock.advance(100);
    return events;
  }

  it('the same seed gives the identical delivery trace', async () => {
    const first = await trace('seed A');
    expect(first.length).toBeGreaterThan(200);
    expect(await trace('seed A')).toEqual(first);
  });

  it('a different seed gives a different delivery trace', async () => {
    expect(await trace('seed B')).not.toEqual(await trace('seed A'));
  });
});
