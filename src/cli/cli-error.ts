import { HubError } from '../base/errors.js';

/**
 * How `iqhub` reports a failure: one shape for people (stderr) and for scripts (`--json`: one JSON
 * object on stdout), and one exit status for both. docs/operations.md, "The command line", is
 * the table.
 */
export interface CliError {
  /** A HubError code (src/base/error-codes.ts), `commander.*` for a command line iqhub cannot parse, else the errno or `unexpected`. */
  code: string;
  message: string;
  /** What to do about it; null only for a fault nobody foresaw. */
  hint: string | null;
}

/** Exit status of `iqhub` when a command fails: 3 the daemon is not running, 1 anything else (commander's own for usage errors). */
export const EXIT_NOT_RUNNING = 3;

/**
 * commander's own error (a CommanderError or InvalidArgumentError), known by its `commander.*` code
 * and exit status rather than by class: this module loads for every failed call, and a call the
 * quick path read (quick-parse.ts) has not loaded commander and cannot meet one of its errors.
 */
export function isCommanderError(e: unknown): e is Error & { code: string; exitCode: number } {
  if (!(e instanceof Error)) return false;
  const { code, exitCode } = e as { code?: unknown; exitCode?: unknown };
  return typeof code === 'string' && code.startsWith('commander.') && typeof exitCode === 'number';
}

export function cliError(e: unknown): CliError {
  if (e instanceof HubError) return { code: e.code, message: e.message, hint: e.hint };
  if (isCommanderError(e)) {
    return {
      code: e.code,
      message: e.message.replace(/^error: /, ''),
      hint: 'run the command with --help for its arguments and options',
    };
  }
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return { code: typeof code === 'string' ? code : 'unexpected', message: e.message, hint: null };
  }
  return { code: 'unexpected', message: String(e), hint: null };
}

export function exitCodeOf(e: unknown): number {
  if (isCommanderError(e)) return e.exitCode;
  if (e instanceof HubError && e.code === 'daemon.not-running') return EXIT_NOT_RUNNING;
  return 1;
}

/** The error for a person: the message, and the hint on its own line (as HubError.explanation). */
export function formatCliError(err: CliError): string {
  return `iqhub: ${err.message}\n${err.hint ? `  → ${err.hint}\n` : ''}`;
}

/**
 * A failed `iqhub` call reported: on stderr for people, as one JSON object on stdout with --json;
 * help and --version (commander's exit 0) and, for people, commander's own usage errors (already
 * printed by commander) add nothing. Answers the exit status.
 */
export function reportFailure(e: unknown, jsonMode: boolean): number {
  const quiet = isCommanderError(e) && (e.exitCode === 0 || !jsonMode);
  if (!quiet) {
    const err = cliError(e);
    if (jsonMode) process.stdout.write(`${JSON.stringify({ error: err })}\n`);
    else process.stderr.write(formatCliError(err));
  }
  return exitCodeOf(e);
}
