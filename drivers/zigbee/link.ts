import type { BearerError, BearerLink, CloseReason, LinkQuality } from '../../hal/bearer.js';
import { LinkListeners } from '../../hal/link-listeners.js';
import { err, OK, type Result } from '../../src/base/result.js';
import { fragmentFrame, MAX_FRAME_SIZE, Reassembler, type ReassemblyResult } from './link-cluster.js';

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
export class HubLink extends LinkListeners implements BearerLink {
  readonly address: string;
  readonly maxFrameSize = MAX_FRAME_SIZE;
  readonly #wire: LinkWire;
  readonly #reassembler = new Reassembler();
  #queue: Promise<unknown> = Promise.resolve();
  #frameId: number;
  #failures = 0;
  #lqi: number | undefined;

  constructor(address: string, wire: LinkWire, firstFrameId: number) {
    super('first-listener');
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
    if (!this.isOpen()) return this.#disconnected();
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
      if (!this.isOpen()) return this.#disconnected();
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
    if (result.kind === 'frame') this.deliver(result.frame);
    return result;
  }

  async close(): Promise<void> {
    if (!this.isOpen()) return;
    this.closed('local');
    await this.#wire.sendClose();
  }

  /** Ends the link for `reason`; the listeners hear it once. */
  override closed(reason: CloseReason): void {
    // The bearer forgets the link before the listeners hear it, so one that reconnects at once is not refused as busy.
    this.markClosed(reason, () => this.#wire.released(reason));
  }

  linkQuality(): LinkQuality {
    return this.#lqi === undefined ? {} : { lqi: this.#lqi };
  }

  #disconnected(): Result<void, BearerError> {
    const reason = this.closedBy() ?? 'local';
    return err({
      code: 'disconnected',
      message: `ZigBee link to ${this.address} is closed (${reason}); connect() again`,
      address: this.address,
      reason,
    });
  }
}
