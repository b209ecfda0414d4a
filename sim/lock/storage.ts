import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../src/base/atomic-file.js';
import { HubError } from '../../src/base/errors.js';
import {
  BOLT_STATES,
  type BoltState,
  DENY_REASONS,
  LOCK_MODES,
  type LockEvent,
  type LockMode,
  MAX_CREDENTIAL_ID_LEN,
  OPEN_METHODS,
} from '../../src/contract/link-messages.js';
import { REFUSALS, type Refusal } from '../../src/link/session.js';

/**
 * The simulated lock's flash: what survives pulling the battery. The lock writes it through: a
 * change that matters is saved before the lock acknowledges it on the radio, so a crash at any
 * instant loses nothing it confirmed. What is not here (attach mode, a pending relock, sessions,
 * the per-session response caches) is RAM and dies with a crash, as on a real lock.
 */

/** Why the lock refused a handshake: the link's refusals, plus a hub that failed the setup-code proof. */
export const REFUSAL_REASONS = [...REFUSALS, 'bad-proof'] as const;
export type RefusalReason = Refusal | 'bad-proof';

/** One credential the lock may admit while the hub is unreachable. */
export interface OfflineAccessEntry {
  kind: 'pin' | 'tag';
  /** The credential's id in the site (printable ASCII, 1…64 bytes, like on the wire). */
  credentialId: string;
  /** The PIN verifier or tag hash the lock compares with what it reads, 64 lowercase hex digits. */
  digest: string;
  /** Lock-time intervals [from, until) (Unix ms) in which the entry admits; at least one. */
  windows: { from: number; until: number }[];
}

/**
 * A site PIN key the lock holds (a real lock keeps it in its secure element; the simulated one in
 * its flash file, mode 0600). `until`: null for the current key; for the previous one, the lock
 * time (Unix ms) after which it is dropped.
 */
export interface HeldPinKey {
  version: number;
  /** 64 lowercase hex digits. */
  key: string;
  until: number | null;
}

export const LOCK_PERSISTED_VERSION = 1;

/** A firmware transfer in progress (sim/lock/firmware.ts): kept in flash so it resumes after any loss. */
export interface FirmwareStaging {
  /** SHA-256 of the image's payload, from its manifest, lowercase hex. */
  sha256: string;
  /** The signed manifest and the vendor's signature, lowercase hex. */
  manifest: string;
  signature: string;
  /** The payload bytes received so far, base64. */
  data: string;
}

export interface LockPersisted {
  version: typeof LOCK_PERSISTED_VERSION;
  /** The bound hub's static X25519 public key, lowercase hex (64 digits), or null when not attached. */
  boundHub: string | null;
  /**
   * The hub this lock was last detached from (hex), kept only so that hub can hear the detach
   * confirmed again if the first confirmation was lost; cleared when the lock binds.
   */
  formerHub: string | null;
  bolt: BoltState;
  mode: LockMode;
  doorOpen: boolean;
  batteryPercent: number;
  /** Lock time = the clock's wall time + this, ms; set by `setTime`. */
  clockOffsetMs: number;
  /** The sequence number the next event gets: starts at 1, only grows, never reused. */
  nextSeq: number;
  /** Events not yet acknowledged by the hub, oldest first, seq strictly increasing. */
  events: LockEvent[];
  /** Unacknowledged events dropped because the log was full (oldest first). */
  droppedEvents: number;
  offlineAccess: OfflineAccessEntry[];
  /** Refused handshakes by reason. */
  refusals: Record<RefusalReason, number>;
  /**
   * The site PIN keys, installed only by `setPinKey` over the sealed link: the current one first,
   * then at most one previous (version current − 1) during an overlap. Absent in flash written
   * before keys were delivered over the link: read as none.
   */
  pinKeys: HeldPinKey[];
  /** The running firmware version ("1.2.3") and a transfer in progress; absent: the factory version, none. */
  firmware?: { version: string; staging: FirmwareStaging | null };
}

export interface LockStorage {
  /** The saved state, or undefined for a lock fresh from the factory. Throws HubError if what is stored is unusable. */
  load(): LockPersisted | undefined;
  /** Saves the whole state durably before returning; throws if it cannot. */
  save(state: LockPersisted): void;
}

export function zeroRefusals(): Record<RefusalReason, number> {
  return Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>;
}

/** The state of a lock that has never been attached. */
export function factoryState(): LockPersisted {
  return {
    version: LOCK_PERSISTED_VERSION,
    boundHub: null,
    formerHub: null,
    bolt: 'locked',
    mode: 'normal',
    doorOpen: false,
    batteryPercent: 100,
    clockOffsetMs: 0,
    nextSeq: 1,
    events: [],
    droppedEvents: 0,
    offlineAccess: [],
    refusals: zeroRefusals(),
    pinKeys: [],
  };
}

