import type { SimPeripheralOptions } from '../../../drivers/sim-radio/radio.js';
import { fragmentFrame, MAX_FRAME_SIZE, Reassembler } from '../../../drivers/zigbee/link-cluster.js';
import type { BearerError, BearerLink, LinkQuality } from '../../../hal/bearer.js';
import { LinkListeners } from '../../../hal/link-listeners.js';
import { err, OK, type Result } from '../../../src/base/result.js';

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
export class LockLink extends LinkListeners implements BearerLink {
  readonly address: string;
  readonly maxFrameSize = MAX_FRAME_SIZE;
  readonly #device: EmuDevice;
  readonly #sendFragment: FragmentSender;
  readonly #onLocalClose: () => void;

  constructor(hubAddress: string, device: EmuDevice, sendFragment: FragmentSender, onLocalClose: () => void) {
    super('first-listener');
    this.address = hubAddress;
    this.#device = device;
    this.#sendFragment = sendFragment;
    this.#onLocalClose = onLocalClose;
  }

  async send(frame: Uint8Array): Promise<Result<void, BearerError>> {
    const closedBy = this.closedBy();
    if (closedBy !== undefined) {
      return err({
        code: 'disconnected',
        message: `lock link to ${this.address} is closed (${closedBy})`,
        address: this.address,
        reason: closedBy,
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

  /** A whole frame from the hub (public here: the emulator hands it in). */
  override deliver(frame: Uint8Array): void {
    super.deliver(frame);
  }

  async close(): Promise<void> {
    if (!this.isOpen()) return;
    this.#onLocalClose();
    this.closed('local');
  }

  linkQuality(): LinkQuality {
    return { lqi: 200, rssi: this.#device.options.rssi ?? -60 };
  }
}
