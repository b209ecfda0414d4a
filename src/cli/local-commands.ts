import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  CERT_MAX_BYTES,
  type CertificateInfo,
  certificateInfo,
  parseCertificates,
} from '../../provisioning/certificate.js';
import { createDevPki, describePki } from '../../provisioning/dev-pki.js';
import { validateHubId } from '../../provisioning/hub-id.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import { installIdentity } from '../../provisioning/identity-install.js';
import { readInstalledCertificate } from '../../provisioning/identity-load.js';
import { csrHubId, initIdentity, readCsr } from '../../provisioning/key-and-csr.js';
import { writeFileAtomic } from '../base/atomic-file.js';
import { HubError } from '../base/errors.js';
import { loadConfig } from '../config/load.js';
import type { HubConfig } from '../config/schema.js';
import { SOCKET_NAME } from '../contract/control-socket.js';
import { callDaemon } from '../control-socket/socket-client.js';
import { CERT_WARN_DAYS } from '../diag/checks.js';
import { formatCert } from './format.js';

/*
 * The actions of the commands that work on this hub's files rather than through the daemon: `pki
 * dev`, `provision`, `cert`, `reset`. main.ts registers them (names, options, help) and imports this
 * module only when one of them runs, so a call to the daemon never loads node-forge, Ajv or yaml.
 */

/** `iqhub pki-dev`'s options, as commander gives them. */
export interface PkiDevOptions {
  dir: string;
  hubId: string;
  cloudId: string;
  brokerHost: string;
  force?: boolean;
  json?: boolean;
}

export function pkiDev(o: PkiDevOptions): void {
  // The daemon's own rule for a hub id (a topic level), before anything is made or written: a
  // certificate the daemon would refuse is not worth the seconds its key takes.
  validateHubId(o.hubId);
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const written = createDevPki({
    dir: o.dir,
    hubId: o.hubId,
    cloudId: o.cloudId,
    brokerHost: o.brokerHost,
    overwrite: Boolean(o.force),
    progress: progress(o),
  });
  const certs = describePki(o.dir);
  process.stdout.write(
    o.json
      ? `${JSON.stringify(certs, null, 2)}\n`
      : `${certs.map((c) => `${c.file.padEnd(12)} CN=${c.cn.padEnd(16)} until ${c.notAfter}  ${c.fingerprint.slice(0, 23)}…`).join('\n')}\n` +
          `${basename(written.otpKey).padEnd(12)} the hub's OTP key for remote commands (commands.otpKeyFile; the cloud signs with the same key)\n` +
          `written to ${o.dir} (private keys and the OTP key mode 0600; for development and tests only)\n`,
  );
}

/**
 * Steps that take seconds (RSA keys), told on stderr as each starts so a person sees the command
 * is working; stdout keeps only the result. Quiet with --json, like `attach`.
 */
function progress(o: { json?: boolean }): (step: string) => void {
  return o.json ? () => {} : (step) => process.stderr.write(`${step}...\n`);
}

const RESTART_NOTE =
  'a running daemon uses the new certificate after its next restart (systemctl restart iq-hub) or certificate rotation';

