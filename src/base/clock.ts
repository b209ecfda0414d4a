/**
 * The one source of time. Everything that waits, times out or stamps an event takes a Clock,
 * so tests run on virtual time and production on the system clock.
 */
export interface TimerHandle {
  readonly id: number;
}

export interface Clock {
  /** Wall-clock time in milliseconds since the Unix epoch. */
  now(): number;
  /** Monotonic milliseconds; only differences are meaningful. */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
  sleep(ms: number): Promise<void>;
}

class SystemClock implements Clock {
  #next = 1;
  readonly #timers = new Map<number, { immediate: NodeJS.Immediate } | { timeout: NodeJS.Timeout }>();

  now(): number {
    return Date.now();
  }

  monotonic(): number {
    return performance.now();
  }

  /** `ms` ≤ 0 runs on the next turn of the event loop (setImmediate), not after Node's 1 ms timer minimum. */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#next++;
    const run = () => {
      this.#timers.delete(id);
      fn();
    };
    this.#timers.set(id, ms <= 0 ? { immediate: setImmediate(run) } : { timeout: setTimeout(run, ms) });
    return { id };
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (!handle) return;
    const t = this.#timers.get(handle.id);
    if (t && 'immediate' in t) clearImmediate(t.immediate);
    else if (t) clearTimeout(t.timeout);
    this.#timers.delete(handle.id);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }
}

export const systemClock: Clock = new SystemClock();

interface VirtualTimer {
  id: number;
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that moves only when told to. Timers fire in (due time, creation order) order,
 * and microtasks queued by a timer run before the next timer fires.
 */
export class VirtualClock implements Clock {
  #wall: number;
  #mono = 0;
  #next = 1;
  #seq = 0;
  #timers: VirtualTimer[] = [];

  constructor(startWallMs = Date.UTC(2026, 0, 1)) {
    this.#wall = startWallMs;
  }

  now(): number {
    return this.#wall + this.#mono;
  }

  monotonic(): number {
    return this.#mono;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#next++;
    this.#timers.push({ id, at: this.#mono + Math.max(0, ms), seq: this.#seq++, fn });
    return { id };
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (!handle) return;
    this.#timers = this.#timers.filter((t) => t.id !== handle.id);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /** Number of timers waiting. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Advance time by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.#mono + ms;
    for (;;) {
      await flushMicrotasks();
      const due = this.#earliest();
      if (!due || due.at > target) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#mono = due.at;
      due.fn();
    }
    this.#mono = target;
    await flushMicrotasks();
  }

  /** Fire timers until none is left (bounded, so a self-rearming timer cannot hang a test). */
  async runAll(maxTimers = 10_000): Promise<void> {
    for (let i = 0; i < maxTimers; i++) {
      await flushMicrotasks();
      const due = this.#earliest();
      if (!due) return;
      await this.advance(due.at - this.#mono);
    }
    throw new Error(`VirtualClock.runAll: more than ${maxTimers} timers fired; a timer re-arms itself`);
  }

  #earliest(): VirtualTimer | undefined {
    let best: VirtualTimer | undefined;
    for (const t of this.#timers) {
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
  await new Promise<void>((resolve) => setImmediate(resolve));
}
