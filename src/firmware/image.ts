import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { HubError } from '../base/errors.js';
import { sha256 } from '../base/sha256.js';

/**
 * A lock firmware image and its manufacturer signature: the one format the hub, the cloud and
 * the lock read, and the checks each of them makes before trusting a byte of it. The hub runs
 * `verifyImage` before it sends anything to any lock; the lock runs `verifyManifest` when a
 * transfer begins and again, with the SHA-256 of what it received, before it installs.
 *
 * Image file (all integers big-endian):
 *   magic "IQFW" ‖ format u8 (1) ‖ manifest length u16 ‖ manifest ‖ signature (64) ‖ payload
 * Manifest (what the lock receives in `fwBegin`, exactly these bytes):
 *   format u8 (1) ‖ model length u8 (1…32) ‖ model (printable ASCII) ‖ version (3 × u16:
 *   major, minor, patch) ‖ size u32 ‖ SHA-256 of the payload (32) ‖ downgradeAllowed u8 (0/1)
 * Signature: Ed25519 by the vendor over "iq-fw manifest v1" ‖ 0x00 ‖ manifest.
 */

export const IMAGE_MAGIC = new Uint8Array([0x49, 0x51, 0x46, 0x57]);
export const IMAGE_FORMAT = 1;
export const SIGNATURE_LEN = 64;
export const VENDOR_KEY_LEN = 32;
export const MAX_MODEL_LEN = 32;
/** The largest payload the format allows; the config's firmware.maxImageBytes may lower it. */
export const MAX_FIRMWARE_SIZE = 16 * 1024 * 1024;
const MODEL_PATTERN = /^[\x21-\x7e]{1,32}$/;
const SIGNING_CONTEXT = new TextEncoder().encode('iq-fw manifest v1\0');
const HEADER_LEN = IMAGE_MAGIC.length + 1 + 2;

export interface FirmwareVersion {
  major: number;
  minor: number;
  patch: number;
}

export interface FirmwareManifest {
  model: string;
  version: FirmwareVersion;
  size: number;
  sha256: Uint8Array;
  downgradeAllowed: boolean;
}

export interface FirmwareImage {
  manifest: FirmwareManifest;
  /** The manifest's exact bytes, as signed and as sent to the lock. */
  manifestBytes: Uint8Array;
  signature: Uint8Array;
  payload: Uint8Array;
}

/** Why an image or a manifest is refused; each has its own error code `firmware.<reason>`. */
export type FirmwareRefusal =
  | 'malformed'
  | 'forged'
  | 'truncated'
  | 'digest-mismatch'
  | 'wrong-model'
  | 'downgrade'
  | 'too-large';

export function formatVersion(v: FirmwareVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}

