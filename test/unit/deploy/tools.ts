import { spawnSync } from 'node:child_process';

// The deployment checks find their tools like every other test (in CI a missing one fails loudly).
export { findTool, requireTool } from '../../helpers/tools.js';

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run a tool without colours, pager or translations. */
export function run(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): RunResult {
  const r = spawnSync(bin, args, {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '', PAGER: 'cat', LC_ALL: 'C', ...env },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: stripAnsi(r.stdout), stderr: stripAnsi(r.stderr) };
}

export function stripAnsi(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences start with ESC.
  return s.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '');
}

/** One `Key=Value` line of a unit file, in file order. */
export interface UnitEntry {
  section: string;
  key: string;
  value: string;
  line: number;
}

/**
 * A systemd unit file (systemd.syntax(7)): [Section] headers, Key=Value, comments starting with
 * `#` or `;`, and lines continued with a trailing backslash.
 */
export class UnitFile {
  readonly entries: UnitEntry[] = [];

  constructor(text: string) {
    let section = '';
    let pending: { text: string; line: number } | undefined;
    text.split('\n').forEach((raw, i) => {
      const lineNo = i + 1;
      const line = raw.trim();
      if (!pending && (line === '' || line.startsWith('#') || line.startsWith(';'))) return;
      if (pending && (line.startsWith('#') || line.startsWith(';'))) return;
      const joined = pending ? `${pending.text} ${line}` : line;
      const start = pending?.line ?? lineNo;
      if (joined.endsWith('\\')) {
        pending = { text: joined.slice(0, -1).trimEnd(), line: start };
        return;
      }
      pending = undefined;
      const header = /^\[([^\]]+)\]$/.exec(joined);
      if (header) {
        section = header[1]!;
        return;
      }
      const eq = joined.indexOf('=');
      if (eq <= 0) throw new Error(`line ${start}: not Key=Value: ${joined}`);
      this.entries.push({ section, key: joined.slice(0, eq).trim(), value: joined.slice(eq + 1).trim(), line: start });
    });
  }

  /** Every assignment of a key, in order; an empty assignment resets the list, as in systemd. */
  all(section: string, key: string): string[] {
    const out: string[] = [];
    for (const e of this.entries) {
      if (e.section !== section || e.key !== key) continue;
      if (e.value === '') out.length = 0;
      else out.push(e.value);
    }
    return out;
  }

  /** The effective value of a single-valued key: the last assignment. */
  get(section: string, key: string): string | undefined {
    return this.all(section, key).at(-1);
  }

  /** The space-separated words of every assignment of a list-valued key. */
  words(section: string, key: string): string[] {
    return this.all(section, key).flatMap((v) => v.split(/\s+/).filter(Boolean));
  }
}
