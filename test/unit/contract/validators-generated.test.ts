import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { requestSchema } from '../../../src/contract/control-socket.js';
import { generatedValidators } from '../../helpers/generate-validators.js';

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
});
