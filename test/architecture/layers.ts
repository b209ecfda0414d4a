import { builtinModules } from 'node:module';
import { dirname, join, normalize, relative } from 'node:path';
import ts from 'typescript';

/**
 * The layering of docs/architecture.md, checked against the import graph. The rules are read
 * from the doc's folder table (folder, layer, may import, packages), so the doc and the check
 * cannot drift: a new import that crosses the layering fails `npm test`, and so does a table
 * that no longer describes the code.
 */

export type Layer =
  | 'base'
  | 'contract'
  | 'config'
  | 'port'
  | 'service'
  | 'adapter'
  | 'support'
  | 'root'
  | 'client'
  | 'simulation';
const LAYERS: readonly Layer[] = [
  'base',
  'contract',
  'config',
  'port',
  'service',
  'adapter',
  'support',
  'root',
  'client',
  'simulation',
];

export interface FolderRule {
  folder: string;
  layer: Layer;
  /** Folders this one may import; `lazy`: only with `import()` (loaded when configured). */
  mayImport: Map<string, { lazy: boolean }>;
  /** npm packages it may import (a trailing `*` allows a scope or subpaths). */
  packages: string[];
}

/** Node built-ins that do I/O: a service gets its I/O through ports and the store, never directly. */
export const SERVICE_FORBIDDEN_BUILTINS = [
  'fs',
  'fs/promises',
  'net',
  'tls',
  'dgram',
  'http',
  'https',
  'http2',
  'child_process',
  'worker_threads',
];

/** The folders whose files must stay small (the daemon's own code; the simulation is held to it too, as a goal). */
export const PRODUCTION_ROOTS = ['src', 'hal', 'drivers', 'provisioning'];
export const MAX_FILE_LINES = 600;
export const MAX_CLASS_LINES = 400;

export interface Edge {
  from: string;
  /** A repository-relative .ts path, or a package / node built-in specifier. */
  to: string;
  kind: 'static' | 'type' | 'dynamic';
  /** A relative specifier (a file of the repository), not a package or built-in. */
  relative: boolean;
  line: number;
}

export interface Violation {
  rule:
    | 'unknown-folder'
    | 'forbidden-import'
    | 'upward-import'
    | 'must-be-lazy'
    | 'forbidden-package'
    | 'forbidden-builtin'
    | 'cycle'
    | 'file-size'
    | 'class-size'
    | 'table';
  where: string;
  message: string;
}

/** Reads the folder table of docs/architecture.md. Throws if the table is missing or malformed. */
export function parseRules(markdown: string): FolderRule[] {
  const lines = markdown.split('\n');
  const header = lines.findIndex((l) =>
    /^\|\s*folder\s*\|\s*layer\s*\|\s*owns\s*\|\s*may import\s*\|\s*packages\s*\|/.test(l),
  );
  if (header < 0)
    throw new Error('docs/architecture.md has no table "| folder | layer | owns | may import | packages |"');
  const rules: FolderRule[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const cells = splitRow(line);
    if (cells.length !== 5) throw new Error(`architecture table row has ${cells.length} cells, not 5: ${line}`);
    const [folderCell = '', layerCell = '', , mayCell = '', packagesCell = ''] = cells;
    const folder = /`([^`]+)`/.exec(folderCell)?.[1]?.replace(/\/$/, '');
    if (!folder) throw new Error(`architecture table row without a folder: ${line}`);
    const layer = layerCell.trim() as Layer;
    if (!LAYERS.includes(layer))
      throw new Error(`architecture table: ${folder} has layer "${layerCell.trim()}", not one of ${LAYERS.join(', ')}`);
    const mayImport = new Map<string, { lazy: boolean }>();
    for (const m of mayCell.matchAll(/`([^`]+)`(\s*\(lazy\))?/g))
      mayImport.set((m[1] ?? '').replace(/\/$/, ''), { lazy: Boolean(m[2]) });
    const packages = [...packagesCell.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
    rules.push({ folder, layer, mayImport, packages });
  }
  return rules;
}

/**
 * The picture at the top of docs/architecture.md: one line per layer, top to bottom, naming its
 * folders. Returns the layers bottom first, each with the words of its line.
 */
export function parsePicture(markdown: string): { layer: Layer; words: string[] }[] {
  const block = /```\n([\s\S]*?)```/.exec(markdown)?.[1];
  if (!block) throw new Error('docs/architecture.md has no picture (a code block) before its table');
  const layers: { layer: Layer; words: string[] }[] = [];
  for (const line of block.split('\n')) {
    const m = /^ ([a-z]+)\s+(.*)$/.exec(line);
    if (m && LAYERS.includes(m[1] as Layer)) layers.push({ layer: m[1] as Layer, words: (m[2] ?? '').split(/\s+/) });
  }
  return layers.reverse();
}

