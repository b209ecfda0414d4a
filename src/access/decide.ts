import type { KeyObject } from 'node:crypto';
import type { Clock } from '../base/clock.js';
import { type AccessReason, MAX_PRESENTATION_LEN } from '../contract/link-messages.js';
import type { Logger } from '../log/logger.js';
import { PinThrottle, type PinThrottleOptions, VERIFIER_BYTES } from './credentials.js';
import { CHALLENGE_BYTES, type DigitalKeyDenyReason, VerifiedKeys, verifyPresentation } from './digital-key.js';
import type { AccessMirror, DenyReason as MirrorDenyReason } from './mirror.js';
import { checkTimeZone } from './schedule.js';

/**
 * The hub's answer to "may this credential open this lock now?" — `verifyAccess`, from the mirror
 * only, so it works the same while the cloud is away. Order of checks, per credential kind:
 *
 * - PIN: the lock's wrong-code throttle (a disabled keypad is refused unchecked) → verifier lookup
 *   (unknown: a wrong code, counted) → the user's rights at this lock and time.
 * - Tag: hash lookup (a deleted tag is unknown at once) → the user's rights.
 * - Digital key: a challenge this lock already used is refused (`replayed`) → the presentation
 *   (form, cloud signature, phone proof over this challenge and lock, revocation, validity, lock
 *   list: `verifyPresentation`) → the key must be in the mirror and not revoked or past the
 *   mirror's expiry → the user's rights, through the key's groups when it names groups.
 *
 * A decision names the credential by id, never by its material: no verifier, hash, key or proof
 * reaches an answer, an event or a log line.
 */

// The reasons are the link's (src/contract/link-messages.ts): a decision travels to the lock as is.
export { ACCESS_REASONS, type AccessReason } from '../contract/link-messages.js';

export type CredentialKind = 'pin' | 'tag' | 'digitalKey';

/** What the lock read at the door. Untrusted: every field is checked. */
export type PresentedCredential =
  /** `previous`: the same digits under the lock's previous PIN key, during a key overlap only. */
  | { kind: 'pin'; verifier: Uint8Array; previous?: Uint8Array }
  | { kind: 'tag'; hash: Uint8Array }
  /** `presentation`: the phone's answer as bytes (UTF-8 JSON `{signedKey, proof}`), `challenge`: the lock's. */
  | { kind: 'digitalKey'; challenge: Uint8Array; presentation: Uint8Array };

export interface AccessDecision {
  grant: boolean;
  reason: AccessReason;
  kind: CredentialKind;
  /** The credential's id in the mirror (PIN, tag or key id), when the credential was recognised. */
  credentialId: string | null;
  userId: string | null;
  /** For a grant: the access group that admitted it. */
  groupId?: string;
}

export interface AccessDeciderDeps {
  mirror: AccessMirror;
  clock: Clock;
  /** The site's IANA time zone: schedules are read in it. */
  timeZone: string;
  /** The cloud's Ed25519 key for digital keys; without one every digital key is refused (`bad-signature`). */
  cloudPublicKey: KeyObject | undefined;
  log: Logger;
  throttle?: PinThrottleOptions;
  /**
   * Whether a PIN-key overlap runs at `at` (src/access/pin-keys.ts): only then is a PIN's
   * `previous` verifier looked up. Absent: never.
   */
  pinOverlap?: (at: number) => boolean;
  /** Signed keys remembered as verified (VerifiedKeys; default VERIFIED_KEYS_DEFAULT); emptied at every sync. */
  verifiedKeys?: number;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Challenges remembered per lock to refuse a replayed presentation (the oldest is forgotten first). */
const CHALLENGES_PER_LOCK = 1024;

const FROM_MIRROR: Record<MirrorDenyReason, AccessReason> = {
  'user.unknown': 'unknown-credential',
  'user.blocked': 'blocked',
  'user.not-yet-valid': 'not-yet-valid',
  'user.expired': 'expired',
  'lock.no-right': 'no-right',
  'group.not-valid': 'not-valid',
  'group.outside-schedule': 'outside-schedule',
};

const FROM_KEY: Record<DigitalKeyDenyReason, AccessReason> = {
  malformed: 'malformed',
  'bad-signature': 'bad-signature',
  'bad-proof': 'bad-proof',
  revoked: 'revoked',
  'not-yet-valid': 'not-yet-valid',
  expired: 'expired',
  'wrong-lock': 'wrong-lock',
};

export interface DecisionCounts {
  granted: number;
  denied: Partial<Record<AccessReason, number>>;
}

export class AccessDecider {
  readonly #d: AccessDeciderDeps;
  readonly #throttle: PinThrottle;
  readonly #challenges = new Map<string, Set<string>>();
  readonly #counts: DecisionCounts = { granted: 0, denied: {} };
  readonly #verified: VerifiedKeys;
  /** The mirror's `changes()` when #verified was last emptied. */
  #verifiedAt = -1;

