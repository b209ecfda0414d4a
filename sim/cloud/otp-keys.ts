import { X509Certificate } from 'node:crypto';
import type { Random } from '../../src/base/random.js';
import { otpKeyFingerprint } from '../../src/commands/otp-key.js';
import {
  OTP_KEY_SUITE,
  type OtpKeyAckPayload,
  type OtpKeyDeliveryPayload,
  type OtpKeyRequestPayload,
} from '../../src/contract/mqtt-otp-key.js';
import { CONTRACT_VERSION } from '../../src/contract/mqtt-topics.js';
import { otpKeyRequestStatement, sealOtpKey, verifyIdentitySignature } from '../../src/crypto/otp-key-seal.js';
import { Secret } from '../../src/crypto/secret.js';
import type { Logger } from '../../src/log/logger.js';
import { checkHubCertificate } from './hub-certificate.js';

/**
 * The reference cloud's side of OTP key delivery (docs/mqtt-api.md, "OTP key delivery"): it
 * checks a hub's `otp-key/request` — the certificate chains to a CA it trusts, names the hub of
 * the topic and is valid now, and its key signed the X25519 delivery key — remembers that key,
 * and seals the hub's OTP key to it (a fresh key per generation, the generation +1 each time,
 * above any the hub reports). With `auto`, a hub that asks without holding the key the cloud
 * signs its commands with gets a new one at once. An
 * installed key (`otp-key/ack` ok) becomes the key its commands are signed with, from above the
 * last counter the hub accepted.
 */

export interface OtpKeyOptions {
  /** PEM: the CAs a hub's certificate must chain to (the factory CA, the cloud's own CA). */
  ca: string | Buffer | (string | Buffer)[];
  /** Deliver a key to a hub that asks without the cloud's current one. Default true. */
  auto?: boolean;
}

/** A request as the cloud judged it. */
export interface OtpKeyRequestRecord {
  hubId: string;
  requestId: string;
  ok: boolean;
  reason?: string;
  current: OtpKeyRequestPayload['current'];
}

interface HubKeys {
  /** The hub's delivery key (base64url), from its last accepted request. */
  recipient: string | undefined;
  /** The last generation sent and the key of each generation sent (by generation). */
  generation: number;
  keys: Map<number, Secret>;
  acks: Map<string, OtpKeyAckPayload>;
  /** Every ack, in arrival order (a replayed delivery is answered again under its id). */
  ackLog: OtpKeyAckPayload[];
  /** The deliveries sent, by id: for tests that replay one. */
  sent: Map<string, OtpKeyDeliveryPayload>;
}

export interface OtpKeyDeps {
  random: Random;
  log: Logger | undefined;
  now: () => number;
  publish(hubId: string, payload: object): Promise<unknown> | undefined;
  /** The hub installed `key`: sign its commands with it from above `lastCounter`. */
  installed(hubId: string, key: Secret, lastCounter: number): void;
  /** The key the cloud signs the hub's commands with now, however it got it (a delivery, enrollment, a restore). */
  signingKey(hubId: string): Secret | undefined;
}

export class CloudOtpKeys {
  readonly #d: OtpKeyDeps;
  #cas: X509Certificate[] = [];
  #auto = true;
  readonly #hubs = new Map<string, HubKeys>();
  readonly #requests: OtpKeyRequestRecord[] = [];

  constructor(deps: OtpKeyDeps) {
    this.#d = deps;
  }

  enable(o: OtpKeyOptions): void {
    const list = Array.isArray(o.ca) ? o.ca : [o.ca];
    this.#cas = list.flatMap((pem) => splitPem(String(pem)).map((p) => new X509Certificate(p)));
    this.#auto = o.auto ?? true;
  }

  get enabled(): boolean {
    return this.#cas.length > 0;
  }

  requests(hubId?: string): readonly OtpKeyRequestRecord[] {
    return this.#requests.filter((r) => hubId === undefined || r.hubId === hubId);
  }

  acks(hubId: string): ReadonlyMap<string, OtpKeyAckPayload> {
    return this.#hub(hubId).acks;
  }

  /** Every ack of a hub, in arrival order. */
  ackLog(hubId: string): readonly OtpKeyAckPayload[] {
    return this.#hub(hubId).ackLog;
  }

  /** The key this cloud sent a hub under `generation` (for tests that sign with an old one). */
  keyOf(hubId: string, generation: number): Secret | undefined {
    return this.#hubs.get(hubId)?.keys.get(generation);
  }

  /** The delivery key a hub named in its last accepted request (base64url). */
  recipient(hubId: string): string | undefined {
    return this.#hubs.get(hubId)?.recipient;
  }

  /** The last generation sent to a hub (0: none). */
  generation(hubId: string): number {
    return this.#hubs.get(hubId)?.generation ?? 0;
  }

