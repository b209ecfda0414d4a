import type { Advertisement, Bearer, BearerKind, BearerLink } from '../../hal/bearer.js';
import type { Clock, TimerHandle } from '../base/clock.js';
import type { Component, ComponentStatus } from '../base/component.js';
import { HubError } from '../base/errors.js';
import type { Unsubscribe } from '../base/listeners.js';
import { Listeners } from '../base/listeners.js';
import type { Random } from '../base/random.js';
import type {
  AccessAnswer,
  LinkCredential,
  LockEvent,
  LockMode,
  LockState,
  OfflineItem,
  Operation,
  OpResultFor,
} from '../contract/link-messages.js';
import type { Sealer } from '../crypto/seal.js';
import type { Secret } from '../crypto/secret.js';
import type { Logger } from '../log/logger.js';
import { LockClient, type RequestBody, type RequestError } from './lock-client.js';
import type { KeyPair } from './noise.js';
import type { LockRecord, PairingStore, StoredEvent } from './pairing.js';
import { attachLock, connectBound, type HandshakeTiming, type LinkFailure } from './session.js';

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
};

/** Requests that move the bolt or change the mode: never sent to a quarantined lock. */
const ACTUATING = new Set<Operation>(['open', 'lock', 'setMode']);

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
 * Why a lock was quarantined. A later KK handshake with the stored key proves the lock holds its key
 * and is bound to this hub again, which lifts every quarantine but one: a lock whose event numbering
 * went backwards may be a clone that holds the key, and needs a person (detach or forget, attach).
 */
export type QuarantineCode = 'impostor' | 'refused' | 'not-attached' | 'sequence-backwards' | 'attached-elsewhere';
const LIFTABLE: QuarantineCode[] = ['impostor', 'refused', 'not-attached', 'attached-elsewhere'];
const quarantineCode = (reason: string | null) => (reason?.split(':')[0] ?? '') as QuarantineCode;

interface Connection {
  client: LockClient;
  link: BearerLink;
}

interface Retry {
  failures: number;
  notBefore: number;
}

/** What set off an event collection, within one turn (LinkManager #schedulePullSoon). */
interface Trigger {
  /** The lock's state, as an answer just carried it. */
  known?: LockState | undefined;
  /** Events the lock pushed, as they arrived. */
  pushed: LockEvent[];
}

/**
 * The hub's side of every lock: attach, connect (KK) on demand and when a bound lock is heard,
 * requests, collecting events (stored before they are acknowledged to the lock), detach, and
 * quarantine of locks that contradict the pairing store. One misbehaving lock never affects another.
 */
