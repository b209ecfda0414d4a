import { createPrivateKey, X509Certificate } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCertificate } from '../../../provisioning/certificate-check.js';
import { type CertKeyPaths, createDevPki, createForeignCa, type DevPkiPaths } from '../../../provisioning/dev-pki.js';
import { identityPaths } from '../../../provisioning/identity-files.js';
import { installIdentity } from '../../../provisioning/identity-install.js';
import { loadIdentity, readInstalledCertificate } from '../../../provisioning/identity-load.js';
import { initIdentity, makeKeyAndCsr, readCsr } from '../../../provisioning/key-and-csr.js';
import { loadUplinkFiles } from '../../../provisioning/uplink-files.js';
import { HubError } from '../../../src/base/errors.js';
import { parseConfig } from '../../../src/config/load.js';
import { refusal } from '../../helpers/refusal.js';
import { tempDir } from '../../helpers/tmp.js';
import { makeIntermediate, signCsr } from './sign.js';

const HUB = 'hub-0001';
const DAY = 86_400_000;
let root: string;
let pki: DevPkiPaths;
let foreign: { ca: CertKeyPaths; client: CertKeyPaths };
let caPem: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'iqhub-identity-'));
  pki = createDevPki({ dir: join(root, 'pki'), hubId: HUB, days: 30 });
  foreign = createForeignCa(join(root, 'foreign'));
  caPem = readFileSync(pki.ca.cert, 'utf8');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Every file of the identity directory: name, mode and bytes. */
function snapshot(dataDir: string) {
  const dir = identityPaths(dataDir).dir;
  return readdirSync(dir)
    .sort()
    .map((f) => ({ f, mode: statSync(join(dir, f)).mode & 0o777, bytes: readFileSync(join(dir, f)).toString('hex') }));
}

/** A data directory with a key, its CSR and a good certificate installed. */
function installed(): { dataDir: string; csrPem: string; certPem: string } {
  const dataDir = tempDir();
  const { csrPem } = initIdentity({ dataDir, hubId: HUB });
  const certPem = signCsr(csrPem, pki.ca);
  installIdentity({ dataDir, certPem, caPem, hubId: HUB, now: Date.now() });
  return { dataDir, csrPem, certPem };
}

/** The base64 body of the installed key, to look for in outputs and messages. */
function keyBody(dataDir: string): string {
  const pem = readFileSync(identityPaths(dataDir).key, 'utf8');
  return pem.split('\n').slice(1, 3).join('');
}

function expectNoKey(e: HubError, dataDir: string): void {
  const body = keyBody(dataDir);
  for (const line of [body.slice(0, 40), body.slice(40, 80)]) {
    expect(e.message).not.toContain(line);
    expect(e.hint ?? '').not.toContain(line);
  }
}

