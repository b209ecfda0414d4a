import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/base/clock.js';
import { Listeners } from '../../../src/base/listeners.js';
import { Waiter } from '../../../src/base/waiter.js';

type Failure = 'timeout' | 'closed';

describe('waiter', () => {
  it('a value resolves the first wait that takes it, with what its matcher made of it', async () => {
    const clock = new VirtualClock(0);
    const waiter = new Waiter<number, Failure>(clock);
    const odd = waiter.wait((n) => (n % 2 === 1 ? `odd ${n}` : undefined));
    const first = waiter.wait((n) => (n > 10 ? n : undefined));
    const second = waiter.wait((n) => (n > 10 ? n : undefined));
    expect(waiter.deliver(4)).toBe(false);
    expect(waiter.deliver(12)).toBe(true);
    expect(first.pending).toBe(false);
    expect(second.pending).toBe(true);
    expect(await first.result).toEqual({ ok: true, value: 12 });
    expect(waiter.deliver(13)).toBe(true);
    expect(await odd.result).toEqual({ ok: true, value: 'odd 13' });
    expect(second.pending).toBe(true);
    expect(waiter.size).toBe(1);
  });

  it('a value nobody waits for is dropped, not kept for a later wait', async () => {
    const clock = new VirtualClock(0);
    const waiter = new Waiter<number, Failure>(clock);
    expect(waiter.deliver(1)).toBe(false);
    const w = waiter.wait((n) => n, { ms: 100, error: 'timeout' });
    await clock.advance(50);
    expect(w.pending).toBe(true);
    waiter.deliver(2);
    expect(await w.result).toEqual({ ok: true, value: 2 });
  });

  it('a wait times out on the injected clock with its error, is forgotten and takes nothing after', async () => {
    const clock = new VirtualClock(0);
    const waiter = new Waiter<number, Failure>(clock);
    const w = waiter.wait((n) => n, { ms: 100, error: 'timeout' });
    await clock.advance(99);
    expect(w.pending).toBe(true);
    await clock.advance(1);
    expect(w.pending).toBe(false);
    expect(await w.result).toEqual({ ok: false, error: 'timeout' });
    expect(waiter.size).toBe(0);
    expect(waiter.deliver(5)).toBe(false);
  });

  it('a match clears the timer', async () => {
    const clock = new VirtualClock(0);
    const waiter = new Waiter<number, Failure>(clock);
    const w = waiter.wait((n) => n, { ms: 100, error: 'timeout' });
    expect(clock.pending).toBe(1);
    waiter.deliver(7);
    expect(clock.pending).toBe(0);
    await clock.advance(200);
    expect(await w.result).toEqual({ ok: true, value: 7 });
  });

  it('a cancelled wait ends with the cancel error, clears its timer, and later cancels, matches or timeouts change nothing', async () => {
    const clock = new VirtualClock(0);
    const waiter = new Waiter<number, Failure>(clock);
    const w = waiter.wait((n) => n, { ms: 100, error: 'timeout' });
    w.cancel('closed');
    expect(w.pending).toBe(false);
    expect(clock.pending).toBe(0);
    expect(waiter.size).toBe(0);
    w.cancel('timeout');
    expect(waiter.deliver(1)).toBe(false);
    await clock.advance(200);
    expect(await w.result).toEqual({ ok: false, error: 'closed' });
  });

  it('cancelAll ends every wait with its error and clears every timer', async () => {
    const clock = new VirtualClock(0);
    const waiter = new Waiter<number, Failure>(clock);
    const a = waiter.wait((n) => n, { ms: 100, error: 'timeout' });
    const b = waiter.wait((n) => n);
    waiter.cancelAll('closed');
    expect(await a.result).toEqual({ ok: false, error: 'closed' });
    expect(await b.result).toEqual({ ok: false, error: 'closed' });
    expect(waiter.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('listens to its source only while a wait is registered, whichever way the last one ends', async () => {
    const clock = new VirtualClock(0);
    const values = new Listeners<number>();
    const closes = new Listeners<void>();
    const waiter = new Waiter<number, Failure>(clock, (deliver, cancelAll) => {
      const offValue = values.add(deliver);
      const offClose = closes.add(() => cancelAll('closed'));
      return () => {
        offValue();
        offClose();
      };
    });
    expect(values.size).toBe(0);

    const matched = waiter.wait((n) => (n === 1 ? n : undefined));
    const alsoMatched = waiter.wait((n) => (n === 2 ? n : undefined));
    expect(values.size).toBe(1);
    values.emit(1);
    expect(values.size).toBe(1);
    values.emit(2);
    expect(values.size).toBe(0);
    expect(await matched.result).toEqual({ ok: true, value: 1 });
    expect(await alsoMatched.result).toEqual({ ok: true, value: 2 });

    const timedOut = waiter.wait((n) => n, { ms: 10, error: 'timeout' });
    expect(values.size).toBe(1);
    await clock.advance(10);
    expect(await timedOut.result).toEqual({ ok: false, error: 'timeout' });
    expect(values.size).toBe(0);

    const cancelled = waiter.wait((n) => n);
    cancelled.cancel('closed');
    expect(values.size).toBe(0);

    const closed = waiter.wait((n) => n, { ms: 10, error: 'timeout' });
    closes.emit();
    expect(await closed.result).toEqual({ ok: false, error: 'closed' });
    expect(values.size).toBe(0);
    expect(closes.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('a source that delivers while being subscribed resolves the wait and is let go at once', async () => {
    const clock = new VirtualClock(0);
    let listening = 0;
    const waiter = new Waiter<number, Failure>(clock, (deliver) => {
      listening++;
      deliver(3);
      return () => {
        listening--;
      };
    });
    const w = waiter.wait((n) => n, { ms: 10, error: 'timeout' });
    expect(await w.result).toEqual({ ok: true, value: 3 });
    expect(listening).toBe(0);
    expect(clock.pending).toBe(0);
  });
});
