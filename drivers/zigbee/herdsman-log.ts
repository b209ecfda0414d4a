import { Deduper } from '../../src/log/dedupe.js';
import type { Logger } from '../../src/log/logger.js';
import { scrub } from '../../src/log/scrub.js';

/**
 * zigbee-herdsman's logger, routed into ours with secrets scrubbed. herdsman prints network keys
 * in some messages (its configuration-mismatch error, the random provisioning key of a restore,
 * MT frames of NV writes at debug level), so every message goes through `scrub`
 * (src/log/scrub.ts) before it reaches a log line. Info, warning and error lines are written once
 * per change (`Deduper`: the same line again within ten minutes is only counted).
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

const DROPPED_NAMESPACES = [/:unpi:/, /^zh:zstack:znp$/];

export { scrub };

export function herdsmanLogger(
  log: Logger,
  secrets: () => readonly Uint8Array[],
  dedupe: Deduper = new Deduper(),
): HerdsmanLogger {
  const text = (m: string | (() => string)) => scrub(typeof m === 'function' ? m() : m, secrets());
  const dropped = (ns: string) => DROPPED_NAMESPACES.some((re) => re.test(ns));
  const once = (level: 'info' | 'warn' | 'error', m: string | (() => string), ns: string) => {
    const t = text(m);
    const admitted = dedupe.admit(`${level} ${ns} ${t}`);
    if (admitted) log[level](admitted.repeated ? { ns, repeated: admitted.repeated } : { ns }, t);
  };
  return {
    // Called for every frame: the level (off in production) is checked before anything else.
    debug: (m, ns) => {
      if (log.isLevelEnabled('debug') && !dropped(ns)) log.debug({ ns }, text(m));
    },
    info: (m, ns) => {
      if (!dropped(ns)) once('info', m, ns);
    },
    warning: (m, ns) => once('warn', m, ns),
    error: (m, ns) => once('error', m, ns),
  };
}