export class LinkManager implements Component {
  readonly name = 'link';
  readonly pairing: PairingStore;
  readonly #bearer: Bearer;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger;
  readonly #sealer: Sealer;
  readonly #opts: LinkOptions;
  readonly #heard = new Map<string, Advertisement>();
  readonly #conns = new Map<string, Connection>();
  readonly #connecting = new Map<string, Promise<Connection>>();
  readonly #pulling = new Map<string, Promise<void>>();
  readonly #pullAgain = new Set<string>();
  /**
   * Collections asked for on the next turn, by lock: the triggers of one turn (the lock's pushed
   * events, an answer that carried its state) make one collection (see #collect).
   */
  readonly #pullSoon = new Map<string, Trigger>();
  /** Sessions on which the events stored before a restart have been acknowledged. */
  readonly #ackedOnConnect = new WeakSet<LockClient>();
  readonly #retry = new Map<string, Retry>();
  /** Consecutive key mismatches per lock (reset by a good handshake): the quarantine trigger. */
  readonly #mismatches = new Map<string, number>();
  /** Locks an attach is running for: never auto-connected meanwhile (their record is half-written). */
  readonly #attachInProgress = new Set<string>();
  readonly #eventListeners = new Set<(lockId: string, e: LockEvent) => void>();
  readonly #securityListeners = new Listeners<SecurityEvent>();
  readonly #adListeners = new Listeners<Advertisement>();
  readonly #eventSink: ((fresh: StoredEvent[]) => void) | undefined;
  readonly #accessHandler: AccessHandler | undefined;
  readonly #changeListeners = new Listeners<LockChange>();
  #identity: KeyPair | undefined;
  #unsubAds: Unsubscribe | undefined;
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
    this.#eventSink = deps.eventSink;
    this.#accessHandler = deps.accessHandler;
    this.pairing = deps.pairing;
    this.#bearer = deps.bearer;
    this.#sealer = deps.sealer;
    this.#clock = deps.clock;
    this.#random = deps.random;
    this.#log = deps.log;
    this.#opts = { ...DEFAULT_LINK_OPTIONS, ...deps.options };
  }

  async start(): Promise<void> {
    this.#state = 'starting';
    this.#identity = this.pairing.hubIdentity(this.#sealer, this.#random, this.#now());
    this.#unsubAds = this.#bearer.onAdvertisement((a) => this.#onAdvertisement(a));
    await this.#bearer.start();
    this.#state = 'running';
  }

  async stop(): Promise<void> {
    this.#state = 'stopping';
    this.#unsubAds?.();
    await Promise.allSettled([...this.#pulling.values()]);
    for (const c of this.#conns.values()) c.client.close();
    await Promise.allSettled([...this.#conns.values()].map((c) => c.link.close()));
    this.#conns.clear();
    await this.#bearer.stop();
    this.#state = 'stopped';
  }

  status(): ComponentStatus {
    const locks = this.pairing.list();
    const q = locks.filter((l) => l.state === 'quarantined').length;
    const b = this.#bearer.state();
    const radio = b.status === 'unavailable' ? `radio unavailable: ${b.reason}` : `radio ${b.status}`;
    return {
      name: this.name,
      state: this.#state === 'running' && (q > 0 || b.status !== 'ready') ? 'degraded' : this.#state,
      detail: `${locks.length} locks, ${this.#conns.size} connected, ${q} quarantined; ${this.#bearer.kind} ${radio}`,
    };
  }

  /** The hub's static public key (for `iqhub status` and for a lock's installer). */
  get hubPublicKey(): Uint8Array {
    return this.#need().publicKey;
  }

  onLockEvent(l: (lockId: string, e: LockEvent) => void): Unsubscribe {
    this.#eventListeners.add(l);
    return () => this.#eventListeners.delete(l);
  }

  onLockChange(l: (change: LockChange) => void): Unsubscribe {
    return this.#changeListeners.add(l);
  }

  #changed(lockId: string, state?: LockState): void {
    if (this.#changeListeners.size === 0) return;
    const rec = this.pairing.get(lockId);
    const change: LockChange = { lockId, summary: rec && this.#summary(rec), ...(state ? { state } : {}) };
    this.#changeListeners.emit(change);
  }

  onSecurityEvent(l: (e: SecurityEvent) => void): Unsubscribe {
    return this.#securityListeners.add(l);
  }

  list(): LockSummary[] {
    return this.pairing.list().map((r) => this.#summary(r));
  }

  get(lockId: string): LockSummary & { recentEvents: ReturnType<PairingStore['events']> } {
    return { ...this.#summary(this.#record(lockId)), recentEvents: this.pairing.events(lockId, 20) };
  }

  /** Locks in attach mode heard recently (for the installer). */
  discoverable(): { deviceId: string; address: string; rssi: number | null }[] {
    const now = this.#now();
    return [...this.#heard.values()]
      .filter((a) => a.attachMode && now - a.seenAt < 10_000)
      .map((a) => ({ deviceId: a.deviceId, address: a.address, rssi: a.rssi ?? null }));
  }

  /**
   * Bind a lock: find it in attach mode, run the XX handshake and the setup-code proofs, and
   * record it only once the lock has confirmed it stored this hub's key.
   */
  async attach(
    deviceId: string,
    setupCode: Secret,
    timeoutMs = 15_000,
    options: { installCode?: Secret } = {},
  ): Promise<LockSummary> {
    const existing = this.pairing.get(deviceId);
    if (existing && existing.state !== 'attaching') {
      throw new HubError(
        'attach.already-attached',
        `lock ${deviceId} is already in the pairing store (${existing.state})`,
        {
          hint: `detach it first (iqhub detach ${deviceId}), or iqhub forget ${deviceId} --force if it was destroyed`,
        },
      );
    }
    if (this.#attachInProgress.has(deviceId)) {
      throw new HubError('attach.in-progress', `an attach of ${deviceId} is already running`);
    }
    this.#attachInProgress.add(deviceId);
    try {
      return await this.#attach(deviceId, setupCode, timeoutMs, options.installCode);
    } finally {
      this.#attachInProgress.delete(deviceId);
      // Joining is open only while an attach runs: closed as soon as the last one ends.
      if (this.#attachInProgress.size === 0) await this.#bearer.closeJoinWindow?.();
    }
  }

  async #attach(deviceId: string, setupCode: Secret, timeoutMs: number, installCode?: Secret): Promise<LockSummary> {
    if (installCode) {
      if (!this.#bearer.addInstallCode) {
        throw new HubError('attach.install-code', 'this radio does not take install codes', {
          hint: 'install codes are for ZigBee locks; attach this lock without one',
        });
      }
      await this.#bearer.addInstallCode(installCode);
    }
    // A radio that admits devices to its network (ZigBee) admits them only during an attach.
    await this.#bearer.openJoinWindow?.(timeoutMs);
    const ad = await this.#findInAttachMode(deviceId, timeoutMs);
    const connected = await this.#bearer.connect(ad.address, { timeoutMs: this.#opts.connectTimeoutMs });
    if (!connected.ok) {
      throw new HubError('attach.unreachable', `cannot connect to lock ${deviceId}: ${connected.error.message}`, {
        hint: 'move closer to the lock, or check the radio with iqhub status',
      });
    }
    const link = connected.value;
    const r = await attachLock(
      link,
      {
        hub: this.#need(),
        deviceId,
        setupCode,
        beforeCommit: (key) =>
          this.pairing.bind({
            lockId: deviceId,
            bearer: radioOf(this.#bearer.kind, ad.address),
            address: ad.address,
            staticPublic: key,
            state: 'attaching',
            now: this.#now(),
          }),
      },
      this.#timing(),
    );
    if (!r.ok) {
      // A row left `attaching` (the lock may or may not have bound) is settled at the next connection.
      await link.close();
      throw this.#attachError(deviceId, r.error);
    }
    this.pairing.setState(deviceId, 'bound', this.#now());
    this.pairing.sessionOpened(deviceId, this.#now());
    this.#changed(deviceId);
    this.#security('lock.attached', deviceId, { address: ad.address }, 'info');
    this.#adopt(deviceId, r.value.session.link, new LockClient(r.value.session, this.#clientOpts()), r.value.session);
    return this.#summary(this.#record(deviceId));
  }

  /** Open the door for `durationMs` (a technician on site, or a remote command). */
  async open(lockId: string, durationMs: number): Promise<LockState> {
    return (await this.#request(lockId, { type: 'open', durationMs })).state;
  }

  async lockNow(lockId: string): Promise<LockState> {
    return (await this.#request(lockId, { type: 'lock' })).state;
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
    const r = await this.#request(lockId, { type: 'setOffline', ...change });
    return { held: r.held, capacity: r.capacity, digest: r.digest };
  }

  async setMode(lockId: string, mode: LockMode): Promise<LockState> {
    return (await this.#request(lockId, { type: 'setMode', mode })).state;
  }

  async lockState(lockId: string): Promise<LockState> {
    return (await this.#request(lockId, { type: 'getState' })).state;
  }

  /**
   * Unbind a lock. The hub forgets it only after the lock confirms it has forgotten the hub; an
   * unreachable lock stays `detaching` and is retried whenever it is heard.
   */
  async detach(lockId: string): Promise<{ detached: boolean; state: string }> {
    const rec = this.#record(lockId);
    if (rec.state !== 'detaching') this.pairing.setState(lockId, 'detaching', this.#now());
    try {
      await this.#request(lockId, { type: 'detach' }, { allowStates: ['detaching'] });
    } catch (e) {
      this.#log.warn({ lockId, err: e }, 'detach pending: the lock has not confirmed yet');
      return { detached: false, state: 'detaching' };
    }
    this.#finishDetach(lockId);
    return { detached: true, state: 'detached' };
  }

  /** Remove a lock from the pairing store without its confirmation (a destroyed lock). */
  async forget(lockId: string): Promise<{ forgotten: true; leftBehind: string }> {
    this.#record(lockId);
    await this.#drop(lockId);
    this.pairing.remove(lockId);
    this.#changed(lockId);
    this.#security('lock.forgotten', lockId, { forced: true }, 'warn');
    return {
      forgotten: true,
      leftBehind:
        'the lock, if it still exists, keeps this hub as its bound hub and refuses every other hub until it is reset ' +
        'with a maintenance card and attached again; its events not yet collected stay on the lock',
    };
  }

  // ---------------------------------------------------------------------------------------------

  /** Whole milliseconds: the store's time columns are integers (a virtual clock may give fractions). */
  #now(): number {
    return Math.floor(this.#clock.now());
  }

  #need(): KeyPair {
    if (!this.#identity) throw new HubError('link.not-started', 'the link manager is not started');
    return this.#identity;
  }

  #record(lockId: string): LockRecord {
    const r = this.pairing.get(lockId);
    if (!r) {
      throw new HubError('lock.unknown', `no lock ${lockId} is attached to this hub`, { hint: 'see iqhub locks' });
    }
    return r;
  }

  #timing(): HandshakeTiming {
    return {
      clock: this.#clock,
      random: this.#random,
      stepTimeoutMs: this.#opts.stepTimeoutMs,
      attempts: this.#opts.attempts,
    };
  }

  #clientOpts() {
    return { clock: this.#clock, retryMs: this.#opts.retryMs, attempts: this.#opts.requestAttempts };
  }

  #summary(r: LockRecord): LockSummary {
    return {
      lockId: r.lockId,
      bearer: r.bearer,
      address: r.address,
      state: r.state,
      quarantineReason: r.quarantineReason,
      connected: this.#conns.has(r.lockId),
      lastSeen: r.lastSeen === null ? null : new Date(r.lastSeen).toISOString(),
      lastEventSeq: r.lastEventSeq,
      sessions: r.sessions,
      failedHandshakes: r.failedHandshakes,
      rejectedFrames: r.rejectedFrames,
      keyFingerprint: Buffer.from(r.staticPublic.subarray(0, 8)).toString('hex'),
    };
  }

  #attachError(deviceId: string, f: LinkFailure): HubError {
    switch (f.code) {
      case 'proof-mismatch':
        this.#security('attach.proof-mismatch', deviceId, {}, 'warn');
        return new HubError('attach.wrong-setup-code', `lock ${deviceId} did not prove the setup code`, {
          hint: "check the setup code on the lock's sticker; if it is right, this device is not that lock",
        });
      case 'refused':
        if (f.refusal === 'not-in-attach-mode') {
          return new HubError('attach.not-in-attach-mode', `lock ${deviceId} is not in attach mode`, {
            hint: 'present the maintenance card to the lock, then attach within a minute',
          });
        }
        this.#security('attach.refused', deviceId, { refusal: f.refusal ?? null }, 'warn');
        return new HubError('attach.refused', `lock ${deviceId} refused to attach: ${f.refusal ?? f.message}`);
      default:
        return new HubError('attach.failed', `attaching lock ${deviceId} failed: ${f.message}`, {
          hint: 'stay in range of the lock and try again while it is in attach mode',
        });
    }
  }

  async #findInAttachMode(deviceId: string, timeoutMs: number): Promise<Advertisement> {
    const fresh = (a: Advertisement | undefined) => a?.attachMode && this.#now() - a.seenAt < 5_000;
    const known = this.#heard.get(deviceId);
    if (known && fresh(known)) return known;
    return new Promise<Advertisement>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        unsubscribe();
        const heard = this.#heard.get(deviceId);
        reject(
          heard
            ? new HubError('attach.not-in-attach-mode', `lock ${deviceId} is in range but not in attach mode`, {
                hint: 'present the maintenance card to the lock, then attach within a minute',
              })
            : new HubError('attach.not-found', `no lock ${deviceId} heard within ${Math.round(timeoutMs / 1000)} s`, {
                hint: 'check the device id on the sticker, that the lock has power, and that it is in range',
              }),
        );
      }, timeoutMs);
      const unsubscribe = this.#adListeners.add((a) => {
        if (a.deviceId === deviceId && a.attachMode) {
          this.#clock.clearTimeout(timer);
          unsubscribe();
          resolve(a);
        }
      });
    });
  }

  #onAdvertisement(a: Advertisement): void {
    this.#heard.set(a.deviceId, a);
    this.#adListeners.emit(a);
    const rec = this.pairing.get(a.deviceId);
    if (!rec || this.#conns.has(a.deviceId) || this.#connecting.has(a.deviceId)) return;
    if (this.#attachInProgress.has(a.deviceId)) return;
    if (rec.state === 'quarantined') return;
    const retry = this.#retry.get(a.deviceId);
    if (retry && this.#clock.monotonic() < retry.notBefore) return;
    if (rec.address !== a.address) this.pairing.seen(a.deviceId, a.address, this.#now());
    // A bound lock heard without a session: connect to collect its events (and finish a pending detach).
    void this.#connect(a.deviceId)
      .then(async () => {
        if (this.pairing.get(a.deviceId)?.state === 'detaching') await this.detach(a.deviceId);
      })
      .catch(() => {});
  }

  async #request<O extends Operation>(
    lockId: string,
    body: RequestBody<O>,
    opts: { allowStates?: LockRecord['state'][] } = {},
  ): Promise<OpResultFor<O>> {
    const rec = this.#record(lockId);
    const allowed = ['bound', 'quarantined', ...(opts.allowStates ?? [])];
    if (!allowed.includes(rec.state)) {
      throw new HubError('lock.not-bound', `lock ${lockId} is ${rec.state}, not bound`, {
        hint: rec.state === 'detaching' ? 'it is being detached' : 'attach it again',
      });
    }
    if (rec.state === 'quarantined' && ACTUATING.has(body.type)) {
      // A quarantined lock may be a clone or a reset device: it is not told to open anything.
      throw new HubError('lock.quarantined', `lock ${lockId} is quarantined: ${rec.quarantineReason ?? ''}`, {
        hint: `see iqhub security; iqhub lock ${lockId} --check if the real lock is back, else detach or forget it and attach it again`,
      });
    }
    const conn = await this.#connect(lockId);
    if (this.pairing.get(lockId)?.state === 'quarantined' && ACTUATING.has(body.type)) {
      throw new HubError('lock.quarantined', `lock ${lockId} is quarantined`, { hint: 'see iqhub security' });
    }
    const r = await conn.client.request(body);
    if (!r.ok) {
      if (r.error.code === 'lock-error' && r.error.lockCode === 'not-attached' && rec.state !== 'detaching') {
        // Sealed in our own session, so authentic: the lock has been attached elsewhere or reset.
        this.#quarantine(lockId, 'attached-elsewhere', 'the lock says it is no longer attached to this hub');
        await this.#drop(lockId);
      }
      throw this.#requestError(lockId, body.type, r.error);
    }
    const state = (r.value as { state?: LockState }).state;
    if (state) {
      this.#changed(lockId, state);
      if (state.lastSeq > (this.pairing.get(lockId)?.lastEventSeq ?? 0))
        this.#schedulePullSoon(lockId, { known: state });
    }
    return r.value;
  }

  #quarantine(lockId: string, code: QuarantineCode, why: string): void {
    const rec = this.pairing.get(lockId);
    if (!rec || rec.state === 'quarantined') return;
    const reason = `${code}: ${why}`;
    this.pairing.setState(lockId, 'quarantined', this.#now(), reason);
    this.#security('lock.quarantined', lockId, { reason }, 'error');
    this.#changed(lockId);
  }

  #requestError(lockId: string, op: string, e: RequestError): HubError {
    if (e.code === 'lock-error') {
      return new HubError(`lock.${e.lockCode}`, `lock ${lockId} refused ${op}: ${e.lockCode}`);
    }
    return new HubError('lock.unreachable', `lock ${lockId} did not answer ${op}: ${e.message}`, {
      hint: 'it may be out of range or without power; iqhub lock shows when it was last seen',
    });
  }

  /** One connection attempt at a time per lock; callers share it. */
  #connect(lockId: string): Promise<Connection> {
    const existing = this.#conns.get(lockId);
    if (existing && !existing.client.closed) return Promise.resolve(existing);
    let p = this.#connecting.get(lockId);
    if (!p) {
      p = this.#doConnect(lockId).finally(() => this.#connecting.delete(lockId));
      this.#connecting.set(lockId, p);
    }
    return p;
  }

  async #doConnect(lockId: string): Promise<Connection> {
    const rec = this.#record(lockId);
    const address = this.#heard.get(lockId)?.address ?? rec.address;
    const c = await this.#bearer.connect(address, { timeoutMs: this.#opts.connectTimeoutMs });
    if (!c.ok) {
      this.#backoff(lockId);
      throw new HubError('lock.unreachable', `cannot connect to lock ${lockId}: ${c.error.message}`, {
        hint: 'it may be out of range or without power',
      });
    }
    const s = await connectBound(c.value, this.#need(), rec.staticPublic, this.#timing());
    if (!s.ok) {
      await c.value.close();
      this.#backoff(lockId);
      throw this.#handshakeFailed(rec, s.error);
    }
    this.#retry.delete(lockId);
    this.#mismatches.delete(lockId);
    const client = new LockClient(s.value, this.#clientOpts());
    const conn = this.#adopt(lockId, c.value, client, s.value);
    if (rec.state === 'attaching') {
      // The lock answered KK with our key: it did bind before we crashed. Finish the record.
      this.pairing.setState(lockId, 'bound', this.#now());
      this.#security('lock.attach-recovered', lockId, {}, 'info');
    }
    if (rec.state === 'quarantined' && LIFTABLE.includes(quarantineCode(rec.quarantineReason))) {
      this.pairing.setState(lockId, 'bound', this.#now());
      this.#security('lock.quarantine-lifted', lockId, { was: rec.quarantineReason }, 'info');
    }
    this.pairing.sessionOpened(lockId, this.#now());
    return conn;
  }

  #handshakeFailed(rec: LockRecord, f: LinkFailure): HubError {
    const lockId = rec.lockId;
    if (f.code === 'timeout' && !f.refusal) {
      return new HubError('lock.unreachable', `lock ${lockId} did not answer: ${f.message}`);
    }
    this.pairing.countFailures(lockId, 1, 0);
    if (rec.state === 'attaching' && f.refusal === 'not-attached') {
      // We crashed during attach before the lock bound: nothing was agreed, forget the half record.
      this.pairing.remove(lockId);
      this.#security('lock.attach-abandoned', lockId, {}, 'warn');
      return new HubError(
        'lock.unknown',
        `lock ${lockId} never completed attach; it was removed from the pairing store`,
      );
    }
    const [code, reason]: [QuarantineCode, string] =
      f.refusal === 'not-attached'
        ? ['not-attached', 'the lock says it is not attached to any hub (it was reset, or a device imitates it)']
        : f.code === 'handshake-failed'
          ? [
              'impostor',
              'the device does not hold the key this lock was attached with (an impostor, or a replaced lock)',
            ]
          : ['refused', 'the lock refused this hub (bound to another hub, or a device imitates it)'];
    this.#security('link.handshake-refused', lockId, { failure: f.code, refusal: f.refusal ?? null }, 'warn');
    // Refusals are plaintext and forgeable: like key mismatches they count, and only repeated ones
    // quarantine. A lock being detached is not quarantined: its refusal may be the detach itself.
    const failures = (this.#mismatches.get(lockId) ?? 0) + 1;
    this.#mismatches.set(lockId, failures);
    if (failures >= this.#opts.quarantineAfter && rec.state !== 'detaching') this.#quarantine(lockId, code, reason);
    return new HubError('lock.refused', `lock ${lockId}: ${reason}`, {
      hint: `see iqhub lock ${lockId}; if the lock was reset or replaced, detach or forget it and attach it again`,
    });
  }

  #backoff(lockId: string): void {
    const prev = this.#retry.get(lockId);
    const failures = (prev?.failures ?? 0) + 1;
    const cap = Math.min(this.#opts.reconnectMaxMs, this.#opts.reconnectBaseMs * 2 ** (failures - 1));
    // Full jitter: spread many locks' retries after a radio outage.
    this.#retry.set(lockId, { failures, notBefore: this.#clock.monotonic() + this.#random.float() * cap });
  }

  #adopt(lockId: string, link: BearerLink, client: LockClient, session: LockClient['session']): Connection {
    const conn = { client, link };
    this.#conns.set(lockId, conn);
    session.onRejected((reason) => {
      this.pairing.countFailures(lockId, 0, 1);
      this.#security('link.frame-rejected', lockId, { reason }, 'warn');
    });
    client.onEvent((e) => this.#schedulePullSoon(lockId, { pushed: e }));
    const decide = this.#accessHandler;
    if (decide) {
      client.onAccessRequest((r) => {
        // Only a lock bound to this hub gets a decision; a quarantined one may be a clone.
        if (this.pairing.get(lockId)?.state !== 'bound') {
          return { grant: false, reason: 'no-right', credentialId: null };
        }
        try {
          return decide(lockId, r.credential);
        } catch (e) {
          this.#log.error({ err: e, lockId }, 'access decision failed: refused');
          return { grant: false, reason: 'malformed', credentialId: null };
        }
      });
    }
    // A pushed event may be lost on the radio: ask for the state now and then, which pulls if needed.
    let poll: TimerHandle | undefined;
    const tick = () => {
      if (this.#conns.get(lockId) !== conn) return;
      this.#schedulePull(lockId);
      poll = this.#clock.setTimeout(tick, this.#opts.pollMs);
    };
    poll = this.#clock.setTimeout(tick, this.#opts.pollMs);
    link.onClose(() => {
      this.#clock.clearTimeout(poll);
      if (this.#conns.get(lockId) === conn) this.#conns.delete(lockId);
      client.close();
    });
    this.#schedulePull(lockId);
    return conn;
  }

  async #drop(lockId: string): Promise<void> {
    const c = this.#conns.get(lockId);
    this.#conns.delete(lockId);
    c?.client.close();
    await c?.link.close();
  }

  #finishDetach(lockId: string): void {
    this.pairing.remove(lockId);
    this.#changed(lockId);
    this.#security('lock.detached', lockId, {}, 'info');
    void this.#drop(lockId);
  }

  /**
   * Collect events on the next turn: the caller (a command waiting for its result, a request's
   * answer) finishes its own durable commit and reply first; the events follow a moment later.
   * A trigger brings the lock's state as an answer just gave it, or an event the lock pushed.
   */
  #schedulePullSoon(lockId: string, trigger: { known?: LockState; pushed?: LockEvent } = {}): void {
    const pending = this.#pullSoon.get(lockId);
    if (pending) {
      if (trigger.known) pending.known = trigger.known;
      if (trigger.pushed) pending.pushed.push(trigger.pushed);
      return;
    }
    this.#pullSoon.set(lockId, { known: trigger.known, pushed: trigger.pushed ? [trigger.pushed] : [] });
    this.#clock.setTimeout(() => {
      const t = this.#pullSoon.get(lockId);
      this.#pullSoon.delete(lockId);
      if (this.#conns.has(lockId)) this.#schedulePull(lockId, t);
    }, 0);
  }

  #schedulePull(lockId: string, trigger?: Trigger): void {
    if (this.#pulling.has(lockId)) {
      this.#pullAgain.add(lockId);
      return;
    }
    const run = this.#collect(lockId, trigger)
      .catch((e: unknown) => this.#log.debug({ lockId, err: e }, 'event collection interrupted'))
      .finally(() => {
        this.#pulling.delete(lockId);
        if (this.#pullAgain.delete(lockId) && this.#conns.has(lockId)) this.#schedulePull(lockId);
      });
    this.#pulling.set(lockId, run);
  }

  /**
   * One collection. When the lock pushed exactly the events after what is stored — in sequence,
   * no gap — and an answer of the same turn says they are all it has (its lastSeq is the last
   * one's), they are stored as they came and acknowledged: a push is sealed in the session like
   * any answer, so fetching them again would add nothing (a remote open: the `opened` push and
   * the open's answer). Anything else — no such answer, a gap, a push lost or reordered on the
   * radio, a session that has not yet acknowledged what was stored before a restart — is a pull.
   */
  async #collect(lockId: string, trigger?: Trigger): Promise<void> {
    const conn = this.#conns.get(lockId);
    if (!conn) return;
    const rec = this.pairing.get(lockId);
    const pushed = [...(trigger?.pushed ?? [])].sort((a, b) => a.seq - b.seq);
    const last = pushed[pushed.length - 1];
    const inSequence =
      rec !== undefined &&
      last !== undefined &&
      (rec.lastEventSeq === 0 || this.#ackedOnConnect.has(conn.client)) &&
      pushed.every((e, i) => e.seq === rec.lastEventSeq + 1 + i) &&
      trigger?.known?.lastSeq === last.seq;
    if (!inSequence) return this.#pullEvents(lockId, trigger?.known);
    this.#storeEvents(lockId, pushed);
    await conn.client.request({ type: 'ackEvents', uptoSeq: last.seq });
  }

  /**
   * Collect the lock's events: fetch those after the last stored sequence number, store them (one
   * transaction with the new sequence), and only then acknowledge them so the lock may delete them.
   * The lock's state comes first (its sequence must not have gone backwards): `known` when an
   * answer from the lock has just carried it, else asked for.
   */
  async #pullEvents(lockId: string, known?: LockState): Promise<void> {
    const conn = this.#conns.get(lockId);
    if (!conn) return;
    // A known state older than what is stored (another pull stored later events since) proves
    // nothing: ask.
    let lock = known && known.lastSeq >= (this.pairing.get(lockId)?.lastEventSeq ?? 0) ? known : undefined;
    if (!lock) {
      const state = await conn.client.request({ type: 'getState' });
      if (!state.ok) return;
      lock = state.value.state;
      this.#changed(lockId, lock);
    }
    const rec = this.pairing.get(lockId);
    if (!rec) return;
    if (lock.lastSeq < rec.lastEventSeq) {
      this.#quarantine(
        lockId,
        'sequence-backwards',
        `the lock's event sequence went backwards (${lock.lastSeq} < ${rec.lastEventSeq}): reset or cloned`,
      );
      return;
    }
    if (rec.lastEventSeq > 0 && !this.#ackedOnConnect.has(conn.client)) {
      // Events stored before a restart may never have been acknowledged: acknowledge them now.
      const acked = await conn.client.request({ type: 'ackEvents', uptoSeq: rec.lastEventSeq });
      if (!acked.ok) return;
      this.#ackedOnConnect.add(conn.client);
    }
    for (let round = 0; round < 1000; round++) {
      const since = this.pairing.get(lockId)?.lastEventSeq ?? 0;
      const batch = await conn.client.request({ type: 'getEvents', sinceSeq: since });
      if (!batch.ok) return;
      const events = batch.value.events.filter((e) => e.seq > since);
      if (events.length > 0) {
        this.#storeEvents(lockId, events);
        const upto = events.reduce((m, e) => Math.max(m, e.seq), 0);
        const acked = await conn.client.request({ type: 'ackEvents', uptoSeq: upto });
        if (!acked.ok) return;
      }
      if (!batch.value.more) return;
    }
  }

  /** Store a lock's events (durable, before they are acknowledged to it) and tell the listeners of those new to the store. */
  #storeEvents(lockId: string, events: LockEvent[]): void {
    const fresh = this.pairing.storeEvents(lockId, events, this.#now(), this.#eventSink);
    for (const e of fresh) for (const l of [...this.#eventListeners]) l(lockId, e);
  }

  #security(
    kind: string,
    lockId: string | null,
    detail: Record<string, unknown>,
    level: 'info' | 'warn' | 'error',
  ): void {
    this.pairing.securityEvent(kind, lockId, detail, this.#now());
    this.#log[level]({ lockId, kind, ...detail }, `security: ${kind}`);
    this.#securityListeners.emit({ kind, lockId, detail });
  }
}

/** The radio a lock is reached over: the bearer's, or, on several radios (hal/composite.ts), its address prefix. */
function radioOf(kind: BearerKind, address: string): BearerKind {
  if (kind !== 'multi') return kind;
  const prefix = address.slice(0, Math.max(0, address.indexOf('/')));
  return prefix === 'ble' || prefix === 'zigbee' || prefix === 'sim' ? prefix : kind;
}
