import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
  randomBytes,
} from 'node:crypto';

/**
 * HPKE (RFC 9180) in the one configuration iq-hub uses, on node:crypto alone: base mode,
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, single-shot (one message per
 * context, sequence number 0). Used by OTP key delivery (src/crypto/otp-key-seal.ts) and the hub
 * backup (src/backup/envelope.ts); checked against RFC 9180 appendix A.2.1 (test/unit/crypto/hpke.test.ts).
 *
 * Why not a library: node:crypto has X25519, HMAC-SHA256 and ChaCha20-Poly1305 in the binary the
 * daemon already runs; the key schedule is a dozen HMACs. This loads no JavaScript beyond this
 * file (the @hpke packages it replaces weighed ~1 MB of heap once loaded, for the daemon's life).
 */

const KEM_ID = 0x0020;
const KDF_ID = 0x0001;
const AEAD_ID = 0x0003;
/** Npk = Nenc = Nsk = Nsecret = Nh = Nk = 32 for this suite; Nn = 12, Nt = 16. */
const N = 32;
const NONCE = 12;
const TAG = 16;
const MODE_BASE = 0x00;

const utf8 = (s: string) => Buffer.from(s, 'utf8');
const i2osp = (n: number, len: number) => {
  const b = Buffer.alloc(len);
  b.writeUIntBE(n, 0, len);
  return b;
};
const VERSION = utf8('HPKE-v1');
const KEM_SUITE = Buffer.concat([utf8('KEM'), i2osp(KEM_ID, 2)]);
const HPKE_SUITE = Buffer.concat([utf8('HPKE'), i2osp(KEM_ID, 2), i2osp(KDF_ID, 2), i2osp(AEAD_ID, 2)]);

/** HKDF-Extract(salt, ikm) = HMAC-SHA256(salt, ikm); an empty salt is Nh zero bytes, as HMAC pads it. */
function extract(salt: Uint8Array, ikm: Uint8Array): Buffer {
  return createHmac('sha256', salt.length === 0 ? Buffer.alloc(N) : salt)
    .update(ikm)
    .digest();
}

function expand(prk: Uint8Array, info: Uint8Array, length: number): Buffer {
  const out: Buffer[] = [];
  let t: Buffer = Buffer.alloc(0);
  for (let i = 1; out.length * N < length; i++) {
    t = createHmac('sha256', prk)
      .update(Buffer.concat([t, info, Buffer.from([i])]))
      .digest();
    out.push(t);
  }
  return Buffer.concat(out).subarray(0, length);
}

function labeledExtract(suite: Buffer, salt: Uint8Array, label: string, ikm: Uint8Array): Buffer {
  return extract(salt, Buffer.concat([VERSION, suite, utf8(label), ikm]));
}

function labeledExpand(suite: Buffer, prk: Uint8Array, label: string, info: Uint8Array, length: number): Buffer {
  return expand(prk, Buffer.concat([i2osp(length, 2), VERSION, suite, utf8(label), info]), length);
}

// X25519 keys as node KeyObjects: the fixed DER prefixes of PKCS#8 and SPKI for OID 1.3.101.110.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

function privateKeyObject(sk: Uint8Array): KeyObject {
  if (sk.length !== N) throw new HpkeError('an X25519 private key has 32 bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, sk]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(pk: Uint8Array): KeyObject {
  if (pk.length !== N) throw new HpkeError('an X25519 public key has 32 bytes');
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, pk]), format: 'der', type: 'spki' });
}

/** The public key of an X25519 private key (32 bytes each). */
export function x25519PublicKey(sk: Uint8Array): Uint8Array {
  const der = createPublicKey(privateKeyObject(sk)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - N));
}

/** DH(sk, pk); an all-zero result (a small-order public key) is refused, as RFC 9180 §7.1.4 asks. */
function dh(sk: Uint8Array, pk: Uint8Array): Buffer {
  let z: Buffer;
  try {
    z = diffieHellman({ privateKey: privateKeyObject(sk), publicKey: publicKeyObject(pk) });
  } catch (e) {
    if (e instanceof HpkeError) throw e;
    throw new HpkeError('the X25519 exchange failed (a small-order public key?)');
  }
  if (z.every((b) => b === 0)) throw new HpkeError('the X25519 exchange gave zero (a small-order public key)');
  return z;
}

/** A failure of HPKE: a malformed key, a failed exchange, or a ciphertext that does not open. */
export class HpkeError extends Error {
  override readonly name = 'HpkeError';
}

