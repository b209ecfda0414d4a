import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../../src/cli/program.js';
import {
  QUICK_SOCKET_COMMANDS,
  type QuickOption,
  type QuickParse,
  type QuickSpec,
  quickParse,
  quickRead,
  RUN,
} from '../../../src/cli/quick-parse.js';
import { runCommand } from '../../../src/cli/run-command.js';
import { actions, QUICK } from '../../../src/cli/socket-commands.js';

vi.mock('../../../src/cli/run-command.js', () => ({ runCommand: vi.fn(async () => {}) }));

/**
 * The quick path against commander on generated command lines (test/unit/cli/quick-parse.test.ts
 * holds a hand-written list): for every quick command, lines built from its spec — its options in
 * every form (`--name value`, `--name=value`, `-c value`, `-cvalue`, `-c=value`, a flag with a
 * value), repeated, in any order, with values good and bad (numbers out of range, negative ones,
 * empty, blank, unicode, ones that look like options, `--`, help, --version), arguments missing,
 * surplus, refused, and odd tokens anywhere. For each line: either the quick path leaves it to
 * commander, or commander reads it without error and calls the same action with the same arguments.
 * A seeded generator (IQHUB_QUICK_SEED to replay another seed); the seed is in each failure.
 */

const SEED = Number(process.env.IQHUB_QUICK_SEED ?? 15);
const PER_COMMAND = Number(process.env.IQHUB_QUICK_LINES ?? 400);

/** mulberry32: a small seeded generator. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD_VALUES = [
  '',
  ' ',
  '-',
  '--',
  '-V',
  '-h',
  '--help',
  '--version',
  '--json',
  '-5',
  '-1.5',
  'help',
  'ü',
  'a=b',
  '=',
  '\n',
];
const NUMBERS = [
  '1',
  '5',
  '2.5',
  '0',
  '600',
  '601',
  '10000',
  '10001',
  '1e2',
  '0x10',
  ' 3 ',
  '1.5',
  'Infinity',
  'NaN',
  '-0',
  '00',
  '+4',
];
const PATHS = ['/s', 'f.yaml', './rel', 'C:\\x', '/ü/π', 'status'];
const LOCK_IDS = ['L1', 'lock-2', 'a.b_c:d', '1', 'x'.repeat(64), 'x'.repeat(65), 'b@d', '.L', 'ü', 'help', '-L1'];
const ODD_TOKENS = [
  '--',
  '-h',
  '--help',
  '-V',
  '--version',
  '--bogus',
  '-x',
  '--no-json',
  '-5',
  '-0.5',
  '--json=1',
  '--json=',
  '-cfile',
  '-c=x',
  '--config=',
  '--CONFIG',
  '-',
  '',
  'help',
  '---json',
  '--=x',
  '-jc',
];

type Rnd = () => number;
const pick = <T>(r: Rnd, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

function valueFor(r: Rnd, o: QuickOption): string {
  const good = o.parse ? NUMBERS : PATHS;
  return r() < 0.75 ? pick(r, good) : pick(r, ODD_VALUES);
}

/** One option, in one of the forms commander knows (and some it does not). */
function optionTokens(r: Rnd, o: QuickOption): string[] {
  if (!o.value) return r() < 0.9 ? [o.long] : [`${o.long}=${pick(r, ['', '1', 'true'])}`];
  const v = valueFor(r, o);
  const forms: (() => string[])[] = [() => [o.long, v], () => [o.long, v], () => [`${o.long}=${v}`], () => [o.long]];
  if (o.short)
    forms.push(
      () => [o.short as string, v],
      () => [`${o.short}${v}`],
      () => [`${o.short}=${v}`],
    );
  return pick(r, forms)();
}

