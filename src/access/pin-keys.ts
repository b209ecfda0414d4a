import { createHash } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import type { Clock } from '../base/clock.js';
import { HubError } from '../base/errors.js';
import { MAX_PIN_KEY_VERSION, PIN_KEY_LEN } from '../contract/link-messages.js';
import type { Sealer } from '../crypto/seal.js';
import type { Secret } from '../crypto/secret.js';
import type { Store } from '../store/store.js';

/**
 * The site PIN keys the hub holds to hand on to its locks (docs/digital-keys.md, "PIN key
 * delivery and rotation"): the current key and, during a rotation's overlap, the previous one,
 * each with its version, sealed with the storage key in `pin_keys`. The hub never computes a
 * verifier with them: it only delivers them (PinKeyDelivery) over the sealed link.
 *
 * - The key delivered at enrollment (sealed_secrets, purpose `site.pin-key`) is version 1 until
 *   the cloud sends one in a sync; the first sync key replaces it (and, in an overlap, keeps it as
 *   the previous key).
 * - A sync's `pinKey` (already opened with the hub's private key by the caller) is installed in
 *   the sync's own transaction: a newer version becomes current, the one before it stays until
 *   the overlap end; the current version again only moves (or ends) the overlap; an older version,
 *   or the current version with another key, refuses the whole sync.
 * - After the overlap end, `expire()` deletes the previous key (the locks are then told to drop
 *   theirs).
 */

export const PIN_KEY_PURPOSE = 'site.pin-key';
const VERSIONED_PURPOSE = 'site.pin-key.version';

/** A key version the hub holds; `until`: null for the current one, else the end of its overlap (Unix ms). */
export interface PinKeyVersion {
  version: number;
  until: number | null;
}

/** A key from the cloud, opened: install with `PinKeyRing.install`. */
export interface IncomingPinKey {
  version: number;
  key: Secret;
  /** End of the overlap for the version before it (Unix ms); absent or past: no overlap. */
  overlapUntil?: number;
}

interface Row {
  version: number;
  blob: Uint8Array;
  fingerprint: string;
  until: number | null;
}

const fingerprintOf = (key: Secret) => createHash('sha256').update(key.reveal()).digest('hex').slice(0, 16);

export class PinKeyRing {
  readonly #store: Store;
  readonly #sealer: Sealer;
  readonly #clock: Clock;
  readonly #listeners = new Set<() => void>();
  #selectRows: Statement | undefined;
  #selectEnrolled: Statement | undefined;

  constructor(deps: { store: Store; sealer: Sealer; clock: Clock }) {
    this.#store = deps.store;
    this.#sealer = deps.sealer;
    this.#clock = deps.clock;
  }

  /** Called after the keys changed (install, expiry). */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The versions held, current first (at most two); none when the hub has no PIN key. */
  versions(): PinKeyVersion[] {
    const rows = this.#rows();
    if (rows.length > 0) return rows.map((r) => ({ version: r.version, until: r.until }));
    return this.#enrollmentRow() ? [{ version: 1, until: null }] : [];
  }

  /** The current version, 0 when none. */
  currentVersion(): number {
    return this.versions()[0]?.version ?? 0;
  }

  /** Whether a previous key is still accepted at `at` (Unix ms). */
  inOverlap(at: number = this.#clock.now()): boolean {
    const previous = this.versions()[1];
    return previous?.until !== null && previous !== undefined && at < previous.until;
  }

  /** The key of `version`, opened (the caller wipes it). */
  open(version: number): Secret {
    const rows = this.#rows();
    const row = rows.find((r) => r.version === version);
    try {
      if (row) return this.#sealer.open(row.blob, { purpose: VERSIONED_PURPOSE, id: String(version) });
      const enrolled = rows.length === 0 ? this.#enrollmentRow() : undefined;
      if (enrolled && version === 1) {
        return this.#sealer.open(enrolled.blob, { purpose: PIN_KEY_PURPOSE, id: enrolled.id });
      }
    } catch {
      throw new HubError('access.pin-key-store', `the stored PIN key version ${version} does not open`);
    }
    throw new HubError('access.pin-key-store', `no PIN key version ${version} is stored`);
  }

