/** Stops a subscription; calling it twice is harmless. */
export type Unsubscribe = () => void;

/**
 * The listeners of one kind of bearer event (state changes, advertisements): every Bearer keeps
 * two of these, so the subscribe/unsubscribe and the "a listener may unsubscribe while being
 * called" rule live in one place instead of a copy per radio.
 */
export class Listeners<T> {
  readonly #set = new Set<(value: T) => void>();

  /** How many listen now (the simulated radio scans only while someone listens). */
  get size(): number {
    return this.#set.size;
  }

  add(listener: (value: T) => void): Unsubscribe {
    this.#set.add(listener);
    return () => {
      this.#set.delete(listener);
    };
  }

  /** Calls every listener subscribed when the emit starts; one added or removed meanwhile does not change this round. */
  emit(value: T): void {
    for (const listener of [...this.#set]) listener(value);
  }
}
