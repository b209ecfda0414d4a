import { Writable } from 'node:stream';
import { priorityOf } from './journal.js';

const COLOURS: Record<string, string> = {
  trace: '\x1b[90m',
  debug: '\x1b[36m',
  info: '\x1b[32m',
  warn: '\x1b[33m',
  error: '\x1b[31m',
  fatal: '\x1b[35m',
};
const RESET = '\x1b[0m';
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'component']);

/**
 * A small human-readable rendering of pino's JSON lines, for `--log-pretty` and the demo:
 * "12:00:01.234 INFO  [link] lock attached lockId=L1". It reads the already-redacted JSON,
 * so it cannot show more than the JSON log would.
 */
export function prettyStream(
  out: NodeJS.WritableStream,
  colour = Boolean((out as { isTTY?: boolean }).isTTY),
  /** Each line starts with its syslog priority (`<3>`…), for the journal. */
  priority = false,
): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer | string, _enc, done) {
      pending += chunk.toString();
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        const line = pending.slice(0, nl);
        out.write(`${priority ? priorityOf(line) : ''}${formatLine(line, colour)}\n`);
        pending = pending.slice(nl + 1);
        nl = pending.indexOf('\n');
      }
      done();
    },
  });
}

export function formatLine(line: string, colour: boolean): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = String(rec.level ?? 'info');
  const time = typeof rec.time === 'string' ? rec.time.slice(11, 23) : '';
  const tag = level.toUpperCase().padEnd(5);
  const lvl = colour ? `${COLOURS[level] ?? ''}${tag}${RESET}` : tag;
  const comp = rec.component ? `[${String(rec.component)}] ` : '';
  const fields = Object.entries(rec)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${lvl} ${comp}${String(rec.msg ?? '')}${fields ? ` ${fields}` : ''}`;
}
