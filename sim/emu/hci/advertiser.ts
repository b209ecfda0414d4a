import { advertisingPacket, scanResponsePacket } from '../../../drivers/ble/gatt-frames.js';
import type { Peripheral } from './links.js';
import { advertisingReport } from './packets.js';

/**
 * What the host hears while it scans: every advertising lock in range, reported every interval as
 * an ADV_IND and its scan response, as a controller reports them from the air. Reporting only
 * while the host scans (and a host is attached) keeps an idle emulator silent on the wire.
 */

export interface AdvertiserOptions {
  readonly intervalMs: number;
  readonly peripherals: ReadonlyMap<string, Peripheral>;
  readonly counters: {
    /** Peripherals whose advertisement could not be encoded (a device id too long for a scan response). */
    unadvertisable: number;
  };
  send(bytes: Buffer): void;
  stalled(): boolean;
}

const ADV_IND = 0x00;
const SCAN_RSP = 0x04;

export class Advertiser {
  readonly #o: AdvertiserOptions;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: AdvertiserOptions) {
    this.#o = options;
  }

  /** Reports run while `on`; turning it on twice keeps one interval. */
  set(on: boolean): void {
    if (on && !this.#timer) {
      this.#timer = setInterval(() => this.#advertise(), this.#o.intervalMs);
    } else if (!on && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #advertise(): void {
    if (this.#o.stalled()) return;
    for (const p of this.#o.peripherals.values()) {
      if (!p.inRange) continue;
      const data = p.options.advertisement();
      if (!data) continue;
      let scanResponse: Buffer;
      try {
        scanResponse = scanResponsePacket(data);
      } catch {
        this.#o.counters.unadvertisable++;
        continue;
      }
      const rssi = p.options.rssi ?? -60;
      // The report and its scan response in one write (two HCI events, as the air gives them).
      this.#o.send(
        Buffer.concat([
          advertisingReport(ADV_IND, p.address, rssi, advertisingPacket()),
          advertisingReport(SCAN_RSP, p.address, rssi, scanResponse),
        ]),
      );
    }
  }
}