describe('provision init', () => {
  it('makes a 0600 RSA-2048 key and a CSR with CN and SAN = hub id; returns no key', () => {
    const dataDir = tempDir();
    const r = initIdentity({ dataDir, hubId: HUB });
    const paths = identityPaths(dataDir);
    expect(statSync(paths.key).mode & 0o777).toBe(0o600);
    expect(statSync(paths.dir).mode & 0o777).toBe(0o700);
    const key = createPrivateKey(readFileSync(paths.key));
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(readFileSync(paths.csr, 'utf8')).toBe(r.csrPem);
    const csr = forge.pki.certificationRequestFromPem(r.csrPem);
    expect(csr.verify()).toBe(true);
    expect(csr.subject.getField('CN').value).toBe(HUB);
    const ext = csr.getAttribute({ name: 'extensionRequest' }) as unknown as {
      extensions: { name: string; altNames?: { type: number; value: string }[] }[];
    };
    expect(ext.extensions.find((e) => e.name === 'subjectAltName')?.altNames).toEqual([
      { type: 6, value: `urn:iq-hub:hub:${HUB}` },
    ]);
    expect(JSON.stringify(r)).not.toContain('PRIVATE KEY');
    expect(JSON.stringify(r)).not.toContain(keyBody(dataDir).slice(0, 40));
  });

  it('refuses to replace an existing key without force, leaving every file as it was', () => {
    const { dataDir } = installed();
    const before = snapshot(dataDir);
    const e = refusal(() => initIdentity({ dataDir, hubId: HUB }));
    expect(e.code).toBe('provision.key-exists');
    expect(e.hint).toContain('--force');
    expect(snapshot(dataDir)).toEqual(before);
  });

  it('with force makes a new key and removes the certificate of the old one', () => {
    const { dataDir } = installed();
    const oldKey = readFileSync(identityPaths(dataDir).key);
    const r = initIdentity({ dataDir, hubId: HUB, force: true });
    expect(r.replacedKey).toBe(true);
    expect(r.removedCertificate).toBe(true);
    expect(readFileSync(identityPaths(dataDir).key).equals(oldKey)).toBe(false);
    expect(existsSync(identityPaths(dataDir).cert)).toBe(false);
    expect(loadIdentity(dataDir)).toBeUndefined();
  });

  it('refuses a hub id that cannot be a topic level', () => {
    for (const id of ['', 'a/b', 'hub+1', 'hub#', '-hub', 'x'.repeat(65), 'hub 1']) {
      const e = refusal(() => initIdentity({ dataDir: tempDir(), hubId: id }));
      expect(['pki.bad-identity', 'provision.bad-hub-id']).toContain(e.code);
    }
  });

  it('makeKeyAndCsr makes a key and a CSR for it in memory only', () => {
    const { keyPem, csrPem } = makeKeyAndCsr(HUB);
    const csr = forge.pki.certificationRequestFromPem(csrPem);
    expect(csr.verify()).toBe(true);
    expect(csr.subject.getField('CN').value).toBe(HUB);
    const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
    expect((csr.publicKey as forge.pki.rsa.PublicKey).n.equals(key.n)).toBe(true);
  });
});

