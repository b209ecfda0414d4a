import { constants, createHash, createPublicKey, publicEncrypt, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { type Random, systemRandom } from '../../src/base/random.js';
import type { CertErrorCode } from '../../src/contract/mqtt-certificates.js';
import { ID_PATTERN } from '../../src/contract/mqtt-topics.js';

/**
 * The reference cloud's certificate authority: it signs hubs' CSRs (enrollment by claim and
 * rotation) with a CA key it is given, and encrypts secrets to the key of a CSR. node-forge
 * parses and signs (RSA); node:crypto encrypts (RSA-OAEP with SHA-256).
 */

export interface CaMaterial {
  /** PEM: the CA certificate (what hubs and the broker trust). */
  cert: string | Buffer;
  /** PEM: its private key. */
  key: string | Buffer;
}

/** Why a CSR was refused: the `error.code` of the answer and a message for the hub's log. */
export class CsrRefused extends Error {
  readonly code: CertErrorCode;
  constructor(code: CertErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export interface ParsedCsr {
  csr: forge.pki.CertificateSigningRequest;
  cn: string;
  /** PEM (SPKI) of the CSR's public key. */
  publicKeyPem: string;
  /** SHA-256 of the DER SPKI, hex: names a key (the same key always has the same one). */
  keyId: string;
}

/** Longest validity issued when the caller does not say: 825 days, as the dev PKI does. */
const DEFAULT_VALIDITY_SEC = 825 * 86_400;
/** Back-dating of notBefore for clock skew: 5 minutes, or 5% of a short lifetime. */
const MAX_BACKDATE_MS = 5 * 60_000;
const idPattern = new RegExp(ID_PATTERN);

/** Parse a PEM CSR and check its self-signature, its key (RSA ≥ 2048 bits) and its CN. */
export function parseCsr(pem: string): ParsedCsr {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(pem);
  } catch (e) {
    throw new CsrRefused('bad_csr', `the CSR cannot be read: ${(e as Error).message.slice(0, 200)}`);
  }
  let verified = false;
  try {
    verified = csr.verify();
  } catch {}
  if (!verified) throw new CsrRefused('bad_csr', 'the CSR is not signed by its own key');
  const publicKey = csr.publicKey as forge.pki.rsa.PublicKey | null;
  if (!publicKey || typeof publicKey.n?.bitLength !== 'function' || publicKey.n.bitLength() < 2048) {
    throw new CsrRefused('bad_csr', 'the CSR key must be RSA of at least 2048 bits');
  }
  const cns = csr.subject.attributes.filter((a) => a.shortName === 'CN');
  const cn = typeof cns[0]?.value === 'string' ? cns[0].value : '';
  if (cns.length !== 1 || !idPattern.test(cn)) {
    throw new CsrRefused('bad_csr', 'the CSR must name exactly one CN, a valid hub id');
  }
  const publicKeyPem = forge.pki.publicKeyToPem(publicKey);
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return { csr, cn, publicKeyPem, keyId: createHash('sha256').update(der).digest('hex') };
}

export interface IssueOptions {
  /** How long the certificate is valid from now, in seconds. */
  validitySec?: number;
  /** Wall-clock ms (default Date.now()). */
  now?: number;
  random?: Random;
}

/**
 * The signing half of a CA: `issue` makes a client certificate (clientAuth) for a checked CSR,
 * CN = the hub id, SAN URI `urn:iq-hub:hub:{hubId}` (as the hub's own CSR asks).
 */
export class CloudCa {
  readonly certPem: string;
  readonly #cert: forge.pki.Certificate;
  readonly #key: forge.pki.rsa.PrivateKey;
  readonly #random: Random;
  readonly fingerprint: string;

  constructor(m: CaMaterial, random: Random = systemRandom) {
    this.certPem = m.cert.toString();
    this.#cert = forge.pki.certificateFromPem(this.certPem);
    this.#key = forge.pki.privateKeyFromPem(m.key.toString()) as forge.pki.rsa.PrivateKey;
    this.#random = random;
    this.fingerprint = new X509Certificate(this.certPem).fingerprint256;
  }

  issue(req: ParsedCsr, o: IssueOptions = {}): { certPem: string; notBefore: string; notAfter: string } {
    const validitySec = o.validitySec ?? DEFAULT_VALIDITY_SEC;
    if (!Number.isFinite(validitySec) || validitySec < 1) throw new Error(`CloudCa: bad validitySec ${validitySec}`);
    const now = o.now ?? Date.now();
    const random = o.random ?? this.#random;
    const cert = forge.pki.createCertificate();
    const serial = random.bytes(16);
    serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x10; // positive, no leading zero byte
    cert.serialNumber = forge.util.bytesToHex(String.fromCharCode(...serial));
    const backdate = Math.min(MAX_BACKDATE_MS, Math.floor(validitySec * 50)); // 5% of the lifetime
    // X.509 times have whole seconds: round so that the lifetime the hub computes is the one asked for.
    const notBefore = Math.floor((now - backdate) / 1000) * 1000;
    const notAfter = Math.floor((now + validitySec * 1000) / 1000) * 1000;
    cert.validity.notBefore = new Date(notBefore);
    cert.validity.notAfter = new Date(notAfter);
    cert.setSubject([
      { shortName: 'O', value: 'iq-hub', valueTagClass: forge.asn1.Type.UTF8 },
      { shortName: 'CN', value: req.cn, valueTagClass: forge.asn1.Type.UTF8 },
    ] as unknown as forge.pki.CertificateField[]);
    cert.setIssuer(this.#cert.subject.attributes);
    cert.publicKey = req.csr.publicKey as forge.pki.PublicKey;
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 6, value: `urn:iq-hub:hub:${req.cn}` }] },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.#cert.generateSubjectKeyIdentifier().getBytes() },
    ]);
    cert.sign(this.#key, forge.md.sha256.create());
    return {
      certPem: forge.pki.certificateToPem(cert),
      notBefore: new Date(notBefore).toISOString(),
      notAfter: new Date(notAfter).toISOString(),
    };
  }
}

/** Encrypt `secret` to the CSR's key: base64 of RSA-OAEP (SHA-256, MGF1-SHA-256). */
export function wrapForKey(publicKeyPem: string, secret: Uint8Array): string {
  return publicEncrypt(
    { key: publicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    secret,
  ).toString('base64');
}
