import type { Command } from 'commander';
import { type CommandNode, commandTree } from './completion.js';

/**
 * iqhub(1) in roff, made from the commander program (`iqhub man`, `npm run man` → docs/iqhub.1):
 * every command, its arguments and options, in the words of its own --help. The sections a help
 * text has no place for (exit status, files, environment) are written here. No date and no
 * version in the header, so the page changes only when the commands do; a test checks that
 * docs/iqhub.1 is what this makes.
 */

/** Text for roff: backslashes and hyphens escaped, no line starting with a control character. */
function esc(s: string): string {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

const bold = (s: string) => `\\fB${esc(s)}\\fR`;

function commandSection(n: CommandNode): string[] {
  const out: string[] = [];
  const name = ['iqhub', ...n.path].join(' ');
  const args = n.arguments.map((a) => (a.required ? `<${a.name}>` : `[${a.name}]`)).join(' ');
  out.push('.TP', `${bold(name)}${args ? ` ${esc(args)}` : ''}${n.commands.length ? ' \\fIcommand\\fR' : ''}`);
  out.push(esc(n.description || '(no description)'));
  for (const a of n.arguments) {
    if (!a.description && !a.choices) continue;
    const choices = a.choices ? ` (one of: ${a.choices.join(', ')})` : '';
    out.push('.RS', '.TP', `\\fI${esc(a.name)}\\fR`, esc(`${a.description}${choices}`), '.RE');
  }
  const options = n.options.filter((o) => o.long !== '--help');
  for (const o of options) {
    out.push('.RS', '.TP', bold(o.flags), esc(o.description), '.RE');
  }
  return out;
}

export function manPage(program: Command): string {
  const tree = commandTree(program);
  const lines: string[] = [
    '.\\" iqhub(1): made by `iqhub man` (npm run man) from the CLI\'s own help; do not edit by hand.',
    '.TH IQHUB 1 "" "iq-hub" "iq-hub manual"',
    '.SH NAME',
    `iqhub \\- ${esc(tree.description.replace(/^iq-hub: /, ''))}`,
    '.SH SYNOPSIS',
    `${bold('iqhub')} \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]`,
    '.br',
    `${bold('iqhub')} \\fIcommand\\fR ${bold('--help')}`,
    '.SH DESCRIPTION',
    esc(
      'The daemon of a smart-lock hub runs as `iqhub run` (systemd starts it). Every other command is the ' +
        "field technician's tool: most talk to the running daemon over its control socket (members of " +
        'the iqhub group may use it); pki, provision, cert and reset work on the files of this hub.',
    ),
    '.PP',
    esc(
      'With --json, a command prints one JSON document on standard output: its result, or ' +
        '{"error": {"code", "message", "hint"}} when it fails, with the same exit status. Without it, ' +
        'errors go to standard error with a line saying what to do. Times are ISO 8601 in UTC. ' +
        'Steps that take seconds say what they are doing on standard error.',
    ),
    '.SH OPTIONS',
  ];
  for (const o of tree.options) lines.push('.TP', bold(o.flags), esc(o.description));
  lines.push('.SH COMMANDS');
  const visit = (n: CommandNode) => {
    for (const c of n.commands) {
      if (c.path.length === 1 && c.name === 'help') continue;
      lines.push(...commandSection(c));
      visit(c);
    }
  };
  visit(tree);
  lines.push(
    '.TP',
    `${bold('iqhub help')} [\\fIcommand\\fR]`,
    esc('the help of a command (the same as iqhub command --help)'),
    '.SH EXIT STATUS',
    '.TP',
    '0',
    esc('done; for status --check: the hub is healthy'),
    '.TP',
    '1',
    esc(
      'failed (the error says why and what to do); for status --check: the hub is degraded; for diag: a check failed; a command line iqhub cannot parse',
    ),
    '.TP',
    '3',
    esc('the daemon is not running (nothing answers on its control socket)'),
    '.TP',
    '4',
    esc('detach: the lock is out of reach; it stays detaching and the hub finishes when it hears it'),
    '.TP',
    '75, 78',
    esc(
      'run only: the daemon could not start; 75 may pass by itself (disk full, another daemon), 78 needs the installation fixed (systemd does not restart it)',
    ),
    '.SH FILES',
    '.TP',
    bold('/etc/iq-hub/config.yaml'),
    esc('the configuration (docs/configuration.md); --config names another'),
    '.TP',
    bold('/var/lib/iq-hub'),
    esc('the data directory: the store, its storage key, the identity (identity/)'),
    '.TP',
    bold('/run/iq-hub/control.sock'),
    esc('the control socket of the running daemon; --socket names another'),
    '.SH SEE ALSO',
    esc('docs/operations.md, docs/configuration.md, docs/installing.md, docs/mqtt-api.md in the iq-hub sources.'),
    '',
  );
  return lines.join('\n');
}
