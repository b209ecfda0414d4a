import type { Advertisement, Bearer } from '../../hal/bearer.js';
import type { Clock } from '../base/clock.js';
import type { Component, ComponentStatus } from '../base/component.js';
import type { Unsubscribe } from '../base/listeners.js';
import type { Random } from '../base/random.js';
import type {
  AccessAnswer,
  FirmwareOperation,
  LinkCredential,
  LockEvent,
  LockMode,
  LockState,
  OfflineItem,
  OpResultFor,
  PinKeyHeld,
  PinKeyInstall,
} from '../contract/link-messages.js';
import type { Sealer } from '../crypto/seal.js';
import type { Secret } from '../crypto/secret.js';
import type { Logger } from '../log/logger.js';
import { Attacher } from './attach.js';
import { Connections } from './connections.js';
import { Detacher } from './detach.js';
import { EventCollection } from './event-collection.js';
import { HeardLocks } from './heard-locks.js';
import { LinkContext } from './link-context.js';
import type { RequestBody } from './lock-client.js';
import { LockReports } from './lock-reports.js';
import { LockRequests } from './lock-requests.js';
import type { LockRecord, PairingStore, StoredEvent } from './pairing.js';
import { Quarantine } from './quarantine.js';

export type { QuarantineCode } from './quarantine.js';

export interface LinkOptions {
  /** Wait for each handshake answer this long before trying again. */
  stepTimeoutMs: number;
  /** Handshake and attach steps are tried this many times. */
  attempts: number;
  /** Requests are resent after this long without an answer... */
  retryMs: number;
  /** ...this many times. */
  requestAttempts: number;
  /** Connecting to a lock's address may take this long. */
  connectTimeoutMs: number;
  /** Automatic reconnects back off exponentially from here... */
  reconnectBaseMs: number;
  /** ...up to here. */
  reconnectMaxMs: number;
  /** Consecutive key mismatches before a lock is quarantined. */
  quarantineAfter: number;
  /** A connected lock is asked for its state this often, so an event whose push was lost is still collected. */
  pollMs: number;
  /**
   * An acknowledgement of stored events rides on the hub's next request; with none within this
   * long it goes as an `ackEvents` of its own (docs/link-protocol.md "Frame budget").
   */
  ackDelayMs: number;
}

export const DEFAULT_LINK_OPTIONS: LinkOptions = {
  stepTimeoutMs: 400,
  attempts: 5,
  retryMs: 250,
  requestAttempts: 8,
  connectTimeoutMs: 3000,
  reconnectBaseMs: 1000,
  reconnectMaxMs: 60_000,
  quarantineAfter: 3,
  pollMs: 30_000,
  ackDelayMs: 2_000,
};

/** The hub's decision on one of a lock's access requests (never throws; a throw is answered as a refusal). */
export type AccessHandler = (lockId: string, credential: LinkCredential) => Omit<AccessAnswer, 'type' | 'id'>;

/** What the CLI and the uplink see of a lock: no key material. */
export interface LockSummary {
  lockId: string;
  bearer: string;
  address: string;
  state: LockRecord['state'];
  quarantineReason: string | null;
  connected: boolean;
  lastSeen: string | null;
  lastEventSeq: number;
  sessions: number;
  failedHandshakes: number;
  rejectedFrames: number;
  keyFingerprint: string;
}

/** A lock's pairing or reported state changed (for the retained locks/{id}/state topic). */
export interface LockChange {
  lockId: string;
  /** Undefined when the lock left the pairing store (detached or forgotten). */
  summary: LockSummary | undefined;
  /** The lock's own report, when the change came with one. */
  state?: LockState;
}

export interface SecurityEvent {
  kind: string;
  lockId: string | null;
  detail: Record<string, unknown>;
}

/**
 * The hub's side of every lock: attach, connect (KK) on demand and when a bound lock is heard,
 * requests, collecting events (stored before they are acknowledged to the lock), detach, and
 * quarantine of locks that contradict the pairing store. One misbehaving lock never affects another.
 * This is the service the rest of the hub uses; each of those jobs lives in its own part, wired here.
 */
