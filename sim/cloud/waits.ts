import type { Clock, TimerHandle } from '../../src/base/clock.js';
import type { CmdResultPayload, SyncAckPayload } from '../../src/contract/mqtt-hub-messages.js';

/**
 * The promises that wait on what hubs publish: a request's answer, matched by hub, topic and id,
 * and a caller's condition, checked again after every message. Kept apart from recording so that
 * every wait has one place where it is settled, timed out or rejected when the cloud closes.
 */

type AnswerTopic = 'cmd/result' | 'sync/ack';
type AnswerPayload = CmdResultPayload | SyncAckPayload;

interface Pending {
  resolve(p: AnswerPayload): void;
  reject(e: Error): void;
  timer: TimerHandle;
}

interface Waiter {
  check(): void;
  fail(e: Error): void;
}

export interface AnswerWait {
  readonly answer: Promise<AnswerPayload>;
  /** Reject this wait alone (its request could not be sent). */
  fail(e: Error): void;
}

export class Waits {
  readonly #clock: Clock;
  /** Several requests may wait for the same id (a replayed envelope): each answer resolves them all. */
  readonly #pending = new Map<string, Set<Pending>>();
  readonly #waiters = new Set<Waiter>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Wait for the answer with this id from this hub, for at most `timeoutMs`. */
  answer(hubId: string, topic: AnswerTopic, id: string, timeoutMs: number, onTimeout: () => Error): AnswerWait {
    const key = pendingKey(hubId, topic, id);
    let fail!: (e: Error) => void;
    const answer = new Promise<AnswerPayload>((resolve, reject) => {
      fail = (e: Error) => {
        const set = this.#pending.get(key);
        if (!set?.has(entry)) return;
        set.delete(entry);
        if (set.size === 0) this.#pending.delete(key);
        this.#clock.clearTimeout(entry.timer);
        reject(e);
      };
      const entry: Pending = { resolve, reject, timer: this.#clock.setTimeout(() => fail(onTimeout()), timeoutMs) };
      let set = this.#pending.get(key);
      if (!set) {
        set = new Set();
        this.#pending.set(key, set);
      }
      set.add(entry);
    });
    return { answer, fail };
  }

  /** An answer arrived: every request waiting for its id resolves with it. */
  settle(hubId: string, topic: AnswerTopic, id: string, a: AnswerPayload): void {
    const key = pendingKey(hubId, topic, id);
    const set = this.#pending.get(key);
    if (!set) return;
    this.#pending.delete(key);
    for (const p of set) {
      this.#clock.clearTimeout(p.timer);
      p.resolve(a);
    }
  }

  /** Resolve once `met()` holds (checked now and at every `notify()`), or reject after `timeoutMs`. */
  until(met: () => boolean, timeoutMs: number, onTimeout: () => Error): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const waiter: Waiter = {
        check: () => {
          let done: boolean;
          try {
            done = met();
          } catch (e) {
            waiter.fail(e as Error);
            return;
          }
          if (!done) return;
          this.#waiters.delete(waiter);
          this.#clock.clearTimeout(timer);
          resolve();
        },
        fail: (e) => {
          this.#waiters.delete(waiter);
          this.#clock.clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.add(waiter);
      timer = this.#clock.setTimeout(() => waiter.fail(onTimeout()), timeoutMs);
      waiter.check();
    });
  }

  /** Something changed (a message, a connection): check every condition again. */
  notify(): void {
    for (const w of [...this.#waiters]) w.check();
  }

  /** Reject everything that waits: answers first, then conditions. */
  failAll(e: Error): void {
    for (const [key, set] of this.#pending) {
      this.#pending.delete(key);
      for (const p of set) {
        this.#clock.clearTimeout(p.timer);
        p.reject(e);
      }
    }
    for (const w of [...this.#waiters]) w.fail(e);
  }
}

function pendingKey(hubId: string, topic: string, id: string): string {
  return `${hubId}\n${topic}\n${id}`;
}
