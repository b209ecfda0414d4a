import { type DestinationStream, type Logger, pino } from 'pino';
import { withPriority } from './journal.js';
import type { LogLevel } from './levels.js';
import { prettyStream } from './pretty.js';

export type { Logger } from 'pino';
export { JOURNAL_PRIORITY, onJournal } from './journal.js';

export { LOG_LEVELS, type LogLevel } from './levels.js';

/**
 * Field names whose values never reach a log line, at any of the first three levels of a log
 * object. Secrets are also wrapped in `Secret`, which serialises as "[redacted]": this list is
 * the second line of defence for plain values.
 */
export const SECRET_FIELDS = [
  'pin',
  'pinVerifier',
  'setupCode',
  'key',
  'privateKey',
  'secret',
  'password',
  'passphrase',
  'token',
  'linkKey',
  'otpKey',
  'storageKey',
  'networkKey',
  'installCode',
  'sealed',
  // Credential material of the access layer (src/access, src/contract/link-messages.ts): a PIN verifier, a
  // tag hash, an offline-list digest, a phone's presentation, an attach proof.
  'verifier',
  'hash',
  'digest',
  'presentation',
  'proof',
] as const;

const SECRETS: ReadonlySet<string> = new Set(SECRET_FIELDS);
const CENSOR = '[redacted]';
/** How deep in a log object (or a child logger's bindings) a secret field is looked for. */
const REDACT_DEPTH = 3;

/**
 * `value` with the value of every SECRET_FIELDS key in its first three levels replaced by
 * "[redacted]" (pino's `redact` with the paths `f`, `*.f`, `*.*.f` did the same, at ~270 µs a
 * line against ~1 µs here: its wildcard paths are resolved on every line). The same object when it
 * holds none, which is nearly always; a changed copy otherwise: the caller's object is never
 * touched. Byte arrays and buffers are not walked (their keys are indices).
 */
export function redactSecrets<T>(value: T): T {
  return redactLevel(value, REDACT_DEPTH) as T;
}

function redactLevel(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  const o = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const k of Object.keys(o)) {
    const v = o[k];
    const next = SECRETS.has(k) ? CENSOR : depth > 1 ? redactLevel(v, depth - 1) : v;
    if (next === v) continue;
    copy ??= copyOf(o);
    copy[k] = next;
  }
  return copy ?? o;
}

/** A shallow copy that keeps what a serializer looks at: an array stays one, an Error keeps its prototype and message. */
function copyOf(o: Record<string, unknown>): Record<string, unknown> {
  if (Array.isArray(o)) return [...o] as unknown as Record<string, unknown>;
  const proto = Object.getPrototypeOf(o) as object | null;
  if (proto === Object.prototype || proto === null) return { ...o };
  return Object.create(proto, Object.getOwnPropertyDescriptors(o)) as Record<string, unknown>;
}

export interface LoggerOptions {
  level: LogLevel;
  pretty: boolean;
  /** Where lines go; stdout (journald) by default. */
  destination?: DestinationStream | NodeJS.WritableStream;
  name?: string;
  /**
   * Lines go to the journal (`onJournal`): each starts with its syslog priority, `<3>` for an
   * error, which journald (SyslogLevelPrefix=yes) strips and keeps as PRIORITY.
   */
  journal?: boolean;
}

export function createLogger(opts: LoggerOptions): Logger {
  const out = opts.destination ?? process.stdout;
  const journal = opts.journal ?? false;
  const dest = opts.pretty ? prettyStream(out as NodeJS.WritableStream, undefined, journal) : out;
  const logger = pino(
    {
      ...(journal && !opts.pretty ? { hooks: { streamWrite: withPriority } } : {}),
      name: opts.name ?? 'iq-hub',
      level: opts.level,
      base: { pid: process.pid },
      // journald stamps lines itself; keep an ISO time for files and pretty output.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        // Secret fields of a line's object and of a child logger's bindings (redactSecrets).
        log: (object) => redactSecrets(object),
        bindings: (bindings) => redactSecrets(bindings),
      },
      serializers: { err: serializeError },
    },
    dest as DestinationStream,
  );
  // A child's bindings skip formatters.bindings (pino resets it for children): redacted here, for
  // every descendant (a child is made with Object.create of its parent, so it inherits this).
  const child = logger.child;
  logger.child = function (this: Logger, bindings, options) {
    return child.call(this, redactSecrets(bindings), options);
  } as typeof logger.child;
  return logger;
}

/** Errors logged with their code and message only: no `cause` chain, which may hold secrets. */
function serializeError(e: unknown): Record<string, unknown> {
  if (e instanceof Error) {
    const out: Record<string, unknown> = { type: e.name, message: e.message };
    const code = (e as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    const hint = (e as { hint?: unknown }).hint;
    if (hint !== undefined) out.hint = hint;
    if (e.stack && !(e as { code?: unknown }).code) out.stack = e.stack;
    return out;
  }
  return { message: String(e) };
}

/** A logger that discards everything (for tests and tools that only want errors thrown). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