export class LinkManager implements Component {
  readonly name = 'link';
  readonly pairing: PairingStore;
  readonly #ctx: LinkContext;
  readonly #sealer: Sealer;
  readonly #heard = new HeardLocks();
  readonly #reports: LockReports;
  readonly #events: EventCollection;
  readonly #connections: Connections;
  readonly #requests: LockRequests;
  readonly #attacher: Attacher;
  readonly #detacher: Detacher;
  #unsubAds: Unsubscribe | undefined;
  #unsubDisk: Unsubscribe | undefined;
  #state: ComponentStatus['state'] = 'stopped';

  constructor(deps: {
    pairing: PairingStore;
    bearer: Bearer;
    sealer: Sealer;
    clock: Clock;
    random: Random;
    log: Logger;
    options?: Partial<LinkOptions>;
    /** Runs inside the transaction that stores a lock's new events (the uplink outbox enqueues them). */
    eventSink?: (fresh: StoredEvent[]) => void;
    /** Decides a bound lock's access requests (src/access/decide.ts); without it the locks decide from their offline lists. */
    accessHandler?: AccessHandler;
  }) {
    this.pairing = deps.pairing;
    this.#sealer = deps.sealer;
    const ctx = new LinkContext({ ...deps, opts: { ...DEFAULT_LINK_OPTIONS, ...deps.options } });
    this.#ctx = ctx;
    const heard = this.#heard;
    const reports = new LockReports(ctx, (lockId) => this.#connections.has(lockId));
    const quarantine = new Quarantine(ctx, reports);
    const events = new EventCollection(ctx, {
      connection: (lockId) => this.#connections.get(lockId),
      reports,
      quarantine,
      eventSink: deps.eventSink,
    });
    const connections = new Connections(ctx, { heard, reports, quarantine, events, accessHandler: deps.accessHandler });
    const requests = new LockRequests(ctx, { connections, quarantine, reports, events });
    this.#reports = reports;
    this.#events = events;
    this.#connections = connections;
    this.#requests = requests;
    this.#attacher = new Attacher(ctx, { heard, connections, reports });
    this.#detacher = new Detacher(ctx, { requests, connections, reports });
  }

  async start(): Promise<void> {
    this.#state = 'starting';
    this.#ctx.loadIdentity(this.#sealer);
    this.#unsubAds = this.#ctx.bearer.onAdvertisement((a) => this.#onAdvertisement(a));
    // Space again after a full disk: collect the events the locks kept meanwhile, without waiting for a poll.
    this.#unsubDisk = this.pairing.space.onChange((s) => {
      if (!s.full) this.#events.collectAll(this.list().map((l) => l.lockId));
    });
    await this.#ctx.bearer.start();
    this.#state = 'running';
  }

  async stop(): Promise<void> {
    this.#state = 'stopping';
    this.#unsubAds?.();
    this.#unsubDisk?.();
    await this.#events.settled();
    await this.#connections.closeAll();
    await this.#ctx.bearer.stop();
    this.#state = 'stopped';
  }

  status(): ComponentStatus {
    const locks = this.pairing.list();
    const q = locks.filter((l) => l.state === 'quarantined').length;
    const bearer = this.#ctx.bearer;
    const b = bearer.state();
    const radio = b.status === 'unavailable' ? `radio unavailable: ${b.reason}` : `radio ${b.status}`;
    return {
      name: this.name,
      // A radio still coming up (it starts in the background) is `starting`, not a fault.
      state:
        this.#state === 'running' && b.status === 'starting'
          ? 'starting'
          : this.#state === 'running' && (q > 0 || b.status !== 'ready')
            ? 'degraded'
            : this.#state,
      detail: `${locks.length} locks, ${this.#connections.size} connected, ${q} quarantined; ${bearer.kind} ${radio}`,
    };
  }

  /** The hub's static public key (for `iqhub status` and for a lock's installer). */
  get hubPublicKey(): Uint8Array {
    return this.#ctx.hub().publicKey;
  }

  onLockEvent(l: (lockId: string, e: LockEvent) => void): Unsubscribe {
    return this.#events.onLockEvent(l);
  }

  onLockChange(l: (change: LockChange) => void): Unsubscribe {
    return this.#reports.onLockChange(l);
  }

  onSecurityEvent(l: (e: SecurityEvent) => void): Unsubscribe {
    return this.#reports.onSecurityEvent(l);
  }

  list(): LockSummary[] {
    return this.pairing.list().map((r) => this.#reports.summary(r));
  }

  get(lockId: string): LockSummary & { recentEvents: ReturnType<PairingStore['events']> } {
    return { ...this.#reports.summary(this.#ctx.record(lockId)), recentEvents: this.pairing.events(lockId, 20) };
  }

  /** Locks in attach mode heard recently (for the installer). */
  discoverable(): { deviceId: string; address: string; rssi: number | null }[] {
    return this.#heard.inAttachMode(this.#ctx.now());
  }

  /**
   * Bind a lock: find it in attach mode, run the XX handshake and the setup-code proofs, and
   * record it only once the lock has confirmed it stored this hub's key.
   */
  attach(
    deviceId: string,
    setupCode: Secret,
    timeoutMs = 15_000,
    options: { installCode?: Secret } = {},
  ): Promise<LockSummary> {
    return this.#attacher.attach(deviceId, setupCode, timeoutMs, options.installCode);
  }

  /** Open the door for `durationMs` (a technician on site, or a remote command). */
  async open(lockId: string, durationMs: number): Promise<LockState> {
    return (await this.#requests.send(lockId, { type: 'open', durationMs })).state;
  }

  async lockNow(lockId: string): Promise<LockState> {
    return (await this.#requests.send(lockId, { type: 'lock' })).state;
  }

  /**
   * Changes a bound lock's offline list (one sealed request; the lock applies it whole or refuses
   * it). Returns how many entries the lock holds and can hold, and the digest of what it holds
   * (offlineListDigest).
   */
  async setOffline(
    lockId: string,
    change: { reset: boolean; remove: string[]; upsert: OfflineItem[] },
  ): Promise<{ held: number; capacity: number; digest: Uint8Array }> {
    const r = await this.#requests.send(lockId, { type: 'setOffline', ...change });
    return { held: r.held, capacity: r.capacity, digest: r.digest };
  }

  /**
   * Installs the site PIN key on a bound lock (one sealed request; the key never travels any other
   * way). Answers the versions the lock then holds; a lock refuses a lower version (`bad-request`).
   */
  async setPinKey(lockId: string, install: PinKeyInstall): Promise<PinKeyHeld> {
    // Refused for a quarantined lock (lock-requests.ts): it may be a clone holding a stolen link key.
    const r = await this.#requests.send(lockId, { type: 'setPinKey', ...install });
    return { version: r.version, previous: r.previous };
  }

  /** A firmware-update request (src/firmware/relay.ts); like every request, never to a lock that is not bound. */
  async firmwareRequest<O extends FirmwareOperation>(lockId: string, body: RequestBody<O>): Promise<OpResultFor<O>> {
    // Refused for a quarantined lock (lock-requests.ts): it may be a clone.
    return this.#requests.send(lockId, body);
  }

  /** The radio (bearer) a lock is reached over. */
  radioOf(lockId: string): string {
    return this.#ctx.record(lockId).bearer;
  }

  async setMode(lockId: string, mode: LockMode): Promise<LockState> {
    return (await this.#requests.send(lockId, { type: 'setMode', mode })).state;
  }

  async lockState(lockId: string): Promise<LockState> {
    return (await this.#requests.send(lockId, { type: 'getState' })).state;
  }

  /**
   * Unbind a lock. The hub forgets it only after the lock confirms it has forgotten the hub; an
   * unreachable lock stays `detaching` and is retried whenever it is heard.
   */
  detach(lockId: string): Promise<{ detached: boolean; state: string }> {
    return this.#detacher.detach(lockId);
  }

  /** Remove a lock from the pairing store without its confirmation (a destroyed lock). */
  forget(lockId: string): Promise<{ forgotten: true; leftBehind: string }> {
    return this.#detacher.forget(lockId);
  }

  #onAdvertisement(a: Advertisement): void {
    this.#heard.heard(a);
    const rec = this.pairing.get(a.deviceId);
    if (!rec || this.#connections.busy(a.deviceId)) return;
    if (this.#attacher.inProgress(a.deviceId)) return;
    if (rec.state === 'quarantined') return;
    if (this.#connections.backingOff(a.deviceId)) return;
    // The stored address is not changed here: anyone can advertise a lock's device id. The
    // connection tries the address just heard, and only a handshake that proves the lock's key
    // there makes it the lock's address (Connections).
    // A bound lock heard without a session: connect to collect its events (and finish a pending detach).
    void this.#connections
      .connect(a.deviceId)
      .then(async () => {
        if (this.pairing.get(a.deviceId)?.state === 'detaching') await this.detach(a.deviceId);
      })
      .catch(() => {});
  }
}
