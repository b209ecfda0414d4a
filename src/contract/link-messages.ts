/**
 * What the hub and a lock say to each other inside the sealed channel: the message types, their
 * limits and the wire code lists. Kept apart from the binary layout (link-codec.ts) so the layers
 * that only reason about messages (access, link, sim) read the vocabulary without the codec.
 */

export const MESSAGE_VERSION = 1;
export const MAX_LINK_MESSAGE_LEN = 2048;
export const MAX_OPEN_MS = 600_000;
export const MAX_EVENTS_PER_BATCH = 16;
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
export const MAX_OFFLINE_PER_REQUEST = 4;
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
export type Operation = (typeof OPERATIONS)[number];

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

export type Request =
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
  | ({ type: 'setPinKey'; id: number } & PinKeyInstall);

export type OpResult =
  | { op: 'open'; state: LockState }
  | { op: 'lock'; state: LockState }
  | { op: 'setMode'; state: LockState }
  | { op: 'getState'; state: LockState }
  | { op: 'getEvents'; events: LockEvent[]; more: boolean }
  | { op: 'ackEvents' }
  | { op: 'setTime' }
  | { op: 'detach' }
  /** `held`: entries on the list now; `capacity`: how many it can hold. */
  | { op: 'setOffline'; held: number; capacity: number; digest: Uint8Array }
  | ({ op: 'setPinKey' } & PinKeyHeld);
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
