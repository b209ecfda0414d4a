import type { Clock, TimerHandle } from '../base/clock.js';
import type { Component, ComponentStatus } from '../base/component.js';
import { HubError } from '../base/errors.js';
import { type HeapSettle, processHeapSettle } from '../base/heap-settle.js';
import { MAX_OFFLINE_WINDOWS, type OfflineItem } from '../contract/link-messages.js';
import { OPEN_UNTIL, offlineListDigest, takeOfflineRequest, wireWindow } from '../contract/link-offline.js';
import type { Logger } from '../log/logger.js';
import { LockPasses } from './lock-passes.js';
import type { AccessMirror, OfflineEntry } from './mirror.js';
import { compileSchedule, type Schedule, scheduleIntervals } from './schedule.js';

/**
 * Offline lists: for each bound lock, the PINs and tags it may accept on its own when it cannot
 * reach the hub, kept up to date on the lock over the sealed link.
 *
 * - What: `mirror.offlineList(lock)` (offline users with rights to the lock), each credential with
 *   absolute intervals `[from, until)` over two periods of the horizon (default 7 days) from the
 *   start of the current one (UTC days since the epoch), computed in the site's zone — so the lock
 *   needs no zone rules and DST is the hub's business, and a list changes once a period rather
 *   than every day, while reaching at least a horizon ahead. Whole seconds on the wire (u32; a
 *   bound between seconds is moved inwards, never out). At most MAX_OFFLINE_WINDOWS intervals per
 *   credential: one with more in that span gets the earliest from today over one horizon (and
 *   changes daily). The list is recomputed daily, so the horizon never runs out on a lock that
 *   stays in touch.
 * - Capacity and priority: a lock holds at most its capacity (it says so in every answer; until
 *   then `defaultCapacity`). Over capacity, credentials usable soonest come first; ties go to tags
 *   before PINs (the tag is the usual credential at a door without a phone), then by credential id.
 *   What is left out is counted and logged.
 * - How: the hub remembers, per lock, what it last told it (in memory). A change is sent as a
 *   delta (removals and upserts, a few per request). For a lock the hub knows nothing about since
 *   it started — or whose last update failed — it first asks what the lock holds (an empty
 *   setOffline, answered with the digest of the lock's list): a lock already holding the list the
 *   hub wants gets nothing more; any other gets the whole list, the first request with `reset`.
 * - When: after each sync that changed the mirror (`changed()`), when a lock becomes bound or
 *   reconnects (`lockReady()`), after a failure (retry with `retryMs`), and once a day.
 */

export interface OfflineLink {
  /** Locks bound to this hub (only those get lists). */
  boundLocks(): string[];
  /** Applies the change; answers with what the lock then holds (count, capacity, offlineListDigest). */
  setOffline(
    lockId: string,
    change: { reset: boolean; remove: string[]; upsert: OfflineItem[] },
  ): Promise<{ held: number; capacity: number; digest: Uint8Array }>;
}

/** A setOffline that changes nothing: the lock answers with what it holds. */
const QUERY = { reset: false, remove: [], upsert: [] };

export interface OfflineListOptions {
  horizonDays: number;
  defaultCapacity: number;
  /** Locks updated at the same time. */
  concurrency: number;
  retryMs: number;
  refreshMs: number;
}

export const DEFAULT_OFFLINE_OPTIONS: OfflineListOptions = {
  horizonDays: 7,
  defaultCapacity: 500,
  concurrency: 16,
  retryMs: 30_000,
  refreshMs: 86_400_000,
};

export interface OfflineListsDeps {
  mirror: AccessMirror;
  link: OfflineLink;
  clock: Clock;
  timeZone: string;
  log: Logger;
  options?: Partial<OfflineListOptions>;
  /** Held back while updates run, when a collection after a large sync waits (heap-settle.ts; default the process's). */
  heapSettle?: HeapSettle | false;
}

export interface OfflineLockStatus {
  lockId: string;
  /** Entries the lock holds, as the hub last told it (undefined: unknown, a full list goes next). */
  held: number | undefined;
  capacity: number;
  /** Credentials left out for capacity at the last computation. */
  leftOut: number;
  lastUpdatedAt: number | undefined;
  lastError: string | undefined;
}

