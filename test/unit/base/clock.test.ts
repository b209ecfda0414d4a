import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/base/clock.js';
import { SeededRandom } from '../../../src/base/random.js';

describe('virtual clock', () => {
  it('fires timers in due order, only when time is advanced', async () => {
    const clock = new VirtualClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b'), 20);
    clock.setTimeout(() => fired.push('a'), 10);
    clock.setTimeout(() => fired.push('c'), 20);
    expect(fired).toEqual([]);
    await clock.advance(15);
    expect(fired).toEqual(['a']);
    expect(clock.now()).toBe(15);
    await clock.advance(5);
    expect(fired).toEqual(['a', 'b', 'c']);
  });

  it('a cleared timer never fires', async () => {
    const clock = new VirtualClock(0);
    let n = 0;
    const h = clock.setTimeout(() => n++, 5);
    clock.clearTimeout(h);
    await clock.advance(10);
    expect(n).toBe(0);
  });

  it('sleep resolves at the right virtual time, and work after it may schedule more', async () => {
    const clock = new VirtualClock(0);
    const seen: number[] = [];
    void (async () => {
      await clock.sleep(10);
      seen.push(clock.monotonic());
      await clock.sleep(10);
      seen.push(clock.monotonic());
    })();
    await clock.advance(25);
    expect(seen).toEqual([10, 20]);
  });

  it('runAll refuses to spin forever on a self-rearming timer', async () => {
    const clock = new VirtualClock(0);
    const again = () => clock.setTimeout(again, 1);
    again();
    await expect(clock.runAll(50)).rejects.toThrow(/re-arms/);
  });
});

describe('seeded random', () => {
  it('the same seed gives the same stream, another seed another', () => {
    const a = new SeededRandom(1).bytes(100);
    expect(Buffer.from(new SeededRandom(1).bytes(100)).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(new SeededRandom(2).bytes(100)).equals(Buffer.from(a))).toBe(false);
  });

  it('reads split across refills equal one long read', () => {
    const r1 = new SeededRandom('x');
    const parts = [r1.bytes(4000), r1.bytes(200), r1.bytes(5000)];
    const joined = Buffer.concat(parts.map((p) => Buffer.from(p)));
    expect(joined.equals(Buffer.from(new SeededRandom('x').bytes(9200)))).toBe(true);
  });

  it('int() stays in range and covers it', () => {
    const r = new SeededRandom(3);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const v = r.int(7);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(7);
      seen.add(v);
    }
    expect(seen.size).toBe(7);
    expect(() => r.int(0)).toThrow(RangeError);
  });
});
