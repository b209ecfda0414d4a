import type { Clock, TimerHandle } from './clock.js';
import type { Unsubscribe } from './listeners.js';
import { err, ok, type Result } from './result.js';

/**
 * Where a Waiter's values come from: called with the Waiter's deliver and cancelAll when the first
 * wait starts, unsubscribed when the last one ends. A source that keeps what arrives while nobody
 * listens (a BearerLink keeps early frames for its next listener) thus keeps it for the next wait.
 */
export type WaitSource<V, E> = (deliver: (value: V) => void, cancelAll: (error: E) => void) => Unsubscribe;

/** One registered wait. */
export interface Wait<R, E> {
  /** Settles once: with what the matcher made of the value, or with the timeout's or a cancel's error. Never rejects. */
  readonly result: Promise<Result<R, E>>;
  /** Neither matched, timed out nor cancelled yet. */
  readonly pending: boolean;
  /** Ends the wait with `error`; nothing happens once it has ended. */
  cancel(error: E): void;
}

interface Entry<V, E> {
  match: (value: V) => unknown;
  settle: (r: Result<unknown, E>) => void;
}

/**
 * Waits for answers to something sent (a handshake message, a request): each wait has a matcher
 * and usually a timeout on the injected Clock, so tests wait in virtual time. A value goes to the
 * first wait, in registration order, whose matcher takes it; a value nobody takes is dropped, never
 * kept for a later wait. Every way a wait ends clears its timer and forgets it, so an exchange has
 * one place that gets the clean-up right instead of one copy per exchange (after zigbee-herdsman's
 * waitress).
 */
export class Waiter<V, E> {
  readonly #clock: Clock;
  readonly #source: WaitSource<V, E> | undefined;
  readonly #waits = new Set<Entry<V, E>>();
  #unsubscribe: Unsubscribe | undefined;

  constructor(clock: Clock, source?: WaitSource<V, E>) {
    this.#clock = clock;
    this.#source = source;
  }

  /** Waits not yet ended. */
  get size(): number {
    return this.#waits.size;
  }

  /**
   * Waits for a value `match` takes: it returns what the wait resolves with, or undefined to leave
   * the value to others. Without a timeout the wait ends only by a match or a cancel.
   */
  wait<R>(match: (value: V) => R | undefined, timeout?: { ms: number; error: E }): Wait<R, E> {
    let resolve: (r: Result<R, E>) => void = () => {};
    const result = new Promise<Result<R, E>>((r) => {
      resolve = r;
    });
    let timer: TimerHandle | undefined;
    const entry: Entry<V, E> = {
      match,
      settle: (r) => {
        if (!this.#waits.delete(entry)) return;
        this.#clock.clearTimeout(timer);
        if (this.#waits.size === 0) this.#stopListening();
        resolve(r as Result<R, E>);
      },
    };
    this.#waits.add(entry);
    if (this.#source && !this.#unsubscribe) {
      this.#unsubscribe = this.#source(
        (v) => this.deliver(v),
        (e) => this.cancelAll(e),
      );
      // A source that delivered while subscribing may have ended every wait already.
      if (this.#waits.size === 0) this.#stopListening();
    }
    const waits = this.#waits;
    if (timeout && waits.has(entry)) timer = this.#clock.setTimeout(() => entry.settle(err(timeout.error)), timeout.ms);
    return {
      result,
      get pending() {
        return waits.has(entry);
      },
      cancel: (error) => entry.settle(err(error)),
    };
  }

  /** Hands `value` to the first wait that takes it; false if none did. */
  deliver(value: V): boolean {
    for (const entry of [...this.#waits]) {
      const taken = entry.match(value);
      if (taken !== undefined) {
        entry.settle(ok(taken));
        return true;
      }
    }
    return false;
  }

  /** Ends every wait with `error` (the link under them closed). */
  cancelAll(error: E): void {
    for (const entry of [...this.#waits]) entry.settle(err(error));
  }

  #stopListening(): void {
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    unsubscribe?.();
  }
}
