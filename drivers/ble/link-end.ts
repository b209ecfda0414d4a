import type { BearerError, BearerLink, CloseReason, LinkQuality, Unsubscribe } from '../../hal/bearer.js';
import type { Result } from '../../hal/result.js';

/** What a link end needs from whoever carries its frames (the driver's GATT client, or the emulator's GATT server). */
export interface LinkWire {
  send(frame: Uint8Array): Promise<Result<void, BearerError>>;
  /** Asks for the link to end; the carrier calls closed() once it has. */
  close(): Promise<void>;
  quality(): LinkQuality;
}

/**
 * One end of a BLE link as its user sees it: the BearerLink promises (frames arriving before the
 * first listener are kept, a close listener added late is still called) on top of a carrier.
 */
export class LinkEnd implements BearerLink {
  readonly address: string;
  readonly maxFrameSize: number;
  readonly #wire: LinkWire;
  readonly #frameListeners = new Set<(frame: Uint8Array) => void>();
  readonly #closeListeners = new Set<(reason: CloseReason) => void>();
  #early: Uint8Array[] = [];
  #closedBy: CloseReason | undefined;

  constructor(address: string, maxFrameSize: number, wire: LinkWire) {
    this.address = address;
    this.maxFrameSize = maxFrameSize;
    this.#wire = wire;
  }

  send(frame: Uint8Array): Promise<Result<void, BearerError>> {
    return this.#wire.send(frame);
  }

  onFrame(listener: (frame: Uint8Array) => void): Unsubscribe {
    this.#frameListeners.add(listener);
    if (this.#early.length > 0) queueMicrotask(() => this.#handOverEarly());
    return () => {
      this.#frameListeners.delete(listener);
    };
  }

  onClose(listener: (reason: CloseReason) => void): Unsubscribe {
    const reason = this.#closedBy;
    if (reason !== undefined) {
      let wanted = true;
      queueMicrotask(() => wanted && listener(reason));
      return () => {
        wanted = false;
      };
    }
    this.#closeListeners.add(listener);
    return () => {
      this.#closeListeners.delete(listener);
    };
  }

  close(): Promise<void> {
    if (this.#closedBy !== undefined) return Promise.resolve();
    return this.#wire.close();
  }

  isOpen(): boolean {
    return this.#closedBy === undefined;
  }

  /** Why it closed, once it has. */
  closedBy(): CloseReason | undefined {
    return this.#closedBy;
  }

  linkQuality(): LinkQuality {
    return this.#wire.quality();
  }

  /** A whole frame from the peer. */
  receive(frame: Uint8Array): void {
    if (this.#closedBy !== undefined) return;
    if (this.#frameListeners.size === 0 || this.#early.length > 0) {
      this.#early.push(frame);
      return;
    }
    this.#dispatch(frame);
  }

  /** The link is over; idempotent (the first reason wins). */
  closed(reason: CloseReason): void {
    if (this.#closedBy !== undefined) return;
    this.#closedBy = reason;
    this.#early = [];
    const listeners = [...this.#closeListeners];
    this.#closeListeners.clear();
    this.#frameListeners.clear();
    for (const listener of listeners) listener(reason);
  }

  #handOverEarly(): void {
    while (this.#frameListeners.size > 0) {
      const frame = this.#early.shift();
      if (!frame) return;
      this.#dispatch(frame);
    }
  }

  #dispatch(frame: Uint8Array): void {
    for (const listener of [...this.#frameListeners]) listener(frame);
  }
}
