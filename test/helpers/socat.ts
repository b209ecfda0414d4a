import { findTool, requireTool } from './tools.js';

const SOCAT_DIRS = ['/usr/bin', '/usr/local/bin'];

export const SOCAT_MISSING =
  'socat is not installed (apt-get install socat); the tests that run real radio libraries over an emulated serial port are skipped here and run in CI';

/** The socat binary: $SOCAT_BIN, else PATH, /usr/bin, /usr/local/bin. */
export function findSocat(): string | undefined {
  return findTool('socat', 'SOCAT_BIN', SOCAT_DIRS);
}

/**
 * The policy when socat is missing: in CI (CI=true) fail loudly, since CI must install it;
 * elsewhere return undefined, and the caller skips with `SOCAT_MISSING` as the visible reason.
 */
export function requireSocat(): string | undefined {
  return requireTool('socat', 'SOCAT_BIN', SOCAT_MISSING, { dirs: SOCAT_DIRS, install: 'apt-get install -y socat' });
}
