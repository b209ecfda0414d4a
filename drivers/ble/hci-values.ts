import type { CloseReason } from '../../hal/bearer.js';

/**
 * HCI and noble spell some things differently from the port, or leave them unknown: read them here,
 * in one place, so the scanner, the admission of connects and the links agree on what they mean.
 */

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A BLE address as the port spells it (lowercase, colons). */
export function isBleAddress(address: string): boolean {
  return MAC.test(address);
}

/** HCI reports 127 when it does not know the signal strength. */
export function validRssi(rssi: unknown): number | undefined {
  return typeof rssi === 'number' && Number.isFinite(rssi) && rssi >= -127 && rssi < 127 ? rssi : undefined;
}

/** HCI disconnection reasons as the port names them. */
export function closeReason(reason: number | string): CloseReason {
  if (reason === 0x13 || reason === 0x15 || reason === 0x14) return 'remote';
  if (reason === 0x16) return 'local';
  if (reason === 0x03 || reason === 'cleanup') return 'adapter-unavailable';
  return 'lost';
}
