import { existsSync, statfsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeError } from '../base/errors.js';
import type { CertSummary, DiagCheck, DiagReport, Verdict } from '../contract/control-socket.js';
import { DB_FILE, IDENTITY_FILE, storeFileState } from '../store/files.js';

/**
 * The field technician's checks that both sides run — the daemon (src/app/daemon-diag.ts) and the CLI
 * when no daemon answers (src/cli/diag.ts): each turns facts into a verdict, a detail and what to
 * do. Nothing here reads or shows key material.
 */

const DAY_MS = 86_400_000;
export const CERT_WARN_DAYS = 30;
export const DISK_WARN_BYTES = 100 * 1024 * 1024;
export const DISK_FAIL_BYTES = 10 * 1024 * 1024;
/** An outbox whose oldest row waits longer than this is not being delivered. */
export const OUTBOX_WARN_AGE_SEC = 15 * 60;
/** Before this year the clock is surely wrong (no iq-hub existed). */
export const CLOCK_MIN_YEAR = 2024;

export const check = (name: string, verdict: Verdict, detail: string, action: string | null = null): DiagCheck => ({
  name,
  verdict,
  detail,
  action,
});

export function worst(checks: DiagCheck[]): Verdict {
  if (checks.some((c) => c.verdict === 'fail')) return 'fail';
  return checks.some((c) => c.verdict === 'warn') ? 'warn' : 'ok';
}

export function report(source: DiagReport['source'], now: number, checks: DiagCheck[]): DiagReport {
  return { source, at: new Date(now).toISOString(), verdict: worst(checks), checks };
}

const RENEW =
  '`iqhub provision csr`, have it signed, `iqhub provision install --cert FILE --ca FILE` (rotation renews it by itself while the uplink is connected)';

/** Validity of the hub certificate: warn under 30 days, fail once expired or not yet valid. */
export function certificateCheck(
  cert: CertSummary | undefined,
  now: number,
  o: { uplinkEnabled: boolean; installedFingerprint?: string | undefined; enrolling?: boolean },
): DiagCheck {
  if (!cert && o.enrolling) {
    return check(
      'certificate',
      'warn',
      'no hub certificate yet: the hub enrolls with its claim certificate (provisioning.claimCertFile)',
      'wait for the enrollment; if it does not finish, see the uplink check and the daemon log (journalctl -u iq-hub)',
    );
  }
  if (!cert) {
    return check(
      'certificate',
      o.uplinkEnabled ? 'fail' : 'warn',
      `no hub certificate is installed${o.uplinkEnabled ? '' : ' (the uplink is disabled)'}`,
      '`iqhub provision init`, have the CSR signed, then `iqhub provision install --cert FILE --ca FILE`',
    );
  }
  const until = Date.parse(cert.notAfter);
  const from = Date.parse(cert.notBefore);
  const daysLeft = Math.floor((until - now) / DAY_MS);
  const who = `CN=${cert.hubId} (${cert.source}, SHA-256 ${cert.fingerprint.slice(0, 23)}…)`;
  if (now > until) return check('certificate', 'fail', `${who} expired on ${cert.notAfter}`, RENEW);
  if (now < from) {
    return check(
      'certificate',
      'fail',
      `${who} is not valid before ${cert.notBefore}; the clock says ${new Date(now).toISOString()}`,
      'check the clock (see the clock check); a certificate valid from the future is refused by the broker',
    );
  }
  const valid = `${who} valid until ${cert.notAfter} (${daysLeft} days left)`;
  if (o.installedFingerprint && o.installedFingerprint !== cert.fingerprint) {
    return check(
      'certificate',
      'warn',
      `${valid}; a different certificate has been installed since the daemon started`,
      'restart the daemon to use it (systemctl restart iq-hub)',
    );
  }
  if (daysLeft < CERT_WARN_DAYS) {
    return check('certificate', 'warn', `${who} expires in ${daysLeft} days (${cert.notAfter})`, RENEW);
  }
  return check('certificate', 'ok', valid);
}

/** The wall clock: before the certificate's notBefore it is wrong; before 2024 it is suspicious. */
export function clockCheck(now: number, notBefore: string | undefined): DiagCheck {
  const at = new Date(now).toISOString();
  const fix = 'set the clock: enable NTP (timedatectl set-ntp true) and check the real-time clock battery';
  if (notBefore !== undefined && now < Date.parse(notBefore)) {
    return check(
      'clock',
      'fail',
      `the clock says ${at}, before the hub certificate's start (${notBefore}): the clock is wrong`,
      fix,
    );
  }
  if (new Date(now).getUTCFullYear() < CLOCK_MIN_YEAR) {
    return check('clock', 'warn', `the clock says ${at}, before ${CLOCK_MIN_YEAR}: it is probably wrong`, fix);
  }
  return check('clock', 'ok', `${at} (UTC)`);
}

/**
 * Free space on the data directory's file system: warn under 100 MB, fail under 10 MB, and fail
 * while the running store has met a full disk (`fullDetail`: "disk full at PATH: …").
 */
export function diskCheck(dataDir: string, fullDetail: string | null = null): DiagCheck {
  let dir = dataDir;
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  let free: number;
  try {
    const s = statfsSync(dir);
    free = s.bavail * s.bsize;
  } catch (e) {
    return check('disk', 'fail', `cannot measure the free space of ${dir}: ${describeError(e)}`, 'check the mount');
  }
  const mb = (n: number) => `${Math.floor(n / (1024 * 1024))} MB`;
  const detail = `${mb(free)} free on the file system of ${dir}`;
  const action = `free space on ${dir}: the store needs room to commit, and a full disk stops the hub recording events`;
  if (fullDetail) {
    return check(
      'disk',
      'fail',
      `${fullDetail} (${mb(free)} free)`,
      `${action}; the hub collects the locks' events by itself once there is room again (docs/operations.md, "Disk full")`,
    );
  }
  if (free < DISK_FAIL_BYTES) return check('disk', 'fail', detail, action);
  if (free < DISK_WARN_BYTES) return check('disk', 'warn', detail, action);
  return check('disk', 'ok', detail);
}

/** The store file without opening it (the CLI, no daemon): its integrity is checked when the daemon starts. */
export function storeFileCheck(dataDir: string): DiagCheck {
  const db = join(dataDir, DB_FILE);
  const trace = join(dataDir, IDENTITY_FILE);
  const state = storeFileState(db);
  // A store that was here and is gone or emptied: the daemon refuses to start (exit 78).
  if (state !== 'present' && existsSync(trace)) {
    return check(
      'store',
      'fail',
      `${db} ${state === 'empty' ? 'is empty (0 bytes)' : 'is missing'}, but ${trace} records a store that was here`,
      'restore hub.db from a backup made with this storage key, or `iqhub reset --yes` to start afresh (every lock must then be attached again)',
    );
  }
  if (state === 'missing')
    return check('store', 'warn', `${db} does not exist yet`, 'the daemon creates it at its first start');
  return check(
    'store',
    'ok',
    `${db} present (${Math.ceil(statSync(db).size / 1024)} KB); its integrity is checked when the daemon starts`,
  );
}