/** A certificate file named on the command line: readable, and small enough to be one. */
function readCertFile(path: string, what: string): Buffer {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new HubError(
      'provision.unreadable',
      `cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: 'check the path',
      },
    );
  }
  if (!st.isFile()) throw new HubError('provision.unreadable', `the ${what} ${path} is not a regular file`);
  if (st.size > CERT_MAX_BYTES) {
    throw new HubError(
      'provision.not-pem',
      `the ${what} ${path} is ${st.size} bytes: too large for a certificate file`,
      {
        hint: 'pass the PEM certificate file',
      },
    );
  }
  return readFileSync(path);
}

/** The hub id for provisioning: the command line, else the CSR made at init, else the config. */
function hubIdFor(o: { hubId?: string }, config: HubConfig, dataDir: string): string {
  const id = o.hubId ?? csrHubId(dataDir) ?? config.provisioning.hubId ?? undefined;
  if (!id) {
    throw new HubError('provision.no-hub-id', 'no hub id: none given, none in the config, and no CSR yet', {
      hint: 'pass --hub-id ID (the id the cloud knows this hub by), or set provisioning.hubId in the config',
    });
  }
  return id;
}

export function provisionInit(o: { config?: string; hubId?: string; force?: boolean; json?: boolean }): void {
  const { config } = loadConfig(o.config);
  const hubId = o.hubId ?? config.provisioning.hubId;
  if (!hubId) {
    throw new HubError('provision.no-hub-id', 'no hub id given and provisioning.hubId is not set in the config', {
      hint: 'pass --hub-id ID (the id the cloud knows this hub by)',
    });
  }
  const r = initIdentity({ dataDir: config.dataDir, hubId, force: Boolean(o.force), progress: progress(o) });
  const out = {
    hubId: r.hubId,
    csr: r.paths.csr,
    key: r.paths.key,
    replacedKey: r.replacedKey,
    removedCertificate: r.removedCertificate,
  };
  process.stdout.write(
    o.json
      ? `${JSON.stringify(out, null, 2)}\n`
      : `hub id  ${r.hubId}\nkey     ${r.paths.key} (mode 0600; it never leaves this hub)\nCSR     ${r.paths.csr}\n` +
          (r.removedCertificate ? 'the certificate of the replaced key was removed: install a new one\n' : '') +
          'next: have the CSR signed by the factory CA (`iqhub provision csr --out FILE`), then `iqhub provision install --cert FILE --ca FILE`\n',
  );
}

export function provisionCsr(o: { config?: string; out?: string; hubId?: string }): void {
  const { config } = loadConfig(o.config);
  const r = readCsr(config.dataDir, o.hubId ?? csrHubId(config.dataDir) ?? config.provisioning.hubId ?? undefined);
  if (o.out) {
    writeFileAtomic(o.out, r.csrPem, 0o644);
    process.stderr.write(`wrote the CSR of ${r.hubId} to ${o.out}\n`);
  } else {
    process.stdout.write(r.csrPem);
  }
}

export function provisionInstall(o: {
  config?: string;
  cert: string;
  ca: string;
  hubId?: string;
  json?: boolean;
}): void {
  const { config } = loadConfig(o.config);
  const certPem = readCertFile(o.cert, 'certificate');
  const caPem = readCertFile(o.ca, 'CA certificate');
  const info = installIdentity({
    dataDir: config.dataDir,
    certPem,
    caPem,
    hubId: hubIdFor(o, config, config.dataDir),
    now: Date.now(),
    source: { cert: o.cert, ca: o.ca },
  });
  const { paths, ...rest } = info;
  process.stdout.write(
    o.json
      ? `${JSON.stringify({ ...rest, installed: paths.cert, note: RESTART_NOTE }, null, 2)}\n`
      : `installed the certificate of ${info.hubId} (issued by ${info.issuer}, valid until ${info.notAfter}, ${info.daysLeft} days)\n` +
          `in ${paths.dir}\nnote: ${RESTART_NOTE}\n`,
  );
}

export function cert(o: { config?: string; json?: boolean }): void {
  const { config } = loadConfig(o.config);
  const now = Date.now();
  const configured = config.uplink.certFile;
  let info: (CertificateInfo & { path: string }) | undefined;
  if (configured) {
    const [x] = parseCertificates(readCertFile(configured, 'certificate (uplink.certFile)'), configured);
    info = x ? { ...certificateInfo(x, now), path: configured } : undefined;
  } else {
    info = readInstalledCertificate(config.dataDir, now);
  }
  if (!info) {
    throw new HubError('identity.none', `no hub certificate is installed in ${identityPaths(config.dataDir).dir}`, {
      hint: '`iqhub provision init`, have the CSR signed, then `iqhub provision install --cert FILE --ca FILE`',
    });
  }
  const warning =
    now < Date.parse(info.notBefore)
      ? `not valid before ${info.notBefore}: check the clock (iqhub diag)`
      : info.daysLeft < 0
        ? `expired on ${info.notAfter}: the broker refuses it; install a new one (iqhub provision csr, then install)`
        : info.daysLeft < CERT_WARN_DAYS
          ? `expires in ${info.daysLeft} days: rotation renews it while the uplink is connected; otherwise install a new one`
          : null;
  const out = { ...info, warning };
  process.stdout.write(o.json ? `${JSON.stringify(out, null, 2)}\n` : formatCert(out));
}

export async function reset(o: { config?: string; yes?: boolean; json?: boolean }): Promise<void> {
  const { config } = loadConfig(o.config);
  if (!o.yes) {
    throw new HubError('reset.not-confirmed', `reset would move the store in ${config.dataDir} and its key aside`, {
      hint: 'every lock must then be attached again; run `iqhub reset --yes` to do it (`iqhub reset --help` says what moves)',
    });
  }
  const running = await callDaemon(join(config.runDir, SOCKET_NAME), 'status', {}, 2_000).then(
    () => true,
    () => false,
  );
  if (running) {
    throw new HubError('reset.daemon-running', 'the daemon is running', {
      hint: 'stop it first (systemctl stop iq-hub), then run `iqhub reset --yes` again',
    });
  }
  const { resetStore } = await import('../app/reset.js');
  const r = resetStore(config, process.env, new Date());
  const human = () =>
    r.movedTo === null
      ? `nothing to reset in ${config.dataDir}: no store and no storage key there\n`
      : `moved aside into ${r.movedTo}: ${r.moved.join(', ')}\n` +
        (r.was.hubId || r.was.keyFingerprint
          ? `(the old store: hub ${r.was.hubId ?? 'unknown'}, storage key fingerprint ${r.was.keyFingerprint ?? 'unknown'})\n`
          : '') +
        (r.keptKey ? `the storage key ${r.keptKey} stays and seals the new store\n` : '') +
        'the next start makes a new store and a new hub key: every lock must be attached again (iqhub attach)\n' +
        `to undo, stop the daemon and move the files back from ${r.movedTo}\n`;
  process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : human());
}
