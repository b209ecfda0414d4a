import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../base/clock.js';
import { HubError } from '../base/errors.js';
import { ID_PATTERN } from '../contract/mqtt-topics.js';
import type { Secret } from '../crypto/secret.js';

/**
 * The checks behind a PIN and a tag, as the hub sees them. The hub holds no PIN digits and no
 * PIN key; it compares verifiers and hashes, and throttles wrong codes per lock.
 *
 * PIN. The site's PIN key (32 bytes) lives in the cloud and, for each lock, only in the lock's
 * secure element. When the cloud issues a PIN it shows the digits once and sends the hub only
 * `pinVerifier(pinKey, digits, siteId)`; when someone types a code, the lock computes the same
 * verifier inside its secure element and sends that. So the digits exist on the keypad and in the
 * person's head, never on the hub: not in its store, its logs, its events or its memory. A PIN
 * has few digits, so whoever holds the PIN key and a verifier can find the digits by trying them
 * all; that is why the key stays out of the hub, and why the hub throttles wrong codes.
 *
 * Tag. The lock authenticates a DESFire tag with its own keys and reports the tag's credential
 * id; the hub looks up `tagHash(id, siteId)`. The hash is an index, not a secret: what makes a tag
 * hard to copy is the lock's mutual authentication with it, not the hash.
 */

const PIN_DOMAIN = 'iq-hub pin v1\0';
const TAG_DOMAIN = 'iq-hub tag v1\0';
const SITE_ID = new RegExp(ID_PATTERN);

/** Length of a PIN verifier and of a tag hash: SHA-256. */
export const VERIFIER_BYTES = 32;
export const PIN_KEY_BYTES = 32;
export const MIN_PIN_DIGITS = 4;
export const MAX_PIN_DIGITS = 12;
const MAX_TAG_ID_BYTES = 64;
const PIN_PATTERN = new RegExp(`^[0-9]{${MIN_PIN_DIGITS},${MAX_PIN_DIGITS}}$`);

function checkSiteId(siteId: string): void {
  if (typeof siteId !== 'string' || !SITE_ID.test(siteId)) {
    // Not echoed: a caller that swapped its arguments would otherwise print the digits.
    throw new HubError('access.site-id', 'the site id is not a valid id', { hint: `a site id matches ${ID_PATTERN}` });
  }
}

/**
 * HMAC-SHA-256(pinKey, "iq-hub pin v1" ‖ 0 ‖ siteId ‖ 0 ‖ digits): what the cloud sends the hub
 * for an issued PIN, and what a lock's secure element computes for a typed code. The site id
 * binds a verifier to its site, so one copied to another site's mirror matches nothing there.
 * A malformed PIN is refused without repeating it.
 */
export function pinVerifier(pinKey: Secret, pin: string, siteId: string): Uint8Array {
  if (pinKey.length !== PIN_KEY_BYTES) {
    throw new HubError('access.pin-key', `the site PIN key must be ${PIN_KEY_BYTES} bytes`);
  }
  if (typeof pin !== 'string' || !PIN_PATTERN.test(pin)) {
    throw new HubError(
      'access.pin',
      `a PIN must be ${MIN_PIN_DIGITS} to ${MAX_PIN_DIGITS} digits (0-9) and nothing else`,
    );
  }
  checkSiteId(siteId);
  const mac = createHmac('sha256', pinKey.reveal());
  mac.update(PIN_DOMAIN, 'utf8');
  mac.update(siteId, 'utf8');
  mac.update('\0', 'utf8');
  mac.update(pin, 'utf8');
  return new Uint8Array(mac.digest());
}

/**
 * Whether two PIN verifiers are the same, in time that does not depend on where they differ.
 * Anything that is not a 32-byte verifier matches nothing (the length is public).
 */
export function samePinVerifier(a: Uint8Array, b: Uint8Array): boolean {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) return false;
  if (a.length !== VERIFIER_BYTES || b.length !== VERIFIER_BYTES) return false;
  return timingSafeEqual(a, b);
}

