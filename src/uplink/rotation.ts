import { checkCertificate } from '../../provisioning/certificate-check.js';
import { installIdentity } from '../../provisioning/identity-install.js';
import { type LoadedIdentity, loadIdentity } from '../../provisioning/identity-load.js';
import { makeKeyAndCsr } from '../../provisioning/key-and-csr.js';
import type { Clock, TimerHandle } from '../base/clock.js';
import { HubError, isHubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import type { CertRequestPayload } from '../contract/mqtt-certificates.js';
import { CONTRACT_VERSION } from '../contract/mqtt-topics.js';
import { parseInbound } from '../contract/mqtt-validate.js';
import type { Logger } from '../log/logger.js';
import type { PublishResult, SwitchResult } from './mqtt-client.js';

/**
 * Certificate rotation. At `atFraction` of the certificate's lifetime (notBefore → notAfter;
 * default 2/3) the hub makes a new key and CSR in memory, asks for a certificate on
 * `ks/hubs/{hubId}/cert/request` and gets it on `cert/response`. It checks it (this hub's CN,
 * the new key, the installed CA, valid now), then switches over: a second connection presents
 * the new certificate while the current one stays up, and only when the broker has accepted it
 * are the new key and certificate installed (atomically, replacing the old ones; see
 * provisioning/identity-install.ts). If anything fails — no answer, a refusal, a certificate that does
 * not check, a broker that will not take it — nothing changes: the old certificate stays in use
 * and on disk, and the hub asks again later. Nothing is lost in the switch: the broker carries
 * the persistent session (subscriptions, queued commands) over to the new connection, and what
 * the hub publishes leaves its outbox only when acknowledged.
 *
 * The request is not queued in the outbox: a lost one is simply asked again at the next check.
 */

export interface RotationDeps {
  dataDir: string;
  hubId: string;
  /** Share of the lifetime after which the certificate is renewed (0.1-0.95). */
  atFraction: number;
  clock: Clock;
  random: Random;
  log: Logger;
  /** Publish on `cert/request` (relative to the hub's base). */
  publish(payload: CertRequestPayload): Promise<PublishResult>;
  /** Present the new certificate and key on a new connection (UplinkClient.switchCredentials). */
  switchTo(cert: Buffer, key: Buffer): Promise<SwitchResult>;
  connected(): boolean;
  /** The new identity, installed and in use. */
  onRotated(identity: LoadedIdentity): void;
}

export interface CertificateTimes {
  notBefore: string;
  notAfter: string;
  fingerprint: string;
}

export type RotationState = 'idle' | 'requesting' | 'switching' | 'stopped';

export interface RotationStatus {
  state: RotationState;
  /** When the current certificate is due for renewal (ISO 8601). */
  renewAt: string | null;
  /** When the next check runs (ISO 8601), if one is scheduled. */
  nextCheckAt: string | null;
  lastError: string | null;
  /** Rotations completed since start-up. */
  rotations: number;
}

interface Pending {
  requestId: string;
  keyPem: string;
  csrPem: string;
  timer: TimerHandle;
}

/** Timers are re-armed at least this often, so a long wait survives clock changes and 32-bit limits. */
const MAX_WAIT_MS = 3_600_000;

/** The time at which a certificate valid from `notBefore` to `notAfter` is due for renewal. */
export function renewalTime(c: { notBefore: string; notAfter: string }, atFraction: number): number {
  const from = Date.parse(c.notBefore);
  const until = Date.parse(c.notAfter);
  return from + atFraction * (until - from);
}

export class Rotation {
  readonly #d: RotationDeps;
  #current: CertificateTimes;
  #state: RotationState = 'idle';
  #timer: TimerHandle | undefined;
  #nextCheckAt: number | null = null;
  #pending: Pending | undefined;
  #lastError: string | null = null;
  #rotations = 0;
  /** Not before this (after a rotation, or a failure): no request storm. */
  #notBefore = 0;

  constructor(deps: RotationDeps, current: CertificateTimes) {
    if (!(deps.atFraction > 0 && deps.atFraction < 1)) {
      throw new HubError('config.provisioning', `rotateAtFraction ${deps.atFraction} is not between 0 and 1`);
    }
    this.#d = deps;
    this.#current = current;
  }

  status(): RotationStatus {
    return {
      state: this.#state,
      renewAt: new Date(renewalTime(this.#current, this.#d.atFraction)).toISOString(),
      nextCheckAt: this.#nextCheckAt === null ? null : new Date(this.#nextCheckAt).toISOString(),
      lastError: this.#lastError,
      rotations: this.#rotations,
    };
  }

  /** Check now, then whenever the certificate is due. */
  start(): void {
    if (this.#state === 'stopped') return;
    this.#schedule(0);
  }

  stop(): void {
    this.#state = 'stopped';
    this.#d.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextCheckAt = null;
    if (this.#pending) this.#d.clock.clearTimeout(this.#pending.timer);
    this.#pending = undefined;
  }

  /** The uplink (re)connected: a check that was waiting for a connection may run now. */
  connected(): void {
    if (this.#state !== 'idle' || this.#pending) return;
    if (this.#d.clock.now() >= this.#dueAt()) this.#schedule(0);
  }

  /** Is a rotation due now (or overdue)? */
  due(): boolean {
    return this.#d.clock.now() >= this.#dueAt();
  }

  /** A message on `cert/response`. */
  handle(payload: Buffer): void {
    const d = this.#d;
    const parsed = parseInbound('cert/response', payload);
    if (!parsed.ok) {
      d.log.warn(
        { problem: parsed.error.message },
        'rotation: a cert/response that does not match the contract, ignored',
      );
      return;
    }
    const r = parsed.value;
    const p = this.#pending;
    if (!p || r.requestId !== p.requestId || this.#state !== 'requesting') {
      d.log.info({ requestId: r.requestId }, 'rotation: a cert/response for no request under way, ignored');
      return;
    }
    d.clock.clearTimeout(p.timer);
    this.#pending = undefined;
    if (!r.ok || !r.cert) {
      this.#failed(
        new HubError(
          'rotation.refused',
          `the cloud refused the renewal: ${r.error?.code ?? 'no certificate'}${r.error ? `: ${r.error.message}` : ''}`,
        ),
      );
      return;
    }
    void this.#switch(p, r.cert);
  }

  #stopped(): boolean {
    return this.#state === 'stopped';
  }

  #dueAt(): number {
    return Math.max(renewalTime(this.#current, this.#d.atFraction), this.#notBefore);
  }

  #schedule(delayMs: number): void {
    const d = this.#d;
    d.clock.clearTimeout(this.#timer);
    if (this.#state === 'stopped') return;
    const wait = Math.max(0, Math.min(delayMs, MAX_WAIT_MS));
    this.#nextCheckAt = d.clock.now() + wait;
    this.#timer = d.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#nextCheckAt = null;
      this.#check();
    }, wait);
  }

  /** How long to wait after a failure: a twentieth of the time left, between 1 s and 10 min. */
  #retryDelay(): number {
    const left = Date.parse(this.#current.notAfter) - this.#d.clock.now();
    return Math.min(600_000, Math.max(1000, Math.floor(left / 20)));
  }

  #check(): void {
    const d = this.#d;
    if (this.#state !== 'idle' || this.#pending) return;
    const now = d.clock.now();
    const dueAt = this.#dueAt();
    if (now < dueAt) {
      this.#schedule(dueAt - now);
      return;
    }
    const left = Date.parse(this.#current.notAfter) - now;
    if (left <= 0) {
      d.log.error(
        { notAfter: this.#current.notAfter },
        'the hub certificate has expired: the broker will refuse it; a new one must be installed (iqhub provision)',
      );
    }
    if (!d.connected()) {
      // Asked again on the next connection, or after the retry delay.
      this.#schedule(this.#retryDelay());
      return;
    }
    let fresh: { keyPem: string; csrPem: string };
    try {
      fresh = makeKeyAndCsr(d.hubId);
    } catch (e) {
      this.#failed(e);
      return;
    }
    const requestId = `rot-${Buffer.from(d.random.bytes(12)).toString('hex')}`;
    const timeoutMs = Math.min(60_000, Math.max(2000, Math.floor(left / 4)));
    this.#state = 'requesting';
    this.#pending = {
      requestId,
      ...fresh,
      timer: d.clock.setTimeout(() => {
        if (this.#pending?.requestId !== requestId) return;
        this.#pending = undefined;
        this.#failed(new HubError('rotation.timeout', `no cert/response within ${timeoutMs} ms`));
      }, timeoutMs),
    };
    d.log.info(
      { notAfter: this.#current.notAfter, daysLeft: Math.floor(left / 86_400_000), requestId },
      'rotation: the hub certificate is due for renewal; requesting a new one',
    );
    void d.publish({ v: CONTRACT_VERSION, requestId, csr: fresh.csrPem }).then((r) => {
      if (r.ok || this.#pending?.requestId !== requestId) return;
      d.clock.clearTimeout(this.#pending.timer);
      this.#pending = undefined;
      this.#failed(new HubError('rotation.not-sent', `the cert/request was not accepted by the broker (${r.code})`));
    });
  }

  async #switch(p: Pending, certPem: string): Promise<void> {
    const d = this.#d;
    const installed = loadIdentity(d.dataDir);
    if (!installed) {
      this.#failed(new HubError('rotation.no-identity', 'the installed identity disappeared'));
      return;
    }
    try {
      checkCertificate({
        certPem,
        caPem: installed.ca,
        keyPem: p.keyPem,
        hubId: d.hubId,
        now: d.clock.now(),
        source: { cert: 'the renewed certificate', ca: 'the installed CA', key: 'the new key' },
      });
    } catch (e) {
      this.#failed(e);
      return;
    }
    this.#state = 'switching';
    const switched = await d.switchTo(Buffer.from(certPem), Buffer.from(p.keyPem));
    if (this.#stopped()) return;
    if (!switched.ok) {
      this.#state = 'idle';
      this.#failed(new HubError('rotation.switch', `the broker did not accept the new certificate (${switched.code})`));
      return;
    }
    let loaded: LoadedIdentity | undefined;
    try {
      // The new connection is up: now the new key and certificate replace the old ones on disk.
      installIdentity({
        dataDir: d.dataDir,
        certPem,
        caPem: installed.ca,
        keyPem: p.keyPem,
        csrPem: p.csrPem,
        hubId: d.hubId,
        now: d.clock.now(),
        source: { cert: 'the renewed certificate', ca: 'the installed CA' },
      });
      loaded = loadIdentity(d.dataDir);
    } catch (e) {
      this.#state = 'idle';
      d.log.error(
        { err: e },
        'rotation: the new certificate is in use but could not be installed; the old one stays on disk and renewal is asked again',
      );
      this.#failed(e);
      return;
    }
    if (!loaded) {
      this.#failed(new HubError('rotation.no-identity', 'the new identity could not be read back'));
      return;
    }
    const previous = this.#current.fingerprint;
    this.#current = { notBefore: loaded.notBefore, notAfter: loaded.notAfter, fingerprint: loaded.fingerprint };
    this.#rotations++;
    this.#lastError = null;
    this.#state = 'idle';
    // A certificate issued with a lifetime so short that it is due at once is not renewed in a loop.
    const now = d.clock.now();
    this.#notBefore = now + Math.max(1000, Math.floor((Date.parse(loaded.notAfter) - now) / 10));
    d.log.info(
      { previous, fingerprint: loaded.fingerprint, notAfter: loaded.notAfter, renewAt: this.status().renewAt },
      'rotation: new certificate installed and in use; the old key and certificate are gone',
    );
    try {
      d.onRotated(loaded);
    } catch (e) {
      d.log.error({ err: e }, 'rotation: listener failed');
    }
    this.#schedule(this.#dueAt() - now);
  }

  #failed(e: unknown): void {
    const d = this.#d;
    if (this.#state === 'stopped') return;
    this.#state = 'idle';
    this.#lastError = isHubError(e) ? e.code : 'error';
    const delay = this.#retryDelay();
    const left = Date.parse(this.#current.notAfter) - d.clock.now();
    d.log[left < 7 * 86_400_000 ? 'error' : 'warn'](
      {
        code: this.#lastError,
        problem: (e as Error)?.message,
        notAfter: this.#current.notAfter,
        daysLeft: Math.floor(left / 86_400_000),
        retryInMs: delay,
      },
      'rotation: the hub certificate was not renewed; the old one stays in use',
    );
    this.#schedule(delay);
  }
}
