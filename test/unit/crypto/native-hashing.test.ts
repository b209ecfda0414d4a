import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../src/base/random.js';
import { sha256, sha256HexOfText } from '../../../src/base/sha256.js';
import { offlineListDigest } from '../../../src/contract/link-offline.js';
import { partsDigest } from '../../../src/contract/sync-parts.js';

/**
 * The hashing and the seeded keystream moved from @noble (JavaScript) to node:crypto (OpenSSL) so
 * that the daemon can run V8 without its optimising compiler (docs/operations.md, "Memory"). The
 * outputs must not move: a lock compares the offline-list digest with its own, the cloud the
 * digest of a sync in parts, and tests and the simulation replay seeded streams.
 */

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('SHA-256 on node:crypto', () => {
  it('gives the FIPS 180-2 answers', () => {
    expect(hex(sha256(new TextEncoder().encode('abc')))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(hex(sha256(new Uint8Array(0)))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const million = new TextEncoder().encode('a'.repeat(1_000_000));
    expect(hex(sha256(million))).toBe('cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
  });

  it('returns a Uint8Array of its own, not a Buffer whose slice() would be a view', () => {
    const d = sha256(Uint8Array.of(1, 2, 3));
    expect(Buffer.isBuffer(d)).toBe(false);
    const copy = d.slice();
    copy.fill(0);
    expect(d.some((b) => b !== 0)).toBe(true);
  });

  it('hashes a subarray by its own bytes only', () => {
    const whole = Uint8Array.of(9, 9, 1, 2, 3, 9);
    expect(hex(sha256(whole.subarray(2, 5)))).toBe(hex(sha256(Uint8Array.of(1, 2, 3))));
  });

  it("a sync's parts digest is the hex SHA-256 of the text's UTF-8, as before (lone surrogates as U+FFFD)", () => {
    for (const text of ['', '{"users":[]}', 'Ñandú 👍 €', 'half \ud800 pair', '\udfff']) {
      const reference = hex(nobleSha256(new TextEncoder().encode(text)));
      expect(sha256HexOfText(text)).toBe(reference);
      expect(partsDigest(text)).toBe(reference);
    }
  });

  it('the offline-list digest a lock compares with is the known answer (computed by hand from the documented item bytes)', () => {
    const a = {
      kind: 'pin' as const,
      credentialId: 'C-1',
      digest: new Uint8Array(32).fill(1),
      windows: [{ from: 0, until: 600_000 }],
    };
    const b = {
      kind: 'tag' as const,
      credentialId: 'C-0',
      digest: new Uint8Array(32).fill(2),
      windows: [{ from: 100_000, until: 200_000 }],
    };
    expect(hex(offlineListDigest([a, b]))).toBe('95a9855f032e656a3b552159c6968c2f661dc75b0787f28c5d483b7d5f170314');
    expect(hex(offlineListDigest([]))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('SeededRandom on node:crypto ChaCha20', () => {
  it('gives the keystream it gave on @noble/ciphers (known answers taken before the change)', () => {
    expect(hex(new SeededRandom(1).bytes(32))).toBe('2a79d5fede5d583d7faa51c8552c939d25707c78025df301bef2c4399adec483');
    // Across a refill (4,096 bytes a block of 64 ChaCha20 blocks): the block counter goes on.
    const r = new SeededRandom('lock-7');
    r.bytes(4090);
    expect(hex(r.bytes(12))).toBe('d8c5fb532487f7a89dc7d40e');
  });

  it('the same seed gives the same stream, another seed another', () => {
    expect(hex(new SeededRandom('a').bytes(100))).toBe(hex(new SeededRandom('a').bytes(100)));
    expect(hex(new SeededRandom('a').bytes(100))).not.toBe(hex(new SeededRandom('b').bytes(100)));
  });
});
