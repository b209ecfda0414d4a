import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import type { CertKeyPaths } from '../../../provisioning/dev-pki.js';

/** What a factory CA does with a hub's CSR, with knobs to make every kind of bad certificate. */
export interface SignOptions {
  /** Replace the CSR's subject CN. */
  cn?: string;
  notBefore?: Date;
  notAfter?: Date;
  /** Extended key usage; null: none. Default clientAuth. */
  eku?: 'clientAuth' | 'serverAuth' | null;
}

export function signCsr(csrPem: string, ca: CertKeyPaths, o: SignOptions = {}): string {
  const csr = forge.pki.certificationRequestFromPem(csrPem);
  if (!csr.verify()) throw new Error('the CSR signature does not verify');
  const caCert = forge.pki.certificateFromPem(readFileSync(ca.cert, 'utf8'));
  const caKey = forge.pki.privateKeyFromPem(readFileSync(ca.key, 'utf8')) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.serialNumber = `1${randomBytes(15).toString('hex')}`;
  cert.validity.notBefore = o.notBefore ?? new Date(Date.now() - 5 * 60_000);
  cert.validity.notAfter = o.notAfter ?? new Date(Date.now() + 90 * 86_400_000);
  cert.setSubject(
    o.cn === undefined
      ? csr.subject.attributes
      : ([{ shortName: 'CN', value: o.cn }] as unknown as forge.pki.CertificateField[]),
  );
  cert.setIssuer(caCert.subject.attributes);
  if (!csr.publicKey) throw new Error('the CSR has no public key');
  cert.publicKey = csr.publicKey;
  const eku = o.eku === undefined ? 'clientAuth' : o.eku;
  const requested = (
    csr.getAttribute({ name: 'extensionRequest' }) as { extensions?: { name: string }[] } | null
  )?.extensions?.find((e) => e.name === 'subjectAltName');
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    ...(eku ? [{ name: 'extKeyUsage', [eku]: true }] : []),
    ...(requested ? [requested] : []),
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** An intermediate CA under `ca`, written as `<dir>/intermediate.{crt,key}`. */
export function makeIntermediate(ca: CertKeyPaths, dir: string): CertKeyPaths {
  const pems = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const caCert = forge.pki.certificateFromPem(readFileSync(ca.cert, 'utf8'));
  const caKey = forge.pki.privateKeyFromPem(readFileSync(ca.key, 'utf8')) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.serialNumber = `1${randomBytes(15).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000);
  cert.validity.notAfter = new Date(Date.now() + 365 * 86_400_000);
  cert.setSubject([
    { shortName: 'CN', value: 'iq-hub factory intermediate' },
  ] as unknown as forge.pki.CertificateField[]);
  cert.setIssuer(caCert.subject.attributes);
  cert.publicKey = forge.pki.publicKeyFromPem(pems.publicKey);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  const paths = { cert: join(dir, 'intermediate.crt'), key: join(dir, 'intermediate.key') };
  writeFileSync(paths.key, pems.privateKey, { mode: 0o600 });
  writeFileSync(paths.cert, forge.pki.certificateToPem(cert));
  return paths;
}
