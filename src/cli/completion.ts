import type { Command, Help, Option } from 'commander';

/**
 * Shell completion made from the commander program itself (`iqhub completion bash|zsh|json`), so
 * a command or option added to main.ts is completed without anyone touching this file. The
 * scripts carry the tree as data (`case` tables) and a small walker: they know the commands,
 * sub-commands, options, which options take a value, and the choices of options and arguments
 * (files otherwise). Hidden commands and options stay hidden.
 */

export interface OptionNode {
  flags: string;
  long: string | null;
  short: string | null;
  takesValue: boolean;
  description: string;
  choices: string[] | null;
}

export interface ArgumentNode {
  name: string;
  required: boolean;
  description: string;
  choices: string[] | null;
}

export interface CommandNode {
  /** The words after `iqhub`, e.g. ["pki", "dev"]; [] for iqhub itself. */
  path: string[];
  name: string;
  description: string;
  usage: string;
  arguments: ArgumentNode[];
  options: OptionNode[];
  commands: CommandNode[];
}

function optionNode(help: Help, o: Option): OptionNode {
  return {
    flags: o.flags,
    long: o.long ?? null,
    short: o.short ?? null,
    takesValue: o.required || o.optional,
    description: help.optionDescription(o),
    choices: o.argChoices ?? null,
  };
}

/** The program as data: what completion, the manual page and the hint test read. */
export function commandTree(program: Command, path: string[] = []): CommandNode {
  const help = program.createHelp();
  return {
    path,
    name: program.name(),
    description: program.description(),
    usage: `${[...path.slice(0, -1), program.name()].join(' ')} ${program.usage()}`.trim(),
    arguments: program.registeredArguments.map((a) => ({
      name: a.name(),
      required: a.required,
      description: a.description,
      choices: a.argChoices ?? null,
    })),
    options: help.visibleOptions(program).map((o) => optionNode(help, o)),
    commands: help.visibleCommands(program).map((c) => commandTree(c, [...path, c.name()])),
  };
}

function walk(node: CommandNode, visit: (n: CommandNode) => void): void {
  visit(node);
  for (const c of node.commands) walk(c, visit);
}

const words = (n: CommandNode) => n.path.join(' ');
const optionWords = (n: CommandNode) => n.options.flatMap((o) => [o.short, o.long].filter((x): x is string => !!x));
const valued = (n: CommandNode) =>
  n.options.filter((o) => o.takesValue).flatMap((o) => [o.short, o.long].filter((x): x is string => !!x));
const argChoices = (n: CommandNode) => [...new Set(n.arguments.flatMap((a) => a.choices ?? []))];

/** A `case` arm per command: `"pki dev") echo "…";;` (words are plain: commander names and flags). */
function caseTable(fn: string, tree: CommandNode, value: (n: CommandNode) => string[]): string {
  const arms: string[] = [];
  walk(tree, (n) => {
    const v = value(n);
    if (v.length > 0) arms.push(`    "${words(n)}") echo "${v.join(' ')}" ;;`);
  });
  return `${fn}() {\n  case "$1" in\n${arms.join('\n')}\n  esac\n}\n`;
}

function choiceTable(fn: string, tree: CommandNode): string {
  const arms: string[] = [];
  walk(tree, (n) => {
    for (const o of n.options) {
      if (!o.choices) continue;
      for (const flag of [o.short, o.long].filter(Boolean)) {
        arms.push(`    "${words(n)} ${flag}") echo "${o.choices.join(' ')}" ;;`);
      }
    }
  });
  return `${fn}() {\n  case "$1" in\n${arms.join('\n')}\n  esac\n}\n`;
}

/**
 * The tables and the walk shared by bash and zsh: `_iqhub_path` sets `cmdpath` to the command the
 * words so far name, skipping options and the values of those that take one.
 */