/**
 * Where the picture and the table disagree: a layer drawn twice or missing, a folder not drawn
 * on its layer's line.
 */
export function checkPicture(picture: { layer: Layer; words: string[] }[], rules: readonly FolderRule[]): Violation[] {
  const out: Violation[] = [];
  const drawn = picture.map((p) => p.layer);
  for (const layer of LAYERS) {
    const n = drawn.filter((l) => l === layer).length;
    if (n !== 1)
      out.push({ rule: 'table', where: layer, message: `the picture draws the ${layer} layer ${n} times, not once` });
  }
  for (const r of rules) {
    if (!picture.find((p) => p.layer === r.layer)?.words.includes(r.folder)) {
      out.push({
        rule: 'table',
        where: r.folder,
        message: `${r.folder} (${r.layer}) is not drawn on the ${r.layer} line of the picture`,
      });
    }
  }
  return out;
}

/** Table cells, with `|` inside backticks kept. */
function splitRow(line: string): string[] {
  const cells: string[] = [];
  let cur = '';
  let code = false;
  for (const ch of line.trim().slice(1, -1)) {
    if (ch === '`') code = !code;
    if (ch === '|' && !code) {
      cells.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  cells.push(cur.trim());
  return cells;
}

/** The row a file belongs to: the longest folder that contains it. */
export function folderOf(file: string, rules: readonly FolderRule[]): FolderRule | undefined {
  let best: FolderRule | undefined;
  for (const r of rules) {
    if ((file === r.folder || file.startsWith(`${r.folder}/`)) && (!best || r.folder.length > best.folder.length))
      best = r;
  }
  return best;
}

/** Parsed files, by path: the check runs on the same tree many times over (its own tests). */
const parsed = new Map<string, { text: string; edges: Edge[]; sizes: Sizes }>();

function parse(file: string, text: string): { edges: Edge[]; sizes: Sizes } {
  const hit = parsed.get(file);
  if (hit?.text === text) return hit;
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const result = { text, edges: edgesOf(file, sf), sizes: sizesIn(sf, text) };
  parsed.set(file, result);
  return result;
}

interface Sizes {
  lines: number;
  classes: { name: string; lines: number }[];
}

/** Every import of one source file: static, type-only and dynamic (`import()`, `typeof import()`). */
export function importsOf(file: string, text: string): Edge[] {
  return parse(file, text).edges;
}

function edgesOf(file: string, sf: ts.SourceFile): Edge[] {
  const edges: Edge[] = [];
  const add = (spec: string, kind: Edge['kind'], node: ts.Node) => {
    const relative = spec.startsWith('.');
    const to = relative ? normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts') : spec;
    edges.push({ from: file, to, kind, relative, line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
  };
  const visit = (n: ts.Node) => {
    if (
      (ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) &&
      n.moduleSpecifier &&
      ts.isStringLiteral(n.moduleSpecifier)
    ) {
      const typeOnly = ts.isImportDeclaration(n) ? Boolean(n.importClause?.isTypeOnly) : n.isTypeOnly;
      add(n.moduleSpecifier.text, typeOnly ? 'type' : 'static', n);
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = n.arguments;
      if (arg && ts.isStringLiteralLike(arg)) add(arg.text, 'dynamic', n);
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      add(n.argument.literal.text, 'dynamic', n);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return edges;
}

/** Lines of the file, and of each class longer than the limit. */
export function sizesOf(file: string, text: string): Sizes {
  return parse(file, text).sizes;
}

function sizesIn(sf: ts.SourceFile, text: string): Sizes {
  const classes: { name: string; lines: number }[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isClassDeclaration(n) || ts.isClassExpression(n)) {
      const from = sf.getLineAndCharacterOfPosition(n.getStart()).line;
      const to = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
      classes.push({ name: n.name?.text ?? '(anonymous)', lines: to - from + 1 });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return { lines: text.split('\n').length - (text.endsWith('\n') ? 1 : 0), classes };
}

const BUILTINS = new Set(builtinModules);

function packageOf(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? spec);
}

function allowsPackage(rule: FolderRule, spec: string): boolean {
  const pkg = packageOf(spec);
  return rule.packages.some((p) => (p.endsWith('*') ? spec.startsWith(p.slice(0, -1)) : p === pkg));
}

/**
 * Every way `files` (repository-relative path → source text) break `rules`: an import of a folder
 * not in the row's list, a lazy folder imported statically, a package or node built-in the row
 * may not use, a cycle between folders, a production file or class over its size.
 */
export function checkLayers(
  rules: readonly FolderRule[],
  files: ReadonlyMap<string, string>,
  order: readonly Layer[] = LAYERS,
): Violation[] {
  const out: Violation[] = [];
  const rank = (l: Layer) => order.indexOf(l);
  const graph = new Map<string, Set<string>>();
  for (const r of rules) {
    for (const target of r.mayImport.keys()) {
      if (!rules.some((x) => x.folder === target)) {
        out.push({
          rule: 'table',
          where: r.folder,
          message: `${r.folder} may import ${target}, which is not a row of the table`,
        });
      }
    }
  }
  for (const [file, text] of files) {
    const rule = folderOf(file, rules);
    if (!rule) {
      out.push({
        rule: 'unknown-folder',
        where: file,
        message: `${file} is in no folder of the table in docs/architecture.md`,
      });
      continue;
    }
    for (const e of importsOf(file, text)) {
      const at = `${file}:${e.line}`;
      if (!e.relative && (e.to.startsWith('node:') || BUILTINS.has(e.to))) {
        const name = e.to.replace(/^node:/, '');
        if (rule.layer === 'contract') {
          out.push({
            rule: 'forbidden-builtin',
            where: at,
            message: `${rule.folder} (contract) imports ${e.to}: the contract uses no node: module`,
          });
        } else if (rule.layer === 'service' && SERVICE_FORBIDDEN_BUILTINS.includes(name)) {
          out.push({
            rule: 'forbidden-builtin',
            where: at,
            message: `${rule.folder} (service) imports ${e.to}: services do no I/O of their own`,
          });
        }
        continue;
      }
      if (!e.relative) {
        if (!allowsPackage(rule, e.to)) {
          out.push({
            rule: 'forbidden-package',
            where: at,
            message: `${rule.folder} imports the package ${packageOf(e.to)}, not in its row's packages`,
          });
        }
        continue;
      }
      const target = folderOf(e.to, rules);
      if (!target) {
        out.push({
          rule: 'unknown-folder',
          where: at,
          message: `${file} imports ${e.to}, which is in no folder of the table`,
        });
        continue;
      }
      if (target.folder === rule.folder) continue;
      if (!graph.has(rule.folder)) graph.set(rule.folder, new Set());
      graph.get(rule.folder)?.add(target.folder);
      if (rank(target.layer) > rank(rule.layer)) {
        out.push({
          rule: 'upward-import',
          where: at,
          message: `${rule.folder} (${rule.layer}) imports ${target.folder}, of the higher layer ${target.layer}`,
        });
      }
      const allowed = rule.mayImport.get(target.folder);
      if (!allowed) {
        out.push({
          rule: 'forbidden-import',
          where: at,
          message: `${rule.folder} (${rule.layer}) may not import ${target.folder} (${target.layer}): ${e.to}`,
        });
      } else if (allowed.lazy && e.kind === 'static') {
        out.push({
          rule: 'must-be-lazy',
          where: at,
          message: `${rule.folder} may import ${target.folder} only lazily (import()), not statically: ${e.to}`,
        });
      }
    }
    // Generated code (the validators compiled at build time) is not split by hand.
    if (PRODUCTION_ROOTS.some((root) => file.startsWith(`${root}/`)) && !file.endsWith('.generated.ts')) {
      const sizes = sizesOf(file, text);
      if (sizes.lines > MAX_FILE_LINES) {
        out.push({
          rule: 'file-size',
          where: file,
          message: `${file} has ${sizes.lines} lines (at most ${MAX_FILE_LINES}): split it by responsibility`,
        });
      }
      for (const c of sizes.classes.filter((x) => x.lines > MAX_CLASS_LINES)) {
        out.push({
          rule: 'class-size',
          where: file,
          message: `class ${c.name} in ${file} has ${c.lines} lines (at most ${MAX_CLASS_LINES})`,
        });
      }
    }
  }
  for (const cycle of folderCycles(graph)) {
    out.push({
      rule: 'cycle',
      where: cycle[0] ?? '',
      message: `folders import each other: ${cycle.join(' → ')} → ${cycle[0]}`,
    });
  }
  return out;
}

/** The strongly connected groups of more than one folder (Tarjan), each as a list of folders. */
export function folderCycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  const strong = (v: string) => {
    indices.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) ?? 0, indices.get(w) ?? 0));
      }
    }
    if (low.get(v) === indices.get(v)) {
      const group: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1) groups.push(group.sort());
    }
  };
  for (const v of graph.keys()) if (!indices.has(v)) strong(v);
  return groups;
}

/** Repository-relative path of an absolute one. */
export function repoPath(root: string, abs: string): string {
  return relative(root, abs).split('\\').join('/');
}