export interface X25519KeyPair {
  /** 32 bytes, as DeriveKeyPair gives it (X25519 clamps when it uses it). */
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** DeriveKeyPair(ikm) of DHKEM(X25519, HKDF-SHA256) (RFC 9180 §7.1.3); ikm of at least 32 bytes. */
export function deriveKeyPair(ikm: Uint8Array): X25519KeyPair {
  if (ikm.length < N) throw new HpkeError('DeriveKeyPair needs at least 32 bytes of input keying material');
  const prk = labeledExtract(KEM_SUITE, new Uint8Array(0), 'dkp_prk', ikm);
  const sk = labeledExpand(KEM_SUITE, prk, 'sk', new Uint8Array(0), N);
  prk.fill(0);
  return { privateKey: new Uint8Array(sk), publicKey: x25519PublicKey(sk) };
}

function sharedSecret(z: Uint8Array, enc: Uint8Array, pkR: Uint8Array): Buffer {
  const prk = labeledExtract(KEM_SUITE, new Uint8Array(0), 'eae_prk', z);
  const s = labeledExpand(KEM_SUITE, prk, 'shared_secret', Buffer.concat([enc, pkR]), N);
  prk.fill(0);
  return s;
}

/** The base-mode key schedule: the AEAD key and base nonce (RFC 9180 §5.1). */
function keySchedule(shared: Uint8Array, info: Uint8Array): { key: Buffer; nonce: Buffer } {
  const empty = new Uint8Array(0);
  const context = Buffer.concat([
    Buffer.from([MODE_BASE]),
    labeledExtract(HPKE_SUITE, empty, 'psk_id_hash', empty),
    labeledExtract(HPKE_SUITE, empty, 'info_hash', info),
  ]);
  const secret = labeledExtract(HPKE_SUITE, shared, 'secret', empty);
  const key = labeledExpand(HPKE_SUITE, secret, 'key', context, N);
  const nonce = labeledExpand(HPKE_SUITE, secret, 'base_nonce', context, NONCE);
  secret.fill(0);
  return { key, nonce };
}

/**
 * SealBase(pkR, info, aad, pt) for one message: `enc` (the ephemeral public key) and `ct`
 * (ciphertext with its 16-byte tag). `ikmE`: the ephemeral key's input keying material, for a
 * reproducible test or a caller's own Random; 32 fresh random bytes otherwise.
 */
export function sealBase(o: {
  recipientPublicKey: Uint8Array;
  info: Uint8Array;
  aad: Uint8Array;
  plaintext: Uint8Array;
  ikmE?: Uint8Array;
}): { enc: Uint8Array; ct: Uint8Array } {
  const ikm = o.ikmE ?? randomBytes(N);
  const eph = deriveKeyPair(ikm);
  const z = dh(eph.privateKey, o.recipientPublicKey);
  eph.privateKey.fill(0);
  const shared = sharedSecret(z, eph.publicKey, o.recipientPublicKey);
  z.fill(0);
  const { key, nonce } = keySchedule(shared, o.info);
  shared.fill(0);
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  cipher.setAAD(o.aad, { plaintextLength: o.plaintext.length });
  const ct = Buffer.concat([cipher.update(o.plaintext), cipher.final(), cipher.getAuthTag()]);
  key.fill(0);
  return { enc: eph.publicKey, ct: new Uint8Array(ct) };
}

/** OpenBase(enc, skR, info, aad, ct) for one message; throws HpkeError if it does not open. */
export function openBase(o: {
  recipientPrivateKey: Uint8Array;
  enc: Uint8Array;
  info: Uint8Array;
  aad: Uint8Array;
  ct: Uint8Array;
}): Uint8Array {
  if (o.ct.length < TAG) throw new HpkeError('the ciphertext is shorter than its tag');
  const pkR = x25519PublicKey(o.recipientPrivateKey);
  const z = dh(o.recipientPrivateKey, o.enc);
  const shared = sharedSecret(z, o.enc, pkR);
  z.fill(0);
  const { key, nonce } = keySchedule(shared, o.info);
  shared.fill(0);
  try {
    const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
    decipher.setAAD(o.aad, { plaintextLength: o.ct.length - TAG });
    decipher.setAuthTag(o.ct.subarray(o.ct.length - TAG));
    const pt = Buffer.concat([decipher.update(o.ct.subarray(0, o.ct.length - TAG)), decipher.final()]);
    return new Uint8Array(pt);
  } catch {
    throw new HpkeError('the ciphertext does not open (wrong key, info or associated data, or altered)');
  } finally {
    key.fill(0);
  }
}

/** For the test against RFC 9180's intermediate values: the shared secret and the key schedule's outputs. */
export const hpkeInternals = {
  encapsulatedSecret(ikmE: Uint8Array, pkR: Uint8Array): Uint8Array {
    const eph = deriveKeyPair(ikmE);
    return new Uint8Array(sharedSecret(dh(eph.privateKey, pkR), eph.publicKey, pkR));
  },
  keySchedule(shared: Uint8Array, info: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
    return keySchedule(shared, info);
  },
};