  constructor(deps: AccessDeciderDeps) {
    checkTimeZone(deps.timeZone);
    this.#d = deps;
    this.#throttle = new PinThrottle(deps.clock, deps.throttle);
    this.#verified = new VerifiedKeys(deps.verifiedKeys);
  }

  /** The verified-key cache's hits, misses and size (tests and benches). */
  verifiedKeys(): { hits: number; misses: number; size: number } {
    return this.#verified.stats();
  }

  counts(): DecisionCounts {
    return { granted: this.#counts.granted, denied: { ...this.#counts.denied } };
  }

  /** The decision for one presentation at `lockId`, at `at` (unix ms, the hub's clock by default). */
  verifyAccess(lockId: string, credential: PresentedCredential, at: number = this.#d.clock.now()): AccessDecision {
    const decision = this.#decide(lockId, credential, at);
    if (decision.grant) this.#counts.granted++;
    else this.#counts.denied[decision.reason] = (this.#counts.denied[decision.reason] ?? 0) + 1;
    this.#d.log.debug(
      {
        lockId,
        kind: decision.kind,
        credentialId: decision.credentialId,
        userId: decision.userId,
        grant: decision.grant,
        reason: decision.reason,
      },
      'access decision',
    );
    return decision;
  }

  #decide(lockId: string, c: PresentedCredential, at: number): AccessDecision {
    const kind = (c as { kind?: unknown }).kind;
    if (kind === 'pin') return this.#pin(lockId, c as Extract<PresentedCredential, { kind: 'pin' }>, at);
    if (kind === 'tag') return this.#tag(lockId, c as Extract<PresentedCredential, { kind: 'tag' }>, at);
    if (kind === 'digitalKey') {
      return this.#key(lockId, c as Extract<PresentedCredential, { kind: 'digitalKey' }>, at);
    }
    return deny('pin', 'malformed');
  }

  #pin(lockId: string, c: { verifier: Uint8Array; previous?: Uint8Array }, at: number): AccessDecision {
    if (this.#throttle.check(lockId).disabled) return deny('pin', 'lockout');
    const isVerifier = (v: unknown) => v instanceof Uint8Array && v.length === VERIFIER_BYTES;
    if (!isVerifier(c.verifier)) return deny('pin', 'malformed');
    if (c.previous !== undefined && !isVerifier(c.previous)) return deny('pin', 'malformed');
    // One typed code, one attempt: the previous key's verifier counts only during an overlap, and
    // a miss under both keys is one wrong code for the throttle.
    const previous = c.previous !== undefined && this.#d.pinOverlap?.(at) === true ? c.previous : undefined;
    const match =
      this.#d.mirror.userByPinVerifier(c.verifier) ??
      (previous === undefined ? undefined : this.#d.mirror.userByPinVerifier(previous));
    if (!match) {
      const state = this.#throttle.wrong(lockId);
      if (state.disabled && state.began) {
        this.#d.log.warn({ lockId, disabledMs: state.remainingMs }, 'too many wrong PINs: keypad disabled');
      }
      return deny('pin', 'unknown-credential');
    }
    this.#throttle.right(lockId);
    return this.#rights('pin', lockId, match.credentialId, match.user.id, at);
  }

  #tag(lockId: string, c: { hash: Uint8Array }, at: number): AccessDecision {
    if (!(c.hash instanceof Uint8Array) || c.hash.length !== VERIFIER_BYTES) return deny('tag', 'malformed');
    const match = this.#d.mirror.userByTagHash(c.hash);
    if (!match) return deny('tag', 'unknown-credential');
    return this.#rights('tag', lockId, match.credentialId, match.user.id, at);
  }

