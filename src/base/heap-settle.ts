import { setFlagsFromString } from 'node:v8';
import { measureMemory } from 'node:vm';

/**
 * Giving back the memory a large sync used once it is garbage (docs/access.md, "Memory").
 *
 * A snapshot of a 10,000-user site is ~4 MB of JSON: parsed, checked and turned into rows it lives
 * for the second or two the mirror's transaction takes, long enough for V8 to promote it into old
 * space. Once it is garbage, V8 frees the objects at its next full collection but keeps the pages
 * they were spread over while anything else lives on them (~18 MB of a daemon's RSS after that
 * sync); it compacts such pages only in a later full collection, which an idle hub — it allocates
 * little — may not run for hours. So after a large sync, once the hub has been quiet for a moment
 * (the offline lists recomputed, the ack sent), the mirror asks for two full collections: the first
 * finds the sync's data dead, the second moves what still lives on its pages and returns them.
 *
 * The offline lists the sync changes are pushed to the locks next, for seconds: the collection
 * waits until no list is being pushed, so it comes after the last one.
 *
 * An outbox drain uses it too (src/events/delivery.ts): `collectOnce` every 5,000 events removed,
 * so old space does not grow by V8's whole step while the drain promotes its garbage, and `soon`
 * once the drain is over.
 *
 * At start-up (`afterStart`, src/app/daemon.ts once the radios are up) the same settle, then a few
 * more collections spaced out while the hub is quiet: they age the code only the start ran until V8
 * drops it, Sparkplug code too (docs/operations.md, "Memory": ~2.5 MB of an idle hub's RSS).
 *
 * The collection is V8's own incremental one, started at once by `vm.measureMemory` with `eager`
 * execution (no `--expose-gc` needed); the main thread pauses only for its final step (~5–20 ms
 * here). Nothing is measured or kept: the result is dropped.
 */

/** Quiet time after the last large sync before collecting. */
export const HEAP_SETTLE_DELAY_MS = 3_000;
/** Rows in one sync (upserts and deletions, all tables) from which it is worth a collection. */
export const HEAP_SETTLE_MIN_ROWS = 2_000;
/**
 * Full collections after start-up that age the start's code until V8 flushes it (`ageStartCode`):
 * V8 drops a function's bytecode, and with `--flush-baseline-code` its Sparkplug code, once it
 * has not run during `--bytecode-old-age` (5) full collections.
 */
export const CODE_AGE_COLLECTIONS = 6;
/** Time between two of them (the main thread pauses only for each one's last step). */
export const CODE_AGE_GAP_MS = 2_000;

export class HeapSettle {
  readonly #delayMs: number;
  readonly #collect: () => Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  /** A collection is asked for and has not started. */
  #pending = false;
  /** Work running that postpones it (`during`). */
  #holds = 0;
  #running: Promise<void> | undefined;
  #again = false;
  #runs = 0;
  #once = 0;
  readonly #ageGapMs: number;
  #ageTimer: NodeJS.Timeout | undefined;
  /** Ageing collections still to do. */
  #ageLeft = 0;
  #aged = 0;

  readonly #flushBaselineCode: () => void;

  constructor(
    opts: {
      delayMs?: number;
      collect?: () => Promise<void>;
      ageGapMs?: number;
      /** Turns on V8's flushing of Sparkplug code (`afterStart`); tests count it instead. */
      flushBaselineCode?: () => void;
    } = {},
  ) {
    this.#delayMs = opts.delayMs ?? HEAP_SETTLE_DELAY_MS;
    this.#collect = opts.collect ?? fullCollection;
    this.#ageGapMs = opts.ageGapMs ?? CODE_AGE_GAP_MS;
    this.#flushBaselineCode = opts.flushBaselineCode ?? flushBaselineCode;
  }

  /** Rounds of collections done (each two collections). */
  get runs(): number {
    return this.#runs;
  }

  /** Something large became garbage: collect once nothing else has come for the delay (restarts the wait). */
  soon(): void {
    this.#pending = true;
    this.#arm();
  }