/** A command line (after the command's name) built from `spec`: mostly plausible, often odd. */
function lineFor(r: Rnd, spec: QuickSpec): string[] {
  const groups: string[][] = [];
  for (const o of spec.options) {
    const times = r() < (o.mandatory ? 0.9 : 0.35) ? (r() < 0.12 ? 2 : 1) : 0;
    for (let i = 0; i < times; i++) groups.push(optionTokens(r, o));
  }
  for (const a of spec.args) {
    const n = a.variadic ? Math.floor(r() * 4) : r() < (a.required ? 0.9 : 0.5) ? 1 : 0;
    for (let i = 0; i < n; i++) groups.push([r() < 0.85 ? pick(r, LOCK_IDS.slice(0, 5)) : pick(r, LOCK_IDS)]);
  }
  if (r() < 0.1) groups.push([pick(r, LOCK_IDS)]);
  const odd = r() < 0.3 ? 1 + Math.floor(r() * 2) : 0;
  for (let i = 0; i < odd; i++) groups.push([pick(r, ODD_TOKENS)]);
  for (let i = groups.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [groups[i], groups[j]] = [groups[j] as string[], groups[i] as string[]];
  }
  return groups.flat();
}

const COMMANDS: [string, QuickSpec][] = [['run', RUN], ...Object.entries(QUICK)];

/** main.ts's choice: the quick path's reading of a whole line, or undefined (commander's). */
function route(line: readonly string[]): { run: () => Promise<void> } | undefined {
  const [first = ''] = line;
  if (first === 'run') {
    const p: QuickParse | undefined = quickParse(RUN, line.slice(1));
    return p && { run: () => runCommand(p.opts) };
  }
  if (!QUICK_SOCKET_COMMANDS.has(first)) return undefined;
  const q = quickRead(line, QUICK);
  return q && { run: () => q.command.run(q.parsed.args, q.parsed.opts) };
}

/** The command's words, now and then with an odd token before or between them (commander's then). */
function wordsFor(r: Rnd, name: string): string[] {
  const words = name.split(' ');
  if (r() >= 0.08) return words;
  const at = Math.floor(r() * words.length);
  return [...words.slice(0, at), pick(r, ODD_TOKENS), ...words.slice(at)];
}

describe(`generated command lines: the quick path reads a line as commander does, or leaves it to commander (seed ${SEED})`, () => {
  const spies: Record<string, ReturnType<typeof vi.fn>> = {};
  beforeEach(() => {
    for (const name of Object.keys(actions) as (keyof typeof actions)[]) {
      spies[name] = vi.spyOn(actions, name).mockResolvedValue(undefined) as unknown as ReturnType<typeof vi.fn>;
    }
    vi.mocked(runCommand).mockClear();
    // Commander's help, version and error texts: not wanted in the test's output.
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => vi.restoreAllMocks());

  const calls = () => {
    const out: [string, unknown[]][] = [];
    for (const [name, spy] of Object.entries(spies)) for (const c of spy.mock.calls) out.push([name, c]);
    for (const c of vi.mocked(runCommand).mock.calls) out.push(['run', c]);
    for (const spy of Object.values(spies)) spy.mockClear();
    vi.mocked(runCommand).mockClear();
    return out;
  };

  it.each(COMMANDS.map(([name], i) => [name, i]))('%s', async (name, i) => {
    const spec = name === 'run' ? RUN : (QUICK[name] as QuickSpec);
    const r = random(SEED * 1000 + (i as number));
    const seen = new Set<string>();
    let read = 0;
    let left = 0;
    for (let n = 0; n < PER_COMMAND; n++) {
      const tokens = lineFor(r, spec);
      const line = [...wordsFor(r, name), ...tokens];
      const key = JSON.stringify(line);
      if (seen.has(key)) continue;
      seen.add(key);
      const parsed = route(line);
      if (parsed === undefined) {
        left++;
        continue;
      }
      read++;
      let viaCommander: [string, unknown[]][] | string;
      try {
        await buildProgram(true).parseAsync(['node', 'iqhub', ...line]);
        viaCommander = calls();
      } catch (e) {
        calls();
        viaCommander = `commander refused it: ${(e as Error).message}`;
      }
      await parsed.run();
      const viaQuick = calls();
      expect(viaQuick, `seed ${SEED}, line ${JSON.stringify(line)}`).toHaveLength(1);
      expect(viaQuick, `seed ${SEED}, line ${JSON.stringify(line)}`).toEqual(viaCommander);
    }
    // The generator exercises both sides for every command.
    expect(read, `${name}: lines the quick path read`).toBeGreaterThan(20);
    expect(left, `${name}: lines left to commander`).toBeGreaterThan(20);
  });
});
