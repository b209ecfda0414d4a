import { certPem, errorObject, id, requestId, v } from './mqtt-topics.js';

/** Certificates: enrollment by claim (ks/provisioning/{claimId}/…) and rotation (cert/request, cert/response). */

/** A PEM certificate signing request (PKCS #10), as `-----BEGIN CERTIFICATE REQUEST-----` text. */
const csrPem = {
  type: 'string',
  minLength: 64,
  maxLength: 16384,
  pattern: '^-----BEGIN CERTIFICATE REQUEST-----\\r?\\n[A-Za-z0-9+/=\\r\\n]+-----END CERTIFICATE REQUEST-----\\r?\\n?$',
} as const;
/** A secret encrypted to the hub: base64 of RSA-OAEP (SHA-256, MGF1-SHA-256) under the public key of its CSR. */
const wrappedSecret = { type: 'string', minLength: 16, maxLength: 1400, pattern: '^[A-Za-z0-9+/]+={0,2}$' } as const;
/** The `error.code`s of a refused enrollment or renewal (the reference cloud's; a hub logs any code). */
export const CERT_ERROR_CODES = [
  'bad_csr',
  'cn_mismatch',
  'unknown_hub',
  'already_enrolled',
  'not_allowed',
  'internal',
] as const;
export type CertErrorCode = (typeof CERT_ERROR_CODES)[number];

/**
 * hub → cloud on `ks/provisioning/{claimId}/request`, over the claim certificate: the hub's CSR
 * (CN = `hubId`, made on the hub; its private key never leaves it).
 */
export interface EnrollRequestPayload {
  v: 1;
  requestId: string;
  hubId: string;
  csr: string;
}

export const enrollRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'requestId', 'hubId', 'csr'],
  properties: { v, requestId, hubId: id, csr: csrPem },
} as const;

/**
 * cloud → hub on `ks/provisioning/{claimId}/response`: the hub's own certificate, the CA the hub
 * trusts from now on, and the hub's secrets encrypted to the key of its CSR (RSA-OAEP-SHA-256);
 * or `ok: false` and why. Every hub enrolling with the same claim sees every response: they are
 * matched by `requestId` (and `hubId`), and only the hub holding the CSR's key can open `secrets`.
 */
export interface EnrollResponsePayload {
  v: 1;
  requestId: string;
  hubId: string;
  ok: boolean;
  cert?: string;
  ca?: string;
  secrets?: { otpKey: string; pinKey?: string };
  error?: { code: string; message: string };
}

export const enrollResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'requestId', 'hubId', 'ok'],
  properties: {
    v,
    requestId,
    hubId: id,
    ok: { type: 'boolean' },
    cert: certPem,
    ca: certPem,
    secrets: {
      type: 'object',
      additionalProperties: false,
      required: ['otpKey'],
      properties: { otpKey: wrappedSecret, pinKey: wrappedSecret },
    },
    error: errorObject,
  },
} as const;

/** hub → cloud on `cert/request`: renewal of the hub's certificate for a new key (rotation). */
export interface CertRequestPayload {
  v: 1;
  requestId: string;
  csr: string;
}

export const certRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'requestId', 'csr'],
  properties: { v, requestId, csr: csrPem },
} as const;

/** cloud → hub on `cert/response`: the renewed certificate, or `ok: false` and why. */
export interface CertResponsePayload {
  v: 1;
  requestId: string;
  ok: boolean;
  cert?: string;
  error?: { code: string; message: string };
}

export const certResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'requestId', 'ok'],
  properties: { v, requestId, ok: { type: 'boolean' }, cert: certPem, error: errorObject },
} as const;
