#!/usr/bin/env node
import { QUICK_SOCKET_COMMANDS, quickParse, quickRead, RUN } from './quick-parse.js';

// What every `iqhub` call loads first, so it holds nothing but the choice of path. The everyday
// calls — `iqhub run` and the commands that talk to a running daemon (status, locks, open, …) —
// are read by the quick path (quick-parse.ts) and load only what they run: the daemon for `run`;
// the control client and formatting for a socket command (socket-commands.ts). Any other command
// line (help, --version, the local commands, a line to refuse) goes to the commander program
// (program.ts), which reads and reports it as it always has. docs/operations.md, "A light command line".

const argv = process.argv.slice(2);

/**
 * With --json anywhere on the line, stdout carries exactly one JSON document whatever happens: the
 * result, or `{"error": {code, message, hint}}` (docs/operations.md, "The command line"). Commander's
 * own messages (an unknown option, a bad argument) become such an object too.
 */
const JSON_MODE = argv.includes('--json');

async function main(): Promise<void> {
  const [first = ''] = argv;
  if (first === 'run') {
    const p = quickParse(RUN, argv.slice(1));
    if (p) return (await import('./run-command.js')).runCommand(p.opts);
  } else if (QUICK_SOCKET_COMMANDS.has(first)) {
    const q = quickRead(argv, (await import('./socket-commands.js')).QUICK);
    if (q) return q.command.run(q.parsed.args, q.parsed.opts);
  }
  await (await import('./program.js')).runProgram(JSON_MODE);
}

// No top-level await: this file is also the CommonJS entry, dist/src/cli/main.cjs (packaging/quick-cli.mjs).
// What a top-level await gave for free is kept: a call whose work never settles while nothing is
// left to wait for (a bug) does not end as a success, but with node's own status for it, 13.
// 'beforeExit' comes only when the event loop runs dry, never for process.exit() (a daemon's stop
// that ran out of time exits so, with its own status).
let settled = false;
process.once('beforeExit', () => {
  if (settled || (process.exitCode ?? 0) !== 0) return;
  process.stderr.write('iqhub: internal error: the command ended before it finished (nothing was left to wait for)\n');
  process.exitCode = 13;
});
main()
  .catch(async (e: unknown) => {
    // Help and --version end through here too, with their own exit status and nothing to add.
    process.exitCode = (await import('./cli-error.js')).reportFailure(e, JSON_MODE);
  })
  .finally(() => {
    settled = true;
  });
