import type { Logger } from '../../src/log/logger.js';

/**
 * zigbee-herdsman's logger, routed into ours with secrets scrubbed. herdsman prints network keys
 * in some messages (its configuration-mismatch error, the random provisioning key of a restore,
 * MT frames of NV writes at debug level), so every message goes through `scrub` before it
 * reaches a log line:
 *
 * - runs of 16 or more hex digits become "[redacted]", except IEEE addresses written as "0x" and
 *   exactly 16 digits (identifiers the logs need);
 * - lists of 8 or more numbers ("[1,2,3,…]", a Buffer as JSON) become "[redacted]";
 * - the known key bytes, in any of those spellings, are removed as a last line of defence.
 *
 * MT frame dumps (namespaces ending in :unpi:*) and herdsman's per-frame debug lines are dropped:
 * they are noise at our log levels and carry raw NV contents.
 */

interface HerdsmanLogger {
  debug: (messageOrLambda: string | (() => string), namespace: string) => void;
  info: (messageOrLambda: string | (() => string), namespace: string) => void;
  warning: (messageOrLambda: string | (() => string), namespace: string) => void;
  error: (messageOrLambda: string, namespace: string) => void;
}

const HEX_RUN = /(0x)?[0-9a-fA-F]{16,}/g;
const NUMBER_LIST = /\[\s*\d{1,3}(\s*,\s*\d{1,3}){7,}\s*\]/g;
const DROPPED_NAMESPACES = [/:unpi:/, /^zh:zstack:znp$/];

export function scrub(message: string, secrets: readonly Uint8Array[] = []): string {
  let out = message;
  for (const secret of secrets) {
    const hex = Buffer.from(secret).toString('hex');
    out = out.split(hex).join('[redacted]').split(hex.toUpperCase()).join('[redacted]');
    out = out.split(Array.from(secret).join(',')).join('[redacted]');
  }
  // IEEE addresses (0x + 16 hex digits) are identifiers, not secrets: keep them readable.
  out = out.replace(HEX_RUN, (run, prefix: string | undefined) => (prefix && run.length === 18 ? run : '[redacted]'));
  return out.replace(NUMBER_LIST, '[redacted]');
}

export function herdsmanLogger(log: Logger, secrets: () => readonly Uint8Array[]): HerdsmanLogger {
  const text = (m: string | (() => string)) => scrub(typeof m === 'function' ? m() : m, secrets());
  const dropped = (ns: string) => DROPPED_NAMESPACES.some((re) => re.test(ns));
  return {
    debug: (m, ns) => {
      if (!dropped(ns) && log.isLevelEnabled('debug')) log.debug({ ns }, text(m));
    },
    info: (m, ns) => {
      if (!dropped(ns)) log.info({ ns }, text(m));
    },
    warning: (m, ns) => log.warn({ ns }, text(m)),
    error: (m, ns) => log.error({ ns }, text(m)),
  };
}
