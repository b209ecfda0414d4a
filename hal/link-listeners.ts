import type { Unsubscribe } from '../src/base/listeners.js';
import type { Result } from '../src/base/result.js';
import type { BearerError, BearerLink, CloseReason, LinkQuality } from './bearer.js';

/**
 * What becomes of frames that arrive while nobody listens, the one place the links differ.
 *
 * - `ordered` (drivers/sim-radio, drivers/ble): the kept frames wait in order, and frames arriving before they
 *   are handed over queue behind them, so listeners see the peer's order. They go, on a microtask,
 *   to whoever listens then; an unsubscribe or a close stops the hand-over. A close listener added
 *   after the close can still be unsubscribed before its microtask runs.
 * - `first-listener` (the ZigBee links): the kept frames go to the next listener to subscribe, and
 *   only to it, on a microtask; a frame arriving meanwhile goes straight to the listeners. What a
 *   subscription is owed when it subscribes (those frames, or the reason of a past close) reaches
 *   it even if it unsubscribes or the link closes before the microtask.
 */
export type EarlyFrames = 'ordered' | 'first-listener';

/**
 * The listener half of every BearerLink (hal/bearer.ts), for the links to extend: frame and close
 * listeners, the frames kept for a first listener, the late close listener that is still called,
 * and the clean-up at close. One implementation, so each link keeps those promises the same way;
 * the subclass adds the radio half (send, close, linkQuality).
 */
export abstract class LinkListeners {
  readonly #early: EarlyFrames;
  readonly #frameListeners = new Set<(frame: Uint8Array) => void>();
  readonly #closeListeners = new Set<(reason: CloseReason) => void>();
  /** Frames that arrived while nobody listened (and, when ordered, any arriving before those are handed over). */
  #kept: Uint8Array[] = [];
  #closedBy: CloseReason | undefined;

  protected constructor(early: EarlyFrames) {
    this.#early = early;
  }

  onFrame(listener: (frame: Uint8Array) => void): Unsubscribe {
    this.#frameListeners.add(listener);
    if (this.#kept.length > 0) {
      if (this.#early === 'ordered') {
        queueMicrotask(() => this.#handOverKept());
      } else {
        const kept = this.#kept;
        this.#kept = [];
        queueMicrotask(() => {
          for (const frame of kept) listener(frame);
        });
      }
    }
    return () => {
      this.#frameListeners.delete(listener);
    };
  }

  onClose(listener: (reason: CloseReason) => void): Unsubscribe {
    const reason = this.#closedBy;
    if (reason !== undefined) {
      if (this.#early === 'first-listener') {
        queueMicrotask(() => listener(reason));
        return () => {};
      }
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

  isOpen(): boolean {
    return this.#closedBy === undefined;
  }

  /** Why the link closed, once it has. */
  closedBy(): CloseReason | undefined {
    return this.#closedBy;
  }

  /** The link is over, for `reason`, as its carrier decided; only the first reason counts. */
  closed(reason: CloseReason): void {
    this.markClosed(reason);
  }

  /** A whole frame from the peer: to the listeners, or kept for the first one. Dropped once closed. */
  protected deliver(frame: Uint8Array): void {
    if (this.#closedBy !== undefined) return;
    if (this.#frameListeners.size === 0 || (this.#early === 'ordered' && this.#kept.length > 0)) {
      this.#kept.push(frame);
      return;
    }
    this.#dispatch(frame);
  }

  /**
   * Kept frames and listeners are dropped, and the close listeners hear `reason`. Only the first
   * call counts (true); later ones change nothing (false). `beforeNotify` runs once the link counts
   * as closed but before any listener hears it, so a driver can forget the link first and a
   * listener that reconnects at once is not refused as busy.
   */
  protected markClosed(reason: CloseReason, beforeNotify?: () => void): boolean {
    if (this.#closedBy !== undefined) return false;
    this.#closedBy = reason;
    this.#kept = [];
    const listeners = [...this.#closeListeners];
    this.#closeListeners.clear();
    this.#frameListeners.clear();
    beforeNotify?.();
    for (const listener of listeners) listener(reason);
    return true;
  }

  #handOverKept(): void {
    while (this.#frameListeners.size > 0) {
      const frame = this.#kept.shift();
      if (!frame) return;
      this.#dispatch(frame);
    }
  }

  #dispatch(frame: Uint8Array): void {
    for (const listener of [...this.#frameListeners]) listener(frame);
  }
}

/** What a WiredLink needs from whoever carries its frames. */
export interface LinkWire {
  send(frame: Uint8Array): Promise<Result<void, BearerError>>;
  /** Asks for the link to end; the carrier calls closed() once it has. */
  close(): Promise<void>;
  quality(): LinkQuality;
}

/**
 * One end of a link whose radio half belongs to a carrier (the simulated connection in drivers/sim-radio, the
 * BLE driver's GATT client, the HCI emulator's GATT server): the carrier hands in whole frames with
 * receive() and calls closed() once the link is over. Early frames are kept in order.
 */
export class WiredLink extends LinkListeners implements BearerLink {
  readonly address: string;
  readonly maxFrameSize: number;
  readonly #wire: LinkWire;

  constructor(address: string, maxFrameSize: number, wire: LinkWire) {
    super('ordered');
    this.address = address;
    this.maxFrameSize = maxFrameSize;
    this.#wire = wire;
  }

  send(frame: Uint8Array): Promise<Result<void, BearerError>> {
    return this.#wire.send(frame);
  }

  close(): Promise<void> {
    if (!this.isOpen()) return Promise.resolve();
    return this.#wire.close();
  }

  linkQuality(): LinkQuality {
    return this.#wire.quality();
  }

  /** A whole frame from the peer. */
  receive(frame: Uint8Array): void {
    this.deliver(frame);
  }
}