  sentDelivery(hubId: string, deliveryId: string): OtpKeyDeliveryPayload | undefined {
    return this.#hubs.get(hubId)?.sent.get(deliveryId);
  }

  /** An `otp-key/request` from `hubId` (already checked against the contract). */
  request(hubId: string, p: OtpKeyRequestPayload): void {
    const why = this.#check(hubId, p);
    this.#requests.push({
      hubId,
      requestId: p.requestId,
      ok: why === undefined,
      current: p.current,
      ...(why ? { reason: why } : {}),
    });
    if (why) {
      this.#d.log?.warn({ hubId, requestId: p.requestId, reason: why }, 'reference cloud: otp-key/request refused');
      return;
    }
    const hub = this.#hub(hubId);
    hub.recipient = p.publicKey;
    // The next delivery goes above what the hub holds (a store restored from another hub's backup).
    if (p.current && p.current.generation > hub.generation) hub.generation = p.current.generation;
    const signing = this.#d.signingKey(hubId);
    const holds = signing !== undefined && p.current?.fingerprint === otpKeyFingerprint(signing);
    if (this.#auto && !holds) {
      void this.deliver(hubId).catch((e: Error) =>
        this.#d.log?.warn({ err: e, hubId }, 'reference cloud: the OTP key could not be delivered'),
      );
    }
  }

  /** An `otp-key/ack`. */
  ack(hubId: string, a: OtpKeyAckPayload): void {
    const hub = this.#hub(hubId);
    hub.ackLog.push(a);
    if (a.id === null) return;
    if (!hub.acks.has(a.id) || a.ok) hub.acks.set(a.id, a);
    const sent = hub.sent.get(a.id);
    const key = sent && hub.keys.get(sent.generation);
    if (a.ok && key && a.fingerprint === otpKeyFingerprint(key)) this.#d.installed(hubId, key, a.lastCounter ?? 0);
  }

  /**
   * Build a delivery of a new OTP key (or `o.key`) to the hub's delivery key, with the next
   * generation (or `o.generation`), and publish it. Returns it. The overrides build the wrong
   * ones tests send: `hubIdField` (the hubId written in the payload), `bindHubId` (the hub id
   * sealed into the HPKE info), `recipient` (the key sealed to).
   */
  async deliver(
    hubId: string,
    o: {
      key?: Secret;
      generation?: number;
      recipient?: string;
      hubIdField?: string;
      bindHubId?: string;
      send?: boolean;
    } = {},
  ): Promise<OtpKeyDeliveryPayload> {
    const hub = this.#hub(hubId);
    const recipient = o.recipient ?? hub.recipient;
    if (!recipient) throw new Error(`ReferenceCloud: hub ${hubId} has not sent an accepted otp-key/request yet`);
    const generation = o.generation ?? hub.generation + 1;
    const key = o.key ?? new Secret(this.#d.random.bytes(32));
    const deliveryId = `otk-${Buffer.from(this.#d.random.bytes(8)).toString('hex')}`;
    const sealed = await sealOtpKey({
      hubId: o.bindHubId ?? hubId,
      recipient: Buffer.from(recipient, 'base64url'),
      key,
      deliveryId,
      generation,
      ekm: this.#d.random.bytes(32),
    });
    const payload: OtpKeyDeliveryPayload = {
      v: CONTRACT_VERSION,
      deliveryId,
      hubId: o.hubIdField ?? hubId,
      generation,
      suite: OTP_KEY_SUITE,
      recipient,
      enc: Buffer.from(sealed.enc).toString('base64url'),
      ct: Buffer.from(sealed.ct).toString('base64url'),
    };
    if (generation > hub.generation) hub.generation = generation;
    hub.keys.set(generation, key);
    hub.sent.set(deliveryId, payload);
    if (o.send !== false) await this.#d.publish(hubId, payload);
    return payload;
  }

  #check(hubId: string, p: OtpKeyRequestPayload): string | undefined {
    if (!this.enabled) return 'this cloud delivers no OTP keys (enableOtpKeys)';
    const checked = checkHubCertificate(p.cert, hubId, this.#cas, this.#d.now());
    if ('refused' in checked) return checked.refused;
    const { cert } = checked;
    const statement = otpKeyRequestStatement({ hubId, requestId: p.requestId, publicKey: p.publicKey });
    if (!verifyIdentitySignature(cert, statement, Buffer.from(p.sig, 'base64url'))) {
      return "the signature is not the certificate key's over the delivery key";
    }
    return undefined;
  }

  #hub(hubId: string): HubKeys {
    let h = this.#hubs.get(hubId);
    if (!h) {
      h = { recipient: undefined, generation: 0, keys: new Map(), acks: new Map(), ackLog: [], sent: new Map() };
      this.#hubs.set(hubId, h);
    }
    return h;
  }
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
