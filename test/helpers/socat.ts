import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export const SOCAT_MISSING =
  'socat is not installed (apt-get install socat); the tests that run real radio libraries over an emulated serial port are skipped here and run in CI';

/** The socat binary: $SOCAT_BIN, else PATH, /usr/bin, /usr/local/bin. */
export function findSocat(): string | undefined {
  const candidates = process.env.SOCAT_BIN
    ? [process.env.SOCAT_BIN]
    : [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin']
        .filter(Boolean)
        .map((d) => join(d, 'socat'));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {}
  }
  return undefined;
}

/**
 * The policy when socat is missing: in CI (CI=true) fail loudly, since CI must install it;
 * elsewhere return undefined, and the caller skips with `SOCAT_MISSING` as the visible reason.
 */
export function requireSocat(): string | undefined {
  const bin = findSocat();
  if (bin) return bin;
  if (process.env.CI === 'true') {
    throw new Error(`${SOCAT_MISSING}: CI must install it (apt-get install -y socat) — refusing to skip in CI`);
  }
  return undefined;
}
