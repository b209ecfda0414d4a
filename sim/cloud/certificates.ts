import { X509Certificate } from 'node:crypto';
import type { Clock } from '../../src/base/clock.js';
import type { Random } from '../../src/base/random.js';
import type { TopicMap } from '../../src/contract/mqtt.js';
import type { CertResponsePayload, EnrollResponsePayload } from '../../src/contract/mqtt-certificates.js';
import { CONTRACT_VERSION, provisioningTopics, topics } from '../../src/contract/mqtt-topics.js';
import { parseInbound } from '../../src/contract/mqtt-validate.js';
import { Secret } from '../../src/crypto/secret.js';
import type { Logger } from '../../src/log/logger.js';
import { type CaMaterial, CloudCa, CsrRefused, type ParsedCsr, parseCsr, wrapForKey } from './ca.js';
import { isHubId } from './inbound.js';

/**
 * The cloud's answers as the hubs' certificate authority: enrollment by claim (a certificate, the
 * CA, and the hub's OTP and PIN keys encrypted to its CSR's key) and renewal. The checks are the
 * point: a claim proves only that a hub came from the factory, so which hub ids it may enroll,
 * and how often, is decided here; the signing itself is ca.ts.
 */

/** The cloud as the hubs' certificate authority (`enableCertificates`). */
export interface CertificateOptions {
  /** The CA that signs hub certificates; hubs must already trust it (it is also the broker's, here). */
  ca: CaMaterial;
  /** Lifetime of every certificate issued, in seconds. Default 825 days. */
  validitySec?: number;
  /**
   * CNs of the claim certificates whose enrollment requests are answered (the broker's ACL lets
   * each publish only `ks/provisioning/{claimId}/request`). Default none: no enrollment.
   */
  claimIds?: string[];
  /**
   * May this hub id enroll with this claim? In production: the hub ids manufactured for it.
   * Default: any hub id that is not a claim id. A hub enrolls once; the same key again gets the
   * same certificate and secrets (a lost response), another key is refused `already_enrolled`.
   */
  allowEnrollment?: (hubId: string, claimId: string) => boolean;
  /** Answer `cert/request` (rotation). Default true. */
  renewals?: boolean;
}

/** A certificate the cloud issued. */
export interface IssuedCertificate {
  hubId: string;
  kind: 'enrollment' | 'renewal';
  requestId: string;
  /** SHA-256 of the DER certificate, colon-separated hex (as X509Certificate.fingerprint256). */
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the certificate's public key (SPKI DER), hex. */
  keyId: string;
  cert: string;
}

/** An enrollment or renewal request the cloud answered, and how. */
export interface CertificateAnswer {
  kind: 'enrollment' | 'renewal';
  /** The claim id of an enrollment, the hub of a renewal. */
  via: string;
  hubId: string;
  requestId: string;
  ok: boolean;
  code?: string;
}

interface Enrolled {
  keyId: string;
  cert: IssuedCertificate;
  otpKey: Buffer;
  pinKey: Buffer;
}

const SECRET_BYTES = 32;

export interface CertificateDeps {
  clock: Clock;
  random: Random;
  log: Logger | undefined;
  /** Publish at QoS 1 (undefined when the cloud is not connected: the answer is lost, as a real one would be). */
  publish(topic: string, body: object): Promise<unknown> | undefined;
  /** A request that does not match the contract. */
  refuse(topic: string, reason: string): void;
  /** A hub enrolled: from now on its commands are signed with the OTP key it was given. */
  enrolled(hubId: string, otpKey: Secret): void;
}

export class CloudCertificates {
  readonly #d: CertificateDeps;
  readonly #issued: IssuedCertificate[] = [];
  readonly #answers: CertificateAnswer[] = [];
  readonly #enrolled = new Map<string, Enrolled>();
  #config: { ca: CloudCa; o: CertificateOptions; claims: Set<string> } | undefined;

  constructor(deps: CertificateDeps) {
    this.#d = deps;
  }

  /** Take the CA and the rules (replacing any before); returns the claim ids to subscribe for. */
  enable(o: CertificateOptions): Set<string> {
    const claims = new Set(o.claimIds ?? []);
    for (const id of claims) {
      if (!isHubId(id)) throw new Error(`ReferenceCloud.enableCertificates: bad claim id ${JSON.stringify(id)}`);
    }
    this.#config = { ca: new CloudCa(o.ca, this.#d.random), o, claims };
    return claims;
  }

  issued(hubId?: string): readonly IssuedCertificate[] {
    return hubId === undefined ? this.#issued : this.#issued.filter((c) => c.hubId === hubId);
  }

  answers(): readonly CertificateAnswer[] {
    return this.#answers;
  }

  enrolledOtpKey(hubId: string): Secret | undefined {
    const e = this.#enrolled.get(hubId);
    return e ? new Secret(Buffer.from(e.otpKey)) : undefined;
  }