/**
 * A deep copy, so that neither side of a storage can change what the other holds. The state is
 * JSON data (what FileLockStorage writes), so a walk of its arrays and plain objects copies all of
 * it, at a third of structuredClone's cost (the lock copies it twice for every change it saves).
 */
export function copyPersisted(state: LockPersisted): LockPersisted {
  return copyJson(state) as LockPersisted;
}

function copyJson(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    const out = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = copyJson(v[i]);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const value = copyJson((v as Record<string, unknown>)[k]);
    // An own "__proto__" (JSON.parse makes one) stays a property, as structuredClone keeps it.
    if (k === '__proto__')
      Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
    else out[k] = value;
  }
  return out;
}

/**
 * Flash kept in memory. Reuse the same object across `crash()` and `boot()` to simulate a restart:
 * it keeps a deep copy of the last save, nothing more.
 */
export class MemoryLockStorage implements LockStorage {
  #saved: LockPersisted | undefined;
  #saves = 0;

  constructor(initial?: LockPersisted) {
    if (initial) this.#saved = copyPersisted(validateLockPersisted(initial, 'the initial state'));
  }

  load(): LockPersisted | undefined {
    return this.#saved ? copyPersisted(this.#saved) : undefined;
  }

  save(state: LockPersisted): void {
    this.#saved = copyPersisted(state);
    this.#saves++;
  }

  /** How many times the lock wrote its flash (for tests of write-through). */
  get saves(): number {
    return this.#saves;
  }
}

export interface FileLockStorageOptions {
  /**
   * true (the default): every save is flushed to the disk before it returns (fsync of the file
   * and of its directory), as a real lock's flash survives pulling the battery. false: saves are
   * written behind — the state is serialised at once, the file is replaced atomically 20 ms
   * later (the saves meanwhile make one write), without fsync. A crash of the process may lose
   * the saves of its last 20 ms, a power cut the latest ones; a
   * load (by any FileLockStorage of this process) writes what is pending first. Meant for
   * benchmarks, where the simulated lock's flash writes would otherwise be the hub machine's disk
   * writes on the hub's event loop, between the lock's answer and the hub (a real lock writes its
   * own flash); the hub's own durability does not depend on it.
   */
  durable?: boolean;
}

/** How long a non-durable save may wait to be written (saves meanwhile make one write). */
export const FLUSH_AFTER_MS = 20;

/** Saves of non-durable FileLockStorages not yet written, by path (one process, one writer per path). */
const pending = new Map<string, string>();
/** The one timer that writes them; cleared by a flush, so an old timer never fires into later saves. */
let flushTimer: NodeJS.Timeout | undefined;

function writePending(path: string): void {
  const text = pending.get(path);
  if (text === undefined) return;
  pending.delete(path);
  writeFileAtomic(path, text, 0o600, { flush: false });
}

/** Write every non-durable simulated flash save not yet written (the timer's work, and a clean stop of the simulation). */
export function flushSimulatedFlash(): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  for (const path of [...pending.keys()]) {
    try {
      writePending(path);
    } catch (e) {
      // No caller to tell any more: a simulated lock's flash that cannot be written is a broken
      // test machine, not something to carry on quietly from.
      process.emitWarning(`simulated lock flash ${path} could not be written: ${(e as Error).message}`);
    }
  }
}

/** Flash in a JSON file, replaced atomically on every save (durable by default: see FileLockStorageOptions). */
export class FileLockStorage implements LockStorage {
  readonly path: string;
  readonly durable: boolean;

  constructor(path: string, options: FileLockStorageOptions = {}) {
    this.path = path;
    this.durable = options.durable ?? true;
  }

  load(): LockPersisted | undefined {
    try {
      writePending(this.path);
    } catch (e) {
      throw new HubError(
        'sim-lock.storage-unwritable',
        `simulated lock storage ${this.path}: its last save cannot be written: ${(e as Error).message}`,
        { hint: 'check the file permissions and the free space of the simulation directory' },
      );
    }
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new HubError(
        'sim-lock.storage-unreadable',
        `simulated lock storage ${this.path} cannot be read: ${(e as Error).message}`,
        { hint: 'check the file permissions, or remove the file to reset the lock to its factory state' },
      );
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw corrupt(this.path, 'it is not valid JSON');
    }
    try {
      return validateLockPersisted(value, this.path);
    } catch (e) {
      if (e instanceof HubError) throw e;
      throw corrupt(this.path, 'unexpected content');
    }
  }

  save(state: LockPersisted): void {
    const text = `${JSON.stringify(state, null, 1)}\n`;
    if (this.durable) {
      writeFileAtomic(this.path, text, 0o600);
      return;
    }
    pending.set(this.path, text);
    flushTimer ??= setTimeout(flushSimulatedFlash, FLUSH_AFTER_MS);
  }
}

