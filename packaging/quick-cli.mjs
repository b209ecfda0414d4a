// node packaging/quick-cli.mjs [DIST [ROOT]] — the CLI's entry as CommonJS: dist/src/cli/main.cjs and the
// modules of the quick path it loads (quick-parse, socket-commands, the control client, formatting),
// each as a .cjs file beside the ES module tsc made of the same source. `npm run build` runs it
// after tsc; `/usr/bin/iqhub` and package.json's bin start main.cjs.
//
// Why: node starts an ES module entry through its ESM loader (~15-25 ms of CPU here, several times
// that on a Pi) before the first line of iq-hub runs; CommonJS loads the same ten small files
// synchronously. `iqhub status` then costs ~20 ms less (docs/operations.md, "A light command
// line"). Only the quick path is CommonJS: every other import of it (`iqhub run`'s daemon, the
// commander program, the config loader, errors and their hints) stays a dynamic `import()` of the
// ES modules, so there is one copy of each of those, as before.
//
// The modules are read from src/ (the same sources tsc checked) and transpiled one by one with
// TypeScript's own transpiler as CommonJS files (.cts under Node16: static imports become
// require(), dynamic import() stays). A static import must stay within the quick path (it becomes a
// require of the .cjs copy); a dynamic import of a quick module becomes a require too; any other
// dynamic import is left to the ESM loader. Fails, naming the file, on a diagnostic, on code a
// CommonJS module cannot hold (import.meta, top-level await), or on a static import of a module it
// cannot find.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { compileFunction } from 'node:vm';
import ts from 'typescript';

/** The sources (the repository; another tree for the tests) and the tsc output to write beside. */
const ROOT = resolve(process.argv[3] ?? join(dirname(new URL(import.meta.url).pathname), '..'));
const DIST = resolve(process.argv[2] ?? join(ROOT, 'dist'));
/** The quick path's entries: main.ts, and what main.ts loads dynamically for a socket command. */
const QUICK_ENTRIES = ['src/cli/main.ts', 'src/cli/socket-commands.ts'];

const fail = (file, what) => {
  console.error(`quick-cli: ${file}: ${what}`);
  process.exit(1);
};

/** `./x.js` imported from src file `from` → the source path, relative to ROOT. */
const sourceOf = (from, spec) => relative(ROOT, resolve(ROOT, dirname(from), spec)).replace(/\.js$/, '.ts');

/** Relative specifiers in the transpiled text: static require("…") and dynamic import("…"). */
const REQUIRE = /\brequire\("(\.\.?\/[^"]+\.js)"\)/g;
const IMPORT = /\bimport\((["'])(\.\.?\/[^"']+\.js)\1\)/g;

function transpile(file) {
  const path = join(ROOT, file);
  if (!existsSync(path)) fail(file, 'no such source file (a static import of the quick path must be a .ts source)');
  const out = ts.transpileModule(readFileSync(path, 'utf8'), {
    fileName: path.replace(/\.ts$/, '.cts'),
    reportDiagnostics: true,
    compilerOptions: {
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      sourceMap: false,
    },
  });
  for (const d of out.diagnostics ?? []) fail(file, ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  return out.outputText;
}

// The closure of the entries over static imports.
const texts = new Map();
const todo = [...QUICK_ENTRIES];
while (todo.length > 0) {
  const file = todo.pop();
  if (texts.has(file)) continue;
  const text = transpile(file);
  texts.set(file, text);
  for (const [, spec] of text.matchAll(REQUIRE)) todo.push(sourceOf(file, spec));
}

const outputs = new Map();
for (const [file, text] of texts) {
  const out = text
    .replace(REQUIRE, (_, spec) => `require("${spec.replace(/\.js$/, '.cjs')}")`)
    .replace(IMPORT, (whole, _q, spec) =>
      texts.has(sourceOf(file, spec))
        ? `Promise.resolve().then(() => require("${spec.replace(/\.js$/, '.cjs')}"))`
        : whole,
    );
  // A CommonJS module cannot hold import.meta or a top-level await: node would refuse the file at
  // start. Compiled here as node wraps it, so the build fails instead of every `iqhub` call.
  const body = out.startsWith('#!') ? out.slice(out.indexOf('\n')) : out;
  try {
    compileFunction(body, ['exports', 'require', 'module', '__filename', '__dirname'], { filename: file });
  } catch (e) {
    fail(file, `not a valid CommonJS module: ${e.message}`);
  }
  outputs.set(file, out);
}

// Only once every file is good; each atomically (a call running during the build reads whole files).
for (const [file, out] of outputs) {
  const target = join(DIST, file.replace(/\.ts$/, '.cjs'));
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(`${target}.tmp`, out, { mode: file === QUICK_ENTRIES[0] ? 0o755 : 0o644 });
  renameSync(`${target}.tmp`, target);
}
