import { createHash, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../base/clock.js';
import { HubError, isHubError } from '../base/errors.js';
import type { HubConfig } from '../config/schema.js';
import { readPrivateFile } from '../crypto/private-file.js';
import type { Sealer } from '../crypto/seal.js';
import { readSealed, writeSealed } from '../crypto/sealed-secrets.js';
import { Secret } from '../crypto/secret.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';

/** The sealed_secrets purpose of the hub's OTP key; the record id is the hub id. */
export const OTP_KEY_PURPOSE = 'commands.otp-key';
export const OTP_KEY_BYTES = 32;
/** 64 hex digits and a line break are 66 bytes at most; anything larger is not a key file. */
const MAX_FILE_BYTES = 128;

export interface OtpKeyDeps {
  config: Pick<HubConfig['commands'], 'otpKeyFile'>;
  /** The hub id (the CN of its certificate): the id the key is sealed under. */
  hubId: string;
  store: Store;
  sealer: Sealer;
  clock: Clock;
  log: Logger;
}

/** First 8 hex digits of the SHA-256 of the key: names a key in logs without revealing it. */
export function otpKeyFingerprint(key: Secret): string {
  return createHash('sha256').update(key.reveal()).digest('hex').slice(0, 8);
}

/**
 * The contents of an OTP key file: exactly 32 raw bytes, or 64 hex digits and an optional line
 * break. The error names the file and what is wrong with its shape, never its contents.
 */
export function parseOtpKeyFile(raw: Buffer, path: string): Secret {
  if (raw.length === OTP_KEY_BYTES) return new Secret(raw);
  const text = raw.toString('latin1').replace(/\r?\n$/, '');
  if (text.length === OTP_KEY_BYTES * 2 && /^[0-9A-Fa-f]+$/.test(text)) return new Secret(Buffer.from(text, 'hex'));
  throw new HubError(
    'commands.otp-key.invalid',
    `the OTP key file ${path} holds ${raw.length} bytes that are neither 32 raw bytes nor 64 hex digits`,
    { hint: 'install the OTP key delivered at enrollment (iqhub pki dev writes otp.key for development)' },
  );
}

/**
 * The hub's OTP key for remote commands. The key file (`commands.otpKeyFile`: mode 0600, owned by
 * the daemon's user) is imported into the store sealed under the storage key (purpose
 * `commands.otp-key`, id = hub id); without a file the stored key is used. A file whose key
 * differs from the stored one replaces it (a rotation, logged by fingerprint and recorded as a
 * security event). Undefined when there is no key at all: every remote command is then refused
 * with `no_otp_key`.
 *
 * Throws a HubError (`commands.otp-key.*`) when the file is unsafe or malformed, or when the
 * stored key does not open and there is no file to replace it: problems a restart cannot fix.
 */
export function loadOtpKey(d: OtpKeyDeps): Secret | undefined {
  const ctx = { purpose: OTP_KEY_PURPOSE, id: d.hubId };
  const db = d.store.db;
  const path = d.config.otpKeyFile;
  const raw =
    path === null
      ? undefined
      : readPrivateFile(path, {
          codePrefix: 'commands.otp-key',
          what: 'OTP key file',
          checkMode: true,
          maxBytes: MAX_FILE_BYTES,
        });
  const fromFile = raw === undefined || path === null ? undefined : parseOtpKeyFile(raw, path);
  raw?.fill(0);

  const row = readSealed(d.store, ctx);
  let stored: Secret | undefined;
  let storedProblem: string | undefined;
  if (row) {
    try {
      stored = d.sealer.open(row.blob, ctx);
    } catch (e) {
      storedProblem = isHubError(e) ? e.code : 'seal.open';
    }
  }

  if (!fromFile) {
    if (stored) {
      d.log.info(
        { fingerprint: row?.fingerprint, file: path ?? null },
        path === null ? 'OTP key: using the stored key' : 'OTP key file absent: using the stored key',
      );
      return stored;
    }
    if (storedProblem) {
      throw new HubError('commands.otp-key.sealed', `the stored OTP key for hub ${d.hubId} does not open`, {
        hint: 'the storage key changed or the database was altered: install the OTP key file again (commands.otpKeyFile)',
      });
    }
    d.log.warn(
      { file: path ?? null },
      'no OTP key: every remote command will be refused (no_otp_key) until the cloud delivers one over the uplink (otp-key) or commands.otpKeyFile names one',
    );
    return undefined;
  }

  const fingerprint = otpKeyFingerprint(fromFile);
  if (stored && sameKey(stored, fromFile)) {
    stored.wipe();
    d.log.info({ fingerprint }, 'OTP key: the key file matches the stored key');
    return fromFile;
  }
  const now = Math.floor(d.clock.now());
  const blob = d.sealer.seal(fromFile, ctx);
  d.store.transaction(() => {
    writeSealed(d.store, ctx, { blob, fingerprint }, now);
    if (row) {
      const detail = { previous: row.fingerprint, fingerprint, ...(storedProblem ? { previousUnreadable: true } : {}) };
      otpKeyEvent(db, now, 'commands.otp-key-rotated', detail);
    }
  });
  if (row) {
    d.log.warn(
      { previous: row.fingerprint, fingerprint, ...(storedProblem ? { previousUnreadable: true } : {}) },
      'OTP key rotated: the key file replaces the stored key',
    );
  } else {
    d.log.info({ fingerprint }, 'OTP key imported from the key file and stored sealed');
  }
  stored?.wipe();
  return fromFile;
}

/** A key about to be stored: its length checked, sealed under the hub's OTP key context, with its fingerprint. */
function sealOtpKey(d: Omit<OtpKeyDeps, 'config'>, key: Secret) {
  if (key.length !== OTP_KEY_BYTES) {
    throw new HubError('commands.otp-key.invalid', `an OTP key has ${OTP_KEY_BYTES} bytes, not ${key.length}`);
  }
  const ctx = { purpose: OTP_KEY_PURPOSE, id: d.hubId };
  const fingerprint = otpKeyFingerprint(key);
  const now = Math.floor(d.clock.now());
  return { ctx, fingerprint, now, blob: d.sealer.seal(key, ctx) };
}

/** A change of the OTP key as a security event (fingerprints only, never the key). */
function otpKeyEvent(db: Store['db'], now: number, kind: string, detail: object): void {
  db.prepare('INSERT INTO security_events (at, kind, lock_id, detail) VALUES (?, ?, NULL, ?)').run(
    now,
    kind,
    JSON.stringify(detail),
  );
}

function sameKey(a: Secret, b: Secret): boolean {
  return a.length === b.length && timingSafeEqual(a.reveal(), b.reveal());
}

/**
 * Store `key` as the hub's OTP key, sealed (purpose `commands.otp-key`, id = hub id): the key
 * delivered at enrollment. A different stored key is replaced and the replacement recorded as a
 * security event, as `loadOtpKey` does for a new key file. Returns the key's fingerprint.
 */
export function storeOtpKey(d: Omit<OtpKeyDeps, 'config'>, key: Secret): string {
  const { ctx, fingerprint, now, blob } = sealOtpKey(d, key);
  const db = d.store.db;
  const previous = d.store.transaction(() => {
    const row = readSealed(d.store, ctx);
    writeSealed(d.store, ctx, { blob, fingerprint }, now);
    if (row && row.fingerprint !== fingerprint) {
      otpKeyEvent(db, now, 'commands.otp-key-rotated', { previous: row.fingerprint, fingerprint });
    }
    return row?.fingerprint;
  });
  if (previous !== undefined && previous !== fingerprint) {
    d.log.warn({ previous, fingerprint }, 'OTP key rotated: the key delivered at enrollment replaces the stored key');
  } else {
    d.log.info({ fingerprint }, 'OTP key delivered at enrollment stored sealed');
  }
  return fingerprint;
}

// ── OTP key delivered over the uplink (issue 17: factory-provisioned hubs, rotation) ─────────────

/** The installed OTP key's generation: a delivered one's, or 0 (a key file, enrollment, or no key). */
export function otpKeyGeneration(store: Store): number {
  const row = store.db.prepare('SELECT generation FROM otp_key_generation WHERE id = 1').get() as
    | { generation: number }
    | undefined;
  return row?.generation ?? 0;
}

export type DeliveredKeyOutcome =
  /** Stored sealed; the key in use from now on. */
  | { kind: 'installed'; fingerprint: string; previous: string | undefined }
  /** The installed generation again with the same key (a redelivery): nothing changed. */
  | { kind: 'same'; fingerprint: string }
  /** Not above the installed generation (a replay or a downgrade): nothing changed. */
  | { kind: 'stale'; installed: number };

/**
 * Install an OTP key delivered over the uplink (src/uplink/otp-key-delivery.ts), in one
 * transaction: only a generation above the installed one replaces the key (sealed, purpose
 * `commands.otp-key`, id = hub id); the same generation with the same key is a redelivery and
 * changes nothing; anything else is refused `stale` and changes nothing. A replacement is
 * recorded as a security event (`commands.otp-key-delivered`, fingerprints only). The command
 * counter is not touched: it is the hub's, not the key's (docs/security.md).
 */
export function installDeliveredOtpKey(
  d: Omit<OtpKeyDeps, 'config'>,
  key: Secret,
  delivery: { generation: number; deliveryId: string },
): DeliveredKeyOutcome {
  const { ctx, fingerprint, now, blob } = sealOtpKey(d, key);
  const db = d.store.db;
  const outcome = d.store.transaction((): DeliveredKeyOutcome => {
    const installed = otpKeyGeneration(d.store);
    const row = readSealed(d.store, ctx);
    if (delivery.generation === installed && row) {
      let stored: Secret | undefined;
      try {
        stored = d.sealer.open(row.blob, ctx);
      } catch {
        stored = undefined;
      }
      const same = stored !== undefined && sameKey(stored, key);
      stored?.wipe();
      if (same) return { kind: 'same', fingerprint };
    }
    if (delivery.generation <= installed) return { kind: 'stale', installed };
    writeSealed(d.store, ctx, { blob, fingerprint }, now);
    db.prepare(
      `INSERT INTO otp_key_generation (id, generation, delivery_id, fingerprint, updated_at) VALUES (1, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, delivery_id = excluded.delivery_id,
         fingerprint = excluded.fingerprint, updated_at = excluded.updated_at`,
    ).run(delivery.generation, delivery.deliveryId, fingerprint, now);
    otpKeyEvent(db, now, 'commands.otp-key-delivered', {
      previous: row?.fingerprint ?? null,
      fingerprint,
      generation: delivery.generation,
    });
    return { kind: 'installed', fingerprint, previous: row?.fingerprint };
  });
  if (outcome.kind === 'installed') {
    d.log[outcome.previous ? 'warn' : 'info'](
      { previous: outcome.previous ?? null, fingerprint, generation: delivery.generation },
      outcome.previous
        ? 'OTP key rotated: the key delivered by the cloud replaces the stored key'
        : 'OTP key delivered by the cloud and stored sealed',
    );
  }
  return outcome;
}
