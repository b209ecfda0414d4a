import { BEARER_MIN_FRAME_SIZE } from '../../hal/bearer.js';
import { HubError } from '../../src/base/errors.js';
import type { BleBearerOptions, BleTransport } from './bearer.js';
import {
  ATT_HEADER_LEN,
  DEFAULT_MAX_FRAME_SIZE,
  FRAGMENT_HEADER_LEN,
  MAX_FRAGMENTS,
  MIN_ATT_MTU,
} from './gatt-frames.js';

/**
 * The options are checked once, when the bearer is created: a bad value is refused before noble is
 * ever loaded, with the option's name, and the parts read plain numbers with the defaults applied.
 */

/** The tunables of BleBearerOptions, defaults applied. */
export type BleConfig = Required<Omit<BleBearerOptions, 'transport' | 'clock' | 'log'>>;

function positive(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isFinite(x) || x <= 0) {
    throw new HubError('ble.config', `BLE bearer: ${name} must be a positive number of milliseconds, got ${v}`);
  }
  return x;
}

/** Validates the options; every refusal names the option and what it accepts. */
export function checkOptions(o: BleBearerOptions): BleConfig {
  const t = o.transport as BleTransport | undefined;
  if (t?.kind === 'uart') {
    if (typeof t.path !== 'string' || t.path.length === 0) {
      throw new HubError('ble.config', 'BLE bearer: transport.path must name the serial port (e.g. /dev/ttyACM0)');
    }
    if (t.baudRate !== undefined && (!Number.isInteger(t.baudRate) || t.baudRate <= 0)) {
      throw new HubError('ble.config', `BLE bearer: transport.baudRate must be a positive integer, got ${t.baudRate}`);
    }
  } else if (t?.kind === 'hci') {
    if (!Number.isInteger(t.deviceId) || t.deviceId < 0) {
      throw new HubError(
        'ble.config',
        `BLE bearer: transport.deviceId must be an HCI index >= 0 (0 for hci0), got ${t.deviceId}`,
      );
    }
  } else {
    throw new HubError('ble.config', "BLE bearer: transport must be {kind: 'uart', path} or {kind: 'hci', deviceId}");
  }
  if (!Number.isInteger(o.maxConnections) || o.maxConnections < 1) {
    throw new HubError('ble.config', `BLE bearer: maxConnections must be an integer >= 1, got ${o.maxConnections}`);
  }
  const maxFrameSize = o.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  // The smallest MTU must still carry the largest frame in MAX_FRAGMENTS fragments.
  const ceiling = MAX_FRAGMENTS * (MIN_ATT_MTU - ATT_HEADER_LEN - FRAGMENT_HEADER_LEN);
  if (!Number.isInteger(maxFrameSize) || maxFrameSize < BEARER_MIN_FRAME_SIZE || maxFrameSize > ceiling) {
    throw new HubError(
      'ble.config',
      `BLE bearer: maxFrameSize must be an integer ${BEARER_MIN_FRAME_SIZE}…${ceiling}, got ${o.maxFrameSize}`,
    );
  }
  const recoverBaseMs = positive('recoverBaseMs', o.recoverBaseMs, 500);
  const recoverMaxMs = positive('recoverMaxMs', o.recoverMaxMs, 10_000);
  if (recoverMaxMs < recoverBaseMs) {
    throw new HubError(
      'ble.config',
      `BLE bearer: recoverMaxMs (${recoverMaxMs}) must be >= recoverBaseMs (${recoverBaseMs})`,
    );
  }
  const livenessTimeoutMs = positive('livenessTimeoutMs', o.livenessTimeoutMs, 3_000);
  // A controller answers an HCI command in milliseconds; under 100 ms a busy event loop alone would trip it.
  if (livenessTimeoutMs < 100) {
    throw new HubError(
      'ble.config',
      `BLE bearer: livenessTimeoutMs must be >= 100 ms (a loaded host would read as a dead adapter), got ${livenessTimeoutMs}`,
    );
  }
  return {
    maxConnections: o.maxConnections,
    maxFrameSize,
    readyTimeoutMs: positive('readyTimeoutMs', o.readyTimeoutMs, 5_000),
    recoverBaseMs,
    recoverMaxMs,
    reassemblyTimeoutMs: positive('reassemblyTimeoutMs', o.reassemblyTimeoutMs, 5_000),
    writeTimeoutMs: positive('writeTimeoutMs', o.writeTimeoutMs, 5_000),
    scanRestartMs: positive('scanRestartMs', o.scanRestartMs, 200),
    livenessIntervalMs: positive('livenessIntervalMs', o.livenessIntervalMs, 1_000),
    livenessTimeoutMs,
  };
}