/** SHA-256("iq-hub tag v1" ‖ 0 ‖ siteId ‖ 0 ‖ credential id): how the mirror knows a tag. */
export function tagHash(credentialId: Uint8Array, siteId: string): Uint8Array {
  if (!(credentialId instanceof Uint8Array) || credentialId.length < 1 || credentialId.length > MAX_TAG_ID_BYTES) {
    throw new HubError('access.tag-id', `a tag credential id must be 1 to ${MAX_TAG_ID_BYTES} bytes`);
  }
  checkSiteId(siteId);
  const h = createHash('sha256');
  h.update(TAG_DOMAIN, 'utf8');
  h.update(siteId, 'utf8');
  h.update('\0', 'utf8');
  h.update(credentialId);
  return new Uint8Array(h.digest());
}

export interface PinThrottleOptions {
  /** Wrong codes in a row at one lock before its keypad is disabled (Matter's WrongCodeEntryLimit). */
  wrongCodeLimit?: number;
  /** How long the keypad stays disabled (Matter's UserCodeTemporaryDisableTime), in ms. */
  disableMs?: number;
}

export const DEFAULT_WRONG_CODE_LIMIT = 5;
export const DEFAULT_PIN_DISABLE_MS = 60_000;

export type PinThrottleState =
  | { disabled: false; wrongCodes: number }
  | {
      disabled: true;
      /** Time left before codes are checked again at this lock. */
      remainingMs: number;
      /** True on the wrong code that began this disable: the caller records it once. */
      began: boolean;
    };

interface LockCount {
  wrong: number;
  /** Monotonic time the disable ends; undefined while not disabled. */
  until: number | undefined;
}

/**
 * Wrong-code throttling per lock, like Matter's door lock: after `wrongCodeLimit` wrong codes in a
 * row the lock's PIN entry is disabled for `disableMs`; during that time every code is refused
 * unchecked (a right one too), and further tries do not extend it. When it ends the count starts
 * again from zero; a right code also resets it. Runs on the injected clock's monotonic time, so a
 * wall-clock step neither ends nor prolongs a disable.
 *
 * Usage: `check(lock)` before comparing verifiers; then `wrong(lock)` or `right(lock)`.
 */
export class PinThrottle {
  readonly #clock: Clock;
  readonly #limit: number;
  readonly #disableMs: number;
  readonly #locks = new Map<string, LockCount>();

  constructor(clock: Clock, options: PinThrottleOptions = {}) {
    const limit = options.wrongCodeLimit ?? DEFAULT_WRONG_CODE_LIMIT;
    const disableMs = options.disableMs ?? DEFAULT_PIN_DISABLE_MS;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new HubError('access.pin-throttle', `wrongCodeLimit must be a positive integer, got ${limit}`);
    }
    if (!Number.isFinite(disableMs) || disableMs < 0) {
      throw new HubError('access.pin-throttle', `disableMs must be a non-negative number of ms, got ${disableMs}`);
    }
    this.#clock = clock;
    this.#limit = limit;
    this.#disableMs = disableMs;
  }

  /** Whether a code typed at this lock may be checked now. */
  check(lockId: string): PinThrottleState {
    const entry = this.#current(lockId);
    if (entry?.until !== undefined) {
      return { disabled: true, remainingMs: entry.until - this.#clock.monotonic(), began: false };
    }
    return { disabled: false, wrongCodes: entry?.wrong ?? 0 };
  }

  /** Record a wrong code; returns the state after it. While disabled it changes nothing. */
  wrong(lockId: string): PinThrottleState {
    const entry = this.#current(lockId) ?? { wrong: 0, until: undefined };
    if (entry.until !== undefined) return this.check(lockId);
    entry.wrong += 1;
    if (entry.wrong >= this.#limit) {
      entry.until = this.#clock.monotonic() + this.#disableMs;
      this.#locks.set(lockId, entry);
      return { disabled: true, remainingMs: this.#disableMs, began: true };
    }
    this.#locks.set(lockId, entry);
    return { disabled: false, wrongCodes: entry.wrong };
  }

  /** Record a right code: the count of wrong ones starts again. (A right code is not checked while disabled.) */
  right(lockId: string): void {
    const entry = this.#current(lockId);
    if (entry && entry.until === undefined) this.#locks.delete(lockId);
  }

  /** The entry for a lock, after forgetting a disable that has ended. */
  #current(lockId: string): LockCount | undefined {
    const entry = this.#locks.get(lockId);
    if (entry?.until !== undefined && this.#clock.monotonic() >= entry.until) {
      this.#locks.delete(lockId);
      return undefined;
    }
    return entry;
  }
}
