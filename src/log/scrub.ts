/**
 * Text from a library (zigbee-herdsman's logger, a console warning) with what looks like key
 * material removed, before it reaches a log line:
 *
 * - runs of 16 or more hex digits become "[redacted]", except IEEE addresses written as "0x" and
 *   exactly 16 digits (identifiers the logs need);
 * - lists of 8 or more numbers ("[1,2,3,…]", a Buffer as JSON) become "[redacted]";
 * - the known key bytes (`secrets`), in any of those spellings, are removed as a last line of defence.
 */
const HEX_RUN = /(0x)?[0-9a-fA-F]{16,}/g;
const NUMBER_LIST = /\[\s*\d{1,3}(\s*,\s*\d{1,3}){7,}\s*\]/g;
/** `<Buffer 0a 1b …>` as util.inspect prints one. */
const BUFFER_DUMP = /<Buffer( [0-9a-f]{2}){8,}( \.\.\. \d+ more bytes)?>/g;

export function scrub(message: string, secrets: readonly Uint8Array[] = []): string {
  let out = message;
  for (const secret of secrets) {
    const hex = Buffer.from(secret).toString('hex');
    out = out.split(hex).join('[redacted]').split(hex.toUpperCase()).join('[redacted]');
    out = out.split(Array.from(secret).join(',')).join('[redacted]');
  }
  // IEEE addresses (0x + 16 hex digits) are identifiers, not secrets: keep them readable.
  out = out.replace(HEX_RUN, (run, prefix: string | undefined) => (prefix && run.length === 18 ? run : '[redacted]'));
  return out.replace(NUMBER_LIST, '[redacted]').replace(BUFFER_DUMP, '<Buffer [redacted]>');
}
