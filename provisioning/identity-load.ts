import { createPrivateKey, type X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { HubError } from '../src/base/errors.js';
import { type CertificateInfo, certificateInfo, iso, parseCertificates } from './certificate.js';
import { hubIdOfCertificate } from './hub-id.js';
import { type IdentityPaths, identityPaths, readKey } from './identity-files.js';

/**
 * Reading the installed identity: whole for the uplink, which must not connect with files that
 * do not belong together, or only the certificate for `iqhub cert` and `iqhub diag`, which show
 * it without touching the key.
 */

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
