/**
 * One end of a BLE link as its user sees it (the driver's, over its GATT client; the HCI emulator's
 * lock end, over its GATT server): the BearerLink promises on top of a carrier, shared with hal/sim.
 */
export { type LinkWire, WiredLink as LinkEnd } from '../../hal/link-listeners.js';
