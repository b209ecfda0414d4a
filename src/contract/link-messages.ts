/**
 * What the hub and a lock say to each other inside the sealed channel: the message types, their
 * limits and the wire code lists. Kept apart from the binary layout (link-codec.ts) so the layers
 * that only reason about messages (access, link, sim) read the vocabulary without the codec.
 */

export const MESSAGE_VERSION = 1;
export const MAX_LINK_MESSAGE_LEN = 2048;
export const MAX_OPEN_MS = 600_000;
export const MAX_EVENTS_PER_BATCH = 16;
/**
 * Events an `open` answer carries (the events that command logged, docs/link-protocol.md "Frame
 * budget"); the lock pushes any that would not fit one frame.
 */
export const MAX_EVENTS_PER_ANSWER = 4;
/**
 * The largest application message that, sealed (transport header 9, tag 16), is one ZigBee
 * link-cluster fragment (77 bytes: one 802.15.4 frame without APS fragmentation) and one BLE write
 * at an ATT MTU of 80 or more. The hub attaches an event acknowledgement to a request, and the lock
 * carries events in an answer, only while the message stays within it.
 */
export const SINGLE_FRAME_MESSAGE_LEN = 52;
export const MAX_CREDENTIAL_ID_LEN = 64;

// Wire codes are the index in each list: append only, never reorder.
export const LOCK_MODES = ['normal', 'office', 'locked'] as const;
export const BOLT_STATES = ['locked', 'unlocked'] as const;
export const OPEN_METHODS = ['pin', 'tag', 'digitalKey', 'remote', 'inside', 'mechanical'] as const;
export const DENY_REASONS = [
  'unknown-credential',
  'expired',
  'outside-schedule',
  'locked-mode',
  'bad-signature',
  'lockout',
  'revoked',
  'blocked',
  'not-yet-valid',
  'no-right',
  'not-valid',
  'bad-proof',
  'wrong-lock',
  'replayed',
  'malformed',
  /** The lock could not reach its hub and the credential is not on its offline list. */
  'hub-unreachable',
] as const;
/**
 * The hub's answer to an access request: `granted`, or why not. Every reason but `granted` is
 * also a DENY_REASONS entry, so the lock logs the hub's reason as is.
 */
export const ACCESS_REASONS = [
  'granted',
  'unknown-credential',
  'revoked',
  'blocked',
  'not-yet-valid',
  'expired',
  'no-right',
  'not-valid',
  'outside-schedule',
  'bad-signature',
  'bad-proof',
  'wrong-lock',
  'replayed',
  'lockout',
  'malformed',
] as const;
export const CREDENTIAL_KINDS = ['pin', 'tag', 'digitalKey'] as const;
/** Wire codes of a credential's kind: CREDENTIAL_KINDS, then `pinOverlap` (a PIN with its previous-key verifier). */
export const CREDENTIAL_WIRE_KINDS = [...CREDENTIAL_KINDS, 'pinOverlap'] as const;
/** Credential digests on the link: a PIN verifier (HMAC-SHA-256) or a tag hash (SHA-256). */
export const DIGEST_LEN = 32;
export const CHALLENGE_LEN = 32;
/** A phone's presentation (UTF-8 JSON) as the lock forwards it. */
export const MAX_PRESENTATION_LEN = 1800;
/** Offline-list entries per setOffline request, and windows per entry. */
export const MAX_OFFLINE_PER_REQUEST = 8;
export const MAX_OFFLINE_REMOVALS = 24;
export const MAX_OFFLINE_WINDOWS = 16;
export const LOCK_ERROR_CODES = [
  'bad-request',
  'unsupported',
  'busy',
  'jammed',
  'battery-critical',
  'not-attached',
  'internal',
] as const;
/** Request type codes are index + 1; an ok response is 0x80 | request code. */
export const OPERATIONS = [
  'open',
  'lock',
  'setMode',
  'getState',
  'getEvents',
  'ackEvents',
  'setTime',
  'detach',
  'setOffline',
  // ── site PIN key delivery (docs/link-protocol.md, "setPinKey"): type 0x0A ──
  'setPinKey',
] as const;
/**
 * The firmware-update requests (docs/link-protocol.md, "Firmware"). Their type codes are taken from
 * the top of the request range, FIRMWARE_OP_BASE + index (0x2c…0x2f), apart from OPERATIONS so
 * that list keeps growing from the bottom; an ok response is 0x80 | code, as for every request.
 */
export const FIRMWARE_OPERATIONS = ['fwStatus', 'fwBegin', 'fwBlock', 'fwFinish'] as const;
export const FIRMWARE_OP_BASE = 0x2c;
/**
 * Firmware data per fwBlock: a sealed block (bearer kind 1, frame header 9, tag 16, message header
 * 6, offset 4, length 1, data) is 77 bytes, one ZigBee link-cluster fragment inside one 802.15.4
 * frame, and one BLE write at an ATT MTU of 80 or more.
 */
