import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect } from 'vitest';
import type { SimFaults } from '../../../../drivers/sim-radio/radio.js';
import type { Bearer } from '../../../../hal/bearer.js';
import type { LockPersisted } from '../../../../sim/lock/storage.js';
import { SimWorld } from '../../../../sim/world.js';
import { VirtualClock } from '../../../../src/base/clock.js';
import { HubError } from '../../../../src/base/errors.js';
import { SeededRandom } from '../../../../src/base/random.js';
import type { LockEvent } from '../../../../src/contract/link-messages.js';
import { Sealer } from '../../../../src/crypto/seal.js';
import { Secret } from '../../../../src/crypto/secret.js';
import {
  type AccessHandler,
  LinkManager,
  type LinkOptions,
  type LockSummary,
  type SecurityEvent,
} from '../../../../src/link/manager.js';
import { PairingStore } from '../../../../src/link/pairing.js';
import { silentLogger } from '../../../../src/log/logger.js';
import { Store } from '../../../../src/store/store.js';
import { drive } from '../../../helpers/drive.js';
import { MitmBearer, type MitmLink } from '../../../helpers/mitm-bearer.js';
import { tempDir } from '../../../helpers/tmp.js';

/** Short timings, so that retries and timeouts cost little virtual time. */
export const FAST: Partial<LinkOptions> = {
  stepTimeoutMs: 100,
  retryMs: 60,
  attempts: 6,
  requestAttempts: 10,
  connectTimeoutMs: 500,
  reconnectBaseMs: 200,
  reconnectMaxMs: 2_000,
};

export interface SiteOptions {
  seed?: string;
  locks?: number;
  faults?: Partial<SimFaults>;
  link?: Partial<LinkOptions>;
  /** Keep the locks' flash in files (so a test can edit it while a lock is off). */
  lockFiles?: boolean;
  /** Put the main hub's radio behind a MitmBearer. */
  mitm?: boolean;
  /** The site id set in every lock (PIN keys reach the locks only over the link: setPinKey). */
  lockSite?: { siteId: string };
}

export interface HubOptions {
  name: string;
  /** The hub's adapter address on the simulated radio. */
  address: string;
  mitm?: boolean;
  link?: Partial<LinkOptions>;
  /** Decides the locks' access requests (set before start, or through `hub.access`). */
  access?: AccessHandler;
  /** The radio adapter's link limit (set before start, or through `hub.maxLinks`). Default: none. */
  maxLinks?: number;
}

/**
 * One hub daemon's link half: its data directory, store, radio adapter and LinkManager. Security
 * events and lock events are collected here across restarts.
 */
export class Hub {
  readonly site: Site;
  readonly name: string;
  readonly address: string;
  readonly dir: string;
  readonly security: SecurityEvent[] = [];
  readonly lockEvents: { lockId: string; event: LockEvent }[] = [];
  readonly #sealer: Sealer;
  readonly #options: HubOptions;
  readonly #random: SeededRandom;
  store!: Store;
  /** While true, the store's group commits wait in heldCommits until the test runs them. */
  holdCommits = false;
  readonly heldCommits: (() => void)[] = [];
  bearer!: Bearer;
  /** Set when the hub runs behind a MitmBearer. */
  mitm: MitmBearer | undefined;
  /** Installed on every link the hub's MitmBearer opens, across restarts. */
  onMitmLink: ((link: MitmLink) => void) | undefined;
  manager!: LinkManager;
  running = false;
  /** The decision behind the locks' access requests; replaceable between restarts. */
  access: AccessHandler | undefined;
  /** The radio adapter's link limit from the next start on; undefined: none. */
  maxLinks: number | undefined;

  constructor(site: Site, options: HubOptions) {
    this.site = site;
    this.name = options.name;
    this.address = options.address;
    this.#options = options;
    this.dir = tempDir(`iqhub-${options.name}-`);
    this.#random = new SeededRandom(`${site.seed}/hub/${options.name}`);
    this.access = options.access;
    this.maxLinks = options.maxLinks;
    // The storage key outlives restarts, as the real one does (it lives in the TPM / key file).
    this.#sealer = new Sealer(new Secret(this.#random.bytes(32)), this.#random);
  }

  get pairing(): PairingStore {
    return this.manager.pairing;
  }

