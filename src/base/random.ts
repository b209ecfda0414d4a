import { randomBytes } from 'node:crypto';
import { chacha20 } from '@noble/ciphers/chacha.js';

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
    const nonce = new Uint8Array(12);
    this.#buf = chacha20(this.#key, nonce, new Uint8Array(4096), undefined, this.#counter);
    this.#counter += 64;
    this.#pos = 0;
  }
}
