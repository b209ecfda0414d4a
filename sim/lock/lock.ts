import type { PeripheralHost, PeripheralLink, SimPeripheral } from '../../drivers/sim-radio/radio.js';
import { pinVerifier, tagHash } from '../../src/access/credentials.js';
import { newChallenge } from '../../src/access/digital-key.js';
import type { Clock, TimerHandle } from '../../src/base/clock.js';
import { HubError } from '../../src/base/errors.js';
import type { Random } from '../../src/base/random.js';
import type { FirmwareVersion, LockEvent, LockState } from '../../src/contract/link-messages.js';
import { Secret } from '../../src/crypto/secret.js';
import { parseVersion } from '../../src/firmware/image.js';
import type { KeyPair } from '../../src/link/noise.js';
import { LockEndpoint, type LockIdentity, normalizeSetupCode } from '../../src/link/session.js';
import { Door, type DoorOutcome, type PhoneAtTheDoor } from './door.js';
import { LockFirmware } from './firmware.js';
import { HubSessions, type RequestCounts } from './hub-sessions.js';
import { LockMemory } from './memory.js';
import { Relock } from './relock.js';
import { LockRequests } from './requests.js';
import {
  type HeldPinKey,
  isOfflineAccessEntry,
  type LockStorage,
  MemoryLockStorage,
  type OfflineAccessEntry,
  type RefusalReason,
} from './storage.js';

export type { DoorOutcome, PhoneAtTheDoor } from './door.js';
export { REQUEST_CACHE_SIZE, type RequestCounts } from './hub-sessions.js';
export { CRITICAL_BATTERY_PERCENT } from './requests.js';

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
 *
 * This class is the lock as tests and the demo hold it (power, physical acts, credentials, reads);
 * its parts are their own modules: RAM over flash (memory.ts), sessions with hubs (hub-sessions.ts),
 * requests (requests.ts), the door's decisions (door.ts) and the relock timer (relock.ts).
 */

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
   * The site id that PIN verifiers and tag hashes are bound to. The site's PIN key itself comes
   * only from the bound hub, over the sealed link (`setPinKey`): until one is installed the keypad
   * refuses codes.
   */
  siteId?: string;
  /** How long the lock waits for the hub's answer to an access request before deciding alone, ms. */
  accessTimeoutMs?: number;
  /** How long the bolt stays drawn back after a granted credential, ms. */
  grantOpenMs?: number;
  /** Firmware update (sim/lock/firmware.ts): the lock's model, factory version and pinned vendor keys (none: every image is refused as forged). */
  firmware?: { model?: string; version?: string; vendorKeys?: readonly Uint8Array[]; capacity?: number };
}