  async start(): Promise<void> {
    // The group commit on a microtask: the tests drive frames and virtual time by hand, reproducibly.
    const schedule = (flush: () => void) => (this.holdCommits ? this.heldCommits.push(flush) : queueMicrotask(flush));
    this.store = Store.open(this.dir, undefined, { schedule });
    const raw = this.site.world.radio.bearer({
      address: this.address,
      ...(this.maxLinks === undefined ? {} : { maxLinks: this.maxLinks }),
    });
    this.mitm = this.#options.mitm ? new MitmBearer(raw) : undefined;
    if (this.mitm) this.mitm.onLink = (link) => this.onMitmLink?.(link);
    this.bearer = this.mitm ?? raw;
    this.manager = new LinkManager({
      pairing: new PairingStore(this.store),
      bearer: this.bearer,
      sealer: this.#sealer,
      clock: this.site.clock,
      random: this.#random,
      log: silentLogger(),
      options: { ...FAST, ...this.site.options.link, ...this.#options.link },
      ...(this.access
        ? { accessHandler: (lockId, credential) => (this.access as AccessHandler)(lockId, credential) }
        : {}),
    });
    this.manager.onSecurityEvent((e) => this.security.push(e));
    this.manager.onLockEvent((lockId, event) => this.lockEvents.push({ lockId, event }));
    await this.manager.start();
    this.running = true;
  }

  /** A clean stop: the manager finishes what it is doing, then the store closes. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    try {
      await drive(this.site.clock, this.manager.stop(), 60_000);
    } finally {
      this.store.close();
    }
  }

  /**
   * SIGKILL: nothing is finished. Nothing more reaches the database, the radio drops the hub's
   * links at once, and the old manager object is abandoned mid-flight.
   */
  kill(): void {
    if (!this.running) return;
    this.running = false;
    this.store.close();
    void this.bearer.stop();
  }

  async restart(how: 'stop' | 'kill' = 'stop'): Promise<void> {
    if (how === 'kill') this.kill();
    else await this.stop();
    await this.start();
  }

  securityKinds(lockId?: string): string[] {
    return this.security.filter((e) => lockId === undefined || e.lockId === lockId).map((e) => e.kind);
  }

  /** The hub's view of one lock; throws if it is not in the pairing store. */
  lock(lockId: string): LockSummary {
    return this.manager.get(lockId);
  }

  /** Every event the pairing store holds for `lockId`, oldest first. */
  storedEvents(lockId: string): LockEvent[] {
    return this.pairing
      .events(lockId, 1_000_000)
      .map(({ receivedAt: _r, ...e }) => e as LockEvent)
      .reverse();
  }

  /** Present the maintenance card, then attach with the sticker's setup code. */
  async attach(lockId: string): Promise<LockSummary> {
    this.site.world.lock(lockId).presentMaintenanceCard();
    return this.site.drive(this.startAttach(lockId));
  }

  /** Starts an attach with the sticker's setup code (the lock must be in attach mode); not driven. */
  startAttach(lockId: string, timeoutMs?: number): Promise<LockSummary> {
    return this.manager.attach(lockId, Secret.fromUtf8(this.site.world.sticker(lockId).setupCode), timeoutMs);
  }

  /** An attach attempt expected to fail (a wrong code, a lock not in attach mode): the HubError code. */
  async attachFails(lockId: string, setupCode: string, timeoutMs?: number): Promise<string> {
    try {
      await this.site.drive(this.manager.attach(lockId, Secret.fromUtf8(setupCode), timeoutMs));
    } catch (e) {
      if (e instanceof HubError) return e.code;
      throw e;
    }
    return expect.fail(`attaching ${lockId} succeeded`);
  }

  /** Open, and on failure say why (for a test that expects the failure). */
  async tryOpen(lockId: string, durationMs = 5_000): Promise<{ ok: true } | { ok: false; code: string }> {
    try {
      await this.site.drive(this.manager.open(lockId, durationMs));
      return { ok: true };
    } catch (e) {
      if (e instanceof HubError) return { ok: false, code: e.code };
      throw e;
    }
  }
}

const open = new Set<Site>();

afterEach(async () => {
  for (const site of [...open]) await site.close();
});

/**
 * A simulated site on virtual time: a SimWorld of locks and the main hub `hub` (hub A) with its
 * LinkManager, store and security-event log. Closed after each test.
 */
export class Site {
  readonly seed: string;
  readonly options: SiteOptions;
  readonly clock = new VirtualClock();
  readonly world: SimWorld;
  readonly hubs: Hub[] = [];
  readonly lockDir: string | undefined;
  hub!: Hub;