  /**
   * Work that follows a large sync and makes garbage of its own (an offline list pushed to a
   * lock): while any runs, a collection waiting does not start; the wait starts again when the
   * last one ends. Never starts a collection by itself.
   */
  async during<T>(work: () => Promise<T>): Promise<T> {
    this.#holds++;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      return await work();
    } finally {
      this.#holds--;
      if (this.#pending) this.#arm();
    }
  }

  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#holds > 0) return;
    // unref: a pending collection never keeps a process alive.
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#holds > 0 || !this.#pending) return;
      this.#pending = false;
      void this.#run();
    }, this.#delayMs).unref();
  }

  /**
   * One full collection now, unless one is running already (then nothing: it collects the same
   * garbage). For work that makes garbage steadily for a long stretch — an outbox drain — where
   * waiting for quiet would let V8's old space grow by its whole step first (see
   * src/events/delivery.ts): neither waits for the quiet delay nor for work held by `during`.
   * Resolves when it is done (or was not needed); never rejects.
   */
  async collectOnce(): Promise<void> {
    if (this.#running) return;
    this.#running = (async () => {
      try {
        await this.#collect();
        this.#once++;
      } catch {
        // As for #run: memory, never correctness.
      } finally {
        this.#running = undefined;
        // A settle (two collections) asked for while this one ran still gets its turn.
        if (this.#again) {
          this.#again = false;
          void this.#run();
        }
      }
    })();
    await this.#running;
  }

  /** Single collections done by `collectOnce`. */
  get collections(): number {
    return this.#once;
  }

  /** A collection is asked for and has not finished. */
  get busy(): boolean {
    return this.#pending || this.#running !== undefined;
  }

  /** Resolves when no collection is running (tests); one still waiting for quiet is not waited for. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /**
   * Start-up is over (the radios are up): collect now as `soon` does, then age the code that ran
   * only to start — the config's parsing and checks, the store's opening, the radios' bring-up —
   * with `collections` more full collections, one every gap, each only while the hub is quiet (no
   * collection asked for or running, nothing held by `during`: else it waits for the next gap).
   * After `--bytecode-old-age` of them V8 drops what did not run meanwhile (docs/operations.md,
   * "Memory"); what runs again is compiled again from its source, which V8 keeps. Asked again, the
   * count starts again.
   *
   * Nearly every function the start ran has Sparkplug code, which V8 keeps (and the bytecode with
   * it) unless --flush-baseline-code is on: turned on here, from now on. Not on node's command
   * line, where it cannot be kept off the start (there `daemon.startupToReady` looked +59 ms
   * slower, medians of 9 interleaved runs, cause not established: docs/operations.md).
   */
  afterStart(collections = CODE_AGE_COLLECTIONS): void {
    try {
      this.#flushBaselineCode();
    } catch {
      // Memory, never correctness: without it V8 drops the bytecode-only functions.
    }
    this.soon();
    this.#ageLeft = collections;
    this.#armAge();
  }

  /** Ageing collections done (`afterStart`). */
  get aged(): number {
    return this.#aged;
  }

  #armAge(): void {
    if (this.#ageTimer) clearTimeout(this.#ageTimer);
    this.#ageTimer = undefined;
    if (this.#ageLeft <= 0) return;
    this.#ageTimer = setTimeout(() => {
      this.#ageTimer = undefined;
      if (this.#pending || this.#running || this.#holds > 0) {
        this.#armAge();
        return;
      }
      // collectOnce never rejects; one that failed counts too (memory, never correctness).
      void this.collectOnce().then(() => {
        this.#ageLeft--;
        this.#aged++;
        this.#armAge();
      });
    }, this.#ageGapMs).unref();
  }

  /**
   * Forget a collection asked for and not started (the process stops): its timer is cleared, a
   * round asked for while one runs is not run, and the ageing after start stops. One running
   * finishes (it cannot be interrupted).
   */
  cancel(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = false;
    this.#again = false;
    if (this.#ageTimer) clearTimeout(this.#ageTimer);
    this.#ageTimer = undefined;
    this.#ageLeft = 0;
  }

  async #run(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          try {
            await this.#collect();
            await this.#collect();
            this.#runs++;
          } catch {
            // A collection that cannot be asked for costs memory, never correctness; a round asked
            // for meanwhile still gets its turn.
          }
        } while (this.#again);
      } finally {
        this.#running = undefined;
      }
    })();
    await this.#running;
  }
}

/** The process's one HeapSettle: the mirror asks for it, the offline lists hold it back while they push. */
export const processHeapSettle = new HeapSettle();

/**
 * One full collection, now. `vm.measureMemory` is marked experimental in Node 20 and says so once
 * per process on stderr: that one warning (about this call only) is not passed on, since the
 * measurement itself is not used.
 */
async function fullCollection(): Promise<void> {
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (text.includes('vm.measureMemory')) return;
    (emit as (...a: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  let measured: Promise<unknown>;
  try {
    measured = measureMemory({ mode: 'summary', execution: 'eager' });
  } finally {
    process.emitWarning = emit;
  }
  await measured;
}

/**
 * V8's `--flush-baseline-code`, set while the process runs. V8 reads it at the start of each full
 * collection (which code may be flushed); nothing compiled depends on it.
 */
function flushBaselineCode(): void {
  setFlagsFromString('--flush-baseline-code');
}

/** How many rows a sync carries (a snapshot's rows; a delta's upserts and deletions), from its data as received. */
export function syncRows(data: unknown): number {
  const count = (tables: unknown): number => {
    if (typeof tables !== 'object' || tables === null) return 0;
    let n = 0;
    for (const rows of Object.values(tables)) if (Array.isArray(rows)) n += rows.length;
    return n;
  };
  const d = data as { upsert?: unknown; delete?: unknown } | undefined;
  return count(data) + count(d?.upsert) + count(d?.delete);
}