  /**
   * Installs a key from a sync; call inside the sync's transaction (a refusal throws and the whole
   * sync is rolled back). Does not wipe `incoming.key`.
   */
  install(incoming: IncomingPinKey): void {
    const { version, key } = incoming;
    if (!Number.isSafeInteger(version) || version < 1 || version > MAX_PIN_KEY_VERSION) {
      throw new HubError('sync.pin-key', `pinKey.version ${version} is not an integer 1…${MAX_PIN_KEY_VERSION}`);
    }
    if (key.length !== PIN_KEY_LEN) throw new HubError('sync.pin-key', `pinKey.key is not ${PIN_KEY_LEN} bytes`);
    const now = this.#clock.now();
    const until = incoming.overlapUntil !== undefined && incoming.overlapUntil > now ? incoming.overlapUntil : null;
    const fingerprint = fingerprintOf(key);
    this.#store.transaction(() => {
      this.#adoptEnrollmentKey(now);
      const rows = this.#rows();
      const current = rows[0];
      if (current && version < current.version) {
        throw new HubError(
          'sync.pin-key-downgrade',
          `pinKey version ${version} is below the current version ${current.version}`,
        );
      }
      if (current && version === current.version) {
        if (current.fingerprint !== fingerprint) {
          throw new HubError('sync.pin-key', `pinKey version ${version} names another key than the one held`);
        }
        // The same key again: only the overlap of the previous one moves (or ends).
        const previous = rows[1];
        if (previous && until === null) this.#delete(previous.version);
        else if (previous) this.#setUntil(previous.version, until);
        return;
      }
      for (const r of rows) {
        if (r === current && version === r.version + 1 && until !== null) this.#setUntil(r.version, until);
        else this.#delete(r.version);
      }
      const blob = this.#sealer.seal(key, { purpose: VERSIONED_PURPOSE, id: String(version) });
      this.#store.db
        .prepare('INSERT INTO pin_keys (version, blob, fingerprint, until, installed_at) VALUES (?, ?, ?, NULL, ?)')
        .run(version, blob, fingerprint, Math.floor(now));
      // The enrollment copy is superseded: the ring holds what is still valid.
      this.#store.db.prepare('DELETE FROM sealed_secrets WHERE purpose = ?').run(PIN_KEY_PURPOSE);
    });
  }

  /** Tell the listeners that the keys changed (after the sync's transaction committed). */
  changed(): void {
    for (const l of [...this.#listeners]) l();
  }

  /** Deletes a previous key whose overlap has ended; true when one was. */
  expire(at: number = this.#clock.now()): boolean {
    const previous = this.#rows()[1];
    if (!previous || previous.until === null || at < previous.until) return false;
    this.#store.transaction(() => this.#delete(previous.version));
    this.changed();
    return true;
  }

  /** The end of the running overlap (Unix ms), if there is one. */
  overlapUntil(): number | undefined {
    return this.versions()[1]?.until ?? undefined;
  }

  // Prepared once: inOverlap() reads the ring on the access decision path (a PIN with its previous-key verifier).
  #rows(): Row[] {
    this.#selectRows ??= this.#store.db.prepare(
      'SELECT version, blob, fingerprint, until FROM pin_keys ORDER BY version DESC LIMIT 2',
    );
    return this.#selectRows.all() as Row[];
  }

  #enrollmentRow(): { id: string; blob: Uint8Array } | undefined {
    this.#selectEnrolled ??= this.#store.db.prepare(
      'SELECT id, blob FROM sealed_secrets WHERE purpose = ? ORDER BY updated_at DESC LIMIT 1',
    );
    return this.#selectEnrolled.get(PIN_KEY_PURPOSE) as { id: string; blob: Uint8Array } | undefined;
  }

  /** The enrollment key as version 1 of the ring, before the first key from a sync. */
  #adoptEnrollmentKey(now: number): void {
    if (this.#rows().length > 0) return;
    const enrolled = this.#enrollmentRow();
    if (!enrolled) return;
    const key = this.#sealer.open(enrolled.blob, { purpose: PIN_KEY_PURPOSE, id: enrolled.id });
    try {
      const blob = this.#sealer.seal(key, { purpose: VERSIONED_PURPOSE, id: '1' });
      this.#store.db
        .prepare('INSERT INTO pin_keys (version, blob, fingerprint, until, installed_at) VALUES (1, ?, ?, NULL, ?)')
        .run(blob, fingerprintOf(key), Math.floor(now));
    } finally {
      key.wipe();
    }
  }

  #delete(version: number): void {
    this.#store.db.prepare('DELETE FROM pin_keys WHERE version = ?').run(version);
  }

  #setUntil(version: number, until: number | null): void {
    this.#store.db.prepare('UPDATE pin_keys SET until = ? WHERE version = ?').run(until, version);
  }
}
