import type { PeripheralHost, PeripheralLink, SimPeripheral } from '../../drivers/sim-radio/radio.js';
import { pinVerifier, tagHash } from '../../src/access/credentials.js';
import { newChallenge, type Presentation } from '../../src/access/digital-key.js';
import type { Clock, TimerHandle } from '../../src/base/clock.js';
import { HubError } from '../../src/base/errors.js';
import type { Random } from '../../src/base/random.js';
import { decodeMessage, encodeMessage } from '../../src/contract/link-codec.js';
import {
  type AccessReason,
  type DenyReason,
  isFromLock,
  type LinkCredential,
  type LockErrorCode,
  type LockEvent,
  type LockEventBody,
  type LockMode,
  type LockState,
  MAX_EVENTS_PER_BATCH,
  type OfflineItem,
  OPERATIONS,
  type Operation,
  type Request,
  type Response,
} from '../../src/contract/link-messages.js';
import { offlineListDigest } from '../../src/contract/link-offline.js';
import { Secret } from '../../src/crypto/secret.js';
import { type KeyPair, TAGLEN } from '../../src/link/noise.js';
import { LockEndpoint, type LockIdentity, normalizeSetupCode, type SecureSession } from '../../src/link/session.js';
import { FRAME_HEADER_LEN } from '../../src/link/transport.js';
import {
  copyPersisted,
  factoryState,
  isOfflineAccessEntry,
  type LockPersisted,
  type LockStorage,
  MemoryLockStorage,
  type OfflineAccessEntry,
  type RefusalReason,
} from './storage.js';

/**
 * A simulated lock: the firmware side of the lock link, as a lock vendor would build it.
 *
 * - Factory identity: device id, static X25519 key pair, setup code printed on the sticker.
 * - Flash (`LockStorage`), written through: every change that matters (binding, bolt, mode, door,
 *   battery, clock offset, event log and sequence, offline list, refusal counters) is saved before
 *   it is acknowledged on the radio. A request whose save fails is answered `internal` and changes
 *   nothing. RAM only, lost by `crash()`: attach mode, a pending relock, sessions and their response
 *   caches.
 * - Attach mode only through a physical act (`presentMaintenanceCard()`), for `attachWindowMs` on the
 *   clock; it ends early once a hub is bound. A crash ends it too.
 * - Fail-secure: at boot, a bolt saved as unlocked outside office mode is relocked (the relock
 *   timer did not survive the power cut).
 *
 * Policies (documented choices):
 * - `open` in mode `locked` (lockdown) is refused with `bad-request`, and a `denied{locked-mode}`
 *   event is logged. In office mode the bolt is already drawn back: `open` logs `opened` and
 *   leaves it so (no relock). Below CRITICAL_BATTERY_PERCENT the motor is not driven: `open` is
 *   refused with `battery-critical`.
 * - `lock` in office mode leaves office mode (back to normal): the hub asked for a locked door.
 * - Event log: at most `maxEvents` unacknowledged events. When full, the oldest unacknowledged
 *   event is dropped to make room and counted (`droppedEvents()`); its sequence number is never
 *   reused, so the hub sees the gap. The newest events are the ones worth keeping (a tamper now
 *   matters more than a door a month ago).
 * - `getEvents` returns at most MAX_EVENTS_PER_BATCH events, and fewer when the batch would not fit
 *   in one frame of the link (`more` tells the hub to ask again).
 * - `ackEvents` beyond the newest sequence number is a `bad-request` (the hub cannot have seen it).
 * - `detach` forgets the hub key and clears the offline-access list (the old site's credentials
 *   must not open this door), saved, then answers ok. The event log and the sequence are kept:
 *   the hub drains events before detaching; sequence numbers are never reused.
 * - Requests on a session whose hub is no longer the bound one (after detach, or after another hub
 *   attached in attach mode) get `not-attached`, except `detach`, which is confirmed again.
 * - Idempotency: per session, the encoded responses to the last 64 request ids are kept; a request
 *   id seen again is answered from that cache (sealed again), never executed twice. The same id
 *   with a different request is answered `bad-request`. A new session starts with an empty cache.
 * - Events are pushed on the current session: the latest session that carried a request from the
 *   bound hub (or the one that just attached). A handshake alone does not make a session current:
 *   the lock knows its peer only once a transport frame from it opens.
 */

