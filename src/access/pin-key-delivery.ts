import type { Clock, TimerHandle } from '../base/clock.js';
import type { Component, ComponentStatus } from '../base/component.js';
import type { PinKeyHeld, PinKeyInstall } from '../contract/link-messages.js';
import type { Logger } from '../log/logger.js';
import { LockPasses } from './lock-passes.js';
import type { PinKeyRing } from './pin-keys.js';

/**
 * The site PIN key on every bound lock, over the sealed link (`setPinKey`,
 * docs/link-protocol.md): sent when a lock becomes bound or reconnects (`lockReady`), when the
 * cloud's sync changed the keys (`changed`), at the end of an overlap (the previous key is then
 * dropped), and after a failure (retry every `retryMs`).
 *
 * Per lock the hub remembers, in memory, the versions the lock said it holds. For a lock it knows
 * nothing about (since start-up, or after a failure), during an overlap, it sends the previous
 * key first (so the lock ends up holding both) and then the current one; a lock that already holds
 * a newer key refuses the previous one (`bad-request`: versions only grow), which is expected and
 * followed by the current key. A lock that refuses the current key (it holds a newer version, or
 * another key under the same version) is reported, and retried.
 */

export interface PinKeyLink {
  boundLocks(): string[];
  setPinKey(lockId: string, install: PinKeyInstall): Promise<PinKeyHeld>;
}

export interface PinKeyLockStatus {
  lockId: string;
  /** What the lock said it holds (undefined: not known since start-up). */
  version: number | undefined;
  previous: number | undefined;
  lastUpdatedAt: number | undefined;
  lastError: string | undefined;
}

/** A lock the hub has heard nothing from since start-up. */
const unknownLock = (lockId: string): PinKeyLockStatus => ({
  lockId,
  version: undefined,
  previous: undefined,
  lastUpdatedAt: undefined,
  lastError: undefined,
});

export class PinKeyDelivery implements Component {
  readonly name = 'pin-keys';
  readonly #ring: PinKeyRing;
  readonly #link: PinKeyLink;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #retryMs: number;
  readonly #locks = new Map<string, PinKeyLockStatus>();
  readonly #listeners = new Set<(lockId: string) => void>();
  #state: ComponentStatus['state'] = 'stopped';
  readonly #passes: LockPasses;
  #retry: TimerHandle | undefined;
  #expiry: TimerHandle | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(deps: { ring: PinKeyRing; link: PinKeyLink; clock: Clock; log: Logger; retryMs?: number }) {
    this.#ring = deps.ring;
    this.#link = deps.link;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#retryMs = deps.retryMs ?? 30_000;
    // One lock at a time: a key is a small frame, and the radio stays free for the doors.
    this.#passes = new LockPasses({
      active: () => this.#state === 'running',
      boundLocks: () => this.#link.boundLocks(),
      update: (lockId) => this.#update(lockId),
    });
  }

  async start(): Promise<void> {
    this.#state = 'running';
    this.#unsubscribe = this.#ring.onChange(() => this.changed());
    this.#ring.expire();
    this.changed();
  }

  async stop(): Promise<void> {
    this.#state = 'stopping';
    this.#unsubscribe?.();
    this.#clock.clearTimeout(this.#retry);
    this.#clock.clearTimeout(this.#expiry);
    await this.#passes.settled();
    this.#state = 'stopped';
  }

  status(): ComponentStatus {
    const current = this.#ring.currentVersion();
    const behind = this.locks().filter((l) => l.version !== current).length;
    return {
      name: this.name,
      state: this.#state,
      detail:
        current === 0
          ? 'no site PIN key (the cloud has not sent one)'
          : `PIN key v${current}${this.#ring.inOverlap() ? ' (previous still accepted)' : ''}, ${behind} locks not current`,
    };
  }

  /** The current version (0: none). */
  currentVersion(): number {
    return this.#ring.currentVersion();
  }

  locks(): PinKeyLockStatus[] {
    const bound = this.#link.boundLocks();
    return bound.map((lockId) => this.#locks.get(lockId) ?? unknownLock(lockId));
  }

  /** Called after each lock that answered a setPinKey (tests wait on it). */
  onUpdated(listener: (lockId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  changed(): void {
    this.#scheduleExpiry();
    this.#passes.mark(this.#link.boundLocks());
  }

  lockReady(lockId: string): void {
    this.#passes.mark([lockId]);
  }

  lockGone(lockId: string): void {
    this.#locks.delete(lockId);
    this.#passes.forget(lockId);
  }

  settled(): Promise<void> {
    return this.#passes.settled();
  }

  async #update(lockId: string): Promise<void> {
    const [current, previous] = this.#ring.versions();
    if (!current) return;
    const view = this.#locks.get(lockId) ?? unknownLock(lockId);
    this.#locks.set(lockId, view);
    const wantPrevious = previous && previous.until !== null ? previous : undefined;
    if (
      view.lastError === undefined &&
      view.version === current.version &&
      view.previous === (wantPrevious?.version ?? 0)
    ) {
      return;
    }
    try {
      if (wantPrevious && (view.version === undefined || view.version < wantPrevious.version)) {
        // Bring the lock to the previous key first, so that it keeps it through the overlap.
        await this.#send(lockId, view, wantPrevious.version, 0).catch(() => undefined);
      }
      await this.#send(lockId, view, current.version, wantPrevious?.until ?? 0);
      view.lastError = undefined;
      view.lastUpdatedAt = this.#clock.now();
      for (const l of [...this.#listeners]) l(lockId);
    } catch (e) {
      view.lastError = e instanceof Error ? e.message : String(e);
      // Never the key: only the lock, the versions and why.
      this.#log.warn({ lockId, version: current.version, err: view.lastError }, 'PIN key delivery failed; will retry');
      this.#scheduleRetry();
    }
  }

  async #send(lockId: string, view: PinKeyLockStatus, version: number, previousUntil: number): Promise<void> {
    const key = this.#ring.open(version);
    try {
      const held = await this.#link.setPinKey(lockId, { version, key: key.reveal(), previousUntil });
      view.version = held.version;
      view.previous = held.previous;
      this.#log.info({ lockId, version: held.version, previous: held.previous }, 'lock holds the site PIN key');
    } finally {
      key.wipe();
    }
  }

  #scheduleRetry(): void {
    if (this.#retry) return;
    this.#retry = this.#clock.setTimeout(() => {
      this.#retry = undefined;
      this.#passes.mark([...this.#locks].filter(([, v]) => v.lastError !== undefined).map(([id]) => id));
    }, this.#retryMs);
  }

  /** At the end of an overlap: the previous key is deleted, and every lock told to drop it. */
  #scheduleExpiry(): void {
    this.#clock.clearTimeout(this.#expiry);
    this.#expiry = undefined;
    const until = this.#ring.overlapUntil();
    if (until === undefined || this.#state !== 'running') return;
    const delay = Math.max(0, until - this.#clock.now());
    this.#expiry = this.#clock.setTimeout(
      () => {
        this.#expiry = undefined;
        if (!this.#ring.expire()) this.#scheduleExpiry();
      },
      Math.min(delay, 2 ** 31 - 1),
    );
  }
}