  private constructor(options: SiteOptions) {
    this.seed = options.seed ?? 'site';
    this.options = options;
    this.lockDir = options.lockFiles ? tempDir('iqhub-locks-') : undefined;
    this.world = new SimWorld({
      clock: this.clock,
      random: new SeededRandom(`${this.seed}/world`),
      seed: this.seed,
      locks: options.locks ?? 3,
      faults: options.faults ?? {},
      ...(this.lockDir ? { dir: this.lockDir } : {}),
      ...(options.lockSite ? { site: options.lockSite } : {}),
    });
  }

  static async create(options: SiteOptions = {}): Promise<Site> {
    const site = new Site(options);
    open.add(site);
    await site.world.start();
    site.hub = await site.addHub({ name: 'hub-a', address: 'hub', mitm: options.mitm ?? false });
    return site;
  }

  /**
   * A site whose every lock is attached to the main hub, then 200 ms of virtual time for the
   * sessions to settle: the start of every test about bound locks.
   */
  static async bound(options: SiteOptions = {}): Promise<Site> {
    const site = await Site.create(options);
    for (const id of site.ids()) await site.hub.attach(id);
    await site.pass(200);
    return site;
  }

  async addHub(options: HubOptions): Promise<Hub> {
    const hub = new Hub(this, options);
    this.hubs.push(hub);
    await hub.start();
    return hub;
  }

  /** Awaits `work` while moving virtual time forward. */
  drive<T>(work: Promise<T>, maxMs = 120_000): Promise<T> {
    return drive(this.clock, work, maxMs);
  }

  /** Lets `ms` of virtual time pass in small steps (radio, retries and timers all run). */
  async pass(ms: number, stepMs = 5): Promise<void> {
    for (let t = 0; t < ms; t += stepMs) await this.clock.advance(stepMs);
  }

  /** Lets time pass until `condition` holds; fails the test if it does not within `maxMs`. */
  async until(condition: () => boolean, what: string, maxMs = 30_000): Promise<void> {
    const start = this.clock.monotonic();
    while (!condition()) {
      if (this.clock.monotonic() - start > maxMs) expect.fail(`not within ${maxMs} ms of virtual time: ${what}`);
      await this.clock.advance(5);
    }
  }

  /**
   * Runs `check` every `everyMs` of virtual time until the site closes (a watchdog for invariants
   * that must hold at every instant, not only at the end).
   */
  watch(check: () => void, everyMs = 20): void {
    const tick = () => {
      if (!open.has(this)) return;
      check();
      this.clock.setTimeout(tick, everyMs);
    };
    this.clock.setTimeout(tick, everyMs);
  }

  ids(): string[] {
    return this.world.stickers.map((s) => s.deviceId);
  }

  /** The lock's flash file (lockFiles sites only). */
  flashPath(lockId: string): string {
    if (!this.lockDir) throw new Error('site: create it with lockFiles: true to edit a lock flash');
    return join(this.lockDir, `${lockId}.json`);
  }

  /** Edits a powered-off lock's flash, as a technician with a programmer (or a reset) would. */
  editFlash(lockId: string, edit: (p: LockPersisted) => void): void {
    if (this.world.lock(lockId).running) throw new Error('site: crash() the lock before editing its flash');
    const path = this.flashPath(lockId);
    const p = JSON.parse(readFileSync(path, 'utf8')) as LockPersisted;
    edit(p);
    writeFileSync(path, `${JSON.stringify(p, null, 1)}\n`);
  }

  async close(): Promise<void> {
    open.delete(this);
    for (const hub of this.hubs) await hub.stop().catch(() => undefined);
    await this.world.stop();
  }
}

/** Opens each lock through `hub` and checks that its bolt moved: the daemon still serves it. */
export async function expectServing(hub: Hub, ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    const lock = hub.site.world.lock(id);
    const before = lock.requestCounts().handled.open;
    expect(await hub.tryOpen(id), `open ${id} through ${hub.name}`).toEqual({ ok: true });
    expect(lock.state().bolt, `${id} unlocked`).toBe('unlocked');
    expect(lock.requestCounts().handled.open, `${id} opened once`).toBe(before + 1);
  }
}

/** `kind` was reported for `lockId`: to the listeners and in the store's security log. Returns the details. */
export function reported(hub: Hub, lockId: string | null, kind: string): Record<string, unknown>[] {
  const live = hub.security.filter((e) => e.kind === kind && e.lockId === lockId);
  const stored = hub.pairing.securityEvents(100_000).filter((e) => e.kind === kind && e.lockId === lockId);
  expect(live.length, `${kind} for ${lockId} reported to listeners`).toBeGreaterThan(0);
  expect(stored.length, `${kind} for ${lockId} in the security log`).toBe(live.length);
  return live.map((e) => e.detail);
}
