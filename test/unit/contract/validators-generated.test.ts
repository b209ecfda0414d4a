import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requestSchema } from '../../../src/contract/control-socket.js';
import { generatedValidators } from '../../helpers/generate-validators.js';
import { tempDir } from '../../helpers/tmp.js';

const ROOT = new URL('../../../', import.meta.url);

describe('the validators generated at build time', () => {
  const generated = generatedValidators();

  it('are what the schemas make now: run `npm run validators` after changing a schema', () => {
    expect(generated.map((g) => g.path).sort()).toEqual([
      'src/config/config-validator.generated.ts',
      'src/contract/control-request-validator.generated.ts',
      'src/contract/mqtt-validators.generated.ts',
      'src/contract/sync-data-validators.generated.ts',
    ]);
    for (const g of generated) {
      const committed = readFileSync(new URL(g.path, ROOT), 'utf8');
      // Not toEqual on the text: a stale file should say which one and what to do, not print 10,000 lines.
      expect(committed === g.text, `${g.path} is stale: run \`npm run validators\``).toBe(true);
    }
  });

  it('load only the runtime helpers of Ajv, never its compiler', () => {
    for (const g of generated) {
      const imports = [...g.text.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
      for (const i of imports) expect(i).toMatch(/^ajv\/dist\/runtime\/(ucs2length|equal)\.js$/);
      expect(g.text).not.toMatch(/\brequire\(|new Function|\beval\(/);
    }
  });

  it('the staleness check sees a changed schema (a bound moved in the request schema)', () => {
    const id = requestSchema.properties.id as { maximum: number };
    const saved = id.maximum;
    try {
      id.maximum = saved - 1;
      const again = generatedValidators().find((g) => g.path.endsWith('control-request-validator.generated.ts'));
      expect(again?.text).toContain(`${saved - 1}`);
      expect(again?.text).not.toBe(readFileSync(new URL(again!.path, ROOT), 'utf8'));
    } finally {
      id.maximum = saved;
    }
  });
  // Issue 15, "Memory": tsc reprints what it compiles, indenting every nested block by four spaces;
  // V8 keeps each module's source text for the life of the process, and the generated validators
  // came out of tsc at 1.67 MB, 1.03 MB of it indentation. The build copies them to dist/ as they
  // are generated instead (package.json `build:generated`, run by `npm run build`).
  it('are JavaScript as generated (no TypeScript in them): the build copies them to dist/ unchanged', () => {
    const dir = tempDir();
    for (const g of generated) {
      const file = join(dir, `${g.path.replace(/\W/g, '_')}.mjs`);
      writeFileSync(file, g.text);
      // Throws (with node's syntax error) if node cannot parse the module as it stands.
      execFileSync(process.execPath, ['--check', file], { stdio: 'pipe' });
    }
  });

  it('`npm run build` copies every generated module over what tsc emitted for it, and drops its source map', () => {
    const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { scripts: Record<string, string> };
    // After tsc (then the CLI's CommonJS entry, packaging/quick-cli.mjs, which reads no generated module).
    expect(pkg.scripts.build).toMatch(
      /^tsc -p tsconfig\.json && npm run --silent build:generated( && node packaging\/quick-cli\.mjs)?$/,
    );
    const dir = tempDir();
    for (const g of generated) {
      mkdirSync(join(dir, g.path, '..'), { recursive: true });
      writeFileSync(join(dir, g.path), g.text);
      const out = join(dir, 'dist', g.path.replace(/\.ts$/, '.js'));
      mkdirSync(join(out, '..'), { recursive: true });
      writeFileSync(out, '// what tsc emitted, indented\n');
      writeFileSync(`${out}.map`, '{}');
    }
    execFileSync('sh', ['-c', pkg.scripts['build:generated'] as string], { cwd: dir, stdio: 'pipe' });
    for (const g of generated) {
      const out = join(dir, 'dist', g.path.replace(/\.ts$/, '.js'));
      expect(readFileSync(out, 'utf8') === g.text, `${out} is not the generated text`).toBe(true);
      expect(() => readFileSync(`${out}.map`)).toThrow(/ENOENT/);
    }
  });
});
