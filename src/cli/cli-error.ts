import { CommanderError } from 'commander';
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

export function cliError(e: unknown): CliError {
  if (e instanceof HubError) return { code: e.code, message: e.message, hint: e.hint };
  if (e instanceof CommanderError) {
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
  if (e instanceof CommanderError) return e.exitCode;
  if (e instanceof HubError && e.code === 'daemon.not-running') return EXIT_NOT_RUNNING;
  return 1;
}

/** The error for a person: the message, and the hint on its own line (as HubError.explanation). */
export function formatCliError(err: CliError): string {
  return `iqhub: ${err.message}\n${err.hint ? `  → ${err.hint}\n` : ''}`;
}
