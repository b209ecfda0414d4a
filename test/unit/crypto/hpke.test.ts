import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  deriveKeyPair,
  HpkeError,
  hpkeInternals,
  openBase,
  sealBase,
  x25519PublicKey,
} from '../../../src/crypto/hpke.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (u: Uint8Array) => Buffer.from(u).toString('hex');

/**
 * RFC 9180 appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode,
 * and its first encryption (sequence number 0), as printed in the RFC.
 */
const A_2_1 = {
  info: '4f6465206f6e2061204772656369616e2055726e',
  ikmE: '909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b',
  pkEm: '1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a',
  skEm: 'f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600',
  ikmR: '1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df',
  pkRm: '4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a',
  skRm: '8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb',
  enc: '1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a',
  sharedSecret: '0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7',
  key: 'ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91',
  baseNonce: '5c4d98150661b848853b547f',
  pt: '4265617574792069732074727574682c20747275746820626561757479',
  aad: '436f756e742d30',
  ct: '1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28',
};

describe('HPKE base mode, X25519/HKDF-SHA256/ChaCha20-Poly1305 (RFC 9180 A.2.1)', () => {
  it('derives the appendix key pairs from their ikm', () => {
    const e = deriveKeyPair(hex(A_2_1.ikmE));
    expect(toHex(e.privateKey)).toBe(A_2_1.skEm);
    expect(toHex(e.publicKey)).toBe(A_2_1.pkEm);
    const r = deriveKeyPair(hex(A_2_1.ikmR));
    expect(toHex(r.privateKey)).toBe(A_2_1.skRm);
    expect(toHex(r.publicKey)).toBe(A_2_1.pkRm);
    expect(toHex(x25519PublicKey(hex(A_2_1.skRm)))).toBe(A_2_1.pkRm);
  });

  it('gives the appendix shared secret, key and base nonce', () => {
    const shared = hpkeInternals.encapsulatedSecret(hex(A_2_1.ikmE), hex(A_2_1.pkRm));
    expect(toHex(shared)).toBe(A_2_1.sharedSecret);
    const ks = hpkeInternals.keySchedule(shared, hex(A_2_1.info));
    expect(toHex(ks.key)).toBe(A_2_1.key);
    expect(toHex(ks.nonce)).toBe(A_2_1.baseNonce);
  });

  it('seals the appendix plaintext to the appendix enc and ciphertext, and opens it', () => {
    const sealed = sealBase({
      recipientPublicKey: hex(A_2_1.pkRm),
      info: hex(A_2_1.info),
      aad: hex(A_2_1.aad),
      plaintext: hex(A_2_1.pt),
      ikmE: hex(A_2_1.ikmE),
    });
    expect(toHex(sealed.enc)).toBe(A_2_1.enc);
    expect(toHex(sealed.ct)).toBe(A_2_1.ct);
    const pt = openBase({
      recipientPrivateKey: hex(A_2_1.skRm),
      enc: hex(A_2_1.enc),
      info: hex(A_2_1.info),
      aad: hex(A_2_1.aad),
      ct: hex(A_2_1.ct),
    });
    expect(toHex(pt)).toBe(A_2_1.pt);
  });

  const good = {
    recipientPrivateKey: hex(A_2_1.skRm),
    enc: hex(A_2_1.enc),
    info: hex(A_2_1.info),
    aad: hex(A_2_1.aad),
    ct: hex(A_2_1.ct),
  };
  const flip = (u: Uint8Array, at: number) => {
    const c = u.slice();
    c[at] = (c[at] as number) ^ 0x01;
    return c;
  };

  it('refuses what was altered: every byte of the ciphertext and tag, the enc, the info, the aad, the key', () => {
    for (let i = 0; i < good.ct.length; i++)
      expect(() => openBase({ ...good, ct: flip(good.ct, i) })).toThrow(HpkeError);
    expect(() => openBase({ ...good, enc: flip(good.enc, 3) })).toThrow(HpkeError);
    expect(() => openBase({ ...good, info: flip(good.info, 0) })).toThrow(HpkeError);
    expect(() => openBase({ ...good, aad: flip(good.aad, 6) })).toThrow(HpkeError);
    expect(() => openBase({ ...good, aad: new Uint8Array(0) })).toThrow(HpkeError);
    expect(() => openBase({ ...good, recipientPrivateKey: deriveKeyPair(new Uint8Array(32)).privateKey })).toThrow(
      HpkeError,
    );
  });

  it('refuses malformed input without throwing anything but HpkeError', () => {
    expect(() => openBase({ ...good, ct: good.ct.subarray(0, 15) })).toThrow(HpkeError);
    expect(() => openBase({ ...good, enc: good.enc.subarray(0, 31) })).toThrow(HpkeError);
    expect(() => openBase({ ...good, recipientPrivateKey: new Uint8Array(31) })).toThrow(HpkeError);
    expect(() => deriveKeyPair(new Uint8Array(16))).toThrow(HpkeError);
    // A small-order point (zero) as the ephemeral key: the exchange gives zero and is refused.
    expect(() => openBase({ ...good, enc: new Uint8Array(32) })).toThrow(HpkeError);
    expect(() =>
      sealBase({ recipientPublicKey: new Uint8Array(32), info: good.info, aad: good.aad, plaintext: hex('00') }),
    ).toThrow(HpkeError);
  });

  it('round-trips with fresh randomness and node-generated keys', () => {
    const { privateKey } = generateKeyPairSync('x25519');
    const sk = new Uint8Array(Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url'));
    const pk = x25519PublicKey(sk);
    const a = sealBase({ recipientPublicKey: pk, info: hex('01'), aad: hex('02'), plaintext: hex('abcdef') });
    const b = sealBase({ recipientPublicKey: pk, info: hex('01'), aad: hex('02'), plaintext: hex('abcdef') });
    expect(toHex(a.enc)).not.toBe(toHex(b.enc));
    expect(toHex(openBase({ recipientPrivateKey: sk, enc: a.enc, info: hex('01'), aad: hex('02'), ct: a.ct }))).toBe(
      'abcdef',
    );
  });
});

/**
 * Deployed clouds sealed with @hpke/core: each side must open the other's. Runs while @hpke is
 * installed (a devDependency); skipped, saying so, once it is not.
 */
const hpkeLib = await Promise.all([import('@hpke/core'), import('@hpke/chacha20poly1305')]).catch(() => undefined);
describe.skipIf(!hpkeLib)('interoperates with @hpke/core (the library it replaces)', () => {
  it('opens what @hpke seals, and @hpke opens what it seals', async () => {
    if (!hpkeLib) return;
    const [core, chacha] = hpkeLib;
    const suite = new core.CipherSuite({
      kem: new core.DhkemX25519HkdfSha256(),
      kdf: new core.HkdfSha256(),
      aead: new chacha.Chacha20Poly1305(),
    });
    const r = deriveKeyPair(hex('11'.repeat(32)));
    const info = hex('696e666f');
    const aad = hex('616164');
    const theirs = await suite.seal(
      { recipientPublicKey: await suite.kem.deserializePublicKey(r.publicKey), info },
      hex('00112233'),
      aad,
    );
    const pt = openBase({
      recipientPrivateKey: r.privateKey,
      enc: new Uint8Array(theirs.enc),
      info,
      aad,
      ct: new Uint8Array(theirs.ct),
    });
    expect(toHex(pt)).toBe('00112233');
    const ours = sealBase({ recipientPublicKey: r.publicKey, info, aad, plaintext: hex('44556677') });
    const opened = await suite.open(
      {
        recipientKey: {
          privateKey: await suite.kem.deserializePrivateKey(r.privateKey),
          publicKey: await suite.kem.deserializePublicKey(r.publicKey),
        },
        enc: ours.enc,
        info,
      },
      ours.ct,
      aad,
    );
    expect(toHex(new Uint8Array(opened))).toBe('44556677');
  });
});
