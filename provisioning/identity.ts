import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { fsyncDir, stageFile, writeFileAtomic } from '../src/base/atomic-file.js';
import { HubError } from '../src/base/errors.js';
import { ID_PATTERN } from '../src/contract/mqtt.js';
import { readPrivateFile } from '../src/crypto/private-file.js';
import { validateIdentity } from './dev-pki.js';

/**
 * The hub's own identity, in `<dataDir>/identity/`:
 *
 *   hub.key   the private key (RSA-2048 from node:crypto, PKCS#8 PEM, mode 0600). Made on the hub,
 *             never printed, logged or returned by the CLI.
 *   hub.csr   the certificate signing request for it (node-forge; CN = the hub id, SAN URI
 *             `urn:iq-hub:hub:<id>`), for a factory CA or claim enrollment.
 *   hub.crt   the hub's certificate (and any intermediates), issued from the CSR.
 *   ca.crt    the CA (one or more certificates) that issued it; the uplink trusts only it.
 *
 * An install checks everything before it writes anything, so a refused certificate leaves the
 * installed files byte-identical. The files are staged (written and fsynced beside the real ones)
 * and renamed into place with the certificate last. When a new key comes with the certificate,
 * the old key is kept as `hub.key.prev` until the certificate is in place: an install cut short
 * by a power loss is rolled back to the old key and certificate at the next install or load.
 */

export const IDENTITY_DIR = 'identity';
const KEY_MAX_BYTES = 16 * 1024;
/** Certificate files (a leaf and its intermediates, or a CA bundle) larger than this are refused. */
export const CERT_MAX_BYTES = 64 * 1024;
const DAY_MS = 86_400_000;
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EKU = '2.5.29.37.0';
const MAX_CHAIN = 4;

export interface IdentityPaths {
  dir: string;
  key: string;
  csr: string;
  cert: string;
  ca: string;
  /** The old key while an install with a new key is under way. */
  keyPrev: string;
}

export type Pem = string | Buffer;

/** What a certificate says; no key material. */
export interface CertificateInfo {
  /** The subject CN: the hub id. */
  hubId: string;
  subject: string;
  /** The issuer's CN (its whole DN if it has no CN). */
  issuer: string;
  serialNumber: string;
  subjectAltName: string | null;
  notBefore: string;
  notAfter: string;
  /** Whole days until notAfter (negative once expired). */
  daysLeft: number;
  /** SHA-256 of the DER certificate, colon-separated hex. */
  fingerprint: string;
}

export interface IdentityCheck {
  certPem: Pem;
  caPem: Pem;
  /** The hub's private key; only its public half is compared. */
  keyPem: Pem;
  /** The hub id the certificate must be for (its CN). */
  hubId: string;
  /** Wall-clock ms (or a Date) the validity is checked against. */
  now: number | Date;
  /** How the inputs are named in messages (file paths); defaults: "the certificate", … */
  source?: { cert?: string; ca?: string; key?: string };
}

export interface LoadedIdentity {
  hubId: string;
  /** hub.crt as installed (PEM: the leaf, then any intermediates). */
  cert: Buffer;
  /** hub.key (PEM). Never print or log it. */
  key: Buffer;
  /** ca.crt (PEM, one or more certificates). */
  ca: Buffer;
  notBefore: string;
  notAfter: string;
  fingerprint: string;
  paths: IdentityPaths;
}

/** The identity files of a data directory (whether or not they exist). */
export function identityPaths(dataDir: string): IdentityPaths {
  const dir = join(dataDir, IDENTITY_DIR);
  return {
    dir,
    key: join(dir, 'hub.key'),
    csr: join(dir, 'hub.csr'),
    cert: join(dir, 'hub.crt'),
    ca: join(dir, 'ca.crt'),
    keyPrev: join(dir, 'hub.key.prev'),
  };
}

/**
 * The hub id as the uplink uses it: a certificate CN, an MQTT user name and a topic level
 * (1-64 of A-Z a-z 0-9 . _ : -, starting with a letter or digit).
 */
