import type { Characteristic, Peripheral } from '@stoprocent/noble';
import { type BearerError, type CloseReason, disconnectedError } from '../../hal/bearer.js';
import { WiredLink } from '../../hal/link-listeners.js';
import type { Clock } from '../../src/base/clock.js';
import { describeError } from '../../src/base/errors.js';
import { err, OK, type Result } from '../../src/base/result.js';
import type { Logger } from '../../src/log/logger.js';
import type { BleCounters } from './bearer.js';
import { fragmentFrame, MIN_ATT_MTU, Reassembler, type ReassemblyCounters } from './gatt-frames.js';
import { closeReason, validRssi } from './hci-values.js';
import type { BleConfig } from './options.js';

/**
 * One link's frames over the lock's frames characteristic, because a frame is larger than an ATT
 * value: frames go out cut to the MTU, one fragment write at a time and one frame after another, and
 * come back as notifications put together again. A write that never completes, the peer's
 * disconnection or our own close end the link, with the reason the port names.
 */

export interface FrameChannelOptions {
  readonly address: string;
  readonly peripheral: Peripheral;
  /** The frames characteristic, its notifications already on. */
  readonly characteristic: Characteristic;
  readonly cfg: Pick<BleConfig, 'maxFrameSize' | 'reassemblyTimeoutMs' | 'writeTimeoutMs'>;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: Pick<BleCounters, 'framesIn' | 'framesOut'>;
  readonly reassembly: ReassemblyCounters;
  /** The rssi `address` last advertised with, if known. */
  readonly heardRssi: (address: string) => number | undefined;
  /** Called as the link closes, before its close listeners hear of it. */
  readonly onClose: (channel: FrameChannel) => void;
}

export class FrameChannel {
  readonly address: string;
  /** The link the caller holds. */
  readonly link: WiredLink;
  readonly #peripheral: Peripheral;
  readonly #characteristic: Characteristic;
  readonly #cfg: FrameChannelOptions['cfg'];
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #counters: FrameChannelOptions['counters'];
  readonly #onClose: FrameChannelOptions['onClose'];
  readonly #mtu: number;
  /** Set when this end asked for the disconnection, so the close reads 'local'. */
  #closing = false;
  #frameId = 0;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(o: FrameChannelOptions) {
    const { address, peripheral, characteristic, cfg, clock } = o;
    this.address = address;
    this.#peripheral = peripheral;
    this.#characteristic = characteristic;
    this.#cfg = cfg;
    this.#clock = clock;
    this.#log = o.log;
    this.#counters = o.counters;
    this.#onClose = o.onClose;
    this.#mtu = Math.max(MIN_ATT_MTU, peripheral.mtu ?? MIN_ATT_MTU);
    const reassembler = new Reassembler({
      maxFrameSize: cfg.maxFrameSize,
      timeoutMs: cfg.reassemblyTimeoutMs,
      now: () => clock.monotonic(),
      counters: o.reassembly,
    });
    this.link = new WiredLink(address, cfg.maxFrameSize, {
      send: (frame) => {
        const sent = this.#queue.then(() => this.#send(frame, this.#frameId++ & 0xff));
        this.#queue = sent;
        return sent;
      },
      close: async () => {
        if (!this.link.isOpen()) return;
        this.#closing = true;
        await withTimeout(
          peripheral.disconnectAsync().catch(() => undefined),
          cfg.writeTimeoutMs,
          clock,
        );
        this.closed('local');
      },
      quality: () => {
        // noble reports 127 ("unknown") for a peer it connected to before hearing it.
        const rssi = validRssi(peripheral.rssi) ?? o.heardRssi(address);
        return rssi === undefined ? {} : { rssi };
      },
    });
    const onData = (data: Buffer) => {
      const frame = reassembler.push(data);
      if (!frame) return;
      this.#counters.framesIn++;
      this.link.receive(frame);
    };
    characteristic.on('data', onData);
    peripheral.once('disconnect', (reason: number | string) => {
      characteristic.removeListener('data', onData);
      this.closed(this.#closing ? 'local' : closeReason(reason));
    });
  }

  /** The link is over for `reason`; whatever ended the connection has already done so. */
  closed(reason: CloseReason): void {
    this.#onClose(this);
    this.link.closed(reason);
  }

  async #send(frame: Uint8Array, frameId: number): Promise<Result<void, BearerError>> {
    const link = this.link;
    const maxFrameSize = this.#cfg.maxFrameSize;
    if (!link.isOpen()) return err(disconnectedError(this.address, link.closedBy() ?? 'lost'));
    if (frame.length > maxFrameSize) {
      return err({
        code: 'frame-too-large',
        message: `frame of ${frame.length} bytes to ${this.address} exceeds the link's limit of ${maxFrameSize} bytes`,
        size: frame.length,
        maxFrameSize,
      });
    }
    for (const fragment of fragmentFrame(frame, frameId, this.#mtu)) {
      // Write Command (without response): one ATT PDU on the air per fragment, nothing back for it
      // (docs/link-protocol.md "Frame budget"). The controller's ACL flow control (Number of
      // Completed Packets) paces the writes; the sealed link above answers and retries every
      // request, and a controller that stops taking writes is caught by the timeout below and the
      // liveness probe.
      const written = await withTimeout(
        this.#characteristic.writeAsync(fragment, true).then(
          () => 'ok' as const,
          (e: unknown) => describeError(e),
        ),
        this.#cfg.writeTimeoutMs,
        this.#clock,
      );
      if (!link.isOpen()) return err(disconnectedError(this.address, link.closedBy() ?? 'lost'));
      if (written === undefined) {
        // A write that never completes leaves noble's GATT queue stuck: only a new connection helps.
        this.#log.warn({ address: this.address }, 'BLE write timed out; dropping the link');
        void this.#peripheral.disconnectAsync().catch(() => undefined);
        this.closed('lost');
        return err(disconnectedError(this.address, 'lost'));
      }
      if (written !== 'ok') {
        return err({
          code: 'radio-error',
          message: `writing to ${this.address} failed: ${written}`,
          address: this.address,
        });
      }
    }
    this.#counters.framesOut++;
    return OK;
  }
}

function withTimeout<T>(work: Promise<T>, ms: number, clock: Clock): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = clock.setTimeout(() => resolve(undefined), ms);
    void work.then((v) => {
      clock.clearTimeout(timer);
      resolve(v);
    });
  });
}