/** The model simulated locks report unless told otherwise. */
export const SIM_LOCK_MODEL = 'iq-sim-lock';
export const SIM_LOCK_FACTORY_VERSION = '1.0.0';

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new HubError('sim-lock.config', `simulated lock: ${name} must be a positive integer, got ${v}`);
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
  readonly accessTimeoutMs: number;
  readonly grantOpenMs: number;
  readonly #keyPair: KeyPair;
  readonly #setupCode: Secret;
  readonly #radio: PeripheralHost;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #siteId: string | undefined;
  readonly #memory: LockMemory;
  readonly #sessions: HubSessions;
  readonly #relock: Relock;
  readonly #door: Door;
  readonly #firmware: LockFirmware;
  #failNextInstall = false;
  #peripheral: SimPeripheral | undefined;
  #attachTimer: TimerHandle | undefined;

  constructor(options: SimLockOptions) {
    if (!/^[\x21-\x7e]{1,64}$/.test(options.deviceId)) {
      throw new HubError('sim-lock.config', 'simulated lock: deviceId must be 1…64 printable ASCII characters');
    }
    if (normalizeSetupCode(options.setupCode).length === 0) {
      throw new HubError('sim-lock.config', `simulated lock ${options.deviceId}: the setup code is empty`);
    }
    this.deviceId = options.deviceId;
    this.address = options.address;
    this.#keyPair = options.keyPair;
    this.publicKey = options.keyPair.publicKey.slice();
    this.#setupCode = Secret.fromUtf8(options.setupCode);
    this.#radio = options.radio;
    this.#clock = options.clock;
    this.#random = options.random;
    this.attachWindowMs = positiveInt('attachWindowMs', options.attachWindowMs ?? 60_000);
    this.maxEvents = positiveInt('maxEvents', options.maxEvents ?? 1000);
    this.maxOfflineEntries = positiveInt('maxOfflineEntries', options.maxOfflineEntries ?? 500);
    this.#siteId = options.siteId;
    this.accessTimeoutMs = positiveInt('accessTimeoutMs', options.accessTimeoutMs ?? 1500);
    this.grantOpenMs = positiveInt('grantOpenMs', options.grantOpenMs ?? 5000);
    this.#memory = new LockMemory({
      deviceId: this.deviceId,
      storage: options.storage ?? new MemoryLockStorage(),
      clock: this.#clock,
      maxEvents: this.maxEvents,
      onEvent: (event) => this.#sessions.push(event),
    });
    this.#relock = new Relock(this.#memory, this.#clock);
    const fw = options.firmware ?? {};
    const factoryVersion = parseVersion(fw.version ?? SIM_LOCK_FACTORY_VERSION);
    if (!factoryVersion)
      throw new HubError('sim-lock.config', 'simulated lock: firmware.version must be major.minor.patch');
    this.#firmware = new LockFirmware({
      memory: this.#memory,
      model: fw.model ?? SIM_LOCK_MODEL,
      factoryVersion,
      vendorKeys: fw.vendorKeys ?? [],
      capacity: positiveInt('firmware.capacity', fw.capacity ?? 1024 * 1024),
      failNextInstall: () => {
        const fail = this.#failNextInstall;
        this.#failNextInstall = false;
        return fail;
      },
    });
    const requests = new LockRequests({
      memory: this.#memory,
      relock: this.#relock,
      clock: this.#clock,
      maxOfflineEntries: this.maxOfflineEntries,
      firmware: this.#firmware,
    });
    this.#sessions = new HubSessions({
      memory: this.#memory,
      clock: this.#clock,
      accessTimeoutMs: this.accessTimeoutMs,
      execute: (context, request) => requests.execute(context, request),
    });
    this.#door = new Door({
      memory: this.#memory,
      sessions: this.#sessions,
      relock: this.#relock,
      grantOpenMs: this.grantOpenMs,
    });
  }

  // ── power ──────────────────────────────────────────────────────────────────────────────────────

  get running(): boolean {
    return this.#memory.peek() !== undefined;
  }

  /** Power on: load the flash (factory state if empty) and start advertising. */
  boot(): void {
    if (this.#memory.peek()) {
      throw new HubError('sim-lock.running', `simulated lock ${this.deviceId} is already running`);
    }
    this.#memory.load();
    this.#sessions.resetCounts();
    const generation = this.#memory.generation;
    this.#peripheral = this.#radio.addPeripheral({
      address: this.address,
      advertisement: () =>
        this.#memory.alive(generation) ? { deviceId: this.deviceId, attachMode: this.inAttachMode() } : undefined,
      onConnect: (link) => this.#onConnect(link, generation),
    });
  }

  /** Pull the battery: off the air now, links dropped, RAM lost. Only what was saved survives. */
  crash(): void {
    if (!this.#memory.peek()) return;
    this.#memory.lose();
    this.#clock.clearTimeout(this.#attachTimer);
    this.#attachTimer = undefined;
    this.#relock.cancel();
    this.#sessions.forget();
    const peripheral = this.#peripheral;
    this.#peripheral = undefined;
    peripheral?.remove();
  }

  // ── physical acts ──────────────────────────────────────────────────────────────────────────────

  /** The maintenance card on the reader: attach mode for attachWindowMs. */
  presentMaintenanceCard(): void {
    this.#memory.running();
    this.#clock.clearTimeout(this.#attachTimer);
    const generation = this.#memory.generation;
    this.#attachTimer = this.#clock.setTimeout(() => {
      if (generation === this.#memory.generation) this.#attachTimer = undefined;
    }, this.attachWindowMs);
  }

  /** Someone opens from inside with the handle. */
  openByHand(): LockEvent {
    return this.#memory.physical({ type: 'opened', by: 'inside', credentialId: null });
  }

  /** The door sensor: an event only when it changes. */
  setDoor(open: boolean): LockEvent | undefined {
    if (this.#memory.running().doorOpen === open) return undefined;
    return this.#memory.physical({ type: 'door', open }, (d) => {
      d.doorOpen = open;
    });
  }

  /** The battery gauge: an event only when the level changes. */
  setBattery(percent: number): LockEvent | undefined {
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
      throw new HubError('sim-lock.input', `simulated lock: battery percent must be an integer 0…100, got ${percent}`);
    }
    if (this.#memory.running().batteryPercent === percent) return undefined;
    return this.#memory.physical({ type: 'battery', percent }, (d) => {
      d.batteryPercent = percent;
    });
  }

  /** The tamper switch. */
  tamper(): LockEvent {
    return this.#memory.physical({ type: 'tamper' });
  }

  // ── credentials at the door ────────────────────────────────────────────────────────────────────

  /**
   * Someone types a code on the keypad. The secure element turns it into a verifier at once; the
   * digits go no further (not to the hub, not to flash, not to an event).
   */
  typePin(digits: string): Promise<DoorOutcome> {
    const keys = this.#usablePinKeys();
    const current = keys[0];
    if (!current || !this.#siteId) {
      throw new HubError('sim-lock.config', `simulated lock ${this.deviceId} has no site PIN key: its keypad is off`);
    }
    // The secure element: the digits become verifiers under the keys it holds, and go no further.
    const verify = (hex: string) => {
      const key = new Secret(new Uint8Array(Buffer.from(hex, 'hex')));
      try {
        return pinVerifier(key, digits, this.#siteId as string);
      } finally {
        key.wipe();
      }
    };
    const verifier = verify(current.key);
    const previous = keys[1] ? verify(keys[1].key) : undefined;
    return this.#door.decide('pin', { kind: 'pin', verifier, ...(previous ? { previous } : {}) });
  }

  /** The PIN keys held, current first; a previous key past its end is dropped (and saved) first. */
  #usablePinKeys(): HeldPinKey[] {
    const held = this.#memory.running().pinKeys;
    const previous = held[1];
    if (previous && previous.until !== null && this.#memory.now() >= previous.until) {
      try {
        this.#memory.change((d) => {
          d.pinKeys = d.pinKeys.slice(0, 1);
        });
      } catch {
        // The flash refused: the key is not used all the same; the next attempt saves again.
      }
      return held.slice(0, 1);
    }
    return held;
  }

  /** The PIN key versions this lock holds (0: none); never the keys. */
  pinKeyVersions(): { version: number; previous: number } {
    const held = this.#usablePinKeys();
    return { version: held[0]?.version ?? 0, previous: held[1]?.version ?? 0 };
  }

  /** A DESFire tag on the reader, already authenticated by the lock: its credential id. */
  presentTag(credentialId: Uint8Array): Promise<DoorOutcome> {
    if (!this.#siteId) throw new HubError('sim-lock.config', `simulated lock ${this.deviceId} has no site id`);
    return this.#door.decide('tag', { kind: 'tag', hash: tagHash(credentialId, this.#siteId) });
  }

  /** A phone at the door: a fresh challenge, the phone's answer, the hub's decision (never offline). */
  presentPhone(phone: PhoneAtTheDoor, keyId?: string): Promise<DoorOutcome> {
    const challenge = newChallenge(this.#random);
    const presentation = new TextEncoder().encode(JSON.stringify(phone.present(challenge, this.deviceId, keyId)));
    return this.#door.decide('digitalKey', { kind: 'digitalKey', challenge, presentation });
  }

  /** Replaces the offline-access list (what the lock admits without the hub); bounded by maxOfflineEntries. */
  setOfflineAccess(entries: readonly OfflineAccessEntry[]): void {
    if (entries.length > this.maxOfflineEntries) {
      throw new HubError(
        'sim-lock.offline-full',
        `simulated lock ${this.deviceId}: ${entries.length} offline entries exceed the limit of ${this.maxOfflineEntries}`,
      );
    }
    const list = structuredClone([...entries]);
    const bad = list.findIndex((e) => !isOfflineAccessEntry(e));
    if (bad >= 0) {
      throw new HubError('sim-lock.input', `simulated lock ${this.deviceId}: offline entry ${bad} is not valid`);
    }
    this.#memory.change((d) => {
      d.offlineAccess = list;
    });
  }

  // ── accessors for tests and the demo ───────────────────────────────────────────────────────────

  /** The firmware version running now. */
  firmwareVersion(): FirmwareVersion {
    return this.#firmware.version();
  }

  /** How many bytes of a firmware transfer the flash holds (0: none in progress). */
  firmwareStaged(): number {
    const s = this.#firmware.staging();
    return s ? Buffer.from(s.data, 'base64').length : 0;
  }

  /** A fault for tests: the next install fails after every check passed (the old firmware keeps running). */
  failNextFirmwareInstall(): void {
    this.#failNextInstall = true;
  }

  state(): LockState {
    return this.#memory.lockState();
  }

  boundHub(): Uint8Array | undefined {
    const key = this.#memory.running().boundHub;
    return key === null ? undefined : new Uint8Array(Buffer.from(key, 'hex'));
  }

  /** The hub this lock was detached from, until it binds again (see LockPersisted.formerHub). */
  formerHub(): Uint8Array | undefined {
    const key = this.#memory.running().formerHub;
    return key === null ? undefined : new Uint8Array(Buffer.from(key, 'hex'));
  }

  /** The unacknowledged event log, oldest first. */
  events(): LockEvent[] {
    return structuredClone(this.#memory.running().events);
  }

  droppedEvents(): number {
    return this.#memory.running().droppedEvents;
  }

  offlineAccess(): OfflineAccessEntry[] {
    return structuredClone(this.#memory.running().offlineAccess);
  }

  refusals(): Record<RefusalReason, number> {
    return { ...this.#memory.running().refusals };
  }

  /** Since the last boot. */
  requestCounts(): RequestCounts {
    return this.#sessions.counts();
  }

  inAttachMode(): boolean {
    return this.#memory.peek() !== undefined && this.#attachTimer !== undefined;
  }

  // ── the link's handshake ───────────────────────────────────────────────────────────────────────

  #onConnect(link: PeripheralLink, generation: number): void {
    const alive = () => this.#memory.alive(generation);
    if (!alive()) {
      void link.close();
      return;
    }
    const identity: LockIdentity = {
      deviceId: this.deviceId,
      keyPair: this.#keyPair,
      setupCode: this.#setupCode,
      boundHub: () => (alive() ? this.boundHub() : undefined),
      formerHub: () => (alive() ? this.formerHub() : undefined),
      inAttachMode: () => alive() && this.inAttachMode(),
      bind: (hubStatic) => {
        if (!alive()) {
          throw new HubError('sim-lock.off', `simulated lock ${this.deviceId} is off; it cannot bind`);
        }
        this.#bind(hubStatic);
      },
      refused: (reason) => {
        if (alive()) this.#countRefusal(reason);
      },
    };
    new LockEndpoint(link, identity, this.#random, (session) => this.#sessions.open(session, generation));
    link.onClose(() => this.#sessions.closed(link));
  }

  #bind(hubStatic: Uint8Array): void {
    if (hubStatic.length !== 32) throw new HubError('sim-lock.bind', 'simulated lock: a hub key is 32 bytes');
    const key = Buffer.from(hubStatic).toString('hex');
    this.#memory.change((d) => {
      // Another site's offline credentials and PIN keys must not work for the new one.
      if (d.boundHub !== key) {
        d.offlineAccess = [];
        d.pinKeys = [];
      }
      d.boundHub = key;
      d.formerHub = null;
    });
    this.#clock.clearTimeout(this.#attachTimer);
    this.#attachTimer = undefined;
    this.#sessions.bound();
  }

  #countRefusal(reason: RefusalReason): void {
    try {
      this.#memory.change((d) => {
        d.refusals[reason]++;
      });
    } catch {
      // A counter is not worth failing a handshake over: keep it in RAM.
      const p = this.#memory.running();
      this.#memory.keepInRam({ ...p, refusals: { ...p.refusals, [reason]: p.refusals[reason] + 1 } });
    }
  }
}