export function validateHubId(hubId: string): void {
  validateIdentity(hubId, 'hub id');
  if (!new RegExp(ID_PATTERN).test(hubId)) {
    throw new HubError('provision.bad-hub-id', `The hub id ${JSON.stringify(hubId)} is refused.`, {
      hint: 'A hub id is 1-64 of A-Z a-z 0-9 . _ : - and starts with a letter or digit (e.g. "hub-0001").',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Key and CSR

function newKeyPem(): string {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  }).privateKey;
}

/** A CSR for `keyPem` (node-forge, SHA-256): CN = hub id, SAN URI urn:iq-hub:hub:<id>, clientAuth requested. */
export function csrForKey(keyPem: Pem, hubId: string): string {
  validateHubId(hubId);
  const priv = forge.pki.privateKeyFromPem(String(keyPem)) as forge.pki.rsa.PrivateKey;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(priv.n, priv.e);
  csr.setSubject([
    { shortName: 'CN', value: hubId, valueTagClass: forge.asn1.Type.UTF8 },
  ] as unknown as forge.pki.CertificateField[]);
  csr.setAttributes([
    {
      name: 'extensionRequest',
      extensions: [
        { name: 'subjectAltName', altNames: [{ type: 6, value: `urn:iq-hub:hub:${hubId}` }] },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', clientAuth: true },
      ],
    },
  ] as unknown as forge.pki.CertificateField[]);
  csr.sign(priv, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/** A new key and its CSR, in memory only (certificate rotation): nothing is written. */
export function makeKeyAndCsr(hubId: string): { keyPem: string; csrPem: string } {
  validateHubId(hubId);
  const keyPem = newKeyPem();
  return { keyPem, csrPem: csrForKey(keyPem, hubId) };
}

/**
 * Make the hub's key (unless it has one) and write its CSR. An existing key is not replaced
 * without `force`; with `force`, the new key makes an installed certificate useless, so
 * that certificate is removed (the uplink then says no identity is installed).
 */
export function initIdentity(o: { dataDir: string; hubId: string; force?: boolean }): {
  csrPem: string;
  hubId: string;
  paths: IdentityPaths;
  replacedKey: boolean;
  removedCertificate: boolean;
} {
  validateHubId(o.hubId);
  const paths = prepareDir(o.dataDir);
  settleInterruptedInstall(paths);
  const hadKey = existsSync(paths.key);
  if (hadKey && !o.force) {
    throw new HubError(
      'provision.key-exists',
      `this hub already has a private key (${paths.key}); it was not replaced`,
      {
        hint: '`iqhub provision csr` prints the CSR for it again; `--force` makes a new key (the installed certificate, if any, is removed and a new one must be issued)',
      },
    );
  }
  const keyPem = newKeyPem();
  const csrPem = csrForKey(keyPem, o.hubId);
  // A certificate for the old key must not sit beside the new key: remove it first.
  const removedCertificate = hadKey && existsSync(paths.cert);
  if (removedCertificate) {
    unlinkSync(paths.cert);
    fsyncDir(paths.dir);
  }
  writeFileAtomic(paths.key, keyPem, 0o600);
  writeFileAtomic(paths.csr, csrPem, 0o644);
  return { csrPem, hubId: o.hubId, paths, replacedKey: hadKey, removedCertificate };
}

/**
 * The CSR for the installed key (hub.csr). If hub.csr is missing or belongs to another key (an
 * install cut short), it is made again from the key, for `hubId` or the old CSR's CN.
 */
export function readCsr(dataDir: string, hubId?: string): { csrPem: string; hubId: string; path: string } {
  const paths = identityPaths(dataDir);
  const keyPem = readKey(paths);
  if (!keyPem) {
    throw new HubError('provision.no-key', `this hub has no private key yet (${paths.key} does not exist)`, {
      hint: 'run `iqhub provision init` first: it makes the key and its CSR',
    });
  }
  let csr: forge.pki.CertificateSigningRequest | undefined;
  let oldPem = '';
  try {
    oldPem = readFileSync(paths.csr, 'utf8');
    csr = forge.pki.certificationRequestFromPem(oldPem);
  } catch {
    csr = undefined;
  }
  const csrCn = csr ? String(csr.subject.getField('CN')?.value ?? '') : '';
  const id = hubId ?? csrCn;
  if (!id) {
    throw new HubError('provision.no-hub-id', `${paths.csr} is missing or unreadable and no hub id was given`, {
      hint: 'pass --hub-id ID (or set provisioning.hubId in the config)',
    });
  }
  const sameKey =
    csr?.publicKey &&
    spkiOf(createPublicKey(forge.pki.publicKeyToPem(csr.publicKey))).equals(spkiOf(createPrivateKey(keyPem)));
  if (csr && sameKey && csrCn === id) return { csrPem: oldPem, hubId: id, path: paths.csr };
  const csrPem = csrForKey(keyPem, id);
  writeFileAtomic(paths.csr, csrPem, 0o644);
  return { csrPem, hubId: id, path: paths.csr };
}

/** The CN of hub.csr, if there is a readable one (the hub id chosen at `provision init`). */
export function csrHubId(dataDir: string): string | undefined {
  try {
    const csr = forge.pki.certificationRequestFromPem(readFileSync(identityPaths(dataDir).csr, 'utf8'));
    const cn = csr.subject.getField('CN')?.value;
    return typeof cn === 'string' && cn ? cn : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Checking a certificate

const cnOf = (dn: string): string | undefined =>
  dn
    .split('\n')
    .find((l) => l.startsWith('CN='))
    ?.slice(3);

/** The hub id a certificate names (its CN), refused (`<prefix>.hub-id`) unless it is a valid topic segment. */
export function hubIdOfCertificate(x509: X509Certificate, codePrefix: string): string {
  const hubId = cnOf(x509.subject) ?? '';
  if (!new RegExp(ID_PATTERN).test(hubId)) {
    throw new HubError(
      `${codePrefix}.hub-id`,
      `the hub certificate's CN ${JSON.stringify(hubId)} is not a valid hub id`,
      {
        hint: 'the CN is the hub id and an MQTT topic segment: 1-64 of A-Z a-z 0-9 . _ : - (no / + #)',
      },
    );
  }
  return hubId;
}

const spkiOf = (k: KeyObject): Buffer =>
  (k.type === 'private' ? createPublicKey(k) : k).export({ type: 'spki', format: 'der' });

const iso = (ms: number) => (Number.isFinite(ms) ? new Date(ms).toISOString() : 'an invalid date');

/**
 * The certificates in a PEM text: every `CERTIFICATE` block, each parsed. Anything else is
 * refused `provision.not-pem`: no block (garbage, DER, an empty file), a block cut short
 * (truncated file), one that does not parse, or a private key where certificates belong.
 */
export function parseCertificates(pem: Pem, name: string): X509Certificate[] {
  const bytes = typeof pem === 'string' ? Buffer.byteLength(pem) : pem.length;
  if (bytes > CERT_MAX_BYTES) {
    throw new HubError('provision.not-pem', `${name} is ${bytes} bytes: too large for a certificate file`, {
      hint: `pass the PEM certificate file (at most ${CERT_MAX_BYTES} bytes)`,
    });
  }
  const text = typeof pem === 'string' ? pem : pem.toString('latin1');
  const refuse = (why: string, hint: string): never => {
    throw new HubError('provision.not-pem', `${name} ${why}`, { hint });
  };
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    refuse(
      'holds a private key: certificates only are expected, and this file was not read further',
      'pass the certificate file issued for this hub; the private key never leaves the hub',
    );
  }
  const begins = text.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
  const ends = text.match(/-----END CERTIFICATE-----/g)?.length ?? 0;
  if (begins === 0) {
    refuse(
      text.trim() === '' ? 'is empty' : 'holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line)',
      'pass the PEM file (a DER file converts with `openssl x509 -inform der -in FILE -out FILE.pem`)',
    );
  }
  if (begins !== ends) {
    refuse(
      'is truncated: a "BEGIN CERTIFICATE" line has no matching "END CERTIFICATE" line',
      'copy the file again, completely',
    );
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      return refuse(
        `is damaged: certificate ${i + 1} of ${blocks.length} does not parse (truncated or altered)`,
        'copy the file again, completely',
      );
    }
  });
}

/** What a parsed certificate says, at `now`. */
export function certificateInfo(x: X509Certificate, now: number | Date): CertificateInfo {
  const t = typeof now === 'number' ? now : now.getTime();
  const notAfter = Date.parse(x.validTo);
  return {
    hubId: cnOf(x.subject) ?? '',
    subject: x.subject.replace(/\n/g, ', '),
    issuer: cnOf(x.issuer) ?? x.issuer.replace(/\n/g, ', '),
    serialNumber: x.serialNumber,
    subjectAltName: x.subjectAltName ?? null,
    notBefore: iso(Date.parse(x.validFrom)),
    notAfter: iso(notAfter),
    daysLeft: Math.floor((notAfter - t) / DAY_MS),
    fingerprint: x.fingerprint256,
  };
}

/**
 * Check that a certificate can be this hub's identity: it parses, it was issued for the hub's
 * key, it chains to the CA (directly or through intermediates that follow it in `certPem`),
 * its CN is the hub id, it may be used as a TLS client certificate and it is valid at `now`.
 * Returns what it says, or throws a HubError (`provision.*`) naming the first problem.
 */
export function checkCertificate(c: IdentityCheck): CertificateInfo {
  const certName = c.source?.cert ?? 'the certificate';
  const caName = c.source?.ca ?? 'the CA certificate';
  const keyName = c.source?.key ?? "the hub's private key";
  const now = typeof c.now === 'number' ? c.now : c.now.getTime();
  const [leaf, ...intermediates] = parseCertificates(c.certPem, certName);
  const cas = parseCertificates(c.caPem, caName);
  if (!leaf) throw new HubError('provision.not-pem', `${certName} holds no certificate`);
  let key: KeyObject;
  try {
    key = createPrivateKey(c.keyPem);
  } catch {
    throw new HubError('provision.bad-key', `${keyName} is not a PEM private key`, {
      hint: 'make a new key and CSR with `iqhub provision init --force`, and have the new CSR signed',
    });
  }
  const cn = cnOf(leaf.subject) ?? '';
  if (!leaf.checkPrivateKey(key)) {
    throw new HubError(
      'provision.key-mismatch',
      `${certName} (CN=${cn}) was not issued for this hub's key: its public key is not the one in ${keyName}`,
      {
        hint: "have the CA sign this hub's own CSR (`iqhub provision csr`); a certificate made for another key cannot be used",
      },
    );
  }
  const notCa = cas.find((x) => !x.ca);
  if (notCa) {
    throw new HubError(
      'provision.wrong-ca',
      `${caName} holds a certificate that is not a CA (CN=${cnOf(notCa.subject) ?? '?'})`,
      { hint: 'pass the certificate of the CA that issued the hub certificate with --ca' },
    );
  }
  const signedBy = (x: X509Certificate, by: X509Certificate) => x.checkIssued(by) && x.verify(by.publicKey);
  // Up the chain: intermediates may follow the leaf in the certificate file.
  let current = leaf;
  let chained = cas.some((ca) => signedBy(current, ca));
  for (let depth = 0; depth < MAX_CHAIN && !chained; depth++) {
    const next = intermediates.find((x) => x !== current && x.ca && signedBy(current, x));
    if (!next) break;
    current = next;
    chained = cas.some((ca) => signedBy(current, ca));
  }
  if (!chained) {
    throw new HubError(
      'provision.wrong-ca',
      `${certName} (issued by ${cnOf(leaf.issuer) ?? leaf.issuer}) was not signed by the CA in ${caName} (${cas
        .map((x) => cnOf(x.subject) ?? '?')
        .join(', ')})`,
      {
        hint: 'pass the CA that issued this certificate with --ca, or have the certificate issued by that CA',
      },
    );
  }
  if (cn !== c.hubId) {
    throw new HubError(
      'provision.cn-mismatch',
      `${certName} is for CN=${JSON.stringify(cn)}, not for this hub (${JSON.stringify(c.hubId)})`,
      { hint: `the CA must issue the certificate with CN=${c.hubId}, as the CSR asks` },
    );
  }
  const eku = leaf.keyUsage;
  if (leaf.ca || (eku !== undefined && !eku.includes(CLIENT_AUTH) && !eku.includes(ANY_EKU))) {
    throw new HubError(
      'provision.not-client-cert',
      leaf.ca
        ? `${certName} is a CA certificate, not a client certificate`
        : `${certName} may not be used as a TLS client certificate (extended key usage without clientAuth)`,
      { hint: 'have the CA issue a client certificate (extendedKeyUsage = clientAuth) from the CSR' },
    );
  }
  const from = Date.parse(leaf.validFrom);
  const until = Date.parse(leaf.validTo);
  if (now < from) {
    throw new HubError(
      'provision.not-yet-valid',
      `${certName} is valid only from ${iso(from)}; the hub's clock says ${iso(now)}`,
      {
        hint: "if the hub's clock is wrong, set it (timedatectl; check NTP) and install again; otherwise have a certificate issued that is valid now",
      },
    );
  }
  if (now > until) {
    throw new HubError('provision.expired', `${certName} expired on ${iso(until)}; the hub's clock says ${iso(now)}`, {
      hint: "have a new certificate issued from the CSR (`iqhub provision csr`); if the hub's clock is wrong, set it first",
    });
  }
  return certificateInfo(leaf, now);
}

// ---------------------------------------------------------------------------------------------
// Installing and loading

/**
 * Check the certificate (and CA) against the hub's key, then install them atomically. With
 * `keyPem`, that key (and its CSR) is installed with the certificate (rotation); otherwise the
 * installed key is used. Any refusal leaves every installed file byte-identical.
 */
export function installIdentity(o: {
  dataDir: string;
  certPem: Pem;
  caPem: Pem;
  keyPem?: Pem;
  csrPem?: string;
  hubId: string;
  now: number | Date;
  source?: { cert?: string; ca?: string };
}): CertificateInfo & { paths: IdentityPaths } {
  validateHubId(o.hubId);
  const paths = prepareDir(o.dataDir);
  settleInterruptedInstall(paths);
  const keyPem = o.keyPem ?? readKey(paths);
  if (keyPem === undefined) {
    throw new HubError('provision.no-key', `this hub has no private key yet (${paths.key} does not exist)`, {
      hint: 'run `iqhub provision init` first, and have the CA sign the CSR it writes: the certificate must be issued for this key',
    });
  }
  const info = checkCertificate({
    certPem: o.certPem,
    caPem: o.caPem,
    keyPem,
    hubId: o.hubId,
    now: o.now,
    source: { ...o.source, key: o.keyPem === undefined ? paths.key : 'the new private key' },
  });
  // Only the certificate blocks are installed (no comments or text around them).
  const certOut = pemOf(parseCertificates(o.certPem, 'certificate'));
  const caOut = pemOf(parseCertificates(o.caPem, 'CA certificate'));
  const staged: [tmp: string, path: string][] = [];
  try {
    if (o.keyPem !== undefined) {
      staged.push([stageFile(paths.key, String(o.keyPem), 0o600), paths.key]);
      staged.push([stageFile(paths.csr, o.csrPem ?? csrForKey(o.keyPem, o.hubId), 0o644), paths.csr]);
    }
    staged.push([stageFile(paths.ca, caOut, 0o644), paths.ca]);
    staged.push([stageFile(paths.cert, certOut, 0o644), paths.cert]); // last: the certificate makes the switch
  } catch (e) {
    for (const [tmp] of staged) unlinkQuiet(tmp);
    throw e;
  }
  if (o.keyPem !== undefined && existsSync(paths.key) && existsSync(paths.cert)) {
    // Keep the old key until the new certificate is in place (see settleInterruptedInstall).
    unlinkQuiet(paths.keyPrev);
    linkSync(paths.key, paths.keyPrev);
    fsyncDir(paths.dir);
  }
  for (const [tmp, path] of staged) renameSync(tmp, path);
  fsyncDir(paths.dir);
  if (existsSync(paths.keyPrev)) {
    unlinkSync(paths.keyPrev);
    fsyncDir(paths.dir);
  }
  return { ...info, paths };
}

/**
 * The installed identity, or undefined when no certificate is installed (none yet, or only the
 * key and CSR of `provision init`). Checks what the uplink relies on: the key is private
 * (0600, owned by this user), it belongs to the certificate, and the CN is a valid hub id.
 * Validity is not checked here: an expired certificate is reported, not hidden.
 */
export function loadIdentity(dataDir: string): LoadedIdentity | undefined {
  const paths = identityPaths(dataDir);
  let cert: Buffer;
  try {
    cert = readFileSync(paths.cert);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new HubError('identity.unreadable', `cannot read the hub certificate ${paths.cert}: ${code ?? 'error'}`, {
      hint: "run as the daemon's user (e.g. `sudo -u iqhub iqhub ...`) and check the permissions of the identity directory",
    });
  }
  let ca: Buffer;
  try {
    ca = readFileSync(paths.ca);
  } catch (e) {
    throw new HubError(
      'identity.incomplete',
      `the hub certificate is installed but its CA ${paths.ca} cannot be read: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      { hint: 'install the certificate again with its CA: `iqhub provision install --cert FILE --ca FILE`' },
    );
  }
  let x509: X509Certificate;
  try {
    [x509] = parseCertificates(cert, paths.cert) as [X509Certificate];
    parseCertificates(ca, paths.ca);
  } catch (e) {
    const err = e as HubError;
    throw new HubError('identity.damaged', err.message, {
      hint: 'install the certificate again (`iqhub provision install --cert FILE --ca FILE`)',
    });
  }
  let key = readKey(paths);
  if (key === undefined) {
    throw new HubError('identity.no-key', `the hub certificate is installed but its key ${paths.key} does not exist`, {
      hint: 'the key cannot be recovered: make a new one with `iqhub provision init --force` and have its CSR signed',
    });
  }
  const matches = (k: Buffer) => {
    try {
      return x509.checkPrivateKey(createPrivateKey(k));
    } catch {
      return false;
    }
  };
  if (!matches(key)) {
    // An install with a new key cut short before its certificate was in place: the old key still fits.
    const prev = existsSync(paths.keyPrev) ? readKey(paths, paths.keyPrev) : undefined;
    if (prev && matches(prev)) key = prev;
    else {
      throw new HubError(
        'identity.key-mismatch',
        `the private key ${paths.key} does not belong to the certificate ${paths.cert}`,
        {
          hint: 'install the certificate issued for this key, or make a new key with `iqhub provision init --force`',
        },
      );
    }
  }
  const hubId = hubIdOfCertificate(x509, 'identity');
  return {
    hubId,
    cert,
    key,
    ca,
    notBefore: iso(Date.parse(x509.validFrom)),
    notAfter: iso(Date.parse(x509.validTo)),
    fingerprint: x509.fingerprint256,
    paths,
  };
}

/** The installed certificate, read without the key (for `iqhub cert`); undefined when none. */
export function readInstalledCertificate(
  dataDir: string,
  now: number | Date,
): (CertificateInfo & { path: string }) | undefined {
  const path = identityPaths(dataDir).cert;
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new HubError('identity.unreadable', `cannot read the hub certificate ${path}: ${code ?? 'error'}`, {
      hint: "run as the daemon's user (e.g. `sudo -u iqhub iqhub cert`)",
    });
  }
  const [x] = parseCertificates(pem, path) as [X509Certificate];
  return { ...certificateInfo(x, now), path };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function prepareDir(dataDir: string): IdentityPaths {
  const paths = identityPaths(dataDir);
  // Files written by root into the daemon's data directory would be unreadable for the daemon.
  if (typeof process.getuid === 'function' && process.getuid() === 0 && existsSync(dataDir)) {
    const owner = statSync(dataDir).uid;
    if (owner !== 0) {
      throw new HubError(
        'provision.wrong-user',
        `${dataDir} belongs to uid ${owner}: files written as root there would be unreadable for the daemon`,
        { hint: `run the command as the daemon's user: \`sudo -u '#${owner}' iqhub provision ...\`` },
      );
    }
  }
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  return paths;
}

function readKey(paths: IdentityPaths, path = paths.key): Buffer | undefined {
  return readPrivateFile(path, {
    codePrefix: 'identity.key',
    what: "the hub's private key",
    checkMode: true,
    maxBytes: KEY_MAX_BYTES,
  });
}

/**
 * Finish or roll back an install with a new key that was cut short: `hub.key.prev` exists only
 * between the renames. If the installed key fits the installed certificate the install finished;
 * if the old key fits, the new key never got its certificate and the old key is put back.
 */
function settleInterruptedInstall(paths: IdentityPaths): void {
  if (!existsSync(paths.keyPrev)) return;
  const fits = (keyPath: string) => {
    try {
      const cert = new X509Certificate(readFileSync(paths.cert));
      return cert.checkPrivateKey(createPrivateKey(readFileSync(keyPath)));
    } catch {
      return false;
    }
  };
  if (!existsSync(paths.cert) || fits(paths.key)) unlinkSync(paths.keyPrev);
  else if (fits(paths.keyPrev)) renameSync(paths.keyPrev, paths.key);
  else return;
  fsyncDir(paths.dir);
}

const pemOf = (certs: X509Certificate[]) => certs.map((x) => x.toString().trim()).join('\n') + '\n';

/** Write `data` to a temporary file beside `path` and fsync it; the caller renames it into place. */
function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // not there
  }
}
