import { format } from 'node:util';
import { Deduper } from './dedupe.js';
import type { Logger } from './logger.js';
import { scrub } from './scrub.js';

type Method = 'log' | 'info' | 'warn' | 'error' | 'debug' | 'trace';
const LEVEL: Record<Method, 'info' | 'warn' | 'error' | 'debug'> = {
  log: 'info',
  info: 'info',
  warn: 'warn',
  error: 'error',
  debug: 'debug',
  trace: 'debug',
};

/**
 * The daemon writes nothing with `console`; the libraries it runs do (noble prints its warnings
 * with console.warn, dozens of times a minute on a busy radio). While the daemon runs, console
 * output goes through the logger instead of as plain text between the JSON lines: at the level
 * of the console method, `component: "console"`, scrubbed of key-like text, and once per change
 * (`Deduper`). Returns the function that puts the console back.
 */
export function routeConsole(log: Logger, o: { now?: () => number; quietMs?: number } = {}): () => void {
  const out = log.child({ component: 'console' });
  const dedupe = new Deduper(o);
  const saved = new Map<Method, (...args: unknown[]) => void>();
  for (const m of Object.keys(LEVEL) as Method[]) {
    saved.set(m, console[m]);
    const level = LEVEL[m];
    console[m] = (...args: unknown[]) => {
      if (!out.isLevelEnabled(level)) return;
      const text = scrub(format(...args)).slice(0, 2000);
      const admitted = dedupe.admit(`${level} ${text}`);
      if (!admitted) return;
      out[level](admitted.repeated ? { repeated: admitted.repeated } : {}, text);
    };
  }
  return () => {
    for (const [m, fn] of saved) console[m] = fn;
  };
}
