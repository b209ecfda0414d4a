/**
 * A set of row ids for the bookkeeping of an outbox drain, on one typed array allocated once
 * (doubled when it fills, never shrunk): adding and removing an id allocates nothing.
 *
 * Why not a Set: during a drain the rows awaiting the cloud's ack (and the rows whose delete waits
 * for a group commit) fill to a couple of thousand and empty again many times a second. V8's ordered hash tables allocate a new table at each doubling, at
 * each halving (below a quarter full) and each time deletions fill them, and those tables outlive
 * two scavenges of the unit's 1 MB young generation: measured (a sampling heap profile keeping only
 * what V8 promoted), those Maps and Sets made ~20 MB of old-space garbage per 100,000 events
 * drained, a fifth of the drain's peak RSS climb (docs/operations.md, "What a full outbox and a
 * 10k-user site add").
 *
 * Open addressing with linear probing and backward-shift deletion (no tombstones): at most half
 * full, so a probe is short.
 */

const MIN_CAPACITY = 64;

/**
 * Fibonacci hashing of a row id (a positive integer, possibly past 2^32) to a slot of a table of
 * 2^(32 - shift): the ids a drain holds are a run, and a run must spread over the table (with the
 * id itself as the slot, a run is one cluster, and each delete shifts all of it).
 */
function slotOf(id: number, shift: number): number {
  return Math.imul((id | 0) ^ ((id / 0x1_0000_0000) | 0), 0x9e3779b1) >>> shift;
}

/** Whether the entry at `j`, whose home slot is `home`, may move back into the hole at `i`. */
function mayShift(i: number, j: number, home: number): boolean {
  return j > i ? home <= i || home > j : home <= i && home > j;
}

/** A set of row ids (positive integers). */
export class IdSet {
  /** 0: an empty slot (row ids start at 1). */
  #slots = new Float64Array(0);
  #mask = 0;
  #shift = 32;
  #size = 0;

  constructor(capacity = MIN_CAPACITY) {
    this.#alloc(capacity);
  }

  get size(): number {
    return this.#size;
  }

  has(id: number): boolean {
    return this.#find(id) >= 0;
  }

  add(id: number): void {
    if (!(id > 0)) throw new RangeError(`IdSet: ${id} is not a row id`);
    let i = slotOf(id, this.#shift);
    for (;;) {
      const s = this.#slots[i];
      if (s === 0) break;
      if (s === id) return;
      i = (i + 1) & this.#mask;
    }
    if ((this.#size + 1) * 2 > this.#slots.length) {
      this.#grow();
      this.add(id);
      return;
    }
    this.#slots[i] = id;
    this.#size++;
  }

  delete(id: number): boolean {
    let i = this.#find(id);
    if (i < 0) return false;
    let j = i;
    for (;;) {
      j = (j + 1) & this.#mask;
      const s = this.#slots[j] ?? 0;
      if (s === 0) break;
      if (mayShift(i, j, slotOf(s, this.#shift))) {
        this.#slots[i] = s;
        i = j;
      }
    }
    this.#slots[i] = 0;
    this.#size--;
    return true;
  }

  /** The ids, ascending. */
  values(): number[] {
    const out: number[] = [];
    for (const s of this.#slots) if (s !== 0) out.push(s);
    return out.sort((a, b) => a - b);
  }

  #find(id: number): number {
    if (!(id > 0)) return -1;
    let i = slotOf(id, this.#shift);
    for (;;) {
      const s = this.#slots[i];
      if (s === 0) return -1;
      if (s === id) return i;
      i = (i + 1) & this.#mask;
    }
  }

  #alloc(capacity: number): void {
    let n = MIN_CAPACITY;
    while (n < capacity) n *= 2;
    this.#slots = new Float64Array(n);
    this.#mask = n - 1;
    this.#shift = 32 - Math.log2(n);
    this.#size = 0;
  }

  #grow(): void {
    const old = this.#slots;
    this.#alloc(old.length * 2);
    for (const s of old) if (s !== 0) this.add(s);
  }
}