function corrupt(where: string, why: string): HubError {
  return new HubError('sim-lock.storage-corrupt', `simulated lock storage ${where} is corrupt: ${why}`, {
    hint: 'restore the file from a backup, or remove it to reset the lock to its factory state (it must then be attached again)',
  });
}

const MAX_U32 = 0xffff_ffff;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isUint(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

function isCredentialId(v: unknown): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= MAX_CREDENTIAL_ID_LEN && /^[\x21-\x7e]+$/.test(v);
}

function isOneOf<T extends string>(list: readonly T[], v: unknown): v is T {
  return typeof v === 'string' && (list as readonly string[]).includes(v);
}

function exactKeys(o: Record<string, unknown>, keys: readonly string[]): boolean {
  const have = Object.keys(o);
  return have.length === keys.length && keys.every((k) => Object.hasOwn(o, k));
}

function isHeldPinKey(k: unknown, current: boolean): k is HeldPinKey {
  return (
    isRecord(k) &&
    exactKeys(k, ['version', 'key', 'until']) &&
    isUint(k.version, 1, MAX_U32) &&
    typeof k.key === 'string' &&
    /^[0-9a-f]{64}$/.test(k.key) &&
    (current ? k.until === null : isUint(k.until, 0, Number.MAX_SAFE_INTEGER))
  );
}

export function isOfflineAccessEntry(e: unknown): e is OfflineAccessEntry {
  return (
    isRecord(e) &&
    exactKeys(e, ['kind', 'credentialId', 'digest', 'windows']) &&
    (e.kind === 'pin' || e.kind === 'tag') &&
    isCredentialId(e.credentialId) &&
    typeof e.digest === 'string' &&
    /^[0-9a-f]{64}$/.test(e.digest) &&
    Array.isArray(e.windows) &&
    e.windows.length >= 1 &&
    e.windows.every(
      (w: unknown) =>
        isRecord(w) &&
        exactKeys(w, ['from', 'until']) &&
        isUint(w.from, 0, Number.MAX_SAFE_INTEGER) &&
        isUint(w.until, 0, Number.MAX_SAFE_INTEGER) &&
        (w.until as number) > (w.from as number),
    )
  );
}

function validEvent(v: unknown): v is LockEvent {
  if (!isRecord(v) || !isUint(v.seq, 1, MAX_U32) || !isUint(v.at, 0, Number.MAX_SAFE_INTEGER)) return false;
  const credential = (c: unknown) => c === null || isCredentialId(c);
  switch (v.type) {
    case 'opened':
      return (
        exactKeys(v, ['seq', 'at', 'type', 'by', 'credentialId']) &&
        isOneOf(OPEN_METHODS, v.by) &&
        credential(v.credentialId)
      );
    case 'denied':
      return (
        exactKeys(v, ['seq', 'at', 'type', 'reason', 'credentialId']) &&
        isOneOf(DENY_REASONS, v.reason) &&
        credential(v.credentialId)
      );
    case 'door':
      return exactKeys(v, ['seq', 'at', 'type', 'open']) && typeof v.open === 'boolean';
    case 'battery':
      return exactKeys(v, ['seq', 'at', 'type', 'percent']) && isUint(v.percent, 0, 100);
    case 'tamper':
      return exactKeys(v, ['seq', 'at', 'type']);
    default:
      return false;
  }
}

/**
 * Checks everything a stored state claims, field by field, and returns it typed; throws HubError
 * `sim-lock.storage-corrupt` naming the first bad field. A lock never runs on flash it cannot trust.
 */