  /**
   * An enrollment request on `ks/provisioning/{claimId}/request`. The broker let only a holder of
   * that claim certificate publish it; the claim proves nothing about which hub it is, so the hub
   * id must be one the claim may enroll, and only once (per key).
   */
  enroll(claimId: string, topic: string, payload: Buffer): void {
    const certs = this.#config;
    const parsed = parseInbound('provisioning/request', payload);
    if (!parsed.ok) {
      this.#d.refuse(topic, parsed.error.message);
      return;
    }
    const req = parsed.value;
    const answer = (r: Omit<EnrollResponsePayload, 'v' | 'requestId' | 'hubId'>) => {
      const body: EnrollResponsePayload = { v: CONTRACT_VERSION, requestId: req.requestId, hubId: req.hubId, ...r };
      this.#answers.push({
        kind: 'enrollment',
        via: claimId,
        hubId: req.hubId,
        requestId: req.requestId,
        ok: r.ok,
        ...(r.error ? { code: r.error.code } : {}),
      });
      this.#d
        .publish(provisioningTopics.response(claimId), body)
        ?.catch((e: Error) => this.#d.log?.warn({ err: e, claimId }, 'reference cloud: enrollment response not sent'));
    };
    const refuse = (code: string, message: string) => {
      this.#d.log?.warn({ claimId, hubId: req.hubId, code }, `reference cloud: enrollment refused: ${message}`);
      answer({ ok: false, error: { code, message } });
    };
    if (!certs?.claims.has(claimId)) {
      refuse('not_allowed', `claim ${claimId} is not accepted here`);
      return;
    }
    const allowed = certs.o.allowEnrollment
      ? certs.o.allowEnrollment(req.hubId, claimId)
      : !certs.claims.has(req.hubId);
    if (!allowed) {
      refuse('unknown_hub', `hub ${req.hubId} may not enroll with claim ${claimId}`);
      return;
    }
    try {
      const csr = parseCsr(req.csr);
      if (csr.cn !== req.hubId) throw new CsrRefused('cn_mismatch', `the CSR names ${csr.cn}, not ${req.hubId}`);
      let e = this.#enrolled.get(req.hubId);
      if (e && e.keyId !== csr.keyId) {
        throw new CsrRefused('already_enrolled', `hub ${req.hubId} is already enrolled with another key`);
      }
      // The same key again (a response that was lost): the same secrets, a fresh certificate.
      const issued = this.#issue(req.hubId, 'enrollment', req.requestId, csr);
      if (e) e.cert = issued;
      else {
        e = {
          keyId: csr.keyId,
          cert: issued,
          otpKey: Buffer.from(this.#d.random.bytes(SECRET_BYTES)),
          pinKey: Buffer.from(this.#d.random.bytes(SECRET_BYTES)),
        };
        this.#enrolled.set(req.hubId, e);
        this.#d.enrolled(req.hubId, new Secret(Buffer.from(e.otpKey)));
      }
      answer({
        ok: true,
        cert: e.cert.cert,
        ca: certs.ca.certPem,
        secrets: { otpKey: wrapForKey(csr.publicKeyPem, e.otpKey), pinKey: wrapForKey(csr.publicKeyPem, e.pinKey) },
      });
    } catch (err) {
      if (err instanceof CsrRefused) refuse(err.code, err.message);
      else {
        this.#d.log?.error({ err, hubId: req.hubId }, 'reference cloud: enrollment failed');
        refuse('internal', 'the certificate could not be issued');
      }
    }
  }

  /** A renewal request on `ks/hubs/{hubId}/cert/request`: the broker let only hub `hubId` publish it. */
  renew(hubId: string, req: TopicMap['cert/request']['payload']): void {
    const certs = this.#config;
    if (!certs || certs.o.renewals === false) return; // not this cloud's job: no answer
    let r: Omit<CertResponsePayload, 'v' | 'requestId'>;
    try {
      const csr = parseCsr(req.csr);
      if (csr.cn !== hubId) throw new CsrRefused('cn_mismatch', `the CSR names ${csr.cn}, not ${hubId}`);
      const issued = this.#issue(hubId, 'renewal', req.requestId, csr);
      const e = this.#enrolled.get(hubId);
      if (e) {
        e.keyId = csr.keyId;
        e.cert = issued;
      }
      r = { ok: true, cert: issued.cert };
    } catch (err) {
      const known = err instanceof CsrRefused;
      if (!known) this.#d.log?.error({ err, hubId }, 'reference cloud: renewal failed');
      r = {
        ok: false,
        error: known
          ? { code: err.code, message: err.message }
          : { code: 'internal', message: 'the certificate could not be issued' },
      };
    }
    this.#answers.push({
      kind: 'renewal',
      via: hubId,
      hubId,
      requestId: req.requestId,
      ok: r.ok,
      ...(r.error ? { code: r.error.code } : {}),
    });
    const body: CertResponsePayload = { v: CONTRACT_VERSION, requestId: req.requestId, ...r };
    this.#d
      .publish(topics.certResponse(hubId), body)
      ?.catch((e: Error) => this.#d.log?.warn({ err: e, hubId }, 'reference cloud: renewal response not sent'));
  }

  #issue(hubId: string, kind: IssuedCertificate['kind'], requestId: string, csr: ParsedCsr): IssuedCertificate {
    const certs = this.#config;
    if (!certs) throw new Error('ReferenceCloud: certificates are not enabled');
    const issued = certs.ca.issue(csr, {
      now: this.#d.clock.now(),
      ...(certs.o.validitySec === undefined ? {} : { validitySec: certs.o.validitySec }),
    });
    const record: IssuedCertificate = {
      hubId,
      kind,
      requestId,
      fingerprint: new X509Certificate(issued.certPem).fingerprint256,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      keyId: csr.keyId,
      cert: issued.certPem,
    };
    this.#issued.push(record);
    this.#d.log?.info({ hubId, kind, notAfter: issued.notAfter }, 'reference cloud: certificate issued');
    return record;
  }
}
