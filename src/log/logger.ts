import { type DestinationStream, type Logger, pino } from 'pino';
import { withPriority } from './journal.js';
import { prettyStream } from './pretty.js';

export type { Logger } from 'pino';
export { JOURNAL_PRIORITY, onJournal } from './journal.js';

/** The levels a config may set (log.level). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

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

const redactPaths = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

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
  return pino(
    {
      ...(journal && !opts.pretty ? { hooks: { streamWrite: withPriority } } : {}),
      name: opts.name ?? 'iq-hub',
      level: opts.level,
      base: { pid: process.pid },
      redact: { paths: redactPaths, censor: '[redacted]' },
      // journald stamps lines itself; keep an ISO time for files and pretty output.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
    },
    dest as DestinationStream,
  );
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
