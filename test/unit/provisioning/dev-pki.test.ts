import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDevPki,
  createForeignCa,
  type DevPkiPaths,
  describePki,
  issueClientCert,
  readDevOtpKey,
  validateIdentity,
} from '../../../provisioning/dev-pki.js';
import { SeededRandom } from '../../../src/base/random.js';
import { refusal } from '../../helpers/refusal.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

let root: string;
let pki: DevPkiPaths;
const x509 = (path: string) => new X509Certificate(readFileSync(path));

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'iqhub-dev-pki-'));
  pki = createDevPki({
    dir: join(root, 'pki'),
    hubId: 'hub-0001',
    cloudId: 'backend',
    brokerHost: 'mqtt.example.test',
    days: 30,
    random: new SeededRandom('dev-pki'),
  });
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('createDevPki', () => {
  it('writes a CA and broker, hub and cloud certificates that chain to it', () => {
    const ca = x509(pki.ca.cert);
    expect(ca.ca).toBe(true);
    expect(ca.checkIssued(ca)).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    for (const leaf of [pki.broker, pki.hub, pki.cloud]) {
      const cert = x509(leaf.cert);
      expect(cert.ca).toBe(false);
      expect(cert.checkIssued(ca)).toBe(true);
      expect(cert.verify(ca.publicKey)).toBe(true);
    }
    expect(readdirSync(pki.dir).sort()).toEqual(
      [...['broker', 'ca', 'cloud', 'hub'].flatMap((n) => [`${n}.crt`, `${n}.key`]), 'otp.key'].sort(),
    );
  });

  // X509Certificate.keyUsage lists the extended key usage OIDs.
  it('names each certificate as intended: CN, SAN and extended key usage', () => {
    const broker = x509(pki.broker.cert);
    expect(broker.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, DNS:mqtt.example.test');
    expect(broker.keyUsage).toEqual([SERVER_AUTH]);
    expect(broker.checkHost('localhost')).toBe('localhost');
    expect(broker.checkIP('127.0.0.1')).toBe('127.0.0.1');

    const hub = x509(pki.hub.cert);
    expect(hub.subject.split('\n')).toContain('CN=hub-0001');
    expect(hub.keyUsage).toEqual([CLIENT_AUTH]);
    expect(hub.subjectAltName).toBeUndefined();

    const cloud = x509(pki.cloud.cert);
    expect(cloud.subject.split('\n')).toContain('CN=backend');
    expect(cloud.keyUsage).toEqual([CLIENT_AUTH]);
  });

  it('keys are RSA-2048, match their certificates and are written 0600', () => {
    for (const pair of [pki.ca, pki.broker, pki.hub, pki.cloud]) {
      expect(statSync(pair.key).mode & 0o777).toBe(0o600);
      const cert = x509(pair.cert);
      expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
      expect(cert.checkPrivateKey(createPrivateKey(readFileSync(pair.key)))).toBe(true);
    }
  });

  it("writes the hub's OTP key: 32 random bytes as 64 hex digits and a newline, mode 0600", () => {
    expect(pki.otpKey).toBe(join(pki.dir, 'otp.key'));
    expect(statSync(pki.otpKey).mode & 0o777).toBe(0o600);
    const text = readFileSync(pki.otpKey, 'utf8');
    expect(text).toMatch(/^[0-9a-f]{64}\n$/);
    expect(Buffer.from(readDevOtpKey(pki.otpKey).reveal()).toString('hex')).toBe(text.trim());
    // Another PKI gets another key.
    const other = createDevPki({ dir: join(root, 'other'), hubId: 'hub-0002', days: 1 });
    expect(readFileSync(other.otpKey, 'utf8')).not.toBe(text);
  });

  it('refuses to read an OTP key file that does not hold 64 hex digits', () => {
    const bad = join(root, 'bad-otp.key');
    writeFileSync(bad, 'abc\n', { mode: 0o600 });
    expect(refusal(() => readDevOtpKey(bad)).code).toBe('pki.bad-otp-key');
  });

  it('honours the validity in days', () => {
    const hub = x509(pki.hub.cert);
    const days = (Date.parse(hub.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);
    expect(Date.parse(hub.validFrom)).toBeLessThanOrEqual(Date.now());
  });

  it('refuses to replace an existing CA unless told to', () => {
    const e = refusal(() => createDevPki({ dir: pki.dir, hubId: 'hub-0002' }));
    expect(e.code).toBe('pki.exists');
    expect(e.hint).toMatch(/--force/);
  });

  it.each([
    ['', /empty/],
    ['hub+1', /'\+'/],
    ['hub#', /'#'/],
    ['site/hub', /'\/'/],
    ['hub\n1', /control character/],
    ['hub\u0000', /control character/],
    ['hub\u007f', /control character/],
    ['hub\u0085', /control character/],
    ['h'.repeat(65), /65 characters, more than 64/],
  ])('refuses the hub id %j', (hubId, rule) => {
    const e = refusal(() => createDevPki({ dir: join(root, 'never'), hubId }));
    expect(e.code).toBe('pki.bad-identity');
    expect(e.message).toMatch(rule);
    expect(e.hint).toMatch(/1-64 printable characters/);
  });

  it('accepts 64 characters, and refuses a hub id equal to the cloud id', () => {
    expect(() => validateIdentity('h'.repeat(64))).not.toThrow();
    expect(() => validateIdentity('hub-ü-1')).not.toThrow();
    const e = refusal(() => createDevPki({ dir: join(root, 'never'), hubId: 'cloud' }));
    expect(e.message).toMatch(/hub id and the cloud id/);
    expect(readdirSync(root)).not.toContain('never');
  });
});

describe('issueClientCert and createForeignCa', () => {
  it('issues another client certificate from the same CA', () => {
    const b = issueClientCert({ dir: pki.dir, cn: 'hub-0002', fileName: 'hub-0002' });
    const cert = x509(b.cert);
    expect(cert.checkIssued(x509(pki.ca.cert))).toBe(true);
    expect(cert.subject.split('\n')).toContain('CN=hub-0002');
    expect(statSync(b.key).mode & 0o777).toBe(0o600);
    expect(refusal(() => issueClientCert({ dir: pki.dir, cn: 'x', fileName: 'ca' })).code).toBe('pki.bad-file-name');
    expect(refusal(() => issueClientCert({ dir: pki.dir, cn: 'x', fileName: '../x' })).code).toBe('pki.bad-file-name');
  });

  it('makes a CA that the development CA does not recognise', () => {
    const foreign = createForeignCa(join(root, 'foreign'), 'hub-0001');
    const client = x509(foreign.client.cert);
    expect(client.subject.split('\n')).toContain('CN=hub-0001');
    expect(client.checkIssued(x509(foreign.ca.cert))).toBe(true);
    expect(client.checkIssued(x509(pki.ca.cert))).toBe(false);
    expect(client.verify(x509(pki.ca.cert).publicKey)).toBe(false);
  });
});

describe('describePki', () => {
  it('lists CN, issuer, validity and fingerprint of each certificate, and no key material', () => {
    const info = describePki(pki.dir);
    const byFile = Object.fromEntries(info.map((i) => [i.file, i]));
    expect(byFile['hub.crt']).toMatchObject({
      cn: 'hub-0001',
      isCa: false,
      fingerprint: x509(pki.hub.cert).fingerprint256,
    });
    expect(byFile['ca.crt']?.isCa).toBe(true);
    expect(byFile['hub.crt']?.issuerCn).toBe(byFile['ca.crt']?.cn);
    expect(byFile['broker.crt']?.subjectAltName).toContain('DNS:mqtt.example.test');
    expect(Date.parse(byFile['cloud.crt']?.notAfter ?? '')).toBeGreaterThan(Date.now());
    expect(info.map((i) => i.file)).not.toContain('hub.key');
    expect(info.map((i) => i.file)).not.toContain('otp.key');

    const text = JSON.stringify(info);
    expect(text).not.toMatch(/PRIVATE KEY|BEGIN/);
    for (const pair of [pki.ca, pki.broker, pki.hub, pki.cloud]) {
      // No fragment of any key's base64 body appears.
      const body = readFileSync(pair.key, 'utf8').split('\n')[5] ?? '';
      expect(body.length).toBeGreaterThan(40);
      expect(text).not.toContain(body);
    }
    expect(text).not.toContain(readFileSync(pki.otpKey, 'utf8').trim());
  });
});
