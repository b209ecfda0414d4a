import { fragmentFrame, MAX_FRAME_SIZE, Reassembler } from '../../../drivers/zigbee/protocol.js';
import type { BearerError, BearerLink, CloseReason, LinkQuality, Unsubscribe } from '../../../hal/bearer.js';
import { err, OK, type Result } from '../../../hal/result.js';
import type { SimPeripheralOptions } from '../../../hal/sim/radio.js';

/**
 * One simulated lock as a ZigBee end device on the emulated network: its radio-side state
 * (membership, short address, Door Lock attribute) and the lock's end of a link whose frames
 * the emulator carries as link-cluster fragments.
 */
export interface EmuDevice {
  readonly options: SimPeripheralOptions;
  readonly ieee: string;
  nwk: number;
  inRange: boolean;
  removed: boolean;
  /** Fingerprint of the network it joined (see ZnpNv.networkFingerprint), undefined before joining. */
  network: string | undefined;
  /** Door Lock lockState: 1 locked, 2 unlocked. */
  lockState: number;
  /** When it last joined (Date.now()); it stays quiet for a while so the host can interview it first. */
  joinedAt: number;
  tsn: number;
  frameId: number;
  link: LockLink | undefined;
  readonly reassembler: Reassembler;
}

export function newDevice(options: SimPeripheralOptions, ieee: string): EmuDevice {
  return {
    options,
    ieee,
    nwk: 0,
    inRange: true,
    removed: false,
    network: undefined,
    lockState: 1,
    joinedAt: 0,
    tsn: 0,
    frameId: 0,
    link: undefined,
    reassembler: new Reassembler(),
  };
}

/** How a lock link hands fragments to the air; false when the radio cannot carry them now. */
export type FragmentSender = (fragment: Uint8Array) => boolean;

/** The lock's end of a link over the emulated ZigBee radio. */
export class LockLink implements BearerLink {
  readonly address: string;
  readonly maxFrameSize = MAX_FRAME_SIZE;
  readonly #device: EmuDevice;
  readonly #sendFragment: FragmentSender;
  readonly #onLocalClose: () => void;
  readonly #frameListeners = new Set<(frame: Uint8Array) => void>();
  readonly #closeListeners = new Set<(reason: CloseReason) => void>();
  #pending: Uint8Array[] = [];
  #closed: CloseReason | undefined;

  constructor(hubAddress: string, device: EmuDevice, sendFragment: FragmentSender, onLocalClose: () => void) {
    this.address = hubAddress;
    this.#device = device;
    this.#sendFragment = sendFragment;
    this.#onLocalClose = onLocalClose;
  }

  async send(frame: Uint8Array): Promise<Result<void, BearerError>> {
    if (this.#closed) {
      return err({
        code: 'disconnected',
        message: `lock link to ${this.address} is closed (${this.#closed})`,
        address: this.address,
        reason: this.#closed,
      });
    }
    if (frame.length > this.maxFrameSize || frame.length === 0) {
      return err({
        code: 'frame-too-large',
        message: `frame of ${frame.length} bytes is outside 1..${this.maxFrameSize}`,
        size: frame.length,
        maxFrameSize: this.maxFrameSize,
      });
    }
    this.#device.frameId = (this.#device.frameId + 1) & 0xff;
    for (const fragment of fragmentFrame(this.#device.frameId, frame)) {
      if (!this.#sendFragment(fragment)) {
        return err({
          code: 'radio-error',
          message: 'the emulated radio did not take the fragment',
          address: this.address,
        });
      }
    }
    return OK;
  }

  /** A whole frame from the hub. */
  deliver(frame: Uint8Array): void {
    if (this.#closed) return;
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
    this.#onLocalClose();
    this.closed('local');
  }

  /** Ends the link without telling the hub (the emulator decided why). */
  closed(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.#pending = [];
    const listeners = [...this.#closeListeners];
    this.#closeListeners.clear();
    this.#frameListeners.clear();
    for (const listener of listeners) listener(reason);
  }

  isOpen(): boolean {
    return this.#closed === undefined;
  }

  linkQuality(): LinkQuality {
    return { lqi: 200, rssi: this.#device.options.rssi ?? -60 };
  }
}