/** Parses "major.minor.patch" (each 0…65535); undefined when it is not one. */
export function parseVersion(s: string): FirmwareVersion | undefined {
  const m = /^(\d{1,5})\.(\d{1,5})\.(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (major > 0xffff || minor > 0xffff || patch > 0xffff) return undefined;
  return { major, minor, patch };
}

/** Negative, zero or positive as `a` is older than, equal to or newer than `b`. */
export function compareVersions(a: FirmwareVersion, b: FirmwareVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

function refuse(reason: FirmwareRefusal, message: string, hint?: string): HubError {
  return new HubError(`firmware.${reason}`, message, hint === undefined ? {} : { hint });
}

function u16(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
}

export function encodeManifest(m: FirmwareManifest): Uint8Array {
  if (!MODEL_PATTERN.test(m.model))
    throw new HubError('firmware.malformed', 'the model must be 1…32 printable ASCII characters');
  if (!Number.isSafeInteger(m.size) || m.size < 1 || m.size > MAX_FIRMWARE_SIZE)
    throw new HubError('firmware.malformed', `the size must be 1…${MAX_FIRMWARE_SIZE} bytes`);
  if (m.sha256.length !== 32) throw new HubError('firmware.malformed', 'the SHA-256 must be 32 bytes');
  const out = new Uint8Array(2 + m.model.length + 6 + 4 + 32 + 1);
  const view = new DataView(out.buffer);
  let at = 0;
  out[at++] = IMAGE_FORMAT;
  out[at++] = m.model.length;
  for (const c of m.model) out[at++] = c.charCodeAt(0);
  for (const part of [m.version.major, m.version.minor, m.version.patch]) {
    if (!Number.isInteger(part) || part < 0 || part > 0xffff)
      throw new HubError('firmware.malformed', 'each version part must be 0…65535');
    view.setUint16(at, part);
    at += 2;
  }
  view.setUint32(at, m.size);
  at += 4;
  out.set(m.sha256, at);
  at += 32;
  out[at] = m.downgradeAllowed ? 1 : 0;
  return out;
}

/** Reads a manifest from untrusted bytes; throws `firmware.malformed` naming the field. */
export function decodeManifest(b: Uint8Array): FirmwareManifest {
  const bad = (why: string) => refuse('malformed', `firmware manifest: ${why}`);
  if (b.length < 2) throw bad('too short');
  if (b[0] !== IMAGE_FORMAT) throw bad(`format ${b[0]} is not ${IMAGE_FORMAT}`);
  const modelLen = b[1] ?? 0;
  if (modelLen < 1 || modelLen > MAX_MODEL_LEN) throw bad('the model length is not 1…32');
  const expected = 2 + modelLen + 6 + 4 + 32 + 1;
  if (b.length !== expected) throw bad(`${b.length} bytes where its model length makes ${expected}`);
  const model = String.fromCharCode(...b.subarray(2, 2 + modelLen));
  if (!MODEL_PATTERN.test(model)) throw bad('the model is not printable ASCII');
  let at = 2 + modelLen;
  const version = { major: u16(b, at), minor: u16(b, at + 2), patch: u16(b, at + 4) };
  at += 6;
  const size = new DataView(b.buffer, b.byteOffset, b.length).getUint32(at);
  at += 4;
  if (size < 1 || size > MAX_FIRMWARE_SIZE) throw bad(`the size is not 1…${MAX_FIRMWARE_SIZE} bytes`);
  const digest = b.slice(at, at + 32);
  at += 32;
  const flag = b[at];
  if (flag !== 0 && flag !== 1) throw bad('downgradeAllowed is not 0 or 1');
  return { model, version, size, sha256: digest, downgradeAllowed: flag === 1 };
}

function signedBytes(manifestBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGNING_CONTEXT.length + manifestBytes.length);
  out.set(SIGNING_CONTEXT);
  out.set(manifestBytes, SIGNING_CONTEXT.length);
  return out;
}

// Ed25519 through node:crypto (RFC 8032, as OpenSSL implements it: S must be below the group order):
// raw 32-byte keys wrapped in the fixed DER prefixes of RFC 8410. No JavaScript curve library is
// loaded into the daemon for the few images a year it checks.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

function vendorKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
}

