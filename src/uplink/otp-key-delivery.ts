import { createHash } from 'node:crypto';
import type { Clock } from '../base/clock.js';
import { isHubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { installDeliveredOtpKey, OTP_KEY_PURPOSE, otpKeyGeneration } from '../commands/otp-key.js';
import { maxInboundBytes } from '../contract/mqtt.js';
import type {
  OtpKeyAckPayload,
  OtpKeyDeliveryPayload,
  OtpKeyRefusal,
  OtpKeyRequestPayload,
} from '../contract/mqtt-otp-key.js';
import { CONTRACT_VERSION } from '../contract/mqtt-topics.js';
import { checkUtf8, parseInbound, salvageId } from '../contract/mqtt-validate.js';
import {
  type DeliveryKeyPair,
  newDeliveryKeyPair,
  openOtpKey,
  otpKeyRequestStatement,
  signWithIdentity,
} from '../crypto/otp-key-seal.js';
import type { Sealer } from '../crypto/seal.js';
import { readSealed, writeSealed } from '../crypto/sealed-secrets.js';
import { Secret } from '../crypto/secret.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import type { PublishResult } from './mqtt-connection.js';

/**
 * OTP key delivery to a hub that already has its certificate (docs/mqtt-api.md, "OTP key
 * delivery"; the why in docs/security.md). At every connection the hub publishes
 * `otp-key/request`: its X25519 delivery key (made once, kept sealed in the store), signed with
 * the private key of its TLS certificate, the certificate itself, and the key generation it holds.
 * The cloud checks the certificate and the signature and answers on `otp-key` with the OTP key
 * sealed to that X25519 key (HPKE), bound to the hub id, the delivery id, the generation and the
 * recipient key. The hub opens it, installs it — stored sealed, only a generation above the
 * installed one — hands it to the command verifier, and answers `otp-key/ack`. A refused delivery
 * changes nothing and says why.
 */

/** The sealed_secrets purpose of the hub's X25519 delivery key (private ‖ public, 64 bytes); the id is the hub id. */
export const DELIVERY_KEY_PURPOSE = 'uplink.otp-delivery-key';

export interface OtpKeyDeliveryDeps {
  hubId: string;
  /** The hub's TLS certificate and private key now (PEM): after a rotation, the new ones. */
  identity: () => { cert: Buffer; key: Buffer };
  store: Store;
  sealer: Sealer;
  clock: Clock;
  random: Random;
  log: Logger;
  publish(
    topic: 'otp-key/request' | 'otp-key/ack',
    payload: OtpKeyRequestPayload | OtpKeyAckPayload,
  ): Promise<PublishResult>;
  /** The last command counter the hub accepted (told to the cloud with each installed key). */
  lastCounter: () => number;
  /** The installed key, for the command verifier: called after it is stored. */
  installed: (key: Secret) => void;
}

export interface OtpKeyDeliveryStatus {
  generation: number;
  /** The fingerprint of the OTP key held, null: none. */
  fingerprint: string | null;
}

export class OtpKeyDelivery {
  readonly #d: OtpKeyDeliveryDeps;
  #pair: DeliveryKeyPair | undefined;

  constructor(deps: OtpKeyDeliveryDeps) {
    this.#d = deps;
  }

  /** The OTP key held now: its generation and fingerprint (told to the cloud in each request). */
  status(): OtpKeyDeliveryStatus {
    const d = this.#d;
    return {
      generation: otpKeyGeneration(d.store),
      fingerprint: readSealed(d.store, { purpose: OTP_KEY_PURPOSE, id: d.hubId })?.fingerprint ?? null,
    };
  }

  /** The request as it is published now (a fresh request id, signed with the current TLS key). */
  request(): OtpKeyRequestPayload {
    const d = this.#d;
    const pair = this.#keyPair();
    const publicKey = Buffer.from(pair.publicKey).toString('base64url');
    const requestId = `otk-${Buffer.from(d.random.bytes(12)).toString('hex')}`;
    const { cert, key } = d.identity();
    const sig = signWithIdentity(key, otpKeyRequestStatement({ hubId: d.hubId, requestId, publicKey }));
    const st = this.status();
    return {
      v: CONTRACT_VERSION,
      requestId,
      publicKey,
      cert: cert.toString('utf8'),
      sig: Buffer.from(sig).toString('base64url'),
      current: st.fingerprint === null ? null : { generation: st.generation, fingerprint: st.fingerprint },
    };
  }

  /** The uplink is (re)connected: publish the request (best effort; it goes again at the next connection). */
  connected(): void {
    let payload: OtpKeyRequestPayload;
    try {
      payload = this.request();
    } catch (e) {
      this.#d.log.error({ err: e }, 'otp-key: the delivery request could not be made');
      return;
    }
    void this.#d.publish('otp-key/request', payload).then((r) => {
      if (!r.ok) this.#d.log.warn({ code: r.code }, 'otp-key: the delivery request was not accepted by the broker');
      else this.#d.log.debug({ requestId: payload.requestId, current: payload.current }, 'otp-key: request sent');
    });
  }

  /** A message on `otp-key`; resolves once it is installed or refused, and answered. Never rejects. */
  async handle(payload: Buffer): Promise<void> {
    const answer = await this.#take(payload);
    const r = await this.#d.publish('otp-key/ack', answer);
    if (!r.ok) this.#d.log.warn({ code: r.code, id: answer.id }, 'otp-key: the ack was not accepted by the broker');
  }

  async #take(payload: Buffer): Promise<OtpKeyAckPayload> {
    const d = this.#d;
    const limit = maxInboundBytes('otp-key');
    const parsed = checkUtf8(payload, limit) ?? parseInbound('otp-key', payload);
    if (!parsed.ok) return this.#refuse(salvageId(payload, 'deliveryId'), 'bad_request', parsed.error.message);
    const m: OtpKeyDeliveryPayload = parsed.value;
    if (m.hubId !== d.hubId) {
      return this.#refuse(
        m.deliveryId,
        'wrong_hub',
        `OTP key delivery ${m.deliveryId} is for hub ${m.hubId}, not this hub`,
      );
    }
    const pair = this.#keyPair();
    const mine = Buffer.from(pair.publicKey).toString('base64url');
    if (m.recipient !== mine) {
      return this.#refuse(
        m.deliveryId,
        'not_my_key',
        `OTP key delivery ${m.deliveryId} is sealed to the delivery key ${keyName(m.recipient)}, not to this hub's ${keyName(mine)}: seal to the key of the hub's latest otp-key/request`,
      );
    }
    let key: Secret;
    try {
      key = await openOtpKey({
        hubId: d.hubId,
        pair,
        deliveryId: m.deliveryId,
        generation: m.generation,
        enc: Buffer.from(m.enc, 'base64url'),
        ct: Buffer.from(m.ct, 'base64url'),
      });
    } catch (e) {
      const code: OtpKeyRefusal = isHubError(e) && e.code === 'otp-key.malformed' ? 'bad_request' : 'does_not_open';
      return this.#refuse(m.deliveryId, code, isHubError(e) ? e.message : 'the delivery does not open');
    }
    try {
      const outcome = installDeliveredOtpKey(
        { hubId: d.hubId, store: d.store, sealer: d.sealer, clock: d.clock, log: d.log },
        key,
        { generation: m.generation, deliveryId: m.deliveryId },
      );
      if (outcome.kind === 'stale') {
        key.wipe();
        return this.#refuse(
          m.deliveryId,
          'stale_generation',
          `OTP key delivery ${m.deliveryId} has generation ${m.generation}, not above the installed generation ${outcome.installed}: a replayed or older delivery is not installed`,
        );
      }
      if (outcome.kind === 'installed') {
        d.installed(key);
      } else {
        key.wipe();
      }
      return {
        v: CONTRACT_VERSION,
        id: m.deliveryId,
        ok: true,
        generation: m.generation,
        fingerprint: outcome.fingerprint,
        lastCounter: d.lastCounter(),
      };
    } catch (e) {
      key.wipe();
      d.log.error({ err: e, deliveryId: m.deliveryId }, 'otp-key: the delivered key could not be stored');
      return this.#refuse(
        m.deliveryId,
        'store_unavailable',
        'the hub could not store the OTP key; nothing changed: send it again later',
      );
    }
  }

  #refuse(id: string | null, code: OtpKeyRefusal, message: string): OtpKeyAckPayload {
    this.#d.log.warn({ id, code, problem: message }, 'otp-key: delivery refused; nothing changed');
    return { v: CONTRACT_VERSION, id, ok: false, error: { code, message } };
  }

  /** The delivery key pair: the stored one, or a new one stored now (also when the stored one does not open). */
  #keyPair(): DeliveryKeyPair {
    if (this.#pair) return this.#pair;
    const d = this.#d;
    const ctx = { purpose: DELIVERY_KEY_PURPOSE, id: d.hubId };
    const row = readSealed(d.store, ctx);
    if (row) {
      try {
        const both = d.sealer.open(row.blob, ctx).reveal();
        if (both.length === 64) {
          this.#pair = { privateKey: new Secret(both.subarray(0, 32)), publicKey: Uint8Array.from(both.subarray(32)) };
          both.fill(0);
          return this.#pair;
        }
      } catch {
        // Replaced below: the cloud learns the new public key from the next request.
      }
      d.log.warn('otp-key: the stored delivery key does not open; making a new one');
    }
    const pair = newDeliveryKeyPair();
    const both = new Secret(Buffer.concat([pair.privateKey.reveal(), pair.publicKey]));
    writeSealed(
      d.store,
      ctx,
      { blob: d.sealer.seal(both, ctx), fingerprint: keyName(Buffer.from(pair.publicKey).toString('base64url')) },
      d.clock.now(),
    );
    both.wipe();
    this.#pair = pair;
    return pair;
  }
}

/** A public key named in messages: the first 8 hex digits of the SHA-256 of its bytes. */
function keyName(b64: string): string {
  return createHash('sha256').update(Buffer.from(b64, 'base64url')).digest('hex').slice(0, 8);
}