/** Below this battery level the motor is not driven. */
export const CRITICAL_BATTERY_PERCENT = 2;
/** Responses kept per session for requests sent again. */
export const REQUEST_CACHE_SIZE = 64;
/** What sealing adds to a payload on the air. */
const FRAME_OVERHEAD = FRAME_HEADER_LEN + TAGLEN;
const MAX_SEQ = 0xffff_ffff;

export interface SimLockOptions {
  deviceId: string;
  /** The factory static X25519 key pair. */
  keyPair: KeyPair;
  /** As printed on the sticker (dashes, spaces and case do not matter). */
  setupCode: string;
  /** The in-memory SimRadio or a controller emulator (sim/emu/). */
  radio: PeripheralHost;
  /** Its address on the radio. */
  address: string;
  clock: Clock;
  random: Random;
  /** Its flash; a MemoryLockStorage owned by this lock when omitted (it survives crash() + boot()). */
  storage?: LockStorage;
  /** How long attach mode lasts after the maintenance card, ms. */
  attachWindowMs?: number;
  /** Unacknowledged events kept before the oldest is dropped. */
  maxEvents?: number;
  maxOfflineEntries?: number;
  /**
   * The site's PIN key, in the lock's secure element (put there by the cloud at installation):
   * the keypad turns typed digits into a verifier with it. Without one the keypad refuses codes.
   */
  pinKey?: Secret;
  /** The site id that PIN verifiers and tag hashes are bound to. */
  siteId?: string;
  /** How long the lock waits for the hub's answer to an access request before deciding alone, ms. */
  accessTimeoutMs?: number;
  /** How long the bolt stays drawn back after a granted credential, ms. */
  grantOpenMs?: number;
}

/** What happened at the door: opened or not, why, and whether the hub or the offline list decided. */
export interface DoorOutcome {
  opened: boolean;
  reason: AccessReason | DenyReason;
  credentialId: string | null;
  decidedBy: 'hub' | 'offline-list' | 'lock';
}

/** The phone's side at the door: answers a challenge for this lock (sim/phone's SimPhone does). */
export interface PhoneAtTheDoor {
  present(challenge: Uint8Array, lockId: string, keyId?: string): Presentation;
}

export interface RequestCounts {
  /** Requests handled (executed or refused with an error), by operation; repeats are not counted here. */
  handled: Record<Operation, number>;
  /** Requests whose id the session had already seen: answered from the cache. */
  repeated: number;
  /** Sealed payloads that were not a request from the hub (undecodable, a response, an event): dropped. */
  ignored: number;
}

interface SessionContext {
  readonly session: SecureSession;
  /** The hub this session authenticated, hex. */
  readonly hub: string;
  readonly cache: Map<number, { request: Uint8Array; response: Uint8Array }>;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function zeroCounts(): RequestCounts {
  return {
    handled: Object.fromEntries(OPERATIONS.map((op) => [op, 0])) as Record<Operation, number>,
    repeated: 0,
    ignored: 0,
  };
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new HubError('sim-lock-config', `simulated lock: ${name} must be a positive integer, got ${v}`);
  }
  return v;
}

export class SimLock {
  readonly deviceId: string;
  readonly address: string;
  readonly publicKey: Uint8Array;
  readonly attachWindowMs: number;
  readonly maxEvents: number;
  readonly maxOfflineEntries: number;
  readonly #keyPair: KeyPair;
  readonly #setupCode: Secret;
  readonly #radio: PeripheralHost;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #storage: LockStorage;
  /** The state in RAM, equal to the last save; undefined while the lock is off. */
  #p: LockPersisted | undefined;
  /** Bumped at every boot and crash, so that callbacks from a previous life do nothing. */
  #generation = 0;
  #peripheral: SimPeripheral | undefined;
  #current: SessionContext | undefined;
  /** Set by bind(): the session handed over next is the one that just attached. */
  #justBound = false;
  #attachTimer: TimerHandle | undefined;
  #relockTimer: TimerHandle | undefined;
  #counts = zeroCounts();
  readonly #pinKey: Secret | undefined;
  readonly #siteId: string | undefined;
  readonly accessTimeoutMs: number;
  readonly grantOpenMs: number;
  #nextAccessId = 1;
  readonly #pendingAccess = new Map<
    number,
    (answer: { grant: boolean; reason: AccessReason; credentialId: string | null }) => void
  >();

