import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/base/error-codes.js';
import { configSchema } from '../../src/config/schema.js';
import { requireBuild, runCli } from '../helpers/daemon.js';

requireBuild();

/**
 * Every hint names what exists (issue 18: `pki dev` once said "pass overwrite"; the option is
 * --force). Walks the hint of every code in src/base/error-codes.ts and every hint and HubError
 * message written in src/ and provisioning/, and checks against the program itself (`iqhub
 * completion json`) and the config schema:
 *   - `iqhub <command> [<sub-command>]` names a command that exists;
 *   - an `--option` after it is one of that command's options; any other `--option` is an option
 *     of some iqhub command (or of a tool the hint names: systemctl, journalctl, npm…);
 *   - a config key (`uplink.caFile`, `radios.zigbee.port`) is a key of the schema.
 */

const ROOT = join(import.meta.dirname, '..', '..');

interface Node {
  path: string[];
  name: string;
  options: { long: string | null; short: string | null }[];
  commands: Node[];
}

/** Words after "iqhub" in prose that are not commands ("iqhub and the daemon", "the iqhub group"). */
const PROSE = new Set(['and', 'of', 'group', 'is', 'the', 'on', 'as', 'from', 'for', 'in', 'with', 'iqhub', 'user']);

/** Other tools whose options a hint may name. */
const OTHER_TOOLS =
  /\b(systemctl|journalctl|npm|npx|node|sudo|mosquitto|openssl|socat|systemd-[a-z]+|apt-get|docker)\b/;

