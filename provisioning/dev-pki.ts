import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';
import { writeFileAtomic } from '../src/base/atomic-file.js';
import { HubError } from '../src/base/errors.js';
import { type Random, systemRandom } from '../src/base/random.js';
import { Secret } from '../src/crypto/secret.js';
import { validateIdentity } from './identity-rule.js';

/** The CN rule, here for the demo, the test broker and the simulation (the daemon imports identity-rule.ts). */
export { validateIdentity };

/**
 * A development PKI: one CA, a broker (server) certificate and client certificates for a hub and
 * the cloud, and the hub's OTP key for remote commands (`otp.key`, shared by the hub and its
 * cloud). Keys come from node:crypto (RSA-2048: node-forge signs RSA only); certificates are
 * built and signed with node-forge. Private keys and the OTP key are written 0600 and never
 * returned or printed.
 */

export interface CertKeyPaths {
  cert: string;
  key: string;
}

export interface DevPkiPaths {
  dir: string;
  ca: CertKeyPaths;
  broker: CertKeyPaths;
  hub: CertKeyPaths;
  cloud: CertKeyPaths;
  /** The hub's OTP key (`commands.otpKeyFile`): 64 hex digits and a newline, mode 0600. */
  otpKey: string;
}

export interface DevPkiOptions {
  dir: string;
  hubId: string;
  cloudId?: string;
  brokerHost?: string;
  days?: number;
  random?: Random;
  /** Replace an existing CA in `dir` (default false: refuse). */
  overwrite?: boolean;
  /** Told each step as it starts (RSA key generation takes seconds): `iqhub pki dev` prints them. */
  progress?: (step: string) => void;
}

export interface PkiCertInfo {
  file: string;
  cn: string;
  issuerCn: string;
  isCa: boolean;
  subjectAltName: string | undefined;
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the DER certificate, colon-separated hex. */
  fingerprint: string;
}

interface Issued {
  cert: forge.pki.Certificate;
  key: forge.pki.PrivateKey;
  keyPem: string;
}

/** The OTP key's file name in the PKI directory. */
export const OTP_KEY_FILE = 'otp.key';
const OTP_KEY_BYTES = 32;

/** The paths of the PKI files in `dir` (whether or not they exist). */
export function pkiPaths(dir: string): DevPkiPaths {
  const pair = (name: string): CertKeyPaths => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });
  return {
    dir,
    ca: pair('ca'),
    broker: pair('broker'),
    hub: pair('hub'),
    cloud: pair('cloud'),
    otpKey: join(dir, OTP_KEY_FILE),
  };
}

/** A new RSA-2048 key (node:crypto) and a certificate for it, signed by `issuer` or self-signed. */
function issue(cn: string, days: number, random: Random, issuer: Issued | undefined, extensions: object[]): Issued {
  if (!Number.isInteger(days) || days < 1 || days > 36_500) {
    throw new HubError('pki.bad-days', `A certificate validity of ${days} days is out of range (1-36500).`, {
      hint: 'Pass a whole number of days, e.g. 825.',
    });
  }
  const pems = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const key = forge.pki.privateKeyFromPem(pems.privateKey);
  const cert = forge.pki.createCertificate();
  const serial = random.bytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x10; // positive, no leading zero byte
  cert.serialNumber = forge.util.bytesToHex(String.fromCharCode(...serial));
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000); // tolerate small clock skew
  cert.validity.notAfter = new Date(Date.now() + days * 86_400_000);
  const subject = [
    { shortName: 'O', value: 'iq-hub development', valueTagClass: forge.asn1.Type.UTF8 },
    { shortName: 'CN', value: cn, valueTagClass: forge.asn1.Type.UTF8 },
  ] as unknown as forge.pki.CertificateField[];
  cert.setSubject(subject);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : subject);
  cert.publicKey = forge.pki.publicKeyFromPem(pems.publicKey);
  const aki = issuer?.cert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    ...extensions,
    { name: 'subjectKeyIdentifier' },
    ...(aki ? [{ name: 'authorityKeyIdentifier', keyIdentifier: aki }] : []),
  ]);
  cert.sign((issuer?.key ?? key) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { cert, key, keyPem: pems.privateKey };
}

const newCa = (cn: string, days: number, random: Random) =>
  issue(cn, days, random, undefined, [
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ]);

/** A client certificate (clientAuth), or a server one (serverAuth + SAN) when `hosts` is given. */
const issueLeaf = (ca: Issued, cn: string, days: number, random: Random, hosts?: string[]) =>
  issue(cn, days, random, ca, [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', ...(hosts ? { serverAuth: true } : { clientAuth: true }) },
    ...(hosts
      ? [{ name: 'subjectAltName', altNames: hosts.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h })) }]
      : []),
  ]);

function save(dir: string, name: string, issued: Issued): CertKeyPaths {
  const paths = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  writeFileAtomic(paths.key, issued.keyPem, 0o600);
  writeFileAtomic(paths.cert, forge.pki.certificateToPem(issued.cert), 0o644);
  return paths;
}

