import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDevPki, createForeignCa, issueClientCert } from '../../../provisioning/dev-pki.js';
import { identityPaths } from '../../../provisioning/identity-files.js';
import { loadIdentity } from '../../../provisioning/identity-load.js';
import { csrForKey, initIdentity, makeKeyAndCsr } from '../../../provisioning/key-and-csr.js';
import { CloudCa, parseCsr, wrapForKey } from '../../../sim/cloud/ca.js';
import { systemClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import { loadOtpKey } from '../../../src/commands/otp-key.js';
import type { EnrollRequestPayload, EnrollResponsePayload } from '../../../src/contract/mqtt-certificates.js';
import { CONTRACT_VERSION } from '../../../src/contract/mqtt-topics.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';
import { Sealer } from '../../../src/crypto/seal.js';
import { Secret } from '../../../src/crypto/secret.js';
import { Store } from '../../../src/store/store.js';
import {
  acceptEnrollment,
  type ClaimMaterial,
  Enrollment,
  type EnrollTransport,
  PIN_KEY_PURPOSE,
} from '../../../src/uplink/enrollment.js';
import { capturingLogger } from '../../helpers/commands.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * Enrollment by claim without a broker: the hub side (src/uplink/enrollment.ts) against the
 * reference cloud's CA (sim/cloud/ca.ts) through an in-memory transport. What a hub accepts,
 * what it refuses (each refusal leaves no certificate and no secret behind), and the retry loop.
 * The same flow over real mosquitto: test/integration/enrollment.test.ts.
 */

const HUB = 'hub-enroll-1';
const OTP = Buffer.alloc(32, 0x5a);
const PIN = Buffer.alloc(32, 0xa5);

let pkiDir: string;
let claim: ClaimMaterial;
let ca: CloudCa;
let foreign: CloudCa;

beforeAll(() => {
  pkiDir = tempDir('iqhub-enroll-pki-');
  const pki = createDevPki({ dir: pkiDir, hubId: 'factory-unused' });
  const c = issueClientCert({ dir: pkiDir, cn: 'claim-1', fileName: 'claim' });
  claim = {
    claimId: 'claim-1',
    cert: readFileSync(c.cert),
    key: readFileSync(c.key),
    ca: readFileSync(pki.ca.cert),
  };
  ca = new CloudCa({ cert: readFileSync(pki.ca.cert), key: readFileSync(pki.ca.key) });
  const f = createForeignCa(join(pkiDir, 'foreign'));
  foreign = new CloudCa({ cert: readFileSync(f.ca.cert), key: readFileSync(f.ca.key) });
}, 60_000);

const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

function hub() {
  const dataDir = tempDir('iqhub-enroll-hub-');
  const store = Store.open(dataDir);
  stores.push(store);
  const sealer = new Sealer(new Secret(new SeededRandom('storage').bytes(32)), new SeededRandom('nonces'));
  const { log, text } = capturingLogger();
  const otpKey = () => loadOtpKey({ config: { otpKeyFile: null }, hubId: HUB, store, sealer, clock: systemClock, log });
  const sealedPin = () =>
    store.db.prepare('SELECT blob FROM sealed_secrets WHERE purpose = ? AND id = ?').get(PIN_KEY_PURPOSE, HUB) as
      | { blob: Buffer }
      | undefined;
  return { dataDir, store, sealer, log, text, otpKey, sealedPin };
}

/** The cloud's answer to `req`, made with `signer` (and its CA in `ca`), then `tamper`ed with. */
function answer(
  req: EnrollRequestPayload,
  o: {
    signer?: CloudCa;
    validitySec?: number;
    now?: number;
    csr?: string;
    tamper?: (r: EnrollResponsePayload) => EnrollResponsePayload;
  } = {},
) {
  const signer = o.signer ?? ca;
  const csr = parseCsr(o.csr ?? req.csr);
  const issued = signer.issue(csr, {
    validitySec: o.validitySec ?? 3600,
    ...(o.now === undefined ? {} : { now: o.now }),
  });
  const own = parseCsr(req.csr);
  const r: EnrollResponsePayload = {
    v: CONTRACT_VERSION,
    requestId: req.requestId,
    hubId: req.hubId,
    ok: true,
    cert: issued.certPem,
    ca: signer.certPem,
    secrets: { otpKey: wrapForKey(own.publicKeyPem, OTP), pinKey: wrapForKey(own.publicKeyPem, PIN) },
  };
  return o.tamper ? o.tamper(r) : r;
}

/** A transport whose answers are scripted per attempt; records every request. */
class ScriptedTransport implements EnrollTransport {
  readonly requests: EnrollRequestPayload[] = [];
  closed = false;
  #pending: ((e: Error) => void) | undefined;
  constructor(readonly script: ((req: EnrollRequestPayload) => EnrollResponsePayload | Error | 'hang')[]) {}
  exchange(req: EnrollRequestPayload): Promise<EnrollResponsePayload> {
    expect(conforms('provisioning/request', req)).toBe(true);
    this.requests.push(structuredClone(req));
    const step = this.script[Math.min(this.requests.length - 1, this.script.length - 1)];
    const r = step ? step(req) : new Error('no script');
    if (r === 'hang') return new Promise((_, reject) => (this.#pending = reject));
    if (r instanceof Error) return Promise.reject(r);
    expect(conforms('provisioning/response', r), JSON.stringify(r).slice(0, 300)).toBe(true);
    return Promise.resolve(r);
  }
  close(): void {
    this.closed = true;
    this.#pending?.(new HubError('enroll.stopped', 'stopped'));
  }
}

function enrollment(h: ReturnType<typeof hub>, transport: EnrollTransport) {
  return new Enrollment({
    dataDir: h.dataDir,
    hubId: HUB,
    claim,
    transport,
    store: h.store,
    sealer: h.sealer,
    clock: systemClock,
    random: new SeededRandom('enroll'),
    log: h.log,
    retryBaseMs: 5,
    retryMaxMs: 20,
  });
}

describe('enrollment by claim (hub side)', () => {
  it('makes its key on the hub, sends only the CSR, installs the certificate and stores the OTP and PIN keys sealed', async () => {
    const h = hub();
    const t = new ScriptedTransport([(req) => answer(req)]);
    const outcome = await enrollment(h, t).run();

    expect(t.requests).toHaveLength(1);
    const [req] = t.requests as [EnrollRequestPayload];
    expect(req).toMatchObject({ v: 1, hubId: HUB });
    expect(JSON.stringify(req)).not.toMatch(/PRIVATE KEY/);
    expect(parseCsr(req.csr).cn).toBe(HUB);

    const id = loadIdentity(h.dataDir);
    expect(id).toMatchObject({ hubId: HUB, fingerprint: outcome.fingerprint, notAfter: outcome.notAfter });
    expect(id?.ca.toString()).toContain('BEGIN CERTIFICATE');
    expect(Buffer.from(h.otpKey()?.reveal() ?? []).equals(OTP)).toBe(true);
    expect(
      Buffer.from(
        h.sealer.open(h.sealedPin()?.blob ?? Buffer.alloc(0), { purpose: PIN_KEY_PURPOSE, id: HUB }).reveal(),
      ).equals(PIN),
    ).toBe(true);
    // Neither the keys nor the private key appear in the log.
    expect(h.text()).not.toContain(OTP.toString('hex'));
    expect(h.text()).not.toMatch(/PRIVATE KEY/);
    expect(h.text()).toContain('enrollment: complete');
  });

  it('retries after a timeout and a refusal, with the same key and CSR, and a fresh request id each time', async () => {
    const h = hub();
    const t = new ScriptedTransport([
      () => new HubError('enroll.timeout', 'no enrollment response within 30000 ms'),
      (req) => ({
        v: 1,
        requestId: req.requestId,
        hubId: req.hubId,
        ok: false,
        error: { code: 'internal', message: 'try later' },
      }),
      (req) => answer(req),
    ]);
    const outcome = await enrollment(h, t).run();
    expect(outcome.attempts).toBe(3);
    expect(new Set(t.requests.map((r) => r.csr)).size).toBe(1);
    expect(new Set(t.requests.map((r) => r.requestId)).size).toBe(3);
    expect(loadIdentity(h.dataDir)?.hubId).toBe(HUB);
    expect(h.text()).toContain('enroll.refused');
  });

  it('stop() ends an enrollment that is waiting for an answer: run() rejects enroll.stopped, nothing installed', async () => {
    const h = hub();
    const t = new ScriptedTransport([() => 'hang']);
    const e = enrollment(h, t);
    const running = e.run();
    await new Promise((r) => setTimeout(r, 50));
    e.stop();
    await expect(running).rejects.toMatchObject({ code: 'enroll.stopped' });
    expect(t.closed).toBe(true);
    expect(loadIdentity(h.dataDir)).toBeUndefined();
  });

  describe('a response that does not check is refused; no certificate and no secret stay behind', () => {
    const other = () => makeKeyAndCsr(HUB);
    type Make = (req: EnrollRequestPayload, dataDir: string) => EnrollResponsePayload;
    const cases: [string, string, Make][] = [
      [
        'a CA the hub was not built to trust (and a certificate from it)',
        'enroll.ca-mismatch',
        (req) => answer(req, { signer: foreign }),
      ],
      [
        'a certificate from another CA, with the trusted CA',
        'provision.wrong-ca',
        (req) => answer(req, { signer: foreign, tamper: (r) => ({ ...r, ca: ca.certPem }) }),
      ],
      ['a certificate for another key', 'provision.key-mismatch', (req) => answer(req, { csr: other().csrPem })],
      [
        "a certificate for this hub's key but another hub id",
        'provision.cn-mismatch',
        (req, dataDir) => answer(req, { csr: csrForKey(readFileSync(identityPaths(dataDir).key), 'hub-other') }),
      ],
      [
        'an expired certificate',
        'provision.expired',
        (req) => answer(req, { validitySec: 60, now: Date.now() - 3_600_000 }),
      ],
      [
        'secrets encrypted to another key',
        'enroll.secret',
        (req) => ({
          ...answer(req),
          secrets: { otpKey: wrapForKey(parseCsr(other().csrPem).publicKeyPem, OTP) },
        }),
      ],
      [
        'an OTP key of the wrong size',
        'enroll.secret',
        (req) => ({
          ...answer(req),
          secrets: { otpKey: wrapForKey(parseCsr(req.csr).publicKeyPem, Buffer.alloc(16, 1)) },
        }),
      ],
      [
        'no certificate',
        'enroll.incomplete',
        (req) => {
          const { cert: _cert, ...r } = answer(req);
          return r;
        },
      ],
    ];

    it.each(cases)('%s → %s', (_what, code, make) => {
      const h = hub();
      // The key and its CSR are made before the first request.
      const req: EnrollRequestPayload = {
        v: CONTRACT_VERSION,
        requestId: 'enr-test',
        hubId: HUB,
        csr: initIdentity({ dataDir: h.dataDir, hubId: HUB }).csrPem,
      };
      const response = make(req, h.dataDir);
      expect(conforms('provisioning/response', response)).toBe(true);
      let thrown: unknown;
      try {
        acceptEnrollment({
          response,
          claim,
          dataDir: h.dataDir,
          hubId: HUB,
          store: h.store,
          sealer: h.sealer,
          clock: systemClock,
          log: h.log,
        });
      } catch (err) {
        thrown = err;
      }
      expect(thrown, 'refused').toBeInstanceOf(HubError);
      expect((thrown as HubError).code).toBe(code);
      expect((thrown as HubError).message).not.toMatch(/PRIVATE KEY|[0-9a-f]{64}/);
      expect(existsSync(identityPaths(h.dataDir).cert)).toBe(false);
      expect(h.otpKey()).toBeUndefined();
      expect(h.sealedPin()).toBeUndefined();
    });
  });
});
