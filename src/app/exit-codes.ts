import { HubError, type HubErrorCode } from '../base/errors.js';

/**
 * What the daemon's exit status tells systemd and the operator (sysexits.h where one fits).
 * docs/operations.md has the table; systemd/iq-hub.service does not restart EXIT_CONFIG.
 */
export const EXIT_OK = 0;
/** Anything not classified below: a bug or a fault nobody foresaw. systemd restarts it. */
export const EXIT_FAILED = 1;
/** A problem a restart cannot fix: the config, the store, its key, permissions (EX_CONFIG). */
export const EXIT_CONFIG = 78;
/** A problem that may pass by itself: a full disk, another daemon holding the store (EX_TEMPFAIL). */
export const EXIT_TEMPFAIL = 75;

/**
 * Permanent start-up faults by code. Families whose every member is an installation problem are
 * listed by prefix (each prefix is an area of src/base/error-codes.ts); the rest one by one, typed,
 * so a misspelt code does not compile.
 */
const PERMANENT_AREAS = [
  'config.',
  'storage-key.',
  'identity.',
  'provision.',
  'uplink.key.',
  'commands.otp-key.',
] as const;

const PERMANENT_CODES: ReadonlySet<HubErrorCode> = new Set<HubErrorCode>([
  'store.corrupt',
  'store.too-new',
  'store.not-a-database',
  'store.missing',
  'store.emptied',
  'store.key-missing',
  'store.key-mismatch',
  'store.hub-mismatch',
  'store.read-only',
  'store.not-writable',
  'seal.key',
  'seal.open',
  'seal.malformed',
  'uplink.files',
  'uplink.hub-id',
  'uplink.no-identity',
  'access.time-zone',
  'access.cloud-key',
  'access.config',
  'ble.config',
  'zigbee.config',
  'radio.no-zigbee',
  'metrics.listen',
]);

const TRANSIENT_CODES: ReadonlySet<HubErrorCode> = new Set<HubErrorCode>([
  'store.disk-full',
  'store.locked',
  'control.in-use',
  'metrics.in-use',
]);

/** errno values outside a HubError (a file the daemon could not write on its way up). */
const PERMANENT_ERRNO = new Set(['EACCES', 'EPERM', 'EROFS']);
const TRANSIENT_ERRNO = new Set(['ENOSPC', 'EDQUOT', 'EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'ENOMEM']);

/** The exit status for an error that stopped the daemon from starting. */
export function startFailureExit(e: unknown): number {
  if (e instanceof HubError) {
    if (PERMANENT_CODES.has(e.code) || PERMANENT_AREAS.some((a) => e.code.startsWith(a))) return EXIT_CONFIG;
    if (TRANSIENT_CODES.has(e.code)) return EXIT_TEMPFAIL;
    return EXIT_FAILED;
  }
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  if (errno && PERMANENT_ERRNO.has(errno)) return EXIT_CONFIG;
  if (errno && TRANSIENT_ERRNO.has(errno)) return EXIT_TEMPFAIL;
  return EXIT_FAILED;
}
