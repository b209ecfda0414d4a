import type { Bearer } from '../../hal/bearer.js';
import { readInstalledCertificate } from '../../provisioning/identity-load.js';
import { describeError } from '../base/errors.js';
import type { HubConfig } from '../config/schema.js';
import type { CertSummary, DiagCheck, DiagReport, VerifierStats } from '../contract/control-socket.js';
import type { RefusalCode } from '../contract/mqtt-cloud-messages.js';
import { certificateCheck, check, clockCheck, diskCheck, OUTBOX_WARN_AGE_SEC, report } from '../diag/checks.js';
import { refusedSummary } from '../diag/refused.js';
import type { EventDelivery } from '../events/delivery.js';
import type { Outbox } from '../events/outbox.js';
import type { LinkManager } from '../link/manager.js';
import type { Store } from '../store/store.js';
import type { UplinkService } from '../uplink/service.js';

/**
 * `iqhub diag` as the running daemon answers it (the `diag` control method): the shared checks
 * (src/diag) and those only the daemon can make, from its live parts — the store, the outbox,
 * the locks, the radios, the uplink and the remote commands.
 */

const optional = (c: DiagCheck | undefined): DiagCheck[] => (c ? [c] : []);

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
  // Connected but events undelivered is the delivery check's verdict, not a connection problem.
  if (s.state === 'running' || uplink.connected) return check('uplink', 'ok', detail);
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
  if (count('no_otp_key') > 0)
    causes.push(
      "no_otp_key: install the OTP key (commands.otpKeyFile, or enrol the hub), or let the cloud deliver it (it must trust the hub's CA: otp-key/request)",
    );
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

/**
 * Whether the cloud confirms the events it stored (`events/ack`): `fail` when events are refused
 * by the broker or not acknowledged (naming the ACL and the cloud to check), `warn` when acks are
 * off (delivery not verified).
 */
export function deliveryCheck(delivery: EventDelivery | undefined): DiagCheck | undefined {
  if (!delivery) return undefined;
  const d = delivery.describe();
  if (d.state !== 'ok') return check('delivery', 'fail', d.detail, d.check);
  if (delivery.mode === 'off') return check('delivery', 'warn', d.detail, d.check);
  return check('delivery', 'ok', d.detail);
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
  /** The remote commands' counts (undefined: no uplink up yet, no check). */
  commandStats: VerifierStats | undefined;
  /** The cloud's confirmation of events (undefined: no uplink, no check). */
  delivery?: EventDelivery | undefined;
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
    diskCheck(config.dataDir, c.store.health().diskFull),
    storeCheck(c.store),
    outboxCheck(c.outbox, config.uplink.outboxMaxMB * 1024 * 1024),
    locksCheck(c.link),
    ...optional(commandsCheck(c.commandStats)),
    ...optional(deliveryCheck(c.delivery)),
  ]);
}