export function validateLockPersisted(value: unknown, where: string): LockPersisted {
  const bad = (why: string) => corrupt(where, why);
  if (!isRecord(value)) throw bad('the top level is not an object');
  if (value.version !== LOCK_PERSISTED_VERSION) throw bad(`version is not ${LOCK_PERSISTED_VERSION}`);
  const v = value;
  if (!(v.boundHub === null || (typeof v.boundHub === 'string' && /^[0-9a-f]{64}$/.test(v.boundHub))))
    throw bad('boundHub is neither null nor 64 lowercase hex digits');
  if (!(v.formerHub === null || (typeof v.formerHub === 'string' && /^[0-9a-f]{64}$/.test(v.formerHub))))
    throw bad('formerHub is neither null nor 64 lowercase hex digits');
  if (!isOneOf(BOLT_STATES, v.bolt)) throw bad('bolt is not a bolt state');
  if (!isOneOf(LOCK_MODES, v.mode)) throw bad('mode is not a lock mode');
  if (typeof v.doorOpen !== 'boolean') throw bad('doorOpen is not a boolean');
  if (!isUint(v.batteryPercent, 0, 100)) throw bad('batteryPercent is not an integer 0…100');
  if (!(typeof v.clockOffsetMs === 'number' && Number.isSafeInteger(v.clockOffsetMs)))
    throw bad('clockOffsetMs is not an integer');
  if (!isUint(v.nextSeq, 1, MAX_U32 + 1)) throw bad('nextSeq is not an integer ≥ 1');
  if (!Array.isArray(v.events)) throw bad('events is not a list');
  let previous = 0;
  for (const [i, e] of v.events.entries()) {
    if (!validEvent(e)) throw bad(`events[${i}] is not a valid event`);
    if (e.seq <= previous) throw bad(`events[${i}] is out of sequence order`);
    if (e.seq >= v.nextSeq) throw bad(`events[${i}] has a sequence number not below nextSeq`);
    previous = e.seq;
  }
  if (!isUint(v.droppedEvents, 0, Number.MAX_SAFE_INTEGER)) throw bad('droppedEvents is not a count');
  if (!Array.isArray(v.offlineAccess)) throw bad('offlineAccess is not a list');
  for (const [i, e] of v.offlineAccess.entries()) {
    if (!isOfflineAccessEntry(e)) throw bad(`offlineAccess[${i}] is not a valid entry`);
  }
  if (!isRecord(v.refusals)) throw bad('refusals is not an object');
  const refusals = v.refusals;
  for (const reason of REFUSAL_REASONS) {
    if (!isUint(refusals[reason], 0, Number.MAX_SAFE_INTEGER)) throw bad(`refusals.${reason} is not a count`);
  }
  if (Object.keys(refusals).some((k) => !isOneOf(REFUSAL_REASONS, k))) throw bad('refusals has an unknown reason');
  const pinKeys = v.pinKeys ?? [];
  if (!Array.isArray(pinKeys) || pinKeys.length > 2) throw bad('pinKeys is not a list of at most 2 keys');
  for (const [i, k] of pinKeys.entries()) {
    if (!isHeldPinKey(k, i === 0)) throw bad(`pinKeys[${i}] is not a valid PIN key`);
  }
  if (pinKeys.length === 2 && pinKeys[1].version !== pinKeys[0].version - 1)
    throw bad('pinKeys[1] is not the version before pinKeys[0]');
  if (v.firmware !== undefined && !isFirmwareState(v.firmware)) throw bad('firmware is not a valid firmware state');
  return {
    version: LOCK_PERSISTED_VERSION,
    boundHub: v.boundHub as string | null,
    formerHub: v.formerHub as string | null,
    bolt: v.bolt,
    mode: v.mode,
    doorOpen: v.doorOpen,
    batteryPercent: v.batteryPercent,
    clockOffsetMs: v.clockOffsetMs,
    nextSeq: v.nextSeq,
    events: structuredClone(v.events as LockEvent[]),
    droppedEvents: v.droppedEvents,
    offlineAccess: structuredClone(v.offlineAccess as OfflineAccessEntry[]),
    refusals: Object.fromEntries(REFUSAL_REASONS.map((r) => [r, refusals[r]])) as Record<RefusalReason, number>,
    pinKeys: structuredClone(pinKeys as HeldPinKey[]),
    ...(v.firmware === undefined ? {} : { firmware: structuredClone(v.firmware as LockPersisted['firmware']) }),
  };
}

function isFirmwareState(f: unknown): boolean {
  if (!isRecord(f) || !exactKeys(f, ['version', 'staging'])) return false;
  if (typeof f.version !== 'string' || !/^\d{1,5}\.\d{1,5}\.\d{1,5}$/.test(f.version)) return false;
  const s = f.staging;
  if (s === null) return true;
  return (
    isRecord(s) &&
    exactKeys(s, ['sha256', 'manifest', 'signature', 'data']) &&
    typeof s.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(s.sha256) &&
    typeof s.manifest === 'string' &&
    /^([0-9a-f]{2}){1,128}$/.test(s.manifest) &&
    typeof s.signature === 'string' &&
    /^[0-9a-f]{128}$/.test(s.signature) &&
    typeof s.data === 'string' &&
    /^[A-Za-z0-9+/]*={0,2}$/.test(s.data)
  );
}
