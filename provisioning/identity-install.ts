import type { X509Certificate } from 'node:crypto';
import { existsSync, linkSync, renameSync, unlinkSync } from 'node:fs';
import { fsyncDir, stageFile } from '../src/base/atomic-file.js';
import { HubError } from '../src/base/errors.js';
import { type CertificateInfo, type Pem, parseCertificates } from './certificate.js';
import { checkCertificate } from './certificate-check.js';
import { validateHubId } from './hub-id.js';
import { type IdentityPaths, prepareDir, readKey, settleInterruptedInstall } from './identity-files.js';
import { csrForKey } from './key-and-csr.js';

/**
 * Putting a certificate (and its CA, and with a rotation its new key and CSR) in place so the
 * hub is never left with files that do not belong together. An install checks everything before
 * it writes anything, so a refused certificate leaves the installed files byte-identical. The
 * files are staged (written and fsynced beside the real ones) and renamed into place with the
 * certificate last. When a new key comes with the certificate, the old key is kept as
 * `hub.key.prev` until the certificate is in place: an install cut short by a power loss is
 * rolled back to the old key and certificate at the next install or load.
 */

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

/** Only the certificate blocks are installed, without comments or text around them. */
const pemOf = (certs: X509Certificate[]) => certs.map((x) => x.toString().trim()).join('\n') + '\n';

/** Remove a file that may already be gone: a staged file of a failed install, or a stale hub.key.prev. */
function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // not there
  }
}
