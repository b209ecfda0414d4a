import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../src/base/random.js';
import { Sealer } from '../../../src/crypto/seal.js';
import { Secret } from '../../../src/crypto/secret.js';
import { refusal } from '../../helpers/refusal.js';

const key = new Secret(new SeededRandom('storage').bytes(32));
const sealer = new Sealer(key, new SeededRandom('nonces'));
const ctx = { purpose: 'lock.link-key', id: 'L-0001' };
const text = (s: Secret) => new TextDecoder().decode(s.reveal());

const opensNot = (blob: Uint8Array, c = ctx, s = sealer) => refusal(() => s.open(blob, c));

describe('seal', () => {
  it('a sealed secret opens with the same purpose and id', () => {
    expect(text(sealer.open(sealer.seal(new TextEncoder().encode('link key'), ctx), ctx))).toBe('link key');
  });

  it('the sealed blob does not contain the plaintext', () => {
    const blob = Buffer.from(sealer.seal(new TextEncoder().encode('link key link key'), ctx));
    expect(blob.includes(Buffer.from('link key'))).toBe(false);
  });

  it('sealing twice gives different blobs (fresh nonce)', () => {
    const p = new TextEncoder().encode('x');
    expect(Buffer.from(sealer.seal(p, ctx)).equals(Buffer.from(sealer.seal(p, ctx)))).toBe(false);
  });

  it('a blob moved to another row does not open', () => {
    const blob = sealer.seal(new TextEncoder().encode('k'), ctx);
    expect(opensNot(blob, { purpose: ctx.purpose, id: 'L-0002' }).code).toBe('seal.open');
  });

  it('a blob moved to another purpose does not open', () => {
    const blob = sealer.seal(new TextEncoder().encode('k'), ctx);
    expect(opensNot(blob, { purpose: 'site.pin-key', id: ctx.id }).code).toBe('seal.open');
  });

  it('a tampered blob does not open, whichever byte changed', () => {
    const blob = sealer.seal(new TextEncoder().encode('secret bytes'), ctx);
    for (let i = 1; i < blob.length; i++) {
      const t = Uint8Array.from(blob);
      t[i] = (t[i] ?? 0) ^ 0x01;
      expect(opensNot(t).code).toBe('seal.open');
    }
  });

  it('a blob sealed under another storage key does not open', () => {
    const other = new Sealer(new Secret(new SeededRandom('other').bytes(32)), new SeededRandom('n2'));
    expect(opensNot(other.seal(new TextEncoder().encode('k'), ctx)).code).toBe('seal.open');
  });

  it('truncated or unversioned blobs are refused as malformed', () => {
    expect(opensNot(new Uint8Array(10)).code).toBe('seal.malformed');
    const blob = sealer.seal(new TextEncoder().encode('k'), ctx);
    blob[0] = 9;
    expect(opensNot(blob).code).toBe('seal.malformed');
  });

  it('error messages name the record, never the secret or the key', () => {
    const blob = sealer.seal(new TextEncoder().encode('hunter2'), ctx);
    const e = opensNot(blob, { purpose: ctx.purpose, id: 'L-9' });
    const all = `${e.message} ${e.hint} ${JSON.stringify(e)}`;
    expect(all).toContain('L-9');
    expect(all).not.toContain('hunter2');
    expect(all).not.toContain(Buffer.from(key.reveal()).toString('hex'));
  });

  it('a Secret never serialises its bytes', () => {
    const s = Secret.fromUtf8('123456');
    expect(JSON.stringify({ s })).toBe('{"s":"[redacted]"}');
    expect(`${s}`).toBe('[redacted]');
    expect(String(s)).toBe('[redacted]');
  });
});
