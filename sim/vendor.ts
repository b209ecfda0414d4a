import { sha256 } from '@noble/hashes/sha2.js';
import { buildImage, parseVersion, vendorPublicKey } from '../src/firmware/image.js';
import { SIM_LOCK_MODEL } from './lock/lock.js';

/**
 * The simulated lock vendor: its Ed25519 signing key (derived from a name, so the simulated locks'
 * boot ROM and a simulated hub's config agree on it) and the images it builds. A real vendor's key
 * never leaves its signing service; this one exists only for the simulation, tests and benches.
 */

export interface SimVendor {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export function simVendor(name = 'iq-sim-vendor'): SimVendor {
  const secretKey = sha256(new TextEncoder().encode(`${name}/firmware signing key`));
  return { secretKey, publicKey: vendorPublicKey(secretKey) };
}

/** A payload of `size` bytes that differs per version (the simulated firmware's code). */
export function simFirmwarePayload(version: string, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let block = sha256(new TextEncoder().encode(`iq-sim-firmware ${version}`));
  for (let at = 0; at < size; at += block.length) {
    out.set(block.subarray(0, Math.min(block.length, size - at)), at);
    block = sha256(block);
  }
  return out;
}

/** A signed image for the simulated locks. */
export function simFirmwareImage(
  opts: { version: string; size?: number; model?: string; downgradeAllowed?: boolean },
  vendor: SimVendor = simVendor(),
): Uint8Array {
  const version = parseVersion(opts.version);
  if (!version) throw new Error(`simulated firmware: ${opts.version} is not major.minor.patch`);
  return buildImage(
    { model: opts.model ?? SIM_LOCK_MODEL, version, downgradeAllowed: opts.downgradeAllowed ?? false },
    simFirmwarePayload(opts.version, opts.size ?? 4096),
    vendor.secretKey,
  );
}
