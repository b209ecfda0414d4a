import { answerSchema, certPem, id, requestId, v } from './mqtt-topics.js';

/**
 * The OTP key delivered over the uplink to a hub that already has its certificate (a factory-CA
 * hub never enrolled by claim, or any hub whose key the cloud rotates): docs/mqtt-api.md, "OTP key
 * delivery"; docs/security.md for why it is sound.
 *
 * 1. hub → cloud `otp-key/request`: an X25519 public key the hub made and keeps sealed, signed
 *    with the private key of its TLS certificate (sent along): only the holder of the hub's
 *    certificate can name the key its OTP key is sealed to.
 * 2. cloud → hub `otp-key`: the 32-byte OTP key sealed to that X25519 key with HPKE (RFC 9180,
 *    base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305); the hub id is in the
 *    HPKE info, the delivery id, generation and recipient key in the associated data.
 * 3. hub → cloud `otp-key/ack`: installed (with its generation, fingerprint and the last command
 *    counter the hub accepted), or refused and why (nothing changed).
 */

/** base64url without padding of exactly 32 bytes (an X25519 public key, an HPKE `enc`). */
const b64url32 = {
  type: 'string',
  minLength: 43,
  maxLength: 43,
  pattern: '^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$',
} as const;
/** The 8 hex digits naming a key without revealing it (the first 4 bytes of its SHA-256). */
const fingerprint = { type: 'string', pattern: '^[0-9a-f]{8}$' } as const;
const generation = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;

/** The sealing suite's identifiers, as the payload names them (one suite in contract v1). */
export const OTP_KEY_SUITE = 'X25519-HKDF-SHA256-ChaCha20Poly1305' as const;

export interface OtpKeyRequestPayload {
  v: 1;
  requestId: string;
  /** The hub's X25519 public key for OTP key delivery, base64url (32 bytes). */
  publicKey: string;
  /** The hub's TLS certificate (PEM): its key signed `sig`; its CN is the hub id. */
  cert: string;
  /**
   * base64url signature by the certificate's key over the statement of src/crypto/otp-key-seal.ts
   * (`otpKeyRequestStatement`): RSA-PSS-SHA256, ECDSA-SHA256 or Ed25519, after the key's type.
   */
  sig: string;
  /** The OTP key the hub holds now (generation 0: from a key file or enrollment), or null: none. */
  current: { generation: number; fingerprint: string } | null;
}

export const otpKeyRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'requestId', 'publicKey', 'cert', 'sig', 'current'],
  properties: {
    v,
    requestId,
    publicKey: b64url32,
    cert: certPem,
    sig: { type: 'string', minLength: 40, maxLength: 1400, pattern: '^[A-Za-z0-9_-]+$' },
    current: {
      anyOf: [
        {
          type: 'object',
          additionalProperties: false,
          required: ['generation', 'fingerprint'],
          properties: { generation, fingerprint },
        },
        { type: 'null' },
      ],
    },
  },
} as const;

export interface OtpKeyDeliveryPayload {
  v: 1;
  /** Unique per delivery; echoed by the ack. */
  deliveryId: string;
  /** The hub it is for: must be the receiving hub's id (and is bound in the HPKE info). */
  hubId: string;
  /** Strictly increasing per hub: a delivery not above the installed generation is refused (a replay, a downgrade). */
  generation: number;
  suite: typeof OTP_KEY_SUITE;
  /** The X25519 public key it is sealed to (the hub's, from its request), base64url. */
  recipient: string;
  /** HPKE encapsulated key, base64url (32 bytes). */
  enc: string;
  /** HPKE ciphertext of the 32-byte key with its 16-byte tag, base64url (48 bytes). */
  ct: string;
}

export const otpKeyDeliverySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'deliveryId', 'hubId', 'generation', 'suite', 'recipient', 'enc', 'ct'],
  properties: {
    v,
    deliveryId: requestId,
    hubId: id,
    generation: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    suite: { const: OTP_KEY_SUITE },
    recipient: b64url32,
    enc: b64url32,
    ct: { type: 'string', minLength: 64, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' },
  },
} as const;

/** Why a delivery was refused (`error.code` of `otp-key/ack`); none of them changes anything on the hub. */
export const OTP_KEY_REFUSALS = [
  'bad_request',
  'wrong_hub',
  'not_my_key',
  'does_not_open',
  'stale_generation',
  'store_unavailable',
] as const;
export type OtpKeyRefusal = (typeof OTP_KEY_REFUSALS)[number];

export interface OtpKeyAckPayload {
  v: 1;
  /** The delivery's id; null when the delivery was too malformed to have one. */
  id: string | null;
  ok: boolean;
  /** Installed (or already installed): its generation and fingerprint. */
  generation?: number;
  fingerprint?: string;
  /** The last command counter the hub accepted: the cloud signs its next command above it. */
  lastCounter?: number;
  error?: { code: string; message: string };
}

export const otpKeyAckSchema = answerSchema({
  generation,
  fingerprint,
  lastCounter: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
});