interface LockView {
  /** credentialId → the item's fingerprint, as the lock holds it; undefined = unknown. */
  known: Map<string, string> | undefined;
  capacity: number | undefined;
  leftOut: number;
  lastUpdatedAt: number | undefined;
  lastError: string | undefined;
  /** The last update found the lock holding another list and was tried again at once. */
  resentAtOnce?: boolean;
}

const DAY = 86_400_000;

export class OfflineLists implements Component {
  readonly name = 'offline-lists';
  readonly #d: OfflineListsDeps;
  readonly #o: OfflineListOptions;
  readonly #locks = new Map<string, LockView>();
  /** Locks whose list must be recomputed, and the passes that send them. */
  readonly #passes: LockPasses;
  #state: ComponentStatus['state'] = 'stopped';
  #refresh: TimerHandle | undefined;
  #retry: TimerHandle | undefined;
  #day = -1;
  /** Today's intervals per schedule and bounds; the mirror hands out one object per distinct schedule. */
  #windowsCache = new WeakMap<Schedule, Map<string, { from: number; until: number }[]>>();
  readonly #listeners = new Set<(lockId: string, at: number) => void>();

  constructor(deps: OfflineListsDeps) {
    this.#d = deps;
    this.#o = { ...DEFAULT_OFFLINE_OPTIONS, ...deps.options };
    for (const [k, v] of Object.entries(this.#o)) {
      if (!Number.isSafeInteger(v) || v < 1) {
        throw new HubError('access.config', `offline lists: ${k} must be a positive integer, got ${v}`);
      }
    }
    if (this.#o.horizonDays > 60) throw new HubError('access.config', 'offline lists: horizonDays is at most 60');
    this.#passes = new LockPasses({
      active: () => this.#state === 'running',
      boundLocks: () => this.#d.link.boundLocks(),
      update: (lockId) => this.#update(lockId),
      concurrency: this.#o.concurrency,
      beforePass: (bound) => {
        for (const id of [...this.#locks.keys()]) if (!bound.has(id)) this.#locks.delete(id);
      },
    });
  }

  async start(): Promise<void> {
    this.#state = 'running';
    this.#scheduleRefresh();
    this.changed();
  }

  async stop(): Promise<void> {
    this.#state = 'stopping';
    this.#d.clock.clearTimeout(this.#refresh);
    this.#d.clock.clearTimeout(this.#retry);
    await this.#passes.settled();
    this.#state = 'stopped';
  }

  status(): ComponentStatus {
    const failing = [...this.#locks.values()].filter((l) => l.lastError !== undefined).length;
    return {
      name: this.name,
      state: this.#state,
      detail: `${this.#locks.size} locks${failing > 0 ? `, ${failing} not up to date (retrying)` : ''}`,
    };
  }

  locks(): OfflineLockStatus[] {
    return [...this.#locks.entries()].map(([lockId, v]) => ({
      lockId,
      held: v.known?.size,
      capacity: v.capacity ?? this.#o.defaultCapacity,
      leftOut: v.leftOut,
      lastUpdatedAt: v.lastUpdatedAt,
      lastError: v.lastError,
    }));
  }

  /** Called after each update a lock acknowledged (tests and the propagation bench measure with it). */
  onUpdated(listener: (lockId: string, at: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The mirror changed: every bound lock's list is recomputed and the differences sent. */
  changed(): void {
    this.#passes.mark(this.#d.link.boundLocks());
  }

  /** A lock became bound or reconnected: its list is checked (sent whole if the hub does not know it). */
  lockReady(lockId: string): void {
    this.#passes.mark([lockId]);
  }

  /** A lock left (detached, forgotten): forget what it held. */
  lockGone(lockId: string): void {
    this.#locks.delete(lockId);
    this.#passes.forget(lockId);
  }

  /** The list for one lock as it would be sent now, with how many credentials capacity left out. */
  desired(lockId: string, capacity?: number): { items: OfflineItem[]; leftOut: number } {
    const now = this.#d.clock.now();
    const day = Math.floor(now / DAY);
    if (day !== this.#day) {
      this.#day = day;
      this.#windowsCache = new WeakMap();
    }
    // Scheduled windows are expanded over two periods of horizonDays from the start of the current
    // one (whole UTC days since the epoch), not from today: a list then changes once a period, not
    // every day (each day's refresh would re-send every scheduled credential), and still reaches at
    // least horizonDays ahead. A credential with more windows than an item carries in that span
    // gets the earliest from today on instead (as before: it changes daily).
    const period = this.#o.horizonDays;
    const anchor = Math.floor(day / period) * period * DAY;
    const today = day * DAY;
    const items: OfflineItem[] = [];
    const soonest = new Map<OfflineItem, number>();
    for (const entry of this.#d.mirror.offlineList(lockId, now)) {
      let windows = this.#windows(entry, anchor, anchor + 2 * period * DAY);
      if (windows.length > MAX_OFFLINE_WINDOWS) {
        windows = this.#windows(entry, today, today + period * DAY).slice(0, MAX_OFFLINE_WINDOWS);
      }
      // Usable soonest: the first window not over yet (none: nothing left to send).
      const next = windows.find((w) => w.until > now);
      if (next) {
        const item = { kind: entry.kind, credentialId: entry.credentialId, digest: entry.digest, windows };
        items.push(item);
        soonest.set(item, Math.max(next.from, now));
      }
    }
    items.sort(
      (a, b) =>
        (soonest.get(a) ?? 0) - (soonest.get(b) ?? 0) ||
        (a.kind === b.kind ? 0 : a.kind === 'tag' ? -1 : 1) ||
        (a.credentialId < b.credentialId ? -1 : a.credentialId > b.credentialId ? 1 : 0),
    );
    const cap = capacity ?? this.#o.defaultCapacity;
    return { items: items.slice(0, cap), leftOut: Math.max(0, items.length - cap) };
  }

  /** Runs passes until nothing is dirty; resolves when the lists are as up to date as they can be. */
  settled(): Promise<void> {
    return this.#passes.settled();
  }

  async #update(lockId: string): Promise<void> {
    const settle = this.#d.heapSettle === false ? undefined : (this.#d.heapSettle ?? processHeapSettle);
    await (settle ? settle.during(() => this.#updateOnce(lockId)) : this.#updateOnce(lockId));
  }

  async #updateOnce(lockId: string): Promise<void> {
    let view = this.#locks.get(lockId);
    if (!view) {
      view = { known: undefined, capacity: undefined, leftOut: 0, lastUpdatedAt: undefined, lastError: undefined };
      this.#locks.set(lockId, view);
    }
    try {
      const learned = view.known === undefined ? await this.#learn(lockId, view) : undefined;
      const { items, leftOut } = learned ?? this.desired(lockId, view.capacity);
      if (leftOut > 0 && leftOut !== view.leftOut) {
        this.#d.log.warn(
          { lockId, leftOut, capacity: view.capacity ?? this.#o.defaultCapacity },
          'offline list over capacity',
        );
      }
      view.leftOut = leftOut;
      const wanted = fingerprints(items);
      const known = view.known;
      const remove = known ? [...known.keys()].filter((id) => !wanted.has(id)) : [];
      const upsert = items.filter((i) => known?.get(i.credentialId) !== wanted.get(i.credentialId));
      if (known && remove.length === 0 && upsert.length === 0) return;
      let reset = known === undefined;
      // The lock's list meanwhile: removals first (a revoked credential leaves before anything is added).
      const holding = new Map(known ?? []);
      let digest: Uint8Array | undefined;
      while (reset || remove.length > 0 || upsert.length > 0) {
        const { remove: r, upsert: u } = takeOfflineRequest(remove, upsert);
        const answer = await this.#d.link.setOffline(lockId, { reset, remove: r, upsert: u });
        if (reset) holding.clear();
        reset = false;
        for (const id of r) holding.delete(id);
        for (const i of u) holding.set(i.credentialId, fingerprint(i));
        view.known = holding;
        view.capacity = answer.capacity;
        digest = answer.digest;
      }
      // The last answer says what the lock now holds: it must be the list wanted, whatever the hub
      // believed the lock held before (a lock changed behind its back, an answer lost). If not, the
      // lock is asked again and, holding anything else, gets the whole list.
      if (digest && !Buffer.from(digest).equals(offlineListDigest(items))) {
        throw new DigestMismatch();
      }
      view.resentAtOnce = false;
      view.lastUpdatedAt = this.#d.clock.now();
      view.lastError = undefined;
      for (const l of [...this.#listeners]) l(lockId, view.lastUpdatedAt);
    } catch (e) {
      // What the lock holds now is not certain: the next attempt asks first.
      view.known = undefined;
      view.lastError = e instanceof Error ? e.message : String(e);
      this.#d.log.warn({ lockId, err: view.lastError }, 'offline list update failed; will retry');
      // A mismatch after a delta is worth one attempt at once (ask, then the whole list); any other
      // failure, or a second mismatch in a row, waits for the retry.
      if (e instanceof DigestMismatch && !view.resentAtOnce) {
        view.resentAtOnce = true;
        this.#passes.mark([lockId]);
      } else this.#scheduleRetry(lockId);
    }
  }

  /**
   * Ask the lock what it holds. When its list's digest is that of the list the hub wants for its
   * capacity, the hub knows its list again without sending it; otherwise `known` stays undefined
   * and the whole list goes. Returns that wanted list (computed once for both).
   */
  async #learn(lockId: string, view: LockView): Promise<ReturnType<OfflineLists['desired']>> {
    const held = await this.#d.link.setOffline(lockId, QUERY);
    view.capacity = held.capacity;
    const wanted = this.desired(lockId, held.capacity);
    const { items } = wanted;
    if (!Buffer.from(held.digest).equals(offlineListDigest(items))) return wanted;
    view.known = fingerprints(items);
    view.lastUpdatedAt = this.#d.clock.now();
    view.lastError = undefined;
    this.#d.log.debug({ lockId, held: held.held }, 'offline list: the lock already holds it');
    return wanted;
  }

  #windows(entry: OfflineEntry, start: number, end: number): { from: number; until: number }[] {
    const out: { from: number; until: number }[] = [];
    for (const w of entry.windows) {
      const from = Math.max(start, w.validFrom ?? start);
      const until = Math.min(end, w.validUntil ?? end);
      if (until <= from) continue;
      if (w.schedule === null) {
        // Open bounds stay open on the lock: no need to refresh an always-valid credential.
        out.push({ from: w.validFrom ?? 0, until: w.validUntil ?? OPEN_UNTIL });
        continue;
      }
      let bySpan = this.#windowsCache.get(w.schedule);
      if (!bySpan) {
        bySpan = new Map();
        this.#windowsCache.set(w.schedule, bySpan);
      }
      const span = `${from}|${until}`;
      let list = bySpan.get(span);
      if (!list) {
        list = scheduleIntervals(compileSchedule(w.schedule), this.#d.timeZone, from, until);
        bySpan.set(span, list);
      }
      out.push(...list);
    }
    out.sort((a, b) => a.from - b.from);
    // Overlapping windows of several groups merge; each is then cut to whole seconds inside it (what
    // the wire carries: never longer than allowed). All of them: desired() keeps what an item carries.
    const merged: { from: number; until: number }[] = [];
    for (const w of out) {
      const last = merged[merged.length - 1];
      if (last && w.from <= last.until) last.until = Math.max(last.until, w.until);
      else merged.push({ ...w });
    }
    const sent: { from: number; until: number }[] = [];
    for (const w of merged) {
      const cut = wireWindow(w.from, w.until);
      if (cut) sent.push(cut);
    }
    return sent;
  }

  #scheduleRetry(lockId: string): void {
    this.#d.clock.clearTimeout(this.#retry);
    this.#retry = this.#d.clock.setTimeout(() => {
      this.#retry = undefined;
      // One mark, so a lock is updated once even while the pass it starts is running.
      const failing = [...this.#locks].filter(([, v]) => v.lastError !== undefined).map(([id]) => id);
      this.#passes.mark([lockId, ...failing]);
    }, this.#o.retryMs);
  }

  #scheduleRefresh(): void {
    this.#refresh = this.#d.clock.setTimeout(() => {
      if (this.#state !== 'running') return;
      this.changed();
      this.#scheduleRefresh();
    }, this.#o.refreshMs);
  }
}

/** The lock answered the last change of an update with the digest of another list than the one wanted. */
class DigestMismatch extends Error {
  constructor() {
    super('the lock holds another list than the one sent (digest mismatch); it is asked again and gets the whole list');
  }
}

/** credentialId → fingerprint, as LockView.known holds a list. */
function fingerprints(items: readonly OfflineItem[]): Map<string, string> {
  return new Map(items.map((i) => [i.credentialId, fingerprint(i)]));
}

function fingerprint(i: OfflineItem): string {
  return `${i.kind}|${Buffer.from(i.digest).toString('hex')}|${i.windows.map((w) => `${w.from}-${w.until}`).join(',')}`;
}