  constructor(options: SimLockOptions) {
    if (!/^[\x21-\x7e]{1,64}$/.test(options.deviceId)) {
      throw new HubError('sim-lock-config', 'simulated lock: deviceId must be 1…64 printable ASCII characters');
    }
    if (normalizeSetupCode(options.setupCode).length === 0) {
      throw new HubError('sim-lock-config', `simulated lock ${options.deviceId}: the setup code is empty`);
    }
    this.deviceId = options.deviceId;
    this.address = options.address;
    this.#keyPair = options.keyPair;
    this.publicKey = options.keyPair.publicKey.slice();
    this.#setupCode = Secret.fromUtf8(options.setupCode);
    this.#radio = options.radio;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#storage = options.storage ?? new MemoryLockStorage();
    this.attachWindowMs = positiveInt('attachWindowMs', options.attachWindowMs ?? 60_000);
    this.maxEvents = positiveInt('maxEvents', options.maxEvents ?? 1000);
    this.maxOfflineEntries = positiveInt('maxOfflineEntries', options.maxOfflineEntries ?? 500);
    this.#pinKey = options.pinKey;
    this.#siteId = options.siteId;
    this.accessTimeoutMs = positiveInt('accessTimeoutMs', options.accessTimeoutMs ?? 1500);
    this.grantOpenMs = positiveInt('grantOpenMs', options.grantOpenMs ?? 5000);
  }

  // ── power ──────────────────────────────────────────────────────────────────────────────────────

  get running(): boolean {
    return this.#p !== undefined;
  }

