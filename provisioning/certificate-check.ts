import { createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { HubError } from '../src/base/errors.js';
import { type CertificateInfo, certificateInfo, cnOf, iso, type Pem, parseCertificates } from './certificate.js';

/**
 * Whether a certificate can be this hub's identity, judged before anything is installed or
 * presented to the broker (`iqhub provision install`, claim enrollment, rotation), so a wrong one
 * is refused with the reason and the fix instead of failing later as a TLS error.
 */

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EKU = '2.5.29.37.0';
const MAX_CHAIN = 4;

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