describe('provision install', () => {
  it('installs a good certificate with its CA; loadIdentity returns it', () => {
    const { dataDir, certPem } = installed();
    const paths = identityPaths(dataDir);
    const id = loadIdentity(dataDir);
    expect(id?.hubId).toBe(HUB);
    expect(id?.cert.toString()).toBe(new X509Certificate(certPem).toString());
    expect(id?.ca.toString()).toBe(new X509Certificate(caPem).toString());
    expect(id?.fingerprint).toBe(new X509Certificate(certPem).fingerprint256);
    expect(Date.parse(id?.notAfter ?? '')).toBeGreaterThan(Date.now() + 80 * DAY);
    expect(Date.parse(id?.notBefore ?? '')).toBeLessThan(Date.now());
    expect(statSync(paths.key).mode & 0o777).toBe(0o600);
    expect(readdirSync(paths.dir).sort()).toEqual(['ca.crt', 'hub.crt', 'hub.csr', 'hub.key']);
    const info = readInstalledCertificate(dataDir, Date.now());
    expect(info).toMatchObject({ hubId: HUB, path: paths.cert, daysLeft: 89 });
    expect(info?.issuer).toMatch(/^iq-hub development CA/);
  });

  it('refuses every bad certificate with its own code, leaving the installed identity byte-identical', () => {
    const { dataDir, csrPem, certPem } = installed();
    const now = Date.now();
    const other = makeKeyAndCsr(HUB);
    const cases: { name: string; code: string; cert: string | Buffer; ca?: string; now?: number; re: RegExp }[] = [
      {
        name: 'wrong key',
        code: 'provision.key-mismatch',
        cert: signCsr(other.csrPem, pki.ca),
        re: /was not issued for this hub's key/,
      },
      {
        name: 'wrong CA',
        code: 'provision.wrong-ca',
        cert: signCsr(csrPem, foreign.ca),
        re: /was not signed by the CA in/,
      },
      {
        name: 'a leaf as CA',
        code: 'provision.wrong-ca',
        cert: certPem,
        ca: readFileSync(pki.broker.cert, 'utf8'),
        re: /not a CA/,
      },
      {
        name: 'expired',
        code: 'provision.expired',
        cert: signCsr(csrPem, pki.ca, { notBefore: new Date(now - 40 * DAY), notAfter: new Date(now - DAY) }),
        re: /expired on .*the hub's clock says/,
      },
      {
        name: 'expired at a later now',
        code: 'provision.expired',
        cert: certPem,
        now: now + 120 * DAY,
        re: /expired on/,
      },
      {
        name: 'not yet valid',
        code: 'provision.not-yet-valid',
        cert: signCsr(csrPem, pki.ca, { notBefore: new Date(now + DAY), notAfter: new Date(now + 90 * DAY) }),
        re: /is valid only from .*the hub's clock says/,
      },
      {
        name: 'CN mismatch',
        code: 'provision.cn-mismatch',
        cert: signCsr(csrPem, pki.ca, { cn: 'hub-0002' }),
        re: /is for CN="hub-0002", not for this hub \("hub-0001"\)/,
      },
      {
        name: 'server certificate',
        code: 'provision.not-client-cert',
        cert: signCsr(csrPem, pki.ca, { eku: 'serverAuth' }),
        re: /TLS client certificate/,
      },
      { name: 'truncated', code: 'provision.not-pem', cert: certPem.slice(0, certPem.length / 2), re: /truncated/ },
      {
        name: 'truncated inside',
        code: 'provision.not-pem',
        cert: certPem
          .split('\n')
          .filter((_, i) => i < 3 || i > 8)
          .join('\n'),
        re: /does not parse/,
      },
      { name: 'garbage', code: 'provision.not-pem', cert: 'hello, I am not a certificate\n', re: /holds no PEM/ },
      { name: 'empty', code: 'provision.not-pem', cert: '', re: /is empty/ },
      {
        name: 'DER',
        code: 'provision.not-pem',
        cert: new X509Certificate(certPem).raw,
        re: /holds no PEM/,
      },
      {
        name: 'a private key',
        code: 'provision.not-pem',
        cert: `${certPem}${other.keyPem}`,
        re: /holds a private key/,
      },
      { name: 'garbage CA', code: 'provision.not-pem', cert: certPem, ca: 'garbage', re: /ca\.crt holds no PEM/ },
      {
        name: 'truncated CA',
        code: 'provision.not-pem',
        cert: certPem,
        ca: caPem.slice(0, 200),
        re: /truncated/,
      },
    ];
    const before = snapshot(dataDir);
    for (const c of cases) {
      const e = refusal(() =>
        installIdentity({
          dataDir,
          certPem: c.cert,
          caPem: c.ca ?? caPem,
          hubId: HUB,
          now: c.now ?? now,
          source: { cert: '/tmp/in/hub.crt', ca: '/tmp/in/ca.crt' },
        }),
      );
      expect(e.code, c.name).toBe(c.code);
      expect(e.message, c.name).toMatch(c.re);
      expect(e.hint, c.name).toBeTruthy();
      expectNoKey(e, dataDir);
      expect(snapshot(dataDir), c.name).toEqual(before);
    }
    expect(loadIdentity(dataDir)?.cert.toString()).toBe(new X509Certificate(certPem).toString());
  });

  it('names the files in its messages', () => {
    const { dataDir, csrPem } = installed();
    const e = refusal(() =>
      installIdentity({
        dataDir,
        certPem: signCsr(csrPem, foreign.ca),
        caPem,
        hubId: HUB,
        now: Date.now(),
        source: { cert: '/media/usb/hub.crt', ca: '/media/usb/ca.crt' },
      }),
    );
    expect(e.message).toContain('/media/usb/hub.crt');
    expect(e.message).toContain('/media/usb/ca.crt');
    expect(e.message).toContain('iq-hub foreign CA');
  });

  it('refuses an install before init: there is no key the certificate could belong to', () => {
    const dataDir = tempDir();
    const e = refusal(() =>
      installIdentity({ dataDir, certPem: readFileSync(pki.hub.cert), caPem, hubId: HUB, now: Date.now() }),
    );
    expect(e.code).toBe('provision.no-key');
    expect(e.hint).toContain('iqhub provision init');
  });

  it('checkCertificate accepts intermediates after the leaf and returns what the certificate says', () => {
    const dataDir = tempDir();
    const { csrPem } = initIdentity({ dataDir, hubId: HUB });
    const intermediate = makeIntermediate(pki.ca, tempDir());
    const leaf = signCsr(csrPem, intermediate);
    const keyPem = readFileSync(identityPaths(dataDir).key);
    const info = checkCertificate({
      certPem: `${leaf}${readFileSync(intermediate.cert, 'utf8')}`,
      caPem,
      keyPem,
      hubId: HUB,
      now: new Date(),
    });
    expect(info).toMatchObject({
      hubId: HUB,
      issuer: 'iq-hub factory intermediate',
      subjectAltName: `URI:urn:iq-hub:hub:${HUB}`,
    });
    // Without the intermediate, the leaf does not chain to the CA.
    const e = refusal(() => checkCertificate({ certPem: leaf, caPem, keyPem, hubId: HUB, now: new Date() }));
    expect(e.code).toBe('provision.wrong-ca');
  });

  it('with a new key (rotation) installs key, CSR and certificate together; a refusal changes nothing', () => {
    const { dataDir } = installed();
    const next = makeKeyAndCsr(HUB);
    const before = snapshot(dataDir);
    const bad = refusal(() =>
      installIdentity({
        dataDir,
        certPem: signCsr(next.csrPem, foreign.ca),
        caPem,
        keyPem: next.keyPem,
        csrPem: next.csrPem,
        hubId: HUB,
        now: Date.now(),
      }),
    );
    expect(bad.code).toBe('provision.wrong-ca');
    expect(snapshot(dataDir)).toEqual(before);
    const cert = signCsr(next.csrPem, pki.ca);
    installIdentity({ dataDir, certPem: cert, caPem, keyPem: next.keyPem, hubId: HUB, now: Date.now() });
    const paths = identityPaths(dataDir);
    expect(readFileSync(paths.key, 'utf8')).toBe(next.keyPem);
    expect(statSync(paths.key).mode & 0o777).toBe(0o600);
    expect(existsSync(paths.keyPrev)).toBe(false);
    expect(readdirSync(paths.dir).sort()).toEqual(['ca.crt', 'hub.crt', 'hub.csr', 'hub.key']);
    expect(loadIdentity(dataDir)?.fingerprint).toBe(new X509Certificate(cert).fingerprint256);
    // The CSR was made again for the new key.
    expect(readCsr(dataDir).csrPem).toBe(readFileSync(paths.csr, 'utf8'));
  });

  it('an install with a new key cut short before the certificate is rolled back to the old key', () => {
    const { dataDir } = installed();
    const paths = identityPaths(dataDir);
    const oldKey = readFileSync(paths.key);
    // The state between renaming the new key into place and renaming the certificate.
    linkSync(paths.key, paths.keyPrev);
    const tmp = join(paths.dir, 'new.key');
    writeFileSync(tmp, makeKeyAndCsr(HUB).keyPem, { mode: 0o600 });
    renameSync(tmp, paths.key);
    expect(loadIdentity(dataDir)?.key.equals(oldKey)).toBe(true);
    // The next install (or init) settles it: the old key is back.
    const e = refusal(() => initIdentity({ dataDir, hubId: HUB }));
    expect(e.code).toBe('provision.key-exists');
    expect(readFileSync(paths.key).equals(oldKey)).toBe(true);
    expect(existsSync(paths.keyPrev)).toBe(false);
  });

  it('readCsr makes the CSR again when it does not belong to the key', () => {
    const { dataDir } = installed();
    const paths = identityPaths(dataDir);
    writeFileSync(paths.csr, makeKeyAndCsr(HUB).csrPem);
    const r = readCsr(dataDir);
    const csr = forge.pki.certificationRequestFromPem(r.csrPem);
    const key = forge.pki.privateKeyFromPem(readFileSync(paths.key, 'utf8')) as forge.pki.rsa.PrivateKey;
    expect((csr.publicKey as forge.pki.rsa.PublicKey).n.equals(key.n)).toBe(true);
    expect(r.hubId).toBe(HUB);
  });
});

