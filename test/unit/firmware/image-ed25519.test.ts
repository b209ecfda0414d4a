import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { simFirmwareImage, simVendor } from '../../../sim/vendor.js';
import { parseImage, signatureValid, vendorPublicKey } from '../../../src/firmware/image.js';

/**
 * The firmware signature is Ed25519 through node:crypto (no curve library in the daemon): the same
 * keys and signatures as RFC 8032 and as @noble/curves (the library it replaced, a devDependency
 * for this test), and the encodings RFC 8032 refuses refused.
 */
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const SIGNING_CONTEXT = new TextEncoder().encode('iq-fw manifest v1\0');

describe('firmware Ed25519 on node:crypto', () => {
  it('derives the public key of RFC 8032 test 1', () => {
    const secret = hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
    expect(Buffer.from(vendorPublicKey(secret)).toString('hex')).toBe(
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    );
  });

  it('signs as @noble/curves does (deterministic RFC 8032), and noble verifies it', () => {
    const vendor = simVendor();
    const image = parseImage(simFirmwareImage({ version: '1.2.3', size: 64 }));
    const message = new Uint8Array([...SIGNING_CONTEXT, ...image.manifestBytes]);
    expect(ed25519.verify(image.signature, message, vendor.publicKey, { zip215: false })).toBe(true);
    expect(signatureValid(image.manifestBytes, image.signature, [vendor.publicKey])).toBe(true);
    expect(Buffer.from(ed25519.getPublicKey(vendor.secretKey)).toString('hex')).toBe(
      Buffer.from(vendor.publicKey).toString('hex'),
    );
  });

  it('refuses a signature whose S is not reduced (S + L: the same point, another encoding)', () => {
    const vendor = simVendor();
    const image = parseImage(simFirmwareImage({ version: '1.2.3', size: 64 }));
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const s = image.signature.slice(32);
    let n = 0n;
    for (let i = 31; i >= 0; i--) n = (n << 8n) | BigInt(s[i] as number);
    const bigger = n + L;
    expect(bigger < 2n ** 256n).toBe(true);
    const malleated = image.signature.slice();
    let v = bigger;
    for (let i = 0; i < 32; i++) {
      malleated[32 + i] = Number(v & 0xffn);
      v >>= 8n;
    }
    expect(signatureValid(image.manifestBytes, malleated, [vendor.publicKey])).toBe(false);
  });

  it('refuses a key of the wrong length, a signature of the wrong length, and a flipped bit', () => {
    const vendor = simVendor();
    const image = parseImage(simFirmwareImage({ version: '1.2.3', size: 64 }));
    expect(signatureValid(image.manifestBytes, image.signature, [vendor.publicKey.subarray(0, 31)])).toBe(false);
    expect(signatureValid(image.manifestBytes, image.signature.subarray(0, 63), [vendor.publicKey])).toBe(false);
    const flipped = image.signature.slice();
    flipped[5] = (flipped[5] as number) ^ 1;
    expect(signatureValid(image.manifestBytes, flipped, [vendor.publicKey])).toBe(false);
    // Not a point on the curve at all: no throw, just refused.
    expect(signatureValid(image.manifestBytes, image.signature, [new Uint8Array(32).fill(0xff)])).toBe(false);
  });
});
