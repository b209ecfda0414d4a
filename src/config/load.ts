import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type * as Yaml from 'yaml';
import { HubError } from '../base/errors.js';
import { validateConfig } from './config-validator.generated.js';
import { DEFAULT_CONFIG_PATH } from './paths.js';
import { configSchema, type HubConfig } from './schema.js';

export { DEFAULT_CONFIG_PATH };

/**
 * How far YAML aliases may expand (the `yaml` package's `maxAliasCount`). A config needs none; a
 * few are harmless; a "billion laughs" file nests them to exhaust memory and is refused.
 */
export const MAX_ALIAS_COUNT = 50;

/** configSchema compiled at build time (test/helpers/generate-validators.ts): nothing is compiled at run time. */
const validate = validateConfig as ValidateFunction<HubConfig>;

export interface LoadedConfig {
  config: HubConfig;
  /** The file it came from, or null when defaults were used. */
  source: string | null;
}

/**
 * Load and validate the configuration. An explicitly named file must exist; the default path
 * may be absent (defaults are used); `null` means defaults without looking for a file. Any problem throws a HubError listing every error found,
 * each with the key, the value, its line and what is expected.
 */
export function loadConfig(path: string | null | undefined, overrides: Partial<HubConfig> = {}): LoadedConfig {
  if (path === null) return { config: parseConfig('{}', '(defaults)', overrides), source: null };
  const file = path ?? DEFAULT_CONFIG_PATH;
  // `--config "$CONF"` with CONF unset: say that, not "cannot read config file : ENOENT".
  if (file === '')
    throw new HubError('config.unreadable', '--config was given an empty path', {
      hint: 'give the config file (/etc/iq-hub/config.yaml on a hub), or leave --config out',
    });
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && path === undefined) {
      return { config: parseConfig('{}', '(defaults)', overrides), source: null };
    }
    throw new HubError('config.unreadable', `cannot read config file ${file}: ${code ?? String(e)}`, {
      hint: code === 'ENOENT' ? 'check the path given with --config' : 'check the file permissions',
    });
  }
  return { config: parseConfig(text, file, overrides), source: file };
}

type YamlModule = typeof Yaml;
type Doc = ReturnType<YamlModule['parseDocument']>;

/**
 * The `yaml` package is needed while a config is read (at start, or by a CLI command), never after:
 * it is required for that read, and its modules are dropped from the module cache when it is done,
 * so that V8 can collect them (issue 15, "Memory": ~0.3 MB of source text, ~0.8 MB of heap with
 * what its code builds). A static import would keep them for the life of the daemon. Modules of it
 * that were loaded before (by someone else in the process) are left as they were.
 */
function withYaml<T>(use: (yaml: YamlModule) => T): T {
  // A require of its own each time: the module it makes stands as the parent of what it loads.
  const req = createRequire(import.meta.url);
  const dir = dirname(req.resolve('yaml/package.json')) + sep;
  const before = new Set(Object.keys(req.cache));
  try {
    return use(req('yaml') as YamlModule);
  } finally {
    for (const k of Object.keys(req.cache)) if (k.startsWith(dir) && !before.has(k)) delete req.cache[k];
  }
}

/** Parse YAML text and validate it. `where` names the source in messages. */
export function parseConfig(text: string, where: string, overrides: Partial<HubConfig> = {}): HubConfig {
  return withYaml((yaml) => parseWith(yaml, text, where, overrides));
}

function parseWith(yaml: YamlModule, text: string, where: string, overrides: Partial<HubConfig>): HubConfig {
  const lineCounter = new yaml.LineCounter();
  const doc = yaml.parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((err) => {
      const pos = lineCounter.linePos(err.pos[0]);
      return `  - ${where}:${pos.line}:${pos.col}: ${err.message.split('\n')[0]}`;
    });
    throw new HubError('config.syntax', `config file is not valid YAML:\n${lines.join('\n')}`, {
      hint: 'fix the YAML syntax at the line shown',
    });
  }
  const raw: unknown = doc.contents === null ? {} : toJS(yaml, doc, lineCounter, where);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new HubError('config.invalid', `${where}: the config must be a mapping of keys to values`, {
      hint: 'see docs/configuration.md for an example',
    });
  }
  const data = { ...(raw as Record<string, unknown>), ...overrides };
  if (validate(data)) return normalizeConfig(data);

  // anyOf reports each failed branch and then itself: keep only its own summary; `if` only points at `then`.
  const errors = (validate.errors ?? []).filter((e) => !e.schemaPath.includes('/anyOf/') && e.keyword !== 'if');
  const lines = [
    ...new Set(errors.map((err) => `  - ${describe(err, data, where, (p) => lineOf(yaml, doc, lineCounter, p))}`)),
  ];
  throw new HubError(
    'config.invalid',
    `config is invalid (${lines.length} problem${lines.length === 1 ? '' : 's'}):\n${lines.join('\n')}`,
    {
      hint: 'see docs/configuration.md for every key, its type and its default',
    },
  );
}