describe('loadIdentity', () => {
  it('is undefined when nothing, or only a key and CSR, is installed', () => {
    const dataDir = tempDir();
    expect(loadIdentity(dataDir)).toBeUndefined();
    initIdentity({ dataDir, hubId: HUB });
    expect(loadIdentity(dataDir)).toBeUndefined();
  });

  it('refuses a key readable by others, without showing it', () => {
    const { dataDir } = installed();
    chmodSync(identityPaths(dataDir).key, 0o640);
    const e = refusal(() => loadIdentity(dataDir));
    expect(e.code).toBe('identity.key.permissions');
    expect(e.hint).toContain('chmod 600');
    expectNoKey(e, dataDir);
  });

  it('refuses a key that does not belong to the certificate', () => {
    const { dataDir } = installed();
    writeFileSync(identityPaths(dataDir).key, makeKeyAndCsr(HUB).keyPem, { mode: 0o600 });
    expect(refusal(() => loadIdentity(dataDir)).code).toBe('identity.key-mismatch');
  });

  it('reports an expired certificate instead of hiding it', () => {
    const dataDir = tempDir();
    const { csrPem } = initIdentity({ dataDir, hubId: HUB });
    const now = Date.now();
    const cert = signCsr(csrPem, pki.ca, { notBefore: new Date(now - 10 * DAY), notAfter: new Date(now + DAY) });
    installIdentity({ dataDir, certPem: cert, caPem, hubId: HUB, now });
    // Later, it has expired: still loaded (the uplink logs and diag report the expiry).
    expect(loadIdentity(dataDir)?.hubId).toBe(HUB);
    expect(readInstalledCertificate(dataDir, now + 3 * DAY)?.daysLeft).toBeLessThan(-1);
  });
});

