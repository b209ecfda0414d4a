import { X509Certificate } from 'node:crypto';
import { HubError } from '../src/base/errors.js';

/**
 * Reading certificate files and saying what a certificate holds, without judging it: the CLI
 * shows it, `iqhub diag` reports it, and the checks and the install start from it. A file that is
 * not plainly PEM certificates is refused here, before anything looks inside.
 */

/** Certificate files (a leaf and its intermediates, or a CA bundle) larger than this are refused. */
export const CERT_MAX_BYTES = 64 * 1024;
const DAY_MS = 86_400_000;

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

/** The CN of a distinguished name as node:crypto prints it (one attribute a line). */
export const cnOf = (dn: string): string | undefined =>
  dn
    .split('\n')
    .find((l) => l.startsWith('CN='))
    ?.slice(3);

/** A time for messages: a validity date that does not parse is named as such instead of throwing. */
export const iso = (ms: number) => (Number.isFinite(ms) ? new Date(ms).toISOString() : 'an invalid date');

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
