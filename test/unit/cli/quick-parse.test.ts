import type { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../../src/cli/program.js';
import {
  QUICK_SOCKET_COMMANDS,
  type QuickOption,
  type QuickSpec,
  quickParse,
  RUN,
} from '../../../src/cli/quick-parse.js';
import { runCommand } from '../../../src/cli/run-command.js';
import { actions, QUICK } from '../../../src/cli/socket-commands.js';

vi.mock('../../../src/cli/run-command.js', () => ({ runCommand: vi.fn(async () => {}) }));

/**
 * The quick path (main.ts → quick-parse.ts) reads the everyday command lines without commander;
 * whatever it accepts must reach the same action with the same arguments as through commander, and
 * whatever it is unsure of goes to commander. These tests hold the two readings together.
 */

const spec = (options: QuickOption[], args: QuickSpec['args'] = []): QuickSpec => ({ options, args });

describe('quickParse: the plain forms commander reads, nothing else', () => {
  const s = spec(
    [
      { long: '--config', short: '-c', value: true },
      { long: '--json', value: false },
      { long: '--limit', value: true, parse: (v) => (v === '3' ? 3 : undefined), default: 50 },
      { long: '--device-id', value: true, mandatory: true },
    ],
    [{ required: true, check: (v) => v !== 'bad' }, { required: false }],
  );

  it('reads --name value, --name=value, -c value, flags, defaults and arguments in any order', () => {
    expect(quickParse(s, ['L1', '--device-id', 'D', '-c', 'f.yaml', '--json', '--limit=3', 'x'])).toEqual({
      args: ['L1', 'x'],
      opts: { deviceId: 'D', config: 'f.yaml', json: true, limit: 3 },
    });
    expect(quickParse(s, ['--device-id=D', 'L1'])).toEqual({
      args: ['L1', undefined],
      opts: { deviceId: 'D', limit: 50 },
    });
  });

  it('takes a lone "-" as a value or an argument (--setup-code - reads the code from stdin)', () => {
    expect(quickParse(s, ['-', '--device-id', '-'])).toEqual({
      args: ['-', undefined],
      opts: { deviceId: '-', limit: 50 },
    });
  });

  it.each([
    ['help', ['L1', '--device-id', 'D', '--help']],
    ['-h', ['L1', '--device-id', 'D', '-h']],
    ['--version', ['L1', '--device-id', 'D', '--version']],
    ['-V', ['L1', '--device-id', 'D', '-V']],
    ['an unknown option', ['L1', '--device-id', 'D', '--bogus']],
    ['a combined short option', ['L1', '--device-id', 'D', '-cfile']],
    ['a value on a flag', ['L1', '--device-id', 'D', '--json=yes']],
    ['a missing value', ['L1', '--device-id']],
    ['a value that looks like an option (commander reads -V as --version)', ['L1', '--device-id', '-V']],
    ['a value refused by its parser', ['L1', '--device-id', 'D', '--limit', '4']],
    ['a missing mandatory option', ['L1']],
    ['a missing argument', ['--device-id', 'D']],
    ['an argument refused by its check', ['bad', '--device-id', 'D']],
    ['a surplus argument', ['L1', 'x', 'y', '--device-id', 'D']],
    ['"--" (the rest are arguments for commander)', ['--device-id', 'D', '--', 'L1']],
    ['a negative number', ['L1', '--device-id', 'D', '-5']],
  ])('leaves %s to commander', (_, tokens) => {
    expect(quickParse(s, tokens)).toBeUndefined();
  });
});

/** The commander command at `path` (`firmware status`) of the program. */
function commandAt(program: Command, path: string): Command {
  let c = program;
  for (const word of path.split(' ')) {
    const next = c.commands.find((x) => x.name() === word);
    if (!next) throw new Error(`no command ${path} in the program`);
    c = next;
  }
  return c;
}

describe('each quick spec is what program.ts declares', () => {
  const program = buildProgram(true);
  const cases: [string, QuickSpec][] = [['run', RUN], ...Object.entries(QUICK)];

  it.each(cases)('%s: the same options (flags, value, mandatory, default) and arguments', (path, quick) => {
    const cmd = commandAt(program, path);
    const declared = cmd.options
      .map((o) => ({
        long: o.long,
        short: o.short,
        value: o.required,
        mandatory: o.mandatory,
        default: o.defaultValue,
        parsed: o.parseArg !== undefined,
        variadicOrOptionalOrNegate: o.variadic || o.optional || o.negate,
      }))
      .sort((a, b) => String(a.long).localeCompare(String(b.long)));
    const ours = quick.options
      .map((o) => ({
        long: o.long,
        short: o.short,
        value: o.value,
        mandatory: o.mandatory ?? false,
        default: o.default,
        parsed: o.parse !== undefined,
        variadicOrOptionalOrNegate: false,
      }))
      .sort((a, b) => a.long.localeCompare(b.long));
    expect(ours).toEqual(declared);
    expect(
      quick.args.map((a) => ({ required: a.required, variadic: a.variadic ?? false, checked: a.check !== undefined })),
    ).toEqual(
      cmd.registeredArguments.map((a) => ({
        required: a.required,
        variadic: a.variadic,
        checked: a.parseArg !== undefined,
      })),
    );
  });

  it.each(cases)(
    "%s: uses none of commander's features the quick path does not read (env, presets, conflicts, implied, choices, hooks, excess or unknown, positional or pass-through options, aliases)",
    (path) => {
      type Internals = {
        _allowUnknownOption: boolean;
        _allowExcessArguments: boolean;
        _enablePositionalOptions: boolean;
        _passThroughOptions: boolean;
        _storeOptionsAsProperties: boolean;
        _defaultCommandName: string | null;
        _lifeCycleHooks: Record<string, unknown[]>;
      };
      const features = (c: Command) => {
        const i = c as unknown as Internals;
        return {
          unknown: i._allowUnknownOption,
          excess: i._allowExcessArguments,
          positional: i._enablePositionalOptions,
          passThrough: i._passThroughOptions,
          asProperties: i._storeOptionsAsProperties,
          hooks: Object.values(i._lifeCycleHooks).flat().length,
        };
      };
      const none = {
        unknown: false,
        excess: false,
        positional: false,
        passThrough: false,
        asProperties: false,
        hooks: 0,
      };
      const cmd = commandAt(program, path);
      // The command and every command above it (the program's options are read before the command's).
      for (let c: Command | null = cmd; c; c = c.parent) expect(features(c), c.name()).toEqual(none);
      expect((program as unknown as Internals)._defaultCommandName).toBeNull();
      expect(cmd.aliases()).toEqual([]);
      for (const option of cmd.options) {
        const o = option as typeof option & { conflictsWith: string[]; implied?: object };
        expect(
          { env: o.envVar, preset: o.presetArg, conflicts: o.conflictsWith, implied: o.implied, choices: o.argChoices },
          o.long,
        ).toEqual({ env: undefined, preset: undefined, conflicts: [], implied: undefined, choices: undefined });
      }
      for (const a of cmd.registeredArguments) {
        expect({ dflt: a.defaultValue, choices: a.argChoices }, a.name()).toEqual({
          dflt: undefined,
          choices: undefined,
        });
      }
      // The program's own options: -V and -h only (any other would be read before the command's).
      expect(program.options.map((o) => o.flags)).toEqual(['-V, --version']);
    },
  );

  it('main.ts loads socket-commands.ts for exactly the first words of its quick commands', () => {
    expect(new Set(Object.keys(QUICK).map((k) => k.split(' ')[0]))).toEqual(QUICK_SOCKET_COMMANDS);
  });
});

/**
 * Command lines of the quick commands, the plain and the odd: for each, either the quick path
 * leaves it to commander, or both readings call the same action with the same arguments.
 */
const LINES = [
  'status',
  'status --socket /s',
  'status --socket=/s --json',
  'status -c /etc/x.yaml --check',
  'status --config /x --socket /s --json --check',
  'status --json --json',
  'status --socket /a --socket /b',
  'status --socket -',
  'status --socket -V',
  'status --socket --json',
  'locks --json',
  'offline',
  'offline L1 --json',
  'offline L1 L2',
  'offline b@d',
  'lock L1',
  'lock --check L1 --socket /s',
  'lock',
  'attach --device-id D1 --setup-code - --timeout 30 --install-code-file /f',
  'attach --device-id=D1 --json',
  'attach --device-id D1 --timeout 0',
  'attach --device-id D1 --timeout 1e2',
  'attach --device-id D1 --timeout 0x10',
  'attach --setup-code C',
  'detach L1',
  'forget L1 --force',
  'forget --force',
  'open L1',
  'open L1 --duration 2.5',
  'open --duration=600 L1 --json',
  'open L1 --duration 601',
  'open L1 --duration " 3 "',
  'backup',
  'backup --list --json',
  'restore',
  'restore b-1',
  'hub-backup --socket /s',
  'events L1',
  'events L1 --limit 10',
  'events L1 --limit 1.5',
  'events L1 --limit 10000',
  'events L1 --limit ""',
  'commands --limit 3',
  'security --limit=7 --json',
  'firmware status',
  'firmware status L1 L2 --json',
  'diag --json',
  'run',
  'run --config /etc/iq-hub/config.yaml --log-pretty',
  'run -c /x',
  'run --config=/x',
  'run --log-pretty=1',
  'run extra',
].map((l) => (l.match(/"[^"]*"|\S+/g) ?? []).map((t) => t.replace(/^"(.*)"$/, '$1')));

describe('a line the quick path reads reaches the same action, with the same arguments, as through commander', () => {
  const spies: Record<string, ReturnType<typeof vi.fn>> = {};
  beforeEach(() => {
    for (const name of Object.keys(actions) as (keyof typeof actions)[]) {
      spies[name] = vi.spyOn(actions, name).mockResolvedValue(undefined) as unknown as ReturnType<typeof vi.fn>;
    }
    vi.mocked(runCommand).mockClear();
  });
  afterEach(() => vi.restoreAllMocks());

  /** Which actions ran, with what. */
  const calls = () => {
    const out: [string, unknown[]][] = [];
    for (const [name, spy] of Object.entries(spies)) for (const c of spy.mock.calls) out.push([name, c]);
    for (const c of vi.mocked(runCommand).mock.calls) out.push(['run', c]);
    return out;
  };
  const clear = () => {
    for (const spy of Object.values(spies)) spy.mockClear();
    vi.mocked(runCommand).mockClear();
  };

  it.each(LINES.map((l) => [l.join(' '), l]))('%s', async (_, line) => {
    const [first = '', second = ''] = line;
    const name = first === 'firmware' ? `${first} ${second}` : first;
    const quick = name === 'run' ? RUN : QUICK[name];
    if (!quick) throw new Error(`no quick spec for ${name}`);
    const parsed = quickParse(quick, line.slice(name.split(' ').length));
    let viaCommander: [string, unknown[]][] | Error;
    try {
      await buildProgram(true).parseAsync(['node', 'iqhub', ...line]);
      viaCommander = calls();
    } catch (e) {
      viaCommander = e as Error;
    }
    clear();
    if (parsed === undefined) {
      // Left to commander; nothing to compare (commander reads or refuses it as it always did).
      return;
    }
    expect(viaCommander, 'commander refused a line the quick path read').not.toBeInstanceOf(Error);
    if (name === 'run') await runCommand(parsed.opts);
    else await (QUICK[name] as (typeof QUICK)[string]).run(parsed.args, parsed.opts);
    const quickCalls = calls();
    expect(quickCalls).toHaveLength(1);
    expect(quickCalls).toEqual(viaCommander);
  });

  it('the corpus exercises both sides: most lines are read quickly, the odd ones are left to commander', () => {
    const read = LINES.filter((line) => {
      const [first = '', second = ''] = line;
      const name = first === 'firmware' ? `${first} ${second}` : first;
      const quick = name === 'run' ? RUN : (QUICK[name] as QuickSpec);
      return quickParse(quick, line.slice(name.split(' ').length)) !== undefined;
    });
    expect(read.length).toBeGreaterThan(30);
    expect(LINES.length - read.length).toBeGreaterThan(8);
  });
});
