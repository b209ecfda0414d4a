import { fstatSync } from 'node:fs';

/**
 * Lines for the journal: systemd connects a service's stdout and stderr to journald and says so
 * in JOURNAL_STREAM; a line that starts with `<N>` (SyslogLevelPrefix=yes, systemd's default) is
 * stored with PRIORITY=N, so `journalctl -p err` finds the errors.
 */

/** The syslog priority of each level (sd-daemon(3)); journald maps trace and debug alike. */
export const JOURNAL_PRIORITY: Readonly<Record<'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal', number>> = {
  trace: 7,
  debug: 7,
  info: 6,
  warn: 4,
  error: 3,
  fatal: 2,
};
const PREFIX: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(JOURNAL_PRIORITY).map(([l, p]) => [l, `<${p}>`]),
);
const LEVEL_AT = '{"level":"'.length;

/** A JSON line (its level is the first key: `formatters.level`) with its priority in front. */
export function withPriority(line: string): string {
  return priorityOf(line) + line;
}

/**
 * Whether file descriptor `fd` (stdout by default) is the journal: systemd names the stream it
 * connected in JOURNAL_STREAM as `device:inode`, and only the very same file counts (a child that
 * inherited the variable but writes to a pipe or a file does not).
 */
export function onJournal(env: NodeJS.ProcessEnv, fd = 1): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1] as string) && st.ino === BigInt(m[2] as string);
  } catch {
    return false;
  }
}

/** The prefix for a JSON line of pino's (for a rendering of it: the pretty format). */
export function priorityOf(jsonLine: string): string {
  if (!jsonLine.startsWith('{"level":"')) return '<6>';
  const end = jsonLine.indexOf('"', LEVEL_AT);
  return PREFIX[jsonLine.slice(LEVEL_AT, end)] ?? '<6>';
}

/** Each line of a text (a start-up failure on stderr) at one priority. */
export function prefixLines(text: string, priority: number): string {
  return text
    .split('\n')
    .map((l) => (l === '' ? l : `<${priority}>${l}`))
    .join('\n');
}
