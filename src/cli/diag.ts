import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Bearer } from '../../hal/bearer.js';
import { certificateInfo, parseCertificates } from '../../provisioning/certificate.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import { loadIdentity, readInstalledCertificate } from '../../provisioning/identity-load.js';
import { describeError, HubError } from '../base/errors.js';
import type { RefusalCode, VerifierStats } from '../commands/verifier.js';
import { type LoadedConfig, loadConfig } from '../config/load.js';
import type { HubConfig } from '../config/schema.js';
import { SOCKET_NAME } from '../contract/control-socket.js';
import { callDaemon } from '../control-socket/socket-client.js';
import type { Outbox } from '../events/outbox.js';
import type { LinkManager } from '../link/manager.js';
import { DB_FILE, type Store } from '../store/store.js';
import { loadUplinkFiles, type UplinkService } from '../uplink/service.js';
import { refusedSummary } from './format.js';

/**
 * `iqhub diag`: the field technician's checks, each with a verdict and what to do. The daemon
 * computes them (the `diag` control method) when it runs; otherwise the CLI runs the checks that
 * need no daemon and says the daemon is down. Nothing here reads or shows key material.
 */

export type Verdict = 'ok' | 'warn' | 'fail';

export interface DiagCheck {
  name: string;
  verdict: Verdict;
  detail: string;
  /** What to do about it; null when nothing needs doing. */
  action: string | null;
}

export interface DiagReport {
  /** Who ran the checks: the running daemon, or the CLI alone. */
  source: 'daemon' | 'local';
  at: string;
  /** The worst verdict. */
  verdict: Verdict;
  checks: DiagCheck[];
}

/** The certificate the uplink uses (or would use). */
export interface CertSummary {
  hubId: string;
  notBefore: string;
  notAfter: string;
  fingerprint: string;
  /** Where it is: a file path. */
  source: string;
}

const DAY_MS = 86_400_000;
export const CERT_WARN_DAYS = 30;
export const DISK_WARN_BYTES = 100 * 1024 * 1024;
export const DISK_FAIL_BYTES = 10 * 1024 * 1024;
/** An outbox whose oldest row waits longer than this is not being delivered. */
export const OUTBOX_WARN_AGE_SEC = 15 * 60;
/** Before this year the clock is surely wrong (no iq-hub existed). */
export const CLOCK_MIN_YEAR = 2024;

const check = (name: string, verdict: Verdict, detail: string, action: string | null = null): DiagCheck => ({
  name,
  verdict,
  detail,
  action,
});

const optional = (c: DiagCheck | undefined): DiagCheck[] => (c ? [c] : []);

export function worst(checks: DiagCheck[]): Verdict {
  if (checks.some((c) => c.verdict === 'fail')) return 'fail';
  return checks.some((c) => c.verdict === 'warn') ? 'warn' : 'ok';
}

