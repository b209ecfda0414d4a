import { crc16X25 } from '../../drivers/zigbee/install-code.js';

/**
 * Bounded waits for the tests and benches that drive the real radio libraries against the
 * emulators (sim/emu/): things happen there on real time, so a test waits for them, up to a
 * deadline that only a broken stack reaches. These are not timing assertions. No vitest import:
 * bench/ uses them too.
 */

/** Polls until `check` holds; a bounded wait for something that happens on real time, not a timing assertion. */
export async function eventually<T>(check: () => T | undefined | false, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Retries `action` until it resolves (e.g. a lock reached again after its radio came back); the last error if never. */
export async function retrying<T>(action: () => Promise<T>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await action();
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what} kept failing for ${timeoutMs} ms: ${String(e)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** A ZigBee install code's bytes followed by its CRC-16/X-25, little-endian, as printed on a lock's label. */
export function withCrc(hex: string): Buffer {
  const code = Buffer.from(hex, 'hex');
  const crc = Buffer.alloc(2);
  crc.writeUInt16LE(crc16X25(code));
  return Buffer.concat([code, crc]);
}