export const FIRMWARE_BLOCK_LEN = 40;
/** The signed manifest as it travels in fwBegin (src/firmware/image.ts fixes its layout). */
export const MAX_FIRMWARE_MANIFEST_LEN = 128;
export const FIRMWARE_SIGNATURE_LEN = 64;
/** What a lock answers to fwBegin and fwFinish (wire value = position; append only). */
export const FIRMWARE_OUTCOMES = [
  'accepted',
  'installed',
  'forged',
  'wrong-model',
  'downgrade',
  'too-large',
  'digest-mismatch',
  'incomplete',
  'install-failed',
  'no-transfer',
  'malformed',
] as const;
export type FirmwareOutcome = (typeof FIRMWARE_OUTCOMES)[number];
/** A firmware version on the wire: three u16. */
export interface FirmwareVersion {
  major: number;
  minor: number;
  patch: number;
}
export type FirmwareOperation = (typeof FIRMWARE_OPERATIONS)[number];

/** The request type code of an operation (without the ok bit). */
export function operationCode(op: Operation): number {
  const fw = (FIRMWARE_OPERATIONS as readonly string[]).indexOf(op);
  if (fw >= 0) return FIRMWARE_OP_BASE + fw;
  const index = (OPERATIONS as readonly string[]).indexOf(op);
  return index >= 0 ? index + 1 : -1;
}

/** The operation of a request type code (without the ok bit), undefined for none. */
export function operationOfCode(code: number): Operation | undefined {
  if (code >= FIRMWARE_OP_BASE && code < FIRMWARE_OP_BASE + FIRMWARE_OPERATIONS.length)
    return FIRMWARE_OPERATIONS[code - FIRMWARE_OP_BASE];
  return OPERATIONS[code - 1];
}

export type LockMode = (typeof LOCK_MODES)[number];
export type BoltState = (typeof BOLT_STATES)[number];
export type OpenMethod = (typeof OPEN_METHODS)[number];
export type DenyReason = (typeof DENY_REASONS)[number];
export type LockErrorCode = (typeof LOCK_ERROR_CODES)[number];
export type AccessReason = (typeof ACCESS_REASONS)[number];
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

/** What a lock read at the door, as it asks the hub about it. */
export type LinkCredential =
  /**
   * `previous`: during a PIN-key overlap, the verifier of the same digits under the lock's previous
   * key (wire kind `pinOverlap`, 65 bytes); the hub admits if either names a PIN, as one attempt.
   */
  | { kind: 'pin'; verifier: Uint8Array; previous?: Uint8Array }
  | { kind: 'tag'; hash: Uint8Array }
  | { kind: 'digitalKey'; challenge: Uint8Array; presentation: Uint8Array };

/**
 * One credential a lock may accept on its own, with the absolute intervals [from, until) in which
 * it may (the hub expands schedules in the site's time zone, so the lock needs no zone rules).
 */
export interface OfflineItem {
  kind: 'pin' | 'tag';
  credentialId: string;
  digest: Uint8Array;
  windows: { from: number; until: number }[];
}
export type Operation = (typeof OPERATIONS)[number] | FirmwareOperation;

// ── site PIN key delivery and rotation (docs/link-protocol.md, "setPinKey") ──────────────────────
/** The site PIN key: 32 bytes (HMAC-SHA-256 key of PIN verifiers). */
export const PIN_KEY_LEN = 32;
/** Key versions are 1…2^32−1; 0 on the wire means "none held". */
export const MAX_PIN_KEY_VERSION = 0xffff_ffff;
/**
 * Hub → lock: hold this PIN key as the current one. A lock holding version `version − 1` keeps it
 * as its previous key until `previousUntil` (lock time, Unix ms; 0 = drop it now); any other key it
 * held is dropped. A version below the one held, or the held version with another key, is refused.
 */
export interface PinKeyInstall {
  version: number;
  key: Uint8Array;
  previousUntil: number;
}
/** What the lock holds after a setPinKey: its current and previous key versions (0 = none). */
export interface PinKeyHeld {
  version: number;
  previous: number;
}
// ── end of site PIN key delivery ─────────────────────────────────────────────────────────────────

export interface LockState {
  bolt: BoltState;
  mode: LockMode;
  doorOpen: boolean;
  batteryPercent: number;
  /** Sequence number of the lock's newest event (0 when none). */
  lastSeq: number;
  /** The lock's clock, Unix milliseconds. */
  time: number;
}

export type LockEventBody =
  | { type: 'opened'; by: OpenMethod; credentialId: string | null }
  | { type: 'denied'; reason: DenyReason; credentialId: string | null }
  | { type: 'door'; open: boolean }
  | { type: 'battery'; percent: number }
  | { type: 'tamper' };