function tables(tree: CommandNode): string {
  return [
    caseTable('_iqhub_subs', tree, (n) => n.commands.map((c) => c.name)),
    caseTable('_iqhub_opts', tree, optionWords),
    caseTable('_iqhub_valued', tree, valued),
    caseTable('_iqhub_args', tree, argChoices),
    choiceTable('_iqhub_choices', tree),
  ].join('\n');
}

const WALK = `# $1: index of the word being completed; sets cmdpath to the command the words before it name.
_iqhub_path() {
  cmdpath=""
  local i w skip=0
  for ((i = _iqhub_first; i < $1; i++)); do
    w="\${_iqhub_words[i]}"
    if ((skip)); then skip=0; continue; fi
    case "$w" in
      -*=*) ;;
      -*) if [[ " $(_iqhub_valued "$cmdpath") " == *" $w "* ]]; then skip=1; fi ;;
      *) if [[ " $(_iqhub_subs "$cmdpath") " == *" $w "* ]]; then cmdpath="\${cmdpath:+$cmdpath }$w"; fi ;;
    esac
  done
}
`;

const HEADER = (shell: string) =>
  `# ${shell} completion for iqhub, made by \`iqhub completion ${shell}\` from the CLI's own commands and options.\n`;

export function bashCompletion(tree: CommandNode): string {
  return `${HEADER('bash')}# Install: iqhub completion bash > /etc/bash_completion.d/iqhub (or source it from ~/.bashrc).

${tables(tree)}
${WALK}
_iqhub() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" cmdpath vc
  local -a _iqhub_words=("\${COMP_WORDS[@]}")
  local _iqhub_first=1
  _iqhub_path "$COMP_CWORD"
  if [[ "$prev" == -* && " $(_iqhub_valued "$cmdpath") " == *" $prev "* ]]; then
    vc="$(_iqhub_choices "$cmdpath $prev")"
    if [[ -n "$vc" ]]; then
      mapfile -t COMPREPLY < <(compgen -W "$vc" -- "$cur")
    else
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_iqhub_opts "$cmdpath")" -- "$cur")
  else
    mapfile -t COMPREPLY < <(compgen -W "$(_iqhub_subs "$cmdpath") $(_iqhub_args "$cmdpath")" -- "$cur")
  fi
  return 0
}
complete -o default -F _iqhub iqhub
`;
}

/** zsh: the same walk; names come with their descriptions (`_describe`). */
export function zshCompletion(tree: CommandNode): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const described: string[] = [];
  walk(tree, (n) => {
    const subs = n.commands.map((c) => q(`${c.name}:${c.description}`));
    const opts = n.options.flatMap((o) =>
      [o.short, o.long].filter((x): x is string => !!x).map((f) => q(`${f}:${o.description}`)),
    );
    described.push(`    "${words(n)}") subs=(${subs.join(' ')}); opts=(${opts.join(' ')}) ;;`);
  });
  return `#compdef iqhub
${HEADER('zsh')}# Install: iqhub completion zsh > "\${fpath[1]}/_iqhub", then start a new shell (compinit).

${tables(tree)}
${WALK}
_iqhub_described() {
  case "$1" in
${described.join('\n')}
  esac
}

_iqhub() {
  local cur="\${words[CURRENT]}" prev="\${words[CURRENT-1]}" cmdpath vc
  local -a _iqhub_words subs opts
  _iqhub_words=("\${words[@]}")
  local _iqhub_first=2
  _iqhub_path "$CURRENT"
  if [[ "$prev" == -* && " $(_iqhub_valued "$cmdpath") " == *" $prev "* ]]; then
    vc="$(_iqhub_choices "$cmdpath $prev")"
    if [[ -n "$vc" ]]; then compadd -- \${=vc}; else _files; fi
    return
  fi
  _iqhub_described "$cmdpath"
  if [[ "$cur" == -* ]]; then
    _describe -t options 'option' opts
  else
    vc="$(_iqhub_args "$cmdpath")"
    [[ -n "$vc" ]] && compadd -- \${=vc}
    _describe -t commands 'command' subs
  fi
}

if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then
  _iqhub "$@"
else
  compdef _iqhub iqhub
fi
`;
}
