import { HubError } from '../base/errors.js';
import { err, type Result } from '../base/result.js';
import { type Handshake, MAX_MESSAGE_LEN, MAX_NONCE, TAGLEN, type TransportCiphers } from './noise.js';

/**
 * The sealed channel that follows a Noise handshake, built for a lossy radio: frames may be lost,
 * duplicated or reordered, so each one carries its own counter instead of relying on Noise's
 * implicit nonce. Frame = version (1 byte) ‖ counter (8 bytes, big-endian) ‖ ChaCha20-Poly1305
 * ciphertext, with the counter as the Noise nonce and the 9-byte header as associated data.
 */

export const LINK_VERSION = 1;
export const FRAME_HEADER_LEN = 9;
export const MAX_FRAME_LEN = MAX_MESSAGE_LEN;
export const MAX_PAYLOAD_LEN = MAX_FRAME_LEN - FRAME_HEADER_LEN - TAGLEN;
/** The last counter a session may use: 2^64-1 is Noise's reserved nonce, so 2^64-2. */
export const MAX_COUNTER = MAX_NONCE - 1n;
export const DEFAULT_WINDOW = 64;
const MAX_WINDOW = 1024;

export type RejectReason = 'truncated' | 'oversize' | 'version' | 'too-old' | 'replay' | 'tampered';
export const REJECT_REASONS: readonly RejectReason[] = [
  'truncated',
  'oversize',
  'version',
  'too-old',
  'replay',
  'tampered',
];

export interface OpenedFrame {
  counter: bigint;
  payload: Uint8Array;
}
export type OpenResult = Result<OpenedFrame, RejectReason>;

export interface ChannelStats {
  sent: number;
  received: number;
  rejected: Record<RejectReason, number>;
}

export interface SealedChannelOptions {
  /** How many counters behind the highest one seen a frame may arrive and still be accepted once. */
  window?: number;
  /** Last usable counter (both sides must agree); lower than MAX_COUNTER only in tests. */
  maxCounter?: bigint;
}

export class SealedChannel {
  readonly #send: TransportCiphers['send'];
  readonly #receive: TransportCiphers['receive'];
  readonly #window: bigint;
  readonly #windowMask: bigint;
  readonly #maxCounter: bigint;
  #next = 0n;
  /** Highest authenticated counter received, -1 before the first. */
  #highest = -1n;
  /** Bit i set ⇔ counter (#highest - i) was accepted. */
  #seen = 0n;
  #sent = 0;
  #received = 0;
  readonly #rejected: Record<RejectReason, number> = {
    truncated: 0,
    oversize: 0,
    version: 0,
    'too-old': 0,
    replay: 0,
    tampered: 0,
  };

  constructor(ciphers: TransportCiphers, options: SealedChannelOptions = {}) {
    const window = options.window ?? DEFAULT_WINDOW;
    const maxCounter = options.maxCounter ?? MAX_COUNTER;
    if (!Number.isInteger(window) || window < 1 || window > MAX_WINDOW) {
      throw new HubError('link.config', `The replay window must be an integer from 1 to ${MAX_WINDOW}, got ${window}`);
    }
    if (maxCounter < 0n || maxCounter > MAX_COUNTER) {
      throw new HubError('link.config', 'maxCounter must lie between 0 and 2^64-2');
    }
    this.#send = ciphers.send;
    this.#receive = ciphers.receive;
    this.#window = BigInt(window);
    this.#windowMask = (1n << this.#window) - 1n;
    this.#maxCounter = maxCounter;
  }

  /** True once every counter is spent: the session must be replaced by a new handshake. */
  get exhausted(): boolean {
    return this.#next > this.#maxCounter;
  }

  /** Seals one payload into a frame. Throws HubError `link.exhausted` rather than ever reusing a counter. */
  seal(payload: Uint8Array): Uint8Array {
    if (this.exhausted) {
      throw new HubError('link.exhausted', 'This link session has used all its frame counters', {
        hint: 'Run a new handshake with the lock; counters never wrap.',
      });
    }
    if (payload.length > MAX_PAYLOAD_LEN) {
      throw new HubError(
        'link.oversize',
        `A link payload is limited to ${MAX_PAYLOAD_LEN} bytes, got ${payload.length}`,
      );
    }
    const counter = this.#next;
    const frame = new Uint8Array(FRAME_HEADER_LEN + payload.length + TAGLEN);
    frame[0] = LINK_VERSION;
    new DataView(frame.buffer).setBigUint64(1, counter, false);
    frame.set(this.#send.encryptAt(counter, frame.subarray(0, FRAME_HEADER_LEN), payload), FRAME_HEADER_LEN);
    this.#next = counter + 1n;
    this.#sent += 1;
    return frame;
  }

  /** Authenticates and opens one frame from the radio. Never throws; every rejection is counted. */
  open(frame: Uint8Array): OpenResult {
    if (frame.length < 1) return this.#reject('truncated');
    if (frame[0] !== LINK_VERSION) return this.#reject('version');
    if (frame.length < FRAME_HEADER_LEN + TAGLEN) return this.#reject('truncated');
    if (frame.length > MAX_FRAME_LEN) return this.#reject('oversize');
    const counter = new DataView(frame.buffer, frame.byteOffset, FRAME_HEADER_LEN).getBigUint64(1, false);
    // No honest sender goes past the bound, so such a frame cannot authenticate.
    if (counter > this.#maxCounter) return this.#reject('tampered');
    if (counter <= this.#highest) {
      const age = this.#highest - counter;
      if (age >= this.#window) return this.#reject('too-old');
      if ((this.#seen >> age) & 1n) return this.#reject('replay');
    }
    // The window moves only after authentication, so forged counters cannot push it forward.
    const payload = this.#receive.decryptAt(
      counter,
      frame.subarray(0, FRAME_HEADER_LEN),
      frame.subarray(FRAME_HEADER_LEN),
    );
    if (payload === undefined) return this.#reject('tampered');
    if (counter > this.#highest) {
      const shift = counter - this.#highest;
      this.#seen = shift >= this.#window ? 1n : ((this.#seen << shift) | 1n) & this.#windowMask;
      this.#highest = counter;
    } else {
      this.#seen |= 1n << (this.#highest - counter);
    }
    this.#received += 1;
    return { ok: true, value: { counter, payload } };
  }

  stats(): ChannelStats {
    return { sent: this.#sent, received: this.#received, rejected: { ...this.#rejected } };
  }

  #reject(reason: RejectReason): OpenResult {
    this.#rejected[reason] += 1;
    return err(reason);
  }
}

/** The sealed channel for a completed handshake (consumes its one `split()`). */
export function openSealedChannel(handshake: Handshake, options?: SealedChannelOptions): SealedChannel {
  return new SealedChannel(handshake.split(), options);
}
