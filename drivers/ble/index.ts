/** The BLE driver: the Bearer port over real noble. Import lazily from the composition root. */
export {
  type BleBearer,
  type BleBearerOptions,
  type BleCounters,
  type BleTransport,
  createBleBearer,
} from './bearer.js';
export { LOCK_FRAMES_UUID, LOCK_SERVICE_UUID } from './gatt-frames.js';
