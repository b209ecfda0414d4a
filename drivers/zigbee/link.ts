import type { BearerError, BearerLink, CloseReason, LinkQuality, Unsubscribe } from '../../hal/bearer.js';
import { err, OK, type Result } from '../../hal/result.js';
import { fragmentFrame, MAX_FRAME_SIZE, Reassembler, type ReassemblyResult } from './protocol.js';

/** How a hub link reaches its lock: one link-cluster command at a time, resolving once the radio took it. */
export interface LinkWire {
  sendFragment(fragment: Uint8Array): Promise<Result<void, BearerError>>;
  /** Tells the lock the link is closed (best effort). */
  sendClose(): Promise<void>;
  /** Called once, when the link closed for any reason. */
  released(reason: CloseReason): void;
  /** Called for each whole frame handed to the radio. */
  sentFrame(): void;
}

/** Consecutive fragments the radio failed to deliver before the lock counts as lost. */
export const LOST_AFTER_FAILURES = 3;

/**
 * The hub's end of a link to a ZigBee lock: frames are cut into link-cluster fragments on the way
 * out and reassembled on the way in. Sends are queued so fragments of two frames never interleave.
 */
export class HubLink implements BearerLink {
  readonly address: string;
  readonly maxFrameSize = MAX_FRAME_SIZE;
  readonly #wire: LinkWire;
  readonly #reassembler = new Reassembler();
  readonly #frameListeners = new Set<(frame: Uint8Array) => void>();
  readonly #closeListeners = new Set<(reason: CloseReason) => void>();
  #pending: Uint8Array[] = [];
  #closed: CloseReason | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #frameId: number;
  #failures = 0;
  #lqi: number | undefined;

  constructor(address: string, wire: LinkWire, firstFrameId: number) {
    this.address = address;
    this.#wire = wire;
    this.#frameId = firstFrameId & 0xff;
  }

  get abandonedFrames(): number {
    return this.#reassembler.abandoned;
  }

  send(frame: Uint8Array): Promise<Result<void, BearerError>> {
    const run = this.#queue.then(() => this.#send(frame));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #send(frame: Uint8Array): Promise<Result<void, BearerError>> {
    if (this.#closed) return this.#disconnected();
    if (frame.length === 0 || frame.length > this.maxFrameSize) {
      return err({
        code: 'frame-too-large',
        message: `ZigBee link to ${this.address}: frame of ${frame.length} bytes is outside 1..${this.maxFrameSize}`,
        size: frame.length,
        maxFrameSize: this.maxFrameSize,
      });
    }
    this.#frameId = (this.#frameId + 1) & 0xff;
    for (const fragment of fragmentFrame(this.#frameId, frame)) {
      if (this.#closed) return this.#disconnected();
      const sent = await this.#wire.sendFragment(fragment);
      if (!sent.ok) {
        if (sent.error.code === 'radio-error' && ++this.#failures >= LOST_AFTER_FAILURES) this.closed('lost');
        return sent;
      }
      this.#failures = 0;
    }
    this.#wire.sentFrame();
    return OK;
  }

  /** One fragment from the lock; whole frames go to the listeners. */
  receiveFragment(fragment: Uint8Array, lqi: number | undefined): ReassemblyResult {
    if (lqi !== undefined) this.#lqi = lqi;
    const result = this.#reassembler.push(fragment);
    if (result.kind === 'frame' && !this.#closed) this.#deliver(result.frame);
    return result;
  }

  #deliver(frame: Uint8Array): void {
    if (this.#frameListeners.size === 0) {
      this.#pending.push(frame);
      return;
    }
    for (const listener of [...this.#frameListeners]) listener(frame);
  }

  onFrame(listener: (frame: Uint8Array) => void): Unsubscribe {
    this.#frameListeners.add(listener);
    if (this.#pending.length > 0) {
      const pending = this.#pending;
      this.#pending = [];
      queueMicrotask(() => {
        for (const frame of pending) listener(frame);
      });
    }
    return () => this.#frameListeners.delete(listener);
  }

  onClose(listener: (reason: CloseReason) => void): Unsubscribe {
    if (this.#closed) {
      const reason = this.#closed;
      queueMicrotask(() => listener(reason));
      return () => {};
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.closed('local');
    await this.#wire.sendClose();
  }

  /** Ends the link for `reason`; the listeners hear it once. */
  closed(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.#pending = [];
    const listeners = [...this.#closeListeners];
    this.#closeListeners.clear();
    this.#frameListeners.clear();
    this.#wire.released(reason);
    for (const listener of listeners) listener(reason);
  }

  isOpen(): boolean {
    return this.#closed === undefined;
  }

  linkQuality(): LinkQuality {
    return this.#lqi === undefined ? {} : { lqi: this.#lqi };
  }

  #disconnected(): Result<void, BearerError> {
    const reason = this.#closed ?? 'local';
    return err({
      code: 'disconnected',
      message: `ZigBee link to ${this.address} is closed (${reason}); connect() again`,
      address: this.address,
      reason,
    });
  }
}