/** String literals of a source file that are hints or HubError messages (concatenations joined). */
function hintTexts(file: string): { where: string; text: string }[] {
  const src = readFileSync(file, 'utf8');
  const lit = String.raw`(?:'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|\`(?:\\.|[^\`\\])*\`)`;
  const joined = `(${lit}(?:\\s*\\+\\s*${lit})*)`;
  const patterns = [
    new RegExp(String.raw`\bhint:\s*${joined}`, 'g'),
    new RegExp(String.raw`new HubError\(\s*'[^']+',\s*${joined}`, 'g'),
    new RegExp(String.raw`new InvalidArgumentError\(\s*${joined}`, 'g'),
  ];
  const out: { where: string; text: string }[] = [];
  for (const re of patterns) {
    for (const m of src.matchAll(re)) {
      const text = [...m[1]!.matchAll(new RegExp(lit, 'g'))].map((x) => x[0].slice(1, -1)).join('');
      const line = src.slice(0, m.index).split('\n').length;
      out.push({ where: `${relative(ROOT, file)}:${line}`, text });
    }
  }
  return out;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

const texts = [
  ...Object.entries(ERROR_CODES).map(([code, hint]) => ({ where: `error-codes.ts ${code}`, text: hint as string })),
  ...[...tsFiles(join(ROOT, 'src')), ...tsFiles(join(ROOT, 'provisioning'))].flatMap(hintTexts),
];

/** Problems of one text against the program; [] when every command, option and key exists. */
function problems(raw: string, tree: Node): string[] {
  // What a template literal fills in (`${store.info.path}`) is code, not a name the hint gives.
  const text = raw.replace(/\$\{[^}]*\}/g, 'X');
  const found: string[] = [];
  const all = new Set<string>();
  const visit = (n: Node) => {
    for (const o of n.options) if (o.long) all.add(o.long);
    n.commands.forEach(visit);
  };
  visit(tree);
  // `iqhub <cmd> [<sub>] [--opt …]` up to the end of the clause.
  const claimed = new Set<number>();
  for (const m of text.matchAll(/\biqhub ([a-z][a-z-]*)((?: [a-z][a-z-]*)?)([^;,.)`→]*)/g)) {
    const [, first, second, rest] = m as unknown as [string, string, string, string];
    if (PROSE.has(first)) continue;
    const cmd = tree.commands.find((c) => c.name === first);
    if (!cmd) {
      found.push(`iqhub ${first}: no such command`);
      continue;
    }
    const sub = second.trim() ? cmd.commands.find((c) => c.name === second.trim()) : undefined;
    if (cmd.commands.length > 0 && second.trim() && !sub) found.push(`iqhub ${first}${second}: no such sub-command`);
    const target = sub ?? cmd;
    const optionsStart = m.index + m[0].length - rest.length;
    for (const o of rest.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)) {
      claimed.add(optionsStart + (o.index ?? 0));
      const has = target.options.some((x) => x.long === o[0]) || tree.options.some((x) => x.long === o[0]);
      if (!has) found.push(`iqhub ${target.path.join(' ')} has no option ${o[0]}`);
    }
  }
  // Any other --option: some iqhub command's, unless the text is about another tool.
  if (!OTHER_TOOLS.test(text)) {
    for (const o of text.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)) {
      if (claimed.has(o.index ?? -1)) continue;
      if (!all.has(o[0])) found.push(`no iqhub command has the option ${o[0]}`);
    }
  }
  // Config keys: a top-level key of the schema, then a path of its properties.
  const top = Object.keys(configSchema.properties);
  const keyRe = new RegExp(
    String.raw`(?<![\w./-])(${top.join('|')})((?:\.[a-zA-Z][a-zA-Z0-9]*)+)(?![\w-]|\.[a-zA-Z])`,
    'g',
  );
  for (const m of text.matchAll(keyRe)) {
    let node: { properties?: Record<string, unknown> } | undefined = (
      configSchema.properties as Record<string, { properties?: Record<string, unknown> }>
    )[m[1]!];
    for (const part of m[2]!.slice(1).split('.')) {
      node = node?.properties?.[part] as { properties?: Record<string, unknown> } | undefined;
    }
    if (!node) found.push(`no config key ${m[1]}${m[2]}`);
  }
  return found;
}

let tree: Node;
async function program(): Promise<Node> {
  tree ??= JSON.parse((await runCli(['completion', 'json'])).stdout) as Node;
  return tree;
}

describe('every hint names a command, an option and a config key that exist', () => {
  it('found the hints to walk (error-codes.ts and the throw sites)', () => {
    expect(texts.length).toBeGreaterThan(300);
    expect(texts.some((t) => t.where.startsWith('provisioning/dev-pki.ts'))).toBe(true);
  });

  it('walks them all', async () => {
    const t = await program();
    const bad = texts.flatMap(({ where, text }) => problems(text, t).map((p) => `${where}: ${p}\n    ${text}`));
    expect(bad).toEqual([]);
  }, 60_000);

  it('catches what it is for: a missing option, a command that is not one, a config key that is not one', async () => {
    const t = await program();
    expect(problems('add --overwrite to `iqhub pki dev`', t)).toEqual(['no iqhub command has the option --overwrite']);
    expect(problems('`iqhub pki dev --overwrite`', t)).toEqual(['iqhub pki dev has no option --overwrite']);
    expect(problems('run `iqhub provision renew`', t)).toEqual(['iqhub provision renew: no such sub-command']);
    expect(problems('run `iqhub frobnicate`', t)).toEqual(['iqhub frobnicate: no such command']);
    expect(problems('set uplink.caFiles', t)).toEqual(['no config key uplink.caFiles']);
    expect(problems('set radios.zigbee.port and uplink.caFile', t)).toEqual([]);
    expect(problems('the code store.disk-full', t)).toEqual([]);
    expect(problems('with --frobnicate', t)).toEqual(['no iqhub command has the option --frobnicate']);
    expect(problems('`iqhub forget ID --force`', t)).toEqual([]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a template literal's source text, as the walk reads it
    expect(problems('the store ${store.info.path} and `iqhub reset --yes`', t)).toEqual([]);
    expect(problems('`iqhub reset --force`', t)).toEqual(['iqhub reset has no option --force']);
  });
});
