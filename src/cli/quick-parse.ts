/**
 * The command line of the everyday calls (`iqhub run`, `status`, `locks`, `open`, …) read without
 * commander, so that such a call loads neither commander nor the program's help texts (issue 15,
 * "The CLI is light"; docs/operations.md, "A light command line").
 *
 * It reads only the plain forms, exactly as commander reads them: `--name value`, `--name=value`,
 * `-c value`, flags, and positional arguments in any order. Anything else — help, --version, an
 * unknown or malformed option, a value that looks like an option, a bad argument, a missing or
 * surplus one — answers `undefined`, and the caller hands the line to commander, which then
 * reports it in its own words. test/unit/cli/quick-parse.test.ts holds each spec against the
 * commander program, so the two cannot drift apart.
 */

export interface QuickOption {
  /** `--device-id` (long flag as commander names it). */
  long: string;
  /** `-c`, if the option has a short flag. */
  short?: string;
  /** Takes a value (`<value>`); else a boolean flag. */
  value: boolean;
  /** commander's requiredOption: the call is incomplete without it. */
  mandatory?: boolean;
  /** The value when the option is absent (commander's default). */
  default?: unknown;
  /** commander's argument parser: the parsed value, or undefined when the value is not acceptable. */
  parse?: (v: string) => unknown;
}

export interface QuickArgument {
  required: boolean;
  variadic?: boolean;
  /** False when the value is not acceptable (commander's parser would throw). */
  check?: (v: string) => boolean;
}

export interface QuickSpec {
  options: readonly QuickOption[];
  args: readonly QuickArgument[];
}

export interface QuickParse {
  /** One entry per declared argument (an absent optional one is undefined, a variadic one an array). */
  args: unknown[];
  /** The options under commander's names (`--device-id` → deviceId). */
  opts: Record<string, unknown>;
}

/** commander's attribute name of a long flag: `--install-code-file` → installCodeFile. */
export function attributeName(long: string): string {
  return long.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** A token commander may take for an option (a lone `-` is an argument, as for `--setup-code -`). */
const looksLikeOption = (t: string) => t.length > 1 && t.startsWith('-');

/** `tokens` (what follows the command's name) read by `spec`, or undefined for commander to read. */
export function quickParse(spec: QuickSpec, tokens: readonly string[]): QuickParse | undefined {
  const opts: Record<string, unknown> = {};
  for (const o of spec.options) if (o.default !== undefined) opts[attributeName(o.long)] = o.default;
  const seen = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (!looksLikeOption(t)) {
      positional.push(t);
      continue;
    }
    const eq = t.startsWith('--') ? t.indexOf('=') : -1;
    const flag = eq > 0 ? t.slice(0, eq) : t;
    const o = spec.options.find((x) => x.long === flag || (x.short !== undefined && x.short === flag));
    if (!o || (eq > 0 && !o.value)) return undefined;
    let raw: string | true = true;
    if (o.value) {
      const v = eq > 0 ? t.slice(eq + 1) : tokens[++i];
      // A missing value, or one commander would read as a (program's) option first: commander's.
      if (v === undefined || looksLikeOption(v)) return undefined;
      raw = v;
    }
    let value: unknown = raw;
    if (o.parse && typeof raw === 'string') {
      value = o.parse(raw);
      if (value === undefined) return undefined;
    }
    opts[attributeName(o.long)] = value;
    seen.add(o.long);
  }
  if (spec.options.some((o) => o.mandatory && !seen.has(o.long))) return undefined;
  const args: unknown[] = [];
  let p = 0;
  for (const a of spec.args) {
    if (a.variadic) {
      const rest = positional.slice(p);
      if (a.required && rest.length === 0) return undefined;
      if (a.check && !rest.every(a.check)) return undefined;
      args.push(rest);
      p = positional.length;
      continue;
    }
    const v = positional[p];
    if (v === undefined) {
      if (a.required) return undefined;
      args.push(undefined);
      continue;
    }
    if (a.check && !a.check(v)) return undefined;
    args.push(v);
    p++;
  }
  if (p < positional.length) return undefined;
  return { args, opts };
}

/**
 * The quick command a whole command line (after `iqhub`) names — its first word, or its first two
 * for `firmware status` — read by its spec; undefined when there is none or it leaves the line to
 * commander. main.ts reads socket commands through this (the tests hold it against commander).
 */
export function quickRead<T extends QuickSpec>(
  argv: readonly string[],
  commands: Readonly<Record<string, T>>,
): { command: T; parsed: QuickParse } | undefined {
  const [first = '', second = ''] = argv;
  const name = first === 'firmware' ? `${first} ${second}` : first;
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  const parsed = command && quickParse(command, argv.slice(name.split(' ').length));
  return command && parsed ? { command, parsed } : undefined;
}

/** `iqhub run [-c|--config <path>] [--log-pretty]`, as program.ts declares it. */
export const RUN: QuickSpec = {
  options: [
    { long: '--config', short: '-c', value: true },
    { long: '--log-pretty', value: false },
  ],
  args: [],
};

/**
 * The first words of the commands socket-commands.ts QUICK reads: main.ts loads that module only
 * for these (a test holds the two lists equal).
 */
export const QUICK_SOCKET_COMMANDS: ReadonlySet<string> = new Set([
  'status',
  'locks',
  'offline',
  'lock',
  'attach',
  'detach',
  'forget',
  'open',
  'backup',
  'restore',
  'hub-backup',
  'events',
  'commands',
  'security',
  'firmware',
  'diag',
]);