  /** Power on: load the flash (factory state if empty) and start advertising. */
  boot(): void {
    if (this.#p) throw new HubError('sim-lock-running', `simulated lock ${this.deviceId} is already running`);
    let p = this.#storage.load() ?? factoryState();
    if (p.bolt === 'unlocked' && p.mode !== 'office') {
      p = { ...p, bolt: 'locked' };
      this.#storage.save(p);
    }
    this.#p = p;
    this.#generation++;
    this.#counts = zeroCounts();
    const generation = this.#generation;
    this.#peripheral = this.#radio.addPeripheral({
      address: this.address,
      advertisement: () =>
        this.#alive(generation) ? { deviceId: this.deviceId, attachMode: this.inAttachMode() } : undefined,
      onConnect: (link) => this.#onConnect(link, generation),
    });
  }

  /** Pull the battery: off the air now, links dropped, RAM lost. Only what was saved survives. */
  crash(): void {
    if (!this.#p) return;
    this.#generation++;
    this.#clock.clearTimeout(this.#attachTimer);
    this.#clock.clearTimeout(this.#relockTimer);
    this.#attachTimer = undefined;
    this.#relockTimer = undefined;
    this.#p = undefined;
    this.#current = undefined;
    this.#justBound = false;
    const peripheral = this.#peripheral;
    this.#peripheral = undefined;
    peripheral?.remove();
  }

  // ── physical acts ──────────────────────────────────────────────────────────────────────────────

  /** The maintenance card on the reader: attach mode for attachWindowMs. */
  presentMaintenanceCard(): void {
    this.#running();
    this.#clock.clearTimeout(this.#attachTimer);
    const generation = this.#generation;
    this.#attachTimer = this.#clock.setTimeout(() => {
      if (generation === this.#generation) this.#attachTimer = undefined;
    }, this.attachWindowMs);
  }

  /** Someone opens from inside with the handle. */
  openByHand(): LockEvent {
    return this.#physical({ type: 'opened', by: 'inside', credentialId: null });
  }

  /** The door sensor: an event only when it changes. */
  setDoor(open: boolean): LockEvent | undefined {
    if (this.#running().doorOpen === open) return undefined;
    return this.#physical({ type: 'door', open }, (d) => {
      d.doorOpen = open;
    });
  }

  /** The battery gauge: an event only when the level changes. */
  setBattery(percent: number): LockEvent | undefined {
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
      throw new HubError('sim-lock-input', `simulated lock: battery percent must be an integer 0…100, got ${percent}`);
    }
    if (this.#running().batteryPercent === percent) return undefined;
    return this.#physical({ type: 'battery', percent }, (d) => {
      d.batteryPercent = percent;
    });
  }

  /** The tamper switch. */
  tamper(): LockEvent {
    return this.#physical({ type: 'tamper' });
  }

  // ── credentials at the door ────────────────────────────────────────────────────────────────────

  /**
   * Someone types a code on the keypad. The secure element turns it into a verifier at once; the
   * digits go no further (not to the hub, not to flash, not to an event).
   */
  typePin(digits: string): Promise<DoorOutcome> {
    if (!this.#pinKey || !this.#siteId) {
      throw new HubError('sim-lock-config', `simulated lock ${this.deviceId} has no site PIN key: its keypad is off`);
    }
    const verifier = pinVerifier(this.#pinKey, digits, this.#siteId);
    return this.#atTheDoor('pin', { kind: 'pin', verifier });
  }

  /** A DESFire tag on the reader, already authenticated by the lock: its credential id. */
  presentTag(credentialId: Uint8Array): Promise<DoorOutcome> {
    if (!this.#siteId) throw new HubError('sim-lock-config', `simulated lock ${this.deviceId} has no site id`);
    return this.#atTheDoor('tag', { kind: 'tag', hash: tagHash(credentialId, this.#siteId) });
  }

  /** A phone at the door: a fresh challenge, the phone's answer, the hub's decision (never offline). */
  presentPhone(phone: PhoneAtTheDoor, keyId?: string): Promise<DoorOutcome> {
    const challenge = newChallenge(this.#random);
    const presentation = new TextEncoder().encode(JSON.stringify(phone.present(challenge, this.deviceId, keyId)));
    return this.#atTheDoor('digitalKey', { kind: 'digitalKey', challenge, presentation });
  }

  /** Replaces the offline-access list (what the lock admits without the hub); bounded by maxOfflineEntries. */
  setOfflineAccess(entries: readonly OfflineAccessEntry[]): void {
    if (entries.length > this.maxOfflineEntries) {
      throw new HubError(
        'sim-lock-offline-full',
        `simulated lock ${this.deviceId}: ${entries.length} offline entries exceed the limit of ${this.maxOfflineEntries}`,
      );
    }
    const list = structuredClone([...entries]);
    const bad = list.findIndex((e) => !isOfflineAccessEntry(e));
    if (bad >= 0) {
      throw new HubError('sim-lock-input', `simulated lock ${this.deviceId}: offline entry ${bad} is not valid`);
    }
    this.#change((d) => {
      d.offlineAccess = list;
    });
  }

  // ── accessors for tests and the demo ───────────────────────────────────────────────────────────

  state(): LockState {
    return this.#lockState(this.#running());
  }

  boundHub(): Uint8Array | undefined {
    const key = this.#running().boundHub;
    return key === null ? undefined : new Uint8Array(Buffer.from(key, 'hex'));
  }

  /** The hub this lock was detached from, until it binds again (see LockPersisted.formerHub). */
  formerHub(): Uint8Array | undefined {
    const key = this.#running().formerHub;
    return key === null ? undefined : new Uint8Array(Buffer.from(key, 'hex'));
  }

  /** The unacknowledged event log, oldest first. */
  events(): LockEvent[] {
    return structuredClone(this.#running().events);
  }

  droppedEvents(): number {
    return this.#running().droppedEvents;
  }

  offlineAccess(): OfflineAccessEntry[] {
    return structuredClone(this.#running().offlineAccess);
  }

  refusals(): Record<RefusalReason, number> {
    return { ...this.#running().refusals };
  }

  /** Since the last boot. */
  requestCounts(): RequestCounts {
    return structuredClone(this.#counts);
  }

  inAttachMode(): boolean {
    return this.#p !== undefined && this.#attachTimer !== undefined;
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────────

  #alive(generation: number): boolean {
    return this.#p !== undefined && generation === this.#generation;
  }

  #running(): LockPersisted {
    if (!this.#p) {
      throw new HubError('sim-lock-off', `simulated lock ${this.deviceId} is not running`, { hint: 'boot() it first' });
    }
    return this.#p;
  }

  /** Lock time, Unix ms: the clock plus the offset the hub set. */
  #now(p: LockPersisted): number {
    return Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.floor(this.#clock.now()) + p.clockOffsetMs));
  }

  #lockState(p: LockPersisted): LockState {
    return {
      bolt: p.bolt,
      mode: p.mode,
      doorOpen: p.doorOpen,
      batteryPercent: p.batteryPercent,
      lastSeq: p.nextSeq - 1,
      time: this.#now(p),
    };
  }

  /**
   * The one way state changes: on a copy, saved, then made current, then new events pushed. If the
   * save throws, nothing changed.
   */
  #change(mutate: (draft: LockPersisted, emit: (body: LockEventBody) => void) => void): void {
    const draft = copyPersisted(this.#running());
    const fresh: LockEvent[] = [];
    mutate(draft, (body) => {
      fresh.push(this.#append(draft, body));
    });
    this.#storage.save(draft);
    this.#p = draft;
    for (const event of fresh) this.#push(event);
  }

  #append(draft: LockPersisted, body: LockEventBody): LockEvent {
    if (draft.nextSeq > MAX_SEQ) {
      throw new HubError('sim-lock-seq-exhausted', `simulated lock ${this.deviceId}: event sequence numbers exhausted`);
    }
    const event = { seq: draft.nextSeq, at: this.#now(draft), ...body } as LockEvent;
    draft.nextSeq++;
    draft.events.push(event);
    while (draft.events.length > this.maxEvents) {
      draft.events.shift();
      draft.droppedEvents++;
    }
    return event;
  }

  #physical(body: LockEventBody, mutate?: (draft: LockPersisted) => void): LockEvent {
    let event: LockEvent | undefined;
    this.#change((d, emit) => {
      mutate?.(d);
      emit(body);
      event = d.events[d.events.length - 1];
    });
    if (!event) throw new HubError('sim-lock-internal', 'simulated lock: the event was not logged');
    return event;
  }

  #push(event: LockEvent): void {
    const current = this.#current;
    if (!current || current.hub !== this.#p?.boundHub || !current.session.link.isOpen()) return;
    void current.session.send(encodeMessage({ type: 'event', event }));
  }

  #onConnect(link: PeripheralLink, generation: number): void {
    if (!this.#alive(generation)) {
      void link.close();
      return;
    }
    const identity: LockIdentity = {
      deviceId: this.deviceId,
      keyPair: this.#keyPair,
      setupCode: this.#setupCode,
      boundHub: () => (this.#alive(generation) ? this.boundHub() : undefined),
      formerHub: () => (this.#alive(generation) ? this.formerHub() : undefined),
      inAttachMode: () => this.#alive(generation) && this.inAttachMode(),
      bind: (hubStatic) => {
        if (!this.#alive(generation)) {
          throw new HubError('sim-lock-off', `simulated lock ${this.deviceId} is off; it cannot bind`);
        }
        this.#bind(hubStatic);
      },
      refused: (reason) => {
        if (this.#alive(generation)) this.#countRefusal(reason);
      },
    };
    new LockEndpoint(link, identity, this.#random, (session) => this.#onSession(session, generation));
    link.onClose(() => {
      if (this.#current?.session.link === link) this.#current = undefined;
    });
  }

  #bind(hubStatic: Uint8Array): void {
    if (hubStatic.length !== 32) throw new HubError('sim-lock-bind', 'simulated lock: a hub key is 32 bytes');
    const key = hex(hubStatic);
    this.#change((d) => {
      // Another site's offline credentials must not open the door for the new one.
      if (d.boundHub !== key) d.offlineAccess = [];
      d.boundHub = key;
      d.formerHub = null;
    });
    this.#clock.clearTimeout(this.#attachTimer);
    this.#attachTimer = undefined;
    this.#justBound = true;
  }

  #countRefusal(reason: RefusalReason): void {
    try {
      this.#change((d) => {
        d.refusals[reason]++;
      });
    } catch {
      // A counter is not worth failing a handshake over: keep it in RAM.
      const p = this.#running();
      this.#p = { ...p, refusals: { ...p.refusals, [reason]: p.refusals[reason] + 1 } };
    }
  }

  #onSession(session: SecureSession, generation: number): void {
    if (!this.#alive(generation)) return;
    const context: SessionContext = { session, hub: hex(session.remoteStatic), cache: new Map() };
    const current = this.#current;
    const currentUsable = current !== undefined && current.hub === this.#p?.boundHub && current.session.link.isOpen();
    if (this.#justBound) {
      this.#justBound = false;
      this.#current = context;
    } else if (!currentUsable && context.hub === this.#p?.boundHub) {
      // The bound hub reconnected and the old session is gone: this one carries the door's requests
      // at once (a replayed handshake gives a session nobody can answer on: the door then decides
      // from its offline list, as with the hub away).
      this.#current = context;
    }
    session.onPayload((payload) => {
      if (this.#alive(generation)) this.#onPayload(context, payload);
    });
  }

  #onPayload(context: SessionContext, payload: Uint8Array): void {
    const decoded = decodeMessage(payload);
    if (decoded.ok && decoded.value.type === 'accessAnswer') {
      const answer = decoded.value;
      const waiting = context.hub === this.#p?.boundHub ? this.#pendingAccess.get(answer.id) : undefined;
      if (!waiting) {
        this.#counts.ignored++;
        return;
      }
      this.#pendingAccess.delete(answer.id);
      waiting(answer);
      return;
    }
    if (!decoded.ok || isFromLock(decoded.value)) {
      this.#counts.ignored++;
      return;
    }
    const request = decoded.value as Request;
    if (context.hub === this.#p?.boundHub) this.#current = context;
    const cached = context.cache.get(request.id);
    if (cached) {
      this.#counts.repeated++;
      const same = Buffer.from(cached.request).equals(Buffer.from(payload));
      const answer = same ? cached.response : encodeMessage({ type: 'error', id: request.id, code: 'bad-request' });
      void context.session.send(answer);
      return;
    }
    this.#counts.handled[request.type]++;
    const response = encodeMessage(this.#execute(context, request));
    context.cache.set(request.id, { request: payload.slice(), response });
    if (context.cache.size > REQUEST_CACHE_SIZE) {
      const oldest = context.cache.keys().next();
      if (!oldest.done) context.cache.delete(oldest.value);
    }
    void context.session.send(response);
  }

  #execute(context: SessionContext, request: Request): Response {
    const p = this.#running();
    const id = request.id;
    const fail = (code: LockErrorCode): Response => ({ type: 'error', id, code });
    if (context.hub !== p.boundHub) {
      // This hub was forgotten (detach) or replaced (another hub attached in attach mode).
      return request.type === 'detach' ? { type: 'ok', id, result: { op: 'detach' } } : fail('not-attached');
    }
    try {
      switch (request.type) {
        case 'open':
          return this.#open(request.id, request.durationMs);
        case 'lock':
          this.#change((d) => {
            d.bolt = 'locked';
            if (d.mode === 'office') d.mode = 'normal';
          });
          this.#cancelRelock();
          return this.#okState(id, 'lock');
        case 'setMode':
          return this.#setMode(id, request.mode);
        case 'getState':
          return this.#okState(id, 'getState');
        case 'getEvents':
          return this.#getEvents(context, id, request.sinceSeq);
        case 'ackEvents': {
          if (request.uptoSeq >= p.nextSeq) return fail('bad-request');
          if (p.events.some((e) => e.seq <= request.uptoSeq)) {
            this.#change((d) => {
              d.events = d.events.filter((e) => e.seq > request.uptoSeq);
            });
          }
          return { type: 'ok', id, result: { op: 'ackEvents' } };
        }
        case 'setTime':
          this.#change((d) => {
            d.clockOffsetMs = request.unixMs - Math.floor(this.#clock.now());
          });
          return { type: 'ok', id, result: { op: 'setTime' } };
        case 'setOffline':
          return this.#setOffline(id, request);
        case 'detach':
          // Forgotten and saved first: the ok is the lock's confirmation.
          this.#change((d) => {
            d.formerHub = d.boundHub;
            d.boundHub = null;
            d.offlineAccess = [];
          });
          return { type: 'ok', id, result: { op: 'detach' } };
      }
    } catch {
      // The flash refused the write: nothing changed, and the hub is told so.
      return fail('internal');
    }
  }

  #setOffline(id: number, request: Extract<Request, { type: 'setOffline' }>): Response {
    const next = new Map<string, OfflineAccessEntry>(
      request.reset ? [] : this.#running().offlineAccess.map((e) => [e.credentialId, e]),
    );
    for (const credentialId of request.remove) next.delete(credentialId);
    for (const item of request.upsert) next.set(item.credentialId, toEntry(item));
    // Over capacity: refused whole; the hub sends its list by priority, so this is its mistake.
    if (next.size > this.maxOfflineEntries) return { type: 'error', id, code: 'busy' };
    const held = [...next.values()];
    this.#change((d) => {
      d.offlineAccess = held;
    });
    return {
      type: 'ok',
      id,
      result: {
        op: 'setOffline',
        held: held.length,
        capacity: this.maxOfflineEntries,
        digest: offlineListDigest(held.map(fromEntry)),
      },
    };
  }

  /**
   * The door's decision: ask the bound hub over the current session (resending under one id until
   * it answers or accessTimeoutMs passes); without an answer, a PIN or tag on the offline list is
   * admitted within one of its windows, anything else is refused `hub-unreachable`. The outcome is
   * logged as an event: opened{by, credentialId} or denied{reason, credentialId}.
   */
  async #atTheDoor(method: 'pin' | 'tag' | 'digitalKey', credential: LinkCredential): Promise<DoorOutcome> {
    const p = this.#running();
    const generation = this.#generation;
    let outcome: DoorOutcome;
    if (p.mode === 'locked') {
      outcome = { opened: false, reason: 'locked-mode', credentialId: null, decidedBy: 'lock' };
    } else {
      const answer = await this.#askHub(credential);
      if (answer) {
        outcome = {
          opened: answer.grant,
          reason: answer.reason,
          credentialId: answer.credentialId,
          decidedBy: 'hub',
        };
      } else {
        outcome = this.#offlineDecision(credential);
      }
    }
    if (!this.#alive(generation)) return { ...outcome, opened: false };
    if (outcome.opened) {
      this.#change((d, emit) => {
        d.bolt = 'unlocked';
        emit({ type: 'opened', by: method, credentialId: outcome.credentialId });
      });
      if (this.#running().mode === 'normal') this.#armRelock(this.grantOpenMs);
    } else {
      const reason = (outcome.reason === 'granted' ? 'malformed' : outcome.reason) as DenyReason;
      this.#change((_d, emit) => emit({ type: 'denied', reason, credentialId: outcome.credentialId }));
    }
    return outcome;
  }

  async #askHub(
    credential: LinkCredential,
  ): Promise<{ grant: boolean; reason: AccessReason; credentialId: string | null } | undefined> {
    const deadline = this.#clock.monotonic() + this.accessTimeoutMs;
    const usable = (c: SessionContext | undefined): c is SessionContext =>
      c !== undefined && c.hub === this.#p?.boundHub && c.session.link.isOpen();
    // No session right now: the lock advertises and its hub connects; wait for it within the timeout.
    while (!usable(this.#current) && this.#clock.monotonic() < deadline && this.#p?.boundHub) {
      await this.#clock.sleep(20);
    }
    const context = this.#current;
    if (!usable(context)) return undefined;
    const id = this.#nextAccessId;
    this.#nextAccessId = this.#nextAccessId >= 0xffff_ffff ? 1 : this.#nextAccessId + 1;
    const bytes = encodeMessage({ type: 'access', id, credential });
    const answer = new Promise<{ grant: boolean; reason: AccessReason; credentialId: string | null }>((resolve) =>
      this.#pendingAccess.set(id, resolve),
    );
    const resendMs = Math.max(1, Math.floor(this.accessTimeoutMs / 4));
    try {
      while (this.#pendingAccess.has(id) && this.#clock.monotonic() < deadline && context.session.link.isOpen()) {
        void context.session.send(bytes);
        const wait = Math.min(resendMs, deadline - this.#clock.monotonic());
        const result = await Promise.race([answer, this.#clock.sleep(wait).then(() => undefined)]);
        if (result) return result;
      }
      return undefined;
    } finally {
      this.#pendingAccess.delete(id);
    }
  }

  #offlineDecision(credential: LinkCredential): DoorOutcome {
    if (credential.kind === 'digitalKey') {
      return { opened: false, reason: 'hub-unreachable', credentialId: null, decidedBy: 'lock' };
    }
    const digest = Buffer.from(credential.kind === 'pin' ? credential.verifier : credential.hash).toString('hex');
    const now = this.#now(this.#running());
    const entry = this.#running().offlineAccess.find((e) => e.kind === credential.kind && e.digest === digest);
    if (!entry) return { opened: false, reason: 'hub-unreachable', credentialId: null, decidedBy: 'offline-list' };
    const admitted = entry.windows.some((w) => now >= w.from && now < w.until);
    return admitted
      ? { opened: true, reason: 'granted', credentialId: entry.credentialId, decidedBy: 'offline-list' }
      : { opened: false, reason: 'outside-schedule', credentialId: entry.credentialId, decidedBy: 'offline-list' };
  }

  #okState(id: number, op: 'open' | 'lock' | 'setMode' | 'getState'): Response {
    return { type: 'ok', id, result: { op, state: this.#lockState(this.#running()) } };
  }

  #open(id: number, durationMs: number): Response {
    const p = this.#running();
    if (p.mode === 'locked') {
      this.#change((_d, emit) => emit({ type: 'denied', reason: 'locked-mode', credentialId: null }));
      return { type: 'error', id, code: 'bad-request' };
    }
    if (p.batteryPercent < CRITICAL_BATTERY_PERCENT) return { type: 'error', id, code: 'battery-critical' };
    this.#change((d, emit) => {
      d.bolt = 'unlocked';
      emit({ type: 'opened', by: 'remote', credentialId: null });
    });
    if (p.mode === 'normal') this.#armRelock(durationMs);
    return this.#okState(id, 'open');
  }

  #setMode(id: number, mode: LockMode): Response {
    const previous = this.#running().mode;
    this.#change((d) => {
      d.mode = mode;
      if (mode === 'office') d.bolt = 'unlocked';
      else if (mode === 'locked' || previous === 'office') d.bolt = 'locked';
    });
    // Normal mode keeps a pending relock; office and locked modes make it moot.
    if (mode !== 'normal') this.#cancelRelock();
    return this.#okState(id, 'setMode');
  }

  #getEvents(context: SessionContext, id: number, sinceSeq: number): Response {
    const after = this.#running().events.filter((e) => e.seq > sinceSeq);
    const budget = context.session.link.maxFrameSize - FRAME_OVERHEAD;
    const batch = after.slice(0, MAX_EVENTS_PER_BATCH);
    const encode = (more: boolean): Response => ({
      type: 'ok',
      id,
      result: { op: 'getEvents', events: [...batch], more },
    });
    // Fewer events when a full batch would not fit one frame of this link: the hub asks again.
    while (batch.length > 1 && encodeMessage(encode(true)).length > budget) batch.pop();
    return encode(after.length > batch.length);
  }

  #armRelock(durationMs: number): void {
    this.#cancelRelock();
    const generation = this.#generation;
    this.#relockTimer = this.#clock.setTimeout(() => {
      this.#relockTimer = undefined;
      if (!this.#alive(generation)) return;
      const p = this.#running();
      if (p.bolt !== 'unlocked' || p.mode !== 'normal') return;
      try {
        this.#change((d) => {
          d.bolt = 'locked';
        });
      } catch {
        // The bolt moved whatever the flash says; boot relocks anyway (fail-secure).
        this.#p = { ...p, bolt: 'locked' };
      }
    }, durationMs);
  }

  #cancelRelock(): void {
    this.#clock.clearTimeout(this.#relockTimer);
    this.#relockTimer = undefined;
  }
}

function fromEntry(e: OfflineAccessEntry): OfflineItem {
  return {
    kind: e.kind,
    credentialId: e.credentialId,
    digest: new Uint8Array(Buffer.from(e.digest, 'hex')),
    windows: e.windows.map((w) => ({ from: w.from, until: w.until })),
  };
}

function toEntry(item: OfflineItem): OfflineAccessEntry {
  return {
    kind: item.kind,
    credentialId: item.credentialId,
    digest: Buffer.from(item.digest).toString('hex'),
    windows: item.windows.map((w) => ({ from: w.from, until: w.until })),
  };
}