/** The one spelling the code reads of values the schema accepts in several (uplink.mqttVersion: 5, "5", 4, "4", "3.1.1"). */
function normalizeConfig(c: HubConfig): HubConfig {
  const version = String(c.uplink.mqttVersion);
  c.uplink.mqttVersion = version === '5' ? '5' : '3.1.1';
  return c;
}

/** The document as plain data, refusing aliases that expand too far (with the file and line). */
function toJS(yaml: YamlModule, doc: Doc, lc: Yaml.LineCounter, where: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    if (!(e instanceof ReferenceError)) throw e;
    let first: number | undefined;
    let count = 0;
    yaml.visit(doc, {
      Alias(_, node) {
        count++;
        first ??= node.range?.[0];
      },
    });
    const at = first === undefined ? where : `${where}:${lc.linePos(first).line}`;
    throw new HubError(
      'config.yaml-aliases',
      `${at}: the config's YAML aliases expand too far (${count} aliases, more than ${MAX_ALIAS_COUNT} nodes once expanded): refused as a resource exhaustion attack`,
      { hint: `write the values out in ${where} instead of \`*alias\` references (a config needs no aliases)` },
    );
  }
}

function pathOf(instancePath: string): string[] {
  return instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function lineOf(yaml: YamlModule, doc: Doc, lc: Yaml.LineCounter, path: string[]): number | undefined {
  const node = path.length === 0 ? doc.contents : doc.getIn(path, true);
  const range = (node as { range?: [number, number, number] } | undefined)?.range;
  if (!range) {
    // The key may be reported at its parent (unknown key): look up the key node itself.
    const parent = path.length <= 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
    if (yaml.isMap(parent)) {
      const pair = parent.items.find((it) => String((it.key as { value?: unknown })?.value) === path.at(-1));
      const keyRange = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
      if (keyRange) return lc.linePos(keyRange[0]).line;
    }
    return undefined;
  }
  return lc.linePos(range[0]).line;
}

function valueAt(data: unknown, path: string[]): unknown {
  let cur: unknown = data;
  for (const p of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function show(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function describe(
  err: ErrorObject,
  data: unknown,
  where: string,
  line: (path: string[]) => number | undefined,
): string {
  const path = pathOf(err.instancePath);
  if (err.keyword === 'additionalProperties') {
    const extra = String((err.params as { additionalProperty: string }).additionalProperty);
    const keyPath = [...path, extra];
    const l = line(keyPath);
    const known = Object.keys(schemaAt(path)?.properties ?? {});
    const guess = closest(extra, known);
    return `${where}${l ? `:${l}` : ''}: unknown key \`${keyPath.join('.')}\`${guess ? ` (did you mean \`${[...path, guess].join('.')}\`?)` : ''}; known keys here: ${known.join(', ')}`;
  }
  const key = path.length ? path.join('.') : '(top level)';
  const l = line(path);
  const at = `${where}${l ? `:${l}` : ''}: key \`${key}\``;
  const value = show(valueAt(data, path));
  const schema = schemaAt(path) as { description?: string } | undefined;
  switch (err.keyword) {
    case 'required': {
      const missing = [...path, String((err.params as { missingProperty: string }).missingProperty)].join('.');
      const when = path[0] === 'uplink' ? ' when uplink.enabled is true' : '';
      return `${where}${l ? `:${l}` : ''}: key \`${missing}\` is required${when}`;
    }
    case 'type':
      if (path.length >= 2 && path[0] === 'uplink' && value === 'null') {
        return `${at} is required when uplink.enabled is true (${schema?.description ?? 'see docs/configuration.md'})`;
      }
      return `${at} has value ${value}, expected ${(err.params as { type: string }).type}`;
    case 'enum':
      return `${at} has value ${value}, expected ${
        schema?.description ??
        `one of: ${[...new Set((err.params as { allowedValues: unknown[] }).allowedValues.map(String))].join(', ')}`
      }`;
    case 'pattern':
    case 'minLength':
    case 'anyOf':
      return `${at} has value ${value}, expected ${schema?.description ?? err.message}`;
    case 'minimum':
    case 'maximum':
      return `${at} has value ${value}, expected a number ${err.message}`;
    default:
      return `${at} has value ${value}: ${err.message}`;
  }
}

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  description?: string;
}

function schemaAt(path: string[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = configSchema as unknown as SchemaNode;
  for (const p of path) node = node?.properties?.[p];
  return node;
}

/** The known key nearest to a typo, if it is near enough to be a plausible slip. */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}
