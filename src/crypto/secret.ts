import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * A secret held in memory (a PIN verifier key, a setup code, a private key). It will not
 * serialise itself: JSON.stringify, String(), template strings and util.inspect all give
 * "[redacted]", so a secret that slips into a log call or an error still does not leak.
 * Only `reveal()` gives the bytes, and a reader can grep for it.
 */
export class Secret {
  readonly #bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.#bytes = Uint8Array.from(bytes);
  }

  static fromUtf8(text: string): Secret {
    return new Secret(new TextEncoder().encode(text));
  }

  reveal(): Uint8Array {
    return this.#bytes;
  }

  get length(): number {
    return this.#bytes.length;
  }

  /** Overwrite the bytes; the Secret is unusable afterwards. */
  wipe(): void {
    this.#bytes.fill(0);
  }

  toJSON(): string {
    return REDACTED;
  }

  toString(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }
}