function vendorSecretKeyObject(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new RangeError(`an Ed25519 vendor secret key has 32 bytes, not ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
}

/** Whether one of the pinned vendor keys signed these manifest bytes. */
export function signatureValid(
  manifestBytes: Uint8Array,
  signature: Uint8Array,
  vendorKeys: readonly Uint8Array[],
): boolean {
  if (signature.length !== SIGNATURE_LEN) return false;
  const message = signedBytes(manifestBytes);
  return vendorKeys.some((key) => {
    try {
      return key.length === VENDOR_KEY_LEN && verify(null, message, vendorKeyObject(key), signature);
    } catch {
      return false;
    }
  });
}

/** The vendor's side (and the reference cloud's, in the simulation): a signed image file. */
export function buildImage(
  m: Omit<FirmwareManifest, 'size' | 'sha256'>,
  payload: Uint8Array,
  vendorSecretKey: Uint8Array,
): Uint8Array {
  const manifestBytes = encodeManifest({ ...m, size: payload.length, sha256: sha256(payload) });
  const signature = sign(null, signedBytes(manifestBytes), vendorSecretKeyObject(vendorSecretKey));
  const out = new Uint8Array(HEADER_LEN + manifestBytes.length + SIGNATURE_LEN + payload.length);
  out.set(IMAGE_MAGIC);
  out[4] = IMAGE_FORMAT;
  new DataView(out.buffer).setUint16(5, manifestBytes.length);
  out.set(manifestBytes, HEADER_LEN);
  out.set(signature, HEADER_LEN + manifestBytes.length);
  out.set(payload, HEADER_LEN + manifestBytes.length + SIGNATURE_LEN);
  return out;
}

export function vendorPublicKey(secretKey: Uint8Array): Uint8Array {
  const der = createPublicKey(vendorSecretKeyObject(secretKey)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(SPKI_ED25519.length));
}

/** Splits an image file into its parts, checking only the framing (no signature, no digest). */
export function parseImage(file: Uint8Array): FirmwareImage {
  if (file.length < HEADER_LEN || !IMAGE_MAGIC.every((v, i) => file[i] === v))
    throw refuse(
      'malformed',
      'not a firmware image: it does not start with "IQFW"',
      'give the image file the vendor or the cloud published, unaltered',
    );
  if (file[4] !== IMAGE_FORMAT)
    throw refuse(
      'malformed',
      `firmware image format ${file[4]} is not ${IMAGE_FORMAT}`,
      'update iq-hub to read this image',
    );
  const manifestLen = u16(file, 5);
  const payloadAt = HEADER_LEN + manifestLen + SIGNATURE_LEN;
  if (file.length < payloadAt)
    throw refuse('truncated', `the firmware image ends inside its header (${file.length} bytes)`);
  const manifestBytes = file.slice(HEADER_LEN, HEADER_LEN + manifestLen);
  const manifest = decodeManifest(manifestBytes);
  return {
    manifest,
    manifestBytes,
    signature: file.slice(HEADER_LEN + manifestLen, payloadAt),
    payload: file.slice(payloadAt),
  };
}

/**
 * The manifest checks both the hub and the lock make: the vendor's signature, the model, the
 * version against the running one (a downgrade only when the signed manifest allows it) and the
 * size against what the lock can hold. Throws HubError `firmware.<reason>`.
 */
export function verifyManifest(
  manifestBytes: Uint8Array,
  signature: Uint8Array,
  expect: {
    vendorKeys: readonly Uint8Array[];
    model?: string;
    running?: FirmwareVersion;
    maxSize?: number;
  },
): FirmwareManifest {
  if (expect.vendorKeys.length === 0)
    throw refuse(
      'forged',
      'no vendor key is configured, so no firmware signature can be checked',
      'set firmware.vendorKeys in the config',
    );
  const manifest = decodeManifest(manifestBytes);
  if (!signatureValid(manifestBytes, signature, expect.vendorKeys))
    throw refuse(
      'forged',
      `firmware ${manifest.model} ${formatVersion(manifest.version)}: the signature is not from a pinned vendor key`,
    );
  if (expect.model !== undefined && manifest.model !== expect.model)
    throw refuse('wrong-model', `firmware for model ${manifest.model}, but the lock is a ${expect.model}`);
  if (expect.running && compareVersions(manifest.version, expect.running) <= 0 && !manifest.downgradeAllowed) {
    const same = compareVersions(manifest.version, expect.running) === 0;
    throw refuse(
      'downgrade',
      `firmware ${formatVersion(manifest.version)} is ${same ? 'the version the lock already runs' : `older than the running ${formatVersion(expect.running)}`}, and the image does not allow a downgrade`,
    );
  }
  if (expect.maxSize !== undefined && manifest.size > expect.maxSize)
    throw refuse('too-large', `firmware of ${manifest.size} bytes exceeds the limit of ${expect.maxSize} bytes`);
  return manifest;
}

/** The hub's check of a whole image before any of it goes to a lock: signature, then length and SHA-256. */
export function verifyImage(
  file: Uint8Array,
  expect: { vendorKeys: readonly Uint8Array[]; maxSize?: number },
): FirmwareImage {
  const image = parseImage(file);
  verifyManifest(image.manifestBytes, image.signature, expect);
  const { size, sha256: digest } = image.manifest;
  if (image.payload.length < size)
    throw refuse('truncated', `the firmware image holds ${image.payload.length} of its ${size} bytes`);
  if (image.payload.length > size)
    throw refuse('malformed', `the firmware image has ${image.payload.length - size} bytes beyond its declared size`);
  if (!equalBytes(sha256(image.payload), digest))
    throw refuse('digest-mismatch', 'the firmware payload does not match the SHA-256 of its signed manifest');
  return image;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
