import { constants, createHash, createPrivateKey, privateDecrypt, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { checkServerIdentity, createSecureContext, type SecureContext, connect as tlsConnect } from 'node:tls';
import '../base/deferred-mqtt-extras.js';
import { MqttClient } from 'mqtt';
import { parseCertificates } from '../../provisioning/certificate.js';
import { checkCertificate } from '../../provisioning/certificate-check.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import { installIdentity } from '../../provisioning/identity-install.js';
import { loadIdentity } from '../../provisioning/identity-load.js';
import { csrHubId, initIdentity, readCsr } from '../../provisioning/key-and-csr.js';
import type { Clock, TimerHandle } from '../base/clock.js';
import { HubError, isHubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { storeOtpKey } from '../commands/otp-key.js';
import type { HubConfig } from '../config/schema.js';
import type { EnrollRequestPayload, EnrollResponsePayload } from '../contract/mqtt-certificates.js';
import { CONTRACT_VERSION, ID_PATTERN, provisioningTopics } from '../contract/mqtt-topics.js';
import { parseInbound } from '../contract/mqtt-validate.js';
import { readPrivateFile } from '../crypto/private-file.js';
import type { Sealer } from '../crypto/seal.js';
import { writeSealed } from '../crypto/sealed-secrets.js';
import { Secret } from '../crypto/secret.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';

/**
 * Enrollment by claim (as AWS IoT fleet provisioning does it). A hub that ships with only the
 * shared claim certificate (CN = the claim id) makes its own key and CSR (CN = its hub id; the
 * key never leaves it), connects with the claim certificate, sends the CSR on
 * `ks/provisioning/{claimId}/request` and waits for `.../response`: its own certificate, the CA,
 * and its OTP and PIN keys encrypted to its key. It checks all of it, stores the secrets sealed,
 * installs the certificate (atomically, provisioning/identity-install.ts), and from then on connects
 * only with its own certificate. The broker's ACL lets the claim certificate use nothing but its
 * two provisioning topics.
 *
 * Order matters for a power cut: the secrets are stored before the certificate is installed. A
 * hub cut off before the install enrolls again at its next start with the same key, and the
 * cloud answers the same key with the same certificate and secrets.
 */

/** The sealed_secrets purpose of the site's PIN key delivered at enrollment; the id is the hub id. */
export const PIN_KEY_PURPOSE = 'site.pin-key';
const SECRET_BYTES = 32;
const CERT_MAX_BYTES = 64 * 1024;

export interface ClaimMaterial {
  /** The claim certificate's CN: the `{claimId}` of its provisioning topics. */
  claimId: string;
  cert: Buffer;
  key: Buffer;
  /** The CA the broker's certificate must chain to while enrolling; the returned CA must be in it. */
  ca: Buffer;
}

/** True when the config names a claim certificate, key and CA (all three). */
export function claimConfigured(p: HubConfig['provisioning']): boolean {
  return p.claimCertFile !== null && p.claimKeyFile !== null && p.claimCaFile !== null;
}

/**
 * Read and check the claim certificate, its key and the CA (at build time, so a broken claim
 * stops start-up with a clear message). Throws a HubError naming the file; never key material.
 */
export function loadClaim(p: HubConfig['provisioning']): ClaimMaterial {
  const { claimCertFile, claimKeyFile, claimCaFile } = p;
  if (claimCertFile === null || claimKeyFile === null || claimCaFile === null) {
    throw new HubError(
      'config.provisioning',
      'provisioning.claimCertFile, provisioning.claimKeyFile and provisioning.claimCaFile are set together',
      { hint: 'set all three to enroll with a claim certificate, or none of them' },
    );
  }
  const read = (path: string, what: string) => {
    try {
      const b = readFileSync(path);
      if (b.length > CERT_MAX_BYTES) throw Object.assign(new Error('too large'), { code: 'EFBIG' });
      return b;
    } catch (e) {
      throw new HubError(
        'uplink.files',
        `cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
        { hint: 'check provisioning.* in the config and the file permissions' },
      );
    }
  };
  const cert = read(claimCertFile, 'claim certificate');
  const ca = read(claimCaFile, 'claim CA certificate');
  const key = readPrivateFile(claimKeyFile, {
    codePrefix: 'uplink.key',
    what: 'claim private key',
    checkMode: true,
    maxBytes: 16384,
  });
  if (!key) throw new HubError('uplink.key.missing', `the claim private key ${claimKeyFile} does not exist`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
    parseCertificates(ca, claimCaFile);
  } catch {
    throw new HubError('uplink.files', `${claimCertFile} or ${claimCaFile} is not a PEM certificate`);
  }
  let matches = false;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new HubError('uplink.key.invalid', `the claim private key ${claimKeyFile} is not a PEM private key`);
  }
  if (!matches) {
    throw new HubError(
      'uplink.key.mismatch',
      `the claim private key ${claimKeyFile} does not belong to the claim certificate ${claimCertFile}`,
    );
  }
  const claimId = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1]?.trim() ?? '';
  if (!new RegExp(ID_PATTERN).test(claimId)) {
    throw new HubError(
      'uplink.hub-id',
      `the claim certificate's CN ${JSON.stringify(claimId)} cannot be an MQTT topic level`,
      { hint: 'the claim id is a topic level of ks/provisioning/{claimId}/: 1-64 of A-Z a-z 0-9 . _ : -' },
    );
  }
  return { claimId, cert, key, ca };
}

/** One request and its answer; an implementation over MQTT is `mqttEnrollTransport`. */
export interface EnrollTransport {
  /**
   * Send `req` and resolve with the first valid response with its `requestId` and `hubId`; reject
   * (a HubError `enroll.*`) on a connection problem or when none came within `timeoutMs`.
   */
  exchange(req: EnrollRequestPayload, timeoutMs: number): Promise<EnrollResponsePayload>;
  /** End whatever exchange is under way (it rejects). */
  close(): void;
}

export interface MqttEnrollOptions {
  url: string;
  serverName: string;
  protocolVersion: 5 | 4;
  keepaliveSec: number;
  connectTimeoutMs?: number;
  claim: ClaimMaterial;
  hubId: string;
  clock: Clock;
  log: Logger;
}

/**
 * Enrollment over MQTT with the claim certificate: one short connection per exchange (mutual TLS,
 * the claim CA and the server name pinned as for the uplink, clean session, no last will), client
 * id `enroll/{hubId}` (it cannot collide with a hub's own client id: `/` is not allowed in one).
 */
export function mqttEnrollTransport(o: MqttEnrollOptions): EnrollTransport {
  const url = new URL(o.url);
  if (url.protocol !== 'mqtts:') {
    throw new HubError('uplink.insecure-url', 'enrollment connects over mutual TLS only (mqtts://)');
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? 8883 : Number(url.port);
  let context: SecureContext;
  try {
    context = createSecureContext({ ca: o.claim.ca, cert: o.claim.cert, key: o.claim.key, minVersion: 'TLSv1.2' });
  } catch {
    throw new HubError('uplink.files', 'the claim certificate, key or CA cannot be used for TLS');
  }
  const request = provisioningTopics.request(o.claim.claimId);
  const response = provisioningTopics.response(o.claim.claimId);
  let current: { mc: MqttClient; fail: (e: HubError) => void } | undefined;

  return {
    exchange(req, timeoutMs) {
      return new Promise<EnrollResponsePayload>((resolve, reject) => {
        let done = false;
        let timer: TimerHandle | undefined;
        const finish = (r: EnrollResponsePayload | HubError) => {
          if (done) return;
          done = true;
          o.clock.clearTimeout(timer);
          current = undefined;
          mc.end(true);
          if (r instanceof HubError) reject(r);
          else resolve(r);
        };
        const pinned = o.serverName;
        const mc = new MqttClient(
          () => {
            const socket = tlsConnect({
              host,
              port,
              secureContext: context,
              rejectUnauthorized: true,
              ...(isIP(pinned) === 0 ? { servername: pinned } : {}),
              checkServerIdentity: (_host, cert) => checkServerIdentity(pinned, cert),
            });
            socket.setNoDelay(true);
            return socket;
          },
          {
            clientId: `enroll/${o.hubId}`,
            protocolVersion: o.protocolVersion,
            clean: true,
            keepalive: o.keepaliveSec,
            reconnectPeriod: 0,
            connectTimeout: o.connectTimeoutMs ?? 15_000,
            resubscribe: false,
            queueQoSZero: false,
            // As the uplink's session (broker-options.ts): no 6 MB table of packet-number Buffers.
            writeCache: false,
          },
        );
        current = { mc, fail: finish };
        let lastError = 'closed';
        timer = o.clock.setTimeout(
          () => finish(new HubError('enroll.timeout', `no enrollment response within ${timeoutMs} ms`)),
          timeoutMs,
        );
        mc.on('error', (e) => {
          const code = (e as { code?: unknown }).code;
          lastError = typeof code === 'string' || typeof code === 'number' ? String(code) : 'error';
        });
        mc.on('close', () => finish(new HubError('enroll.connection', `the claim connection ended (${lastError})`)));
        mc.on('message', (topic, payload) => {
          if (topic !== response) return;
          const r = parseInbound('provisioning/response', payload);
          if (!r.ok) {
            o.log.warn(
              { problem: r.error.message },
              'enrollment: a response that does not match the contract, ignored',
            );
            return;
          }
          // Every hub enrolling with this claim sees every response: only ours counts.
          if (r.value.requestId !== req.requestId || r.value.hubId !== req.hubId) return;
          finish(r.value);
        });
        mc.on('connect', () => {
          mc.subscribe(response, { qos: 1 }, (err, granted) => {
            if (done) return;
            if (err || (granted ?? []).some((g) => g.qos > 2)) {
              finish(new HubError('enroll.refused', `the broker refused the subscription to ${response}`));
              return;
            }
            mc.publish(request, JSON.stringify(req), { qos: 1 }, (e) => {
              if (e && !done) {
                const code = (e as { code?: unknown }).code;
                finish(
                  new HubError('enroll.refused', `the broker refused the request on ${request} (${String(code)})`),
                );
              }
            });
          });
        });
      });
    },
    close() {
      current?.fail(new HubError('enroll.stopped', 'enrollment stopped'));
    },
  };
}

export interface EnrollmentDeps {
  dataDir: string;
  hubId: string;
  claim: ClaimMaterial;
  transport: EnrollTransport;
  store: Store;
  sealer: Sealer;
  clock: Clock;
  random: Random;
  log: Logger;
  /** How long to wait for the cloud's answer (default 30,000 ms). */
  responseTimeoutMs?: number;
  /** Backoff between attempts: full jitter from `retryBaseMs` doubling to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export interface EnrollmentOutcome {
  hubId: string;
  notAfter: string;
  fingerprint: string;
  attempts: number;
}

export type EnrollmentState = 'idle' | 'requesting' | 'waiting-to-retry' | 'enrolled' | 'stopped';

/**
 * Check an enrollment response and make it the hub's identity: the CA must be one the claim CA
 * file holds (the cloud cannot hand the hub another trust anchor), the certificate must be for
 * this hub id and key and chain to that CA (`installIdentity` checks it), and the secrets must
 * open with the hub's key. Secrets are stored sealed first, then the certificate is installed.
 * Any refusal throws a HubError (`enroll.*` or `provision.*`) and leaves the identity as it was.
 */
export function acceptEnrollment(d: {
  response: EnrollResponsePayload;
  claim: ClaimMaterial;
  dataDir: string;
  hubId: string;
  store: Store;
  sealer: Sealer;
  clock: Clock;
  log: Logger;
}): EnrollmentOutcome & { otpKeyFingerprint: string } {
  const r = d.response;
  if (!r.ok || !r.cert || !r.ca || !r.secrets) {
    throw new HubError(
      'enroll.incomplete',
      `the enrollment response for ${d.hubId} has ${['cert', 'ca', 'secrets'].filter((k) => !r[k as 'cert']).join(', ')} missing`,
    );
  }
  const trusted = new Set(parseCertificates(d.claim.ca, 'the claim CA file').map((x) => x.fingerprint256));
  const given = parseCertificates(r.ca, 'the CA of the enrollment response');
  const foreign = given.find((x) => !trusted.has(x.fingerprint256));
  if (foreign) {
    throw new HubError(
      'enroll.ca-mismatch',
      `the enrollment response names a CA (${foreign.subject.replace(/\n/g, ', ')}) that is not in the claim CA file`,
      { hint: 'the cloud must return the CA the hub was built to trust (provisioning.claimCaFile)' },
    );
  }
  const paths = identityPaths(d.dataDir);
  const keyPem = readPrivateFile(paths.key, {
    codePrefix: 'identity.key',
    what: "the hub's private key",
    checkMode: true,
    maxBytes: 16384,
  });
  if (!keyPem) throw new HubError('provision.no-key', `the hub's key ${paths.key} disappeared during enrollment`);
  const open = (name: string, wrapped: string): Secret => {
    let plain: Buffer;
    try {
      plain = privateDecrypt(
        { key: createPrivateKey(keyPem), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        Buffer.from(wrapped, 'base64'),
      );
    } catch {
      throw new HubError('enroll.secret', `the ${name} of the enrollment response does not open with this hub's key`);
    }
    if (plain.length !== SECRET_BYTES) {
      plain.fill(0);
      throw new HubError('enroll.secret', `the ${name} of the enrollment response is not ${SECRET_BYTES} bytes`);
    }
    const s = new Secret(plain);
    plain.fill(0);
    return s;
  };
  const otpKey = open('OTP key', r.secrets.otpKey);
  const pinKey = r.secrets.pinKey === undefined ? undefined : open('PIN key', r.secrets.pinKey);
  const now = d.clock.now();
  const source = { cert: 'the enrolled certificate', ca: 'the enrolled CA' };
  try {
    // Refuse before storing anything (installIdentity checks again, then writes).
    checkCertificate({ certPem: r.cert, caPem: r.ca, keyPem, hubId: d.hubId, now, source });
    const otpKeyFingerprint = storeOtpKey(
      { hubId: d.hubId, store: d.store, sealer: d.sealer, clock: d.clock, log: d.log },
      otpKey,
    );
    if (pinKey) storeSealed(d, PIN_KEY_PURPOSE, pinKey);
    const info = installIdentity({
      dataDir: d.dataDir,
      certPem: r.cert,
      caPem: r.ca,
      hubId: d.hubId,
      now,
      source,
    });
    return { hubId: d.hubId, notAfter: info.notAfter, fingerprint: info.fingerprint, attempts: 0, otpKeyFingerprint };
  } finally {
    otpKey.wipe();
    pinKey?.wipe();
    keyPem.fill(0);
  }
}

/** A 32-byte key sealed in sealed_secrets under (purpose, hub id), replacing any before it. */
function storeSealed(d: { hubId: string; store: Store; sealer: Sealer; clock: Clock }, purpose: string, key: Secret) {
  const ctx = { purpose, id: d.hubId };
  const blob = d.sealer.seal(key, ctx);
  const fingerprint = createHash('sha256').update(key.reveal()).digest('hex').slice(0, 8);
  writeSealed(d.store, ctx, { blob, fingerprint }, d.clock.now());
}

/**
 * The enrollment loop: make (or reuse) the hub's key and CSR, ask, check, install; on a refusal,
 * a timeout or a connection problem, wait (exponential backoff with full jitter) and ask again,
 * until it succeeds or `stop()`. `run()` resolves with the installed identity, or rejects with
 * `enroll.stopped`.
 */
export class Enrollment {
  readonly #d: EnrollmentDeps;
  #state: EnrollmentState = 'idle';
  #attempts = 0;
  #lastError: string | null = null;
  #stopped = false;
  #sleep: { timer: TimerHandle; wake: () => void } | undefined;

  constructor(deps: EnrollmentDeps) {
    this.#d = deps;
  }

  get claimId(): string {
    return this.#d.claim.claimId;
  }

  status(): { state: EnrollmentState; attempts: number; lastError: string | null } {
    return { state: this.#state, attempts: this.#attempts, lastError: this.#lastError };
  }

  async run(): Promise<EnrollmentOutcome> {
    const d = this.#d;
    const csrPem = this.#csr();
    const base = d.retryBaseMs ?? 1000;
    const max = d.retryMaxMs ?? 60_000;
    d.log.info(
      { hubId: d.hubId, claimId: d.claim.claimId },
      'enrollment: no hub certificate yet; enrolling with the claim certificate',
    );
    for (;;) {
      if (this.#stopped) break;
      this.#state = 'requesting';
      this.#attempts++;
      const requestId = `enr-${Buffer.from(d.random.bytes(12)).toString('hex')}`;
      try {
        const response = await d.transport.exchange(
          { v: CONTRACT_VERSION, requestId, hubId: d.hubId, csr: csrPem },
          d.responseTimeoutMs ?? 30_000,
        );
        if (!response.ok) {
          throw new HubError(
            'enroll.refused',
            `the cloud refused the enrollment: ${response.error?.code ?? 'no code'}: ${response.error?.message ?? ''}`,
          );
        }
        const done = acceptEnrollment({ ...d, response });
        this.#state = 'enrolled';
        this.#lastError = null;
        d.log.info(
          {
            hubId: d.hubId,
            notAfter: done.notAfter,
            fingerprint: done.fingerprint,
            otpKey: done.otpKeyFingerprint,
            attempts: this.#attempts,
          },
          'enrollment: complete; the hub certificate is installed and the claim certificate is no longer used',
        );
        return { hubId: done.hubId, notAfter: done.notAfter, fingerprint: done.fingerprint, attempts: this.#attempts };
      } catch (e) {
        if (this.#stopped) break;
        this.#lastError = isHubError(e) ? e.code : 'error';
        const delay = Math.floor(d.random.float() * Math.min(max, base * 2 ** Math.min(this.#attempts - 1, 30)));
        d.log.warn(
          { code: this.#lastError, problem: (e as Error).message, attempt: this.#attempts, retryInMs: delay },
          'enrollment: not enrolled yet; retrying',
        );
        this.#state = 'waiting-to-retry';
        await new Promise<void>((wake) => {
          this.#sleep = { timer: d.clock.setTimeout(wake, delay), wake };
        });
        this.#sleep = undefined;
      }
    }
    this.#state = 'stopped';
    throw new HubError('enroll.stopped', 'enrollment stopped before it completed');
  }

  /** End the exchange or the wait under way; `run()` rejects with `enroll.stopped`. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#d.transport.close();
    const s = this.#sleep;
    if (s) {
      this.#d.clock.clearTimeout(s.timer);
      s.wake();
    }
  }

  /** The CSR of the hub's key, made now if the hub has none (the key stays for every retry). */
  #csr(): string {
    const d = this.#d;
    if (existsSync(identityPaths(d.dataDir).key)) return readCsr(d.dataDir, d.hubId).csrPem;
    return initIdentity({ dataDir: d.dataDir, hubId: d.hubId }).csrPem;
  }
}

/**
 * The enrollment the hub needs at start, if any: the uplink is enabled with the installed
 * identity (no uplink.*File), none is installed yet, and a claim certificate is configured.
 * The claim files are checked now (a broken claim stops start-up with a clear message); the hub
 * id is `provisioning.hubId`, else the CN of a CSR made earlier with `iqhub provision init`.
 */
export function enrollmentFor(o: {
  config: HubConfig;
  store: Store;
  sealer: Sealer;
  clock: Clock;
  random: Random;
  log: Logger;
}): Enrollment | undefined {
  const { uplink, provisioning, dataDir } = o.config;
  const usesIdentity = uplink.caFile === null && uplink.certFile === null && uplink.keyFile === null;
  if (!uplink.enabled || !usesIdentity || !claimConfigured(provisioning)) return undefined;
  if (loadIdentity(dataDir) !== undefined) return undefined;
  const hubId = provisioning.hubId ?? csrHubId(dataDir);
  if (!hubId) {
    throw new HubError('config.provisioning', 'a claim certificate is configured to enroll, but no hub id', {
      hint: 'set provisioning.hubId (the id this hub was manufactured with), or run `iqhub provision init --hub-id ID`',
    });
  }
  const claim = loadClaim(provisioning);
  const url = uplink.url ?? '';
  return new Enrollment({
    dataDir,
    hubId,
    claim,
    transport: mqttEnrollTransport({
      url,
      serverName: uplink.serverName ?? new URL(url).hostname,
      protocolVersion: uplink.mqttVersion === '3.1.1' ? 4 : 5,
      keepaliveSec: uplink.keepaliveSec,
      claim,
      hubId,
      clock: o.clock,
      log: o.log,
    }),
    store: o.store,
    sealer: o.sealer,
    clock: o.clock,
    random: o.random,
    log: o.log,
    retryBaseMs: uplink.reconnectBaseMs,
    retryMaxMs: uplink.reconnectMaxMs,
  });
}