describe('the uplink and the installed identity', () => {
  const uplink = (extra = '') =>
    parseConfig(`uplink:\n  enabled: true\n  url: mqtts://localhost:8883\n${extra}`, 'config.yaml').uplink;

  it('with no certificate files configured, uses the installed identity', () => {
    const { dataDir } = installed();
    const files = loadUplinkFiles(uplink(), dataDir);
    expect(files.identity.hubId).toBe(HUB);
    expect(files.key.equals(readFileSync(identityPaths(dataDir).key))).toBe(true);
    expect(files.ca.equals(readFileSync(identityPaths(dataDir).ca))).toBe(true);
  });

  it('refuses to start without an installed identity, and says how to get one', () => {
    const dataDir = tempDir();
    initIdentity({ dataDir, hubId: HUB });
    const e = refusal(() => loadUplinkFiles(uplink(), dataDir));
    expect(e.code).toBe('uplink.no-identity');
    expect(e.message).toContain(identityPaths(dataDir).dir);
    expect(e.hint).toContain('iqhub provision init');
    expect(e.hint).toContain('iqhub provision install');
  });

  it('still checks the installed key', () => {
    const { dataDir } = installed();
    chmodSync(identityPaths(dataDir).key, 0o644);
    expect(refusal(() => loadUplinkFiles(uplink(), dataDir)).code).toBe('identity.key.permissions');
  });

  it('configured files are used as before; some but not all of them is refused', () => {
    const files = loadUplinkFiles(
      uplink(`  caFile: ${pki.ca.cert}\n  certFile: ${pki.hub.cert}\n  keyFile: ${pki.hub.key}\n`),
      tempDir(),
    );
    expect(files.identity.hubId).toBe(HUB);
    const e = refusal(() => loadUplinkFiles(uplink(`  caFile: ${pki.ca.cert}\n`), tempDir()));
    expect(e.code).toBe('config.uplink');
    expect(e).toBeInstanceOf(HubError);
  });
});
