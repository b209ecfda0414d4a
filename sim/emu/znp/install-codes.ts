import { ZSpec } from 'zigbee-herdsman';
import { HubError } from '../../../src/base/errors.js';
import { STATUS } from './context.js';
import type { ZnpCounters } from './counters.js';

/**
 * Install codes on both sides of a join: the link key the trust center derived from the code the
 * host registered (bdbAddInstallCode), and the one a hosted lock derived from the code on its
 * label. A join succeeds only when the two agree, which is what tests of install-code pairing
 * need the emulator to decide the way a real network would.
 */

/** APP_CNF bdbAddInstallCode formats: an install code with its CRC, or an already-derived link key. */
const INSTALL_CODE_FORMAT = { CODE_WITH_CRC: 1, KEY: 2 } as const;
/** Z-Stack 3.x takes 16-byte install codes only (18 bytes with the CRC). */
const ZSTACK_INSTALL_CODE_SIZE = 18;
/** The sizes a device's install code may have, CRC included (ZigBee 3.0: 6, 8, 12 or 16 bytes + 2). */
const DEVICE_INSTALL_CODE_SIZES = [8, 10, 14, 18];

export class InstallCodes {
  readonly #counters: ZnpCounters;
  /**
   * The trust center's per-device link keys (IEEE → key derived from an install code), from
   * bdbAddInstallCode. A real Z-Stack keeps them in NV: here they survive unplug/plug, and a
   * factory reset clears them. One key per device, the last one registered (as Z-Stack's table).
   */
  readonly #tcLinkKeys = new Map<string, Buffer>();
  /** Hosted locks that have an install code: IEEE → the link key derived from it (on the lock's side). */
  readonly #deviceKeys = new Map<string, Buffer>();

  constructor(counters: ZnpCounters) {
    this.#counters = counters;
  }

  /** The code on a lock's label (bytes with their CRC); undefined: the lock uses the default key. */
  setDeviceCode(ieee: string, code: Uint8Array | undefined): void {
    if (code === undefined) {
      this.#deviceKeys.delete(ieee);
      return;
    }
    if (!DEVICE_INSTALL_CODE_SIZES.includes(code.length) || !crcMatches(code)) {
      throw new HubError(
        'znp-emu.config',
        `ZNP emulator: an install code is 8, 10, 14 or 18 bytes ending with its CRC-16/X-25, got ${code.length} bytes${
          DEVICE_INSTALL_CODE_SIZES.includes(code.length) ? ' with a wrong CRC' : ''
        }`,
      );
    }
    this.#deviceKeys.set(ieee, ZSpec.Utils.aes128MmoHash(Buffer.from(code)));
  }

  /**
   * APP_CNF bdbAddInstallCode: {format u8, ieee (8 bytes LE), code or key (the rest)}. herdsman
   * sends the buffer without a length, so the rest of the frame is the code. Answers a status.
   */
  add(data: Buffer): number {
    if (data.length < 9) throw new RangeError('short bdbAddInstallCode request');
    const format = data[0];
    const ieee = `0x${Buffer.from(data.subarray(1, 9)).reverse().toString('hex')}`;
    const code = Buffer.from(data.subarray(9));
    let key: Buffer | undefined;
    if (format === INSTALL_CODE_FORMAT.CODE_WITH_CRC && code.length === ZSTACK_INSTALL_CODE_SIZE && crcMatches(code)) {
      key = ZSpec.Utils.aes128MmoHash(code);
    } else if (format === INSTALL_CODE_FORMAT.KEY && code.length === 16) {
      key = code;
    }
    if (!key) {
      this.#counters.installCodesRefused++;
      return STATUS.INVALID_PARAMETER;
    }
    this.#tcLinkKeys.set(ieee, key);
    this.#counters.installCodesAdded++;
    return STATUS.SUCCESS;
  }

  trustCenterHas(ieee: string): boolean {
    return this.#tcLinkKeys.has(ieee);
  }

  /**
   * The trust center sends the network key encrypted with the link key it holds for the device
   * (its install-code key, else the well-known default); the device decrypts it with its own
   * (its install-code key, else the default). Only when both are the same does the join succeed.
   */
  agree(ieee: string): boolean {
    const tc = this.#tcLinkKeys.get(ieee);
    const own = this.#deviceKeys.get(ieee);
    if (!tc || !own) return !tc && !own;
    return tc.equals(own);
  }

  /** A factory reset: the trust center forgets; the locks keep their labels. */
  forgetTrustCenterKeys(): void {
    this.#tcLinkKeys.clear();
  }
}

/** Whether an install code's last two bytes are the CRC-16/X-25 of the others (little-endian). */
function crcMatches(code: Uint8Array): boolean {
  const crc = ZSpec.Utils.crc16X25(Buffer.from(code.subarray(0, -2)));
  return code[code.length - 2] === (crc & 0xff) && code[code.length - 1] === crc >> 8;
}
