import { createHash } from 'node:crypto';

/**
 * SHA-256 through node:crypto (OpenSSL): the offline lists' digests, a sync's parts, firmware
 * images. @noble/hashes did this in JavaScript, 20 times slower with V8's JIT on a 1 MB image and
 * ~2,000 times slower interpreted (docs/operations.md, "Memory"). Returns a Uint8Array of its own,
 * not node's Buffer (whose slice() is a view, not a copy).
 */
export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

/** Lower-case hex SHA-256 of the UTF-8 bytes of `text` (lone surrogates as U+FFFD, as TextEncoder). */
export function sha256HexOfText(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