function report(source: DiagReport['source'], now: number, checks: DiagCheck[]): DiagReport {
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

/** Free space on the data directory's file system: warn under 100 MB, fail under 10 MB. */
export function diskCheck(dataDir: string): DiagCheck {
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
  if (free < DISK_FAIL_BYTES) return check('disk', 'fail', detail, action);
  if (free < DISK_WARN_BYTES) return check('disk', 'warn', detail, action);
  return check('disk', 'ok', detail);
}

/** PRAGMA quick_check on the open store. */
export function storeCheck(store: Store): DiagCheck {
  const restore = 'stop the daemon, keep a copy of the data directory and restore the last backup (docs/operations.md)';
  try {
    const rows = store.db.pragma('quick_check', { simple: false }) as { quick_check: string }[];
    if (rows.length === 1 && rows[0]?.quick_check === 'ok') {
      return check('store', 'ok', `quick_check ok, schema v${store.info.schemaVersion} (${store.info.path})`);
    }
    const problems = rows
      .slice(0, 3)
      .map((r) => r.quick_check)
      .join('; ');
    return check('store', 'fail', `quick_check found problems in ${store.info.path}: ${problems}`, restore);
  } catch (e) {
    return check('store', 'fail', `quick_check failed on ${store.info.path}: ${describeError(e)}`, restore);
  }
}

export function outboxCheck(outbox: Outbox | undefined, maxBytes: number): DiagCheck {
  if (!outbox) return check('outbox', 'ok', 'no outbox: the uplink is disabled');
  const d = outbox.depth();
  const age = outbox.oldestAgeSec();
  const dropped = outbox.dropped();
  const detail =
    `${d.events} events and ${d.messages} messages queued (${Math.ceil(d.bytes / 1024)} KB of ${Math.floor(maxBytes / (1024 * 1024))} MB)` +
    `, oldest ${age === null ? '-' : `${age} s`}; ${dropped} dropped under the size limit ever`;
  const action =
    'the uplink is not delivering: see the uplink check; events are kept until the broker acknowledges them';
  if (age !== null && age > OUTBOX_WARN_AGE_SEC) return check('outbox', 'warn', detail, action);
  if (d.bytes > 0.8 * maxBytes) return check('outbox', 'warn', detail, action);
  return check('outbox', 'ok', detail);
}

export function locksCheck(link: LinkManager | undefined): DiagCheck {
  if (!link) return check('locks', 'ok', 'no radio: no locks');
  const locks = link.list();
  const quarantined = locks.filter((l) => l.state === 'quarantined');
  const detail = `${locks.length} locks, ${locks.filter((l) => l.connected).length} connected, ${quarantined.length} quarantined`;
  if (quarantined.length === 0) return check('locks', 'ok', detail);
  return check(
    'locks',
    'warn',
    `${detail}: ${quarantined.map((l) => `${l.lockId} (${l.quarantineReason ?? '?'})`).join(', ')}`,
    '`iqhub security` says why; then `iqhub lock ID --check`, or detach (or forget) the lock and attach it again',
  );
}

export function radiosCheck(bearers: Bearer[]): DiagCheck {
  if (bearers.length === 0) {
    return check(
      'radios',
      'warn',
      'no radio adapter is configured: this hub cannot reach locks',
      'configure the radio of this hub (simulation.enabled only for demos and tests)',
    );
  }
  const states = bearers.map((b) => ({ kind: b.kind, st: b.state() }));
  const detail = states
    .map(({ kind, st }) => `${kind}: ${st.status}${st.status === 'unavailable' ? ` (${st.reason})` : ''}`)
    .join(', ');
  if (states.some(({ st }) => st.status === 'unavailable' || st.status === 'stopped')) {
    return check(
      'radios',
      'fail',
      detail,
      'check the adapter: plugged in, not blocked (rfkill list), its device node allowed for the daemon; the hub reconnects by itself once it is back',
    );
  }
  if (states.some(({ st }) => st.status === 'starting')) {
    return check('radios', 'warn', detail, 'wait a few seconds and run diag again');
  }
  return check('radios', 'ok', detail);
}

export function uplinkCheck(
  config: HubConfig['uplink'],
  uplink: UplinkService | undefined,
  uptimeSec: number,
): DiagCheck {
  if (!config.enabled || !uplink) {
    return check(
      'uplink',
      'warn',
      'disabled (uplink.enabled is false): nothing reaches the cloud and no remote command can arrive',
      'if this hub should report to its cloud, set uplink.enabled and uplink.url (docs/configuration.md)',
    );
  }
  const s = uplink.status();
  const detail = `${config.url ?? '?'}: ${s.detail ?? s.state}`;
  if (s.state === 'running') return check('uplink', 'ok', detail);
  const why =
    'check the network and the broker address (uplink.url), then the certificate (iqhub cert); the daemon log names the last connection error (journalctl -u iq-hub)';
  if (/\bconnecting\b/.test(s.detail ?? '') && uptimeSec < 30) {
    return check('uplink', 'warn', `${detail} (just started)`, 'wait a few seconds and run diag again');
  }
  return check('uplink', 'fail', detail, why);
}

/**
 * Remote commands since the daemon started (the verifier's counts; undefined: no uplink yet, no
 * check). A lockout running, or refusals that point at a wrong key or a wrong clock, warn with
 * what to look at; anything else is ok.
 */
export function commandsCheck(stats: VerifierStats | undefined): DiagCheck | undefined {
  if (!stats) return undefined;
  const detail = `since start: ${stats.accepted} accepted, ${refusedSummary(stats.refused)}`;
  const count = (code: RefusalCode) => stats.refused[code] ?? 0;
  const causes: string[] = [];
  if (count('otp_mismatch') > 0) {
    causes.push(
      "otp_mismatch: the cloud signs with another OTP key than this hub's (after a re-enrolment or a new commands.otpKeyFile?), or someone sends forged commands",
    );
  }
  if (count('expired') + count('not_yet_valid') > 0) {
    causes.push("expired / not_yet_valid: the hub's clock or the cloud's is off (see the clock check; NTP)");
  }
  if (count('no_otp_key') > 0) causes.push('no_otp_key: install the OTP key (commands.otpKeyFile, or enrol the hub)');
  const look = `iqhub commands shows the counts and the newest commands; ${causes.join('; ') || 'iqhub security has the lockout'}`;
  if (stats.lockedOutUntil) {
    return check(
      'commands',
      'warn',
      `${detail}; LOCKED OUT until ${stats.lockedOutUntil}: every remote command is refused until then`,
      look,
    );
  }
  if (causes.length > 0) return check('commands', 'warn', detail, look);
  return check('commands', 'ok', detail);
}

export interface DaemonDiagContext {
  config: HubConfig;
  configSource: string | null;
  now: number;
  uptimeSec: number;
  version: string;
  store: Store;
  bearers: Bearer[];
  link: LinkManager | undefined;
  uplink: UplinkService | undefined;
  outbox: Outbox | undefined;
  /** The certificate the uplink loaded at start, if it is enabled. */
  certificate: CertSummary | undefined;
}

/** Every check, as the running daemon sees it (the `diag` control method). */
export function daemonDiag(c: DaemonDiagContext): DiagReport {
  const { config, now } = c;
  let installed: ReturnType<typeof readInstalledCertificate>;
  let installedError: string | undefined;
  try {
    installed = readInstalledCertificate(config.dataDir, now);
  } catch (e) {
    installedError = describeError(e);
  }
  const usesIdentity = config.uplink.enabled && config.uplink.certFile === null;
  const installedSummary: CertSummary | undefined = installed && {
    hubId: installed.hubId,
    notBefore: installed.notBefore,
    notAfter: installed.notAfter,
    fingerprint: installed.fingerprint,
    source: installed.path,
  };
  // The certificate in use: the one loaded at start, unless the uplink has switched since
  // (enrollment or rotation install it in the identity directory first).
  const live = c.uplink?.identity;
  let cert = c.certificate ?? installedSummary;
  if (live && live.fingerprint !== cert?.fingerprint && installedSummary?.fingerprint === live.fingerprint) {
    cert = installedSummary;
  }
  const certCheck = certificateCheck(cert, now, {
    uplinkEnabled: config.uplink.enabled,
    installedFingerprint: usesIdentity ? installed?.fingerprint : undefined,
    enrolling: usesIdentity && !cert && config.provisioning.claimCertFile !== null,
  });
  if (installedError && !c.certificate) {
    certCheck.verdict = 'fail';
    certCheck.detail = installedError;
  }
  return report('daemon', now, [
    check('daemon', 'ok', `running: iq-hub ${c.version}, pid ${process.pid}, up ${c.uptimeSec} s`),
    check('config', 'ok', c.configSource ?? '(defaults)'),
    radiosCheck(c.bearers),
    uplinkCheck(config.uplink, c.uplink, c.uptimeSec),
    certCheck,
    clockCheck(now, cert?.notBefore),
    diskCheck(config.dataDir),
    storeCheck(c.store),
    outboxCheck(c.outbox, config.uplink.outboxMaxMB * 1024 * 1024),
    locksCheck(c.link),
    ...optional(commandsCheck(c.uplink?.commandStats())),
  ]);
}

/** The checks that need no daemon: config, identity, certificate, clock, disk, store file. */
export function localDiag(o: {
  loaded: LoadedConfig | undefined;
  configError?: unknown;
  daemon: DiagCheck;
}): DiagReport {
  const now = Date.now();
  if (!o.loaded) {
    const err = o.configError;
    return report('local', now, [
      o.daemon,
      check(
        'config',
        'fail',
        describeError(err).split('\n  → ')[0] ?? 'invalid',
        err instanceof HubError && err.hint ? err.hint : 'fix the configuration (docs/configuration.md)',
      ),
    ]);
  }
  const { config, source } = o.loaded;
  const checks: DiagCheck[] = [o.daemon, check('config', 'ok', source ?? '(defaults)')];
  // The identity as the daemon would load it at start (the configured files, or the installed identity).
  let cert: CertSummary | undefined;
  try {
    if (config.uplink.enabled) {
      const files = loadUplinkFiles(config.uplink, config.dataDir);
      const x = new X509Certificate(files.cert);
      cert = {
        hubId: files.identity.hubId,
        notBefore: new Date(Date.parse(x.validFrom)).toISOString(),
        notAfter: files.identity.notAfter,
        fingerprint: files.identity.fingerprint,
        source: config.uplink.certFile ?? identityPaths(config.dataDir).cert,
      };
      checks.push(check('identity', 'ok', `key and certificate of ${cert.hubId} load and belong together`));
    } else {
      const id = loadIdentity(config.dataDir);
      if (id) {
        cert = {
          hubId: id.hubId,
          notBefore: id.notBefore,
          notAfter: id.notAfter,
          fingerprint: id.fingerprint,
          source: id.paths.cert,
        };
        checks.push(check('identity', 'ok', `key and certificate of ${id.hubId} load and belong together`));
      } else {
        checks.push(
          check(
            'identity',
            'warn',
            'no hub certificate is installed (the uplink is disabled)',
            '`iqhub provision init`, have the CSR signed, then `iqhub provision install --cert FILE --ca FILE`',
          ),
        );
      }
    }
  } catch (e) {
    checks.push(
      check(
        'identity',
        'fail',
        e instanceof HubError ? e.message : describeError(e),
        e instanceof HubError && e.hint ? e.hint : 'see docs/operations.md',
      ),
    );
  }
  // Even when the key cannot be used, the certificate alone says how long it is valid.
  cert ??= certificateOnly(config, now);
  checks.push(certificateCheck(cert, now, { uplinkEnabled: config.uplink.enabled }));
  checks.push(clockCheck(now, cert?.notBefore));
  checks.push(diskCheck(config.dataDir));
  const db = join(config.dataDir, DB_FILE);
  if (existsSync(db)) {
    checks.push(
      check(
        'store',
        'ok',
        `${db} present (${Math.ceil(statSync(db).size / 1024)} KB); its integrity is checked when the daemon starts`,
      ),
    );
  } else {
    checks.push(check('store', 'warn', `${db} does not exist yet`, 'the daemon creates it at its first start'));
  }
  return report('local', now, checks);
}

function certificateOnly(config: HubConfig, now: number): CertSummary | undefined {
  const path = config.uplink.certFile ?? identityPaths(config.dataDir).cert;
  try {
    const [x] = parseCertificates(readFileSync(path), path);
    if (!x) return undefined;
    const info = certificateInfo(x, now);
    return {
      hubId: info.hubId,
      notBefore: info.notBefore,
      notAfter: info.notAfter,
      fingerprint: info.fingerprint,
      source: path,
    };
  } catch {
    return undefined;
  }
}

/** `iqhub diag`: through the daemon if it answers, else the local checks and a failing `daemon` check. */
export async function runDiag(o: { config?: string; socket?: string }): Promise<DiagReport> {
  let loaded: LoadedConfig | undefined;
  let configError: unknown;
  try {
    loaded = loadConfig(o.config);
  } catch (e) {
    configError = e;
  }
  const socket = o.socket ?? (loaded ? join(loaded.config.runDir, SOCKET_NAME) : undefined);
  let daemon: DiagCheck;
  if (!socket) {
    daemon = check(
      'daemon',
      'fail',
      'not asked: the config is invalid, so its control socket is unknown',
      'fix the config first',
    );
  } else {
    try {
      return (await callDaemon(socket, 'diag', {}, 60_000)) as DiagReport;
    } catch (e) {
      const err = e instanceof HubError ? e : new HubError('daemon.unreachable', describeError(e));
      const start = `start it: systemctl start iq-hub (or iqhub run${o.config ? ` --config ${o.config}` : ''})`;
      daemon =
        err.code === 'daemon.not-running'
          ? check('daemon', 'fail', `not running (nothing answers on ${socket})`, start)
          : err.code === 'control.unknown-method'
            ? check(
                'daemon',
                'warn',
                'the running daemon is older and has no diag: local checks only',
                'restart it after an upgrade',
              )
            : check('daemon', 'fail', err.message, err.hint ?? 'check journalctl -u iq-hub');
    }
  }
  return localDiag({ loaded, configError, daemon });
}