/** Create the development PKI in `dir` and return the paths of what it wrote. */
export function createDevPki(opts: DevPkiOptions): DevPkiPaths {
  const { dir, hubId, cloudId = 'cloud', brokerHost = 'localhost', days = 825, random = systemRandom } = opts;
  validateIdentity(hubId, 'hub id');
  validateIdentity(cloudId, 'cloud id');
  if (hubId === cloudId) {
    throw new HubError('pki.bad-identity', `The hub id and the cloud id are both ${JSON.stringify(hubId)}.`, {
      hint: "The cloud id is allowed every hub's topics: give the hub a different id.",
    });
  }
  if (brokerHost.length === 0 || /[\s/]/.test(brokerHost)) {
    throw new HubError('pki.bad-host', `The broker host ${JSON.stringify(brokerHost)} is not a host name or IP.`, {
      hint: 'Pass the name or address clients use to reach the broker, e.g. "mqtt.example.com".',
    });
  }
  const paths = pkiPaths(dir);
  if (!opts.overwrite && existsSync(paths.ca.key)) {
    throw new HubError('pki.exists', `A CA already exists in ${dir}; it was not replaced.`, {
      hint: 'Use another directory, or add --force to `iqhub pki dev` to replace it (certificates issued by it stop working).',
    });
  }
  const step = opts.progress ?? (() => {});
  const tag = forge.util.bytesToHex(String.fromCharCode(...random.bytes(4)));
  step('making the CA (RSA key and self-signed certificate)');
  const ca = newCa(`iq-hub development CA ${tag}`, days, random);
  step(`issuing the broker certificate (CN=${brokerHost})`);
  const broker = issueLeaf(ca, brokerHost, days, random, [...new Set(['localhost', '127.0.0.1', brokerHost])]);
  step(`issuing the hub certificate (CN=${hubId})`);
  const hub = issueLeaf(ca, hubId, days, random);
  step(`issuing the cloud certificate (CN=${cloudId})`);
  const cloud = issueLeaf(ca, cloudId, days, random);
  step(`writing the files to ${dir}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  save(dir, 'broker', broker);
  save(dir, 'hub', hub);
  save(dir, 'cloud', cloud);
  // The hub's OTP key: in production the cloud generates it at enrollment and delivers it to the
  // hub; here both sides read this file. Random bytes, hex, never returned or printed.
  const otp = Buffer.from(random.bytes(OTP_KEY_BYTES));
  writeFileAtomic(paths.otpKey, `${otp.toString('hex')}\n`, 0o600);
  otp.fill(0);
  save(dir, 'ca', ca); // last: an interrupted run leaves no CA behind to block the next one
  return paths;
}

/**
 * Issue one more client certificate (CN = `cn`, clientAuth) from the CA in `dir`, written as
 * `<fileName>.crt` / `<fileName>.key` in `dir` (e.g. a second hub for ACL tests).
 */
export function issueClientCert(o: { dir: string; cn: string; fileName: string; days?: number; random?: Random }) {
  validateIdentity(o.cn, 'client id');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(o.fileName) || ['ca', 'broker'].includes(o.fileName)) {
    throw new HubError('pki.bad-file-name', `The certificate file name ${JSON.stringify(o.fileName)} is refused.`, {
      hint: "Use letters, digits, '.', '_' or '-', and not 'ca' or 'broker'.",
    });
  }
  const { ca: caPaths } = pkiPaths(o.dir);
  const keyPem = readFileSync(caPaths.key, 'utf8');
  const cert = forge.pki.certificateFromPem(readFileSync(caPaths.cert, 'utf8'));
  const ca: Issued = { cert, key: forge.pki.privateKeyFromPem(keyPem), keyPem };
  return save(o.dir, o.fileName, issueLeaf(ca, o.cn, o.days ?? 825, o.random ?? systemRandom));
}

/** For tests: an unrelated CA (`foreign-ca`) and a client certificate from it (`foreign-client`). */
export function createForeignCa(dir: string, clientCn = 'foreign-client'): { ca: CertKeyPaths; client: CertKeyPaths } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = newCa('iq-hub foreign CA', 30, systemRandom);
  const client = issueLeaf(ca, clientCn, 30, systemRandom);
  return { ca: save(dir, 'foreign-ca', ca), client: save(dir, 'foreign-client', client) };
}

/**
 * Read a development OTP key file (64 hex digits, optionally followed by a newline) as the
 * reference cloud's copy of a hub's key. The hub reads its own with its own checks.
 */
export function readDevOtpKey(path: string): Secret {
  const text = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text)) {
    throw new HubError('pki.bad-otp-key', `${path} does not hold an OTP key (64 hex digits).`, {
      hint: 'Make one with iqhub pki dev, or write 32 random bytes as hex.',
    });
  }
  return new Secret(Buffer.from(text, 'hex'));
}

/** What the certificates in `dir` say: names, validity, fingerprints. Reads no key file. */
export function describePki(dir: string): PkiCertInfo[] {
  const cnOf = (dn: string) =>
    dn
      .split('\n')
      .find((l) => l.startsWith('CN='))
      ?.slice(3) ?? '';
  return readdirSync(dir)
    .filter((f) => f.endsWith('.crt'))
    .sort()
    .map((file) => {
      const x = new X509Certificate(readFileSync(join(dir, file)));
      return {
        file,
        cn: cnOf(x.subject),
        issuerCn: cnOf(x.issuer),
        isCa: x.ca,
        subjectAltName: x.subjectAltName,
        notBefore: new Date(x.validFrom).toISOString(),
        notAfter: new Date(x.validTo).toISOString(),
        fingerprint: x.fingerprint256,
      };
    });
}