  #key(lockId: string, c: { challenge: Uint8Array; presentation: Uint8Array }, at: number): AccessDecision {
    const { challenge } = c;
    if (!(challenge instanceof Uint8Array) || challenge.length !== CHALLENGE_BYTES) {
      return deny('digitalKey', 'malformed');
    }
    if (!(c.presentation instanceof Uint8Array) || c.presentation.length > MAX_PRESENTATION_LEN) {
      return deny('digitalKey', 'malformed');
    }
    const cloudPublicKey = this.#d.cloudPublicKey;
    if (!cloudPublicKey) return deny('digitalKey', 'bad-signature');
    // A challenge is used once per lock, whatever the outcome: a recorded exchange is worth nothing.
    if (!this.#useChallenge(lockId, challenge)) return deny('digitalKey', 'replayed');
    let presentation: unknown;
    try {
      presentation = JSON.parse(UTF8.decode(c.presentation));
    } catch {
      return deny('digitalKey', 'malformed');
    }
    const mirror = this.#d.mirror;
    // Every sync (revocations come with syncs) empties the verified keys: belt and braces, since
    // they hold only what a signature proves, and revocation is read from the mirror below.
    if (mirror.changes() !== this.#verifiedAt) {
      this.#verified.clear();
      this.#verifiedAt = mirror.changes();
    }
    let keyGroups: ReadonlySet<string> | undefined;
    // The key's mirror row, read once for the revocation check and the checks after it.
    let row: { keyId: string; value: ReturnType<AccessMirror['digitalKey']> } | undefined;
    const mirrorKey = (keyId: string) => {
      if (row?.keyId !== keyId) row = { keyId, value: mirror.digitalKey(keyId) };
      return row.value;
    };
    const verdict = verifyPresentation({
      presentation,
      challenge,
      lockId,
      at,
      cloudPublicKey,
      revoked: (keyId) => mirrorKey(keyId)?.revoked ?? false,
      lockAllowed: (body) => {
        if (body.groupIds === undefined) return true;
        keyGroups = new Set(body.groupIds);
        return mirror.groupIdsForLock(body.userId, lockId).some((id) => keyGroups?.has(id));
      },
      verified: this.#verified,
    });
    if (!verdict.ok) return deny('digitalKey', FROM_KEY[verdict.reason]);
    const known = mirrorKey(verdict.keyId);
    // The mirror is the revocation list: a key it does not hold (deleted, or not yet synced) opens nothing.
    if (!known || known.userId !== verdict.userId) {
      return { ...deny('digitalKey', 'unknown-credential'), credentialId: verdict.keyId };
    }
    if (known.revoked) return { ...deny('digitalKey', 'revoked'), credentialId: verdict.keyId, userId: known.userId };
    if (at >= known.expiresAt) {
      return { ...deny('digitalKey', 'expired'), credentialId: verdict.keyId, userId: known.userId };
    }
    return this.#rights('digitalKey', lockId, verdict.keyId, verdict.userId, at, keyGroups);
  }

  #rights(
    kind: CredentialKind,
    lockId: string,
    credentialId: string,
    userId: string,
    at: number,
    onlyGroups?: ReadonlySet<string>,
  ): AccessDecision {
    const use = this.#d.mirror.userMayUse(userId, lockId, at, this.#d.timeZone, onlyGroups);
    if (!use.allowed) return { grant: false, reason: FROM_MIRROR[use.reason], kind, credentialId, userId };
    return { grant: true, reason: 'granted', kind, credentialId, userId, groupId: use.groupId };
  }

  /** Records the challenge for this lock; false when it was seen already. Oldest forgotten first. */
  #useChallenge(lockId: string, challenge: Uint8Array): boolean {
    const text = Buffer.from(challenge).toString('hex');
    let seen = this.#challenges.get(lockId);
    if (!seen) {
      seen = new Set();
      this.#challenges.set(lockId, seen);
    }
    if (seen.has(text)) return false;
    seen.add(text);
    if (seen.size > CHALLENGES_PER_LOCK) {
      const oldest = seen.values().next();
      if (!oldest.done) seen.delete(oldest.value);
    }
    return true;
  }
}

function deny(kind: CredentialKind, reason: AccessReason): AccessDecision {
  return { grant: false, reason, kind, credentialId: null, userId: null };
}
