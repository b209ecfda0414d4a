import { createCipheriv, randomBytes } from 'node:crypto';

/**
 * The one source of randomness. Production uses the operating system's CSPRNG; tests use a
 * seeded stream so that keys, loss patterns and jitter are reproducible.
 */
export interface Random {
  bytes(n: number): Uint8Array;
  /** Uniform float in [0, 1). */
  float(): number;
  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
}

function floatFrom(bytes: Uint8Array): number {
  // 53 random bits → [0, 1).
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const hi = view.getUint32(0) >>> 5;
  const lo = view.getUint32(4) >>> 6;
  return (hi * 67108864 + lo) / 9007199254740992;
}

abstract class BaseRandom implements Random {
  abstract bytes(n: number): Uint8Array;

  float(): number {
    return floatFrom(this.bytes(8));
  }

  int(maxExclusive: number): number {
    if (!Number.isSafeInteger(maxExclusive) || maxExclusive <= 0) {
      throw new RangeError(`Random.int: maxExclusive must be a positive safe integer, got ${maxExclusive}`);
    }
    return Math.floor(this.float() * maxExclusive);
  }
}

class SystemRandom extends BaseRandom {
  bytes(n: number): Uint8Array {
    return new Uint8Array(randomBytes(n));
  }
}

export const systemRandom: Random = new SystemRandom();

/** A deterministic stream: the ChaCha20 keystream under a key derived from the seed. */
export class SeededRandom extends BaseRandom {
  readonly #key: Uint8Array;
  #counter = 0;
  #buf = new Uint8Array(0);
  #pos = 0;

  constructor(seed: number | string) {
    super();
    const text = new TextEncoder().encode(`iq-hub seeded random:${seed}`);
    this.#key = new Uint8Array(32);
    for (let i = 0; i < text.length; i++) {
      const k = i % 32;
      this.#key[k] = ((this.#key[k] ?? 0) * 31 + (text[i] ?? 0) + i) & 0xff;
    }
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      if (this.#pos >= this.#buf.length) this.#refill();
      const take = Math.min(n - filled, this.#buf.length - this.#pos);
      out.set(this.#buf.subarray(this.#pos, this.#pos + take), filled);
      this.#pos += take;
      filled += take;
    }
    return out;
  }

  #refill(): void {
    // ChaCha20 through node:crypto (the same keystream @noble/ciphers gave: OpenSSL's 16-byte IV
    // is the 32-bit block counter, little-endian, then the 96-bit nonce, here zero), so no process
    // loads a JavaScript cipher for it. The counter does not wrap into the nonce.
    if (this.#counter + 64 > 2 ** 32) throw new RangeError('SeededRandom: the keystream is exhausted (2^32 blocks)');
    const iv = Buffer.alloc(16);
    iv.writeUInt32LE(this.#counter, 0);
    this.#buf = new Uint8Array(createCipheriv('chacha20', this.#key, iv).update(new Uint8Array(4096)));
    this.#counter += 64;
    this.#pos = 0;
  }
}