/** `seq`: per-lock sequence number (u32); `at`: the lock's clock, Unix milliseconds. */
export type LockEvent = { seq: number; at: number } & LockEventBody;

/**
 * Every request may carry `ack`: the hub has stored the lock's events up to this sequence number
 * durably, so the lock may forget them (what `ackEvents` says, riding on a frame the hub sends
 * anyway). On the wire: the type's 0x40 bit, then ack u32 (≥ 1) after the header. Not on `ackEvents`.
 */
export type Request = RequestBodyOf & { ack?: number };

type RequestBodyOf =
  | { type: 'open'; id: number; durationMs: number }
  | { type: 'lock'; id: number }
  | { type: 'setMode'; id: number; mode: LockMode }
  | { type: 'getState'; id: number }
  | { type: 'getEvents'; id: number; sinceSeq: number }
  | { type: 'ackEvents'; id: number; uptoSeq: number }
  | { type: 'setTime'; id: number; unixMs: number }
  | { type: 'detach'; id: number }
  /**
   * Changes the lock's offline list in one step: with `reset`, the list is emptied first; then
   * `remove` (credential ids), then `upsert` (replacing an entry of the same id).
   */
  | { type: 'setOffline'; id: number; reset: boolean; remove: string[]; upsert: OfflineItem[] }
  /** Installs the site PIN key (see PinKeyInstall). */
  | ({ type: 'setPinKey'; id: number } & PinKeyInstall)
  | FirmwareRequest;

/** Firmware update (docs/link-protocol.md, "Firmware"). */
export type FirmwareRequest =
  | { type: 'fwStatus'; id: number }
  /** The signed manifest and the vendor's signature: the lock checks both before it takes a block. */
  | { type: 'fwBegin'; id: number; manifest: Uint8Array; signature: Uint8Array }
  /** Bytes at `offset` of the payload; the lock takes them only at the offset it has reached. */
  | { type: 'fwBlock'; id: number; offset: number; data: Uint8Array }
  | { type: 'fwFinish'; id: number };

export type OpResult =
  /**
   * `events`: the events this open logged, in sequence (at most MAX_EVENTS_PER_ANSWER, the last at
   * most state.lastSeq), so no push follows the answer; those that would not fit one frame are pushed.
   */
  | { op: 'open'; state: LockState; events: LockEvent[] }
  | { op: 'lock'; state: LockState }
  | { op: 'setMode'; state: LockState }
  | { op: 'getState'; state: LockState }
  | { op: 'getEvents'; events: LockEvent[]; more: boolean }
  | { op: 'ackEvents' }
  | { op: 'setTime' }
  | { op: 'detach' }
  /** `held`: entries on the list now; `capacity`: how many it can hold. */
  | { op: 'setOffline'; held: number; capacity: number; digest: Uint8Array }
  | ({ op: 'setPinKey' } & PinKeyHeld)
  | FirmwareResult;

export type FirmwareResult =
  /** `staged`: the SHA-256 of the transfer in progress (null: none); `offset`: the bytes it holds. */
  | { op: 'fwStatus'; model: string; version: FirmwareVersion; staged: Uint8Array | null; offset: number }
  /** `offset`: where the transfer resumes (0 for a new one, more for the same image begun before). */
  | { op: 'fwBegin'; outcome: FirmwareOutcome; offset: number }
  /** The offset the lock has reached, whatever the block said. */
  | { op: 'fwBlock'; offset: number }
  /** `version`: the version now running (the old one when the install failed). */
  | { op: 'fwFinish'; outcome: FirmwareOutcome; version: FirmwareVersion };

export type OpResultFor<O extends Operation> = Extract<OpResult, { op: O }>;

export type Response =
  | { type: 'ok'; id: number; result: OpResult }
  | { type: 'error'; id: number; code: LockErrorCode };
/** Pushed by the lock, unsolicited; its request id on the wire is 0. */
export type EventPush = { type: 'event'; event: LockEvent };
/** Lock → hub, with the lock's own id (never 0); the lock resends it under the same id until answered. */
export type AccessRequest = { type: 'access'; id: number; credential: LinkCredential };
/** Hub → lock: the decision. `credentialId` names what was recognised (null when nothing was). */
export type AccessAnswer = {
  type: 'accessAnswer';
  id: number;
  grant: boolean;
  reason: AccessReason;
  credentialId: string | null;
};
export type LinkMessage = Request | Response | EventPush | AccessRequest | AccessAnswer;

/**
 * Requests and access answers travel hub → lock; responses, events and access requests lock → hub.
 * Each side refuses the other direction.
 */
export function isFromLock(m: LinkMessage): m is Response | EventPush | AccessRequest {
  return m.type === 'ok' || m.type === 'error' || m.type === 'event' || m.type === 'access';
}
