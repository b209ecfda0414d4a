import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  checkLayers,
  checkPicture,
  type FolderRule,
  parsePicture,
  parseRules,
  type Violation,
} from '../../architecture/layers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The code the table governs: everything but the tests and the benchmarks. */
const CODE_ROOTS = ['src', 'hal', 'drivers', 'provisioning', 'sim'];

function sources(): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts')) files.set(rel, readFileSync(join(ROOT, rel), 'utf8'));
    }
  };
  for (const r of CODE_ROOTS) walk(r);
  return files;
}

const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
const rules: FolderRule[] = parseRules(doc);
const picture = parsePicture(doc);
const order = picture.map((p) => p.layer);
const real = sources();

/** The real tree with one file added or replaced. */
const withFile = (path: string, text: string) => new Map([...real, [path, text]]);
const found = (v: Violation[], rule: Violation['rule'], where: string) =>
  v.filter((x) => x.rule === rule && x.where.startsWith(where));

describe('the layering of docs/architecture.md', () => {
  it('holds for the code as it is: every import is one the table allows, no folder cycle, no oversized file or class', () => {
    const violations = checkLayers(rules, real, order);
    expect(violations.map((v) => `${v.rule} ${v.where}: ${v.message}`)).toEqual([]);
  });

  it("the picture draws each layer once, in order, with every folder of the table on its layer's line", () => {
    expect(order).toEqual([
      'base',
      'contract',
      'config',
      'port',
      'service',
      'adapter',
      'support',
      'root',
      'simulation',
      'client',
    ]);
    expect(checkPicture(picture, rules)).toEqual([]);
    // A folder drawn on another layer's line is caught.
    const moved = rules.map((r) => (r.folder === 'src/inbox' ? { ...r, layer: 'adapter' as const } : r));
    expect(checkPicture(picture, moved).map((v) => v.where)).toEqual(['src/inbox']);
  });

  it('the table names every folder of the code, and each may-import names a row', () => {
    expect(rules.length).toBeGreaterThan(20);
    const folders = new Set(rules.map((r) => r.folder));
    for (const f of ['src/contract', 'src/app', 'src/cli', 'hal', 'sim', 'drivers/zigbee'])
      expect(folders).toContain(f);
    expect(rules.find((r) => r.folder === 'src/contract')?.mayImport).toEqual(new Map([['src/base', { lazy: false }]]));
  });
});

describe('the boundary check fails on what it must refuse', () => {
  it('a service importing node:fs, node:net or node:tls', () => {
    for (const mod of ['node:fs', 'node:net', 'node:tls']) {
      const v = checkLayers(
        rules,
        withFile('src/access/leak.ts', `import { x } from '${mod}';\nexport const y = x;\n`),
      );
      expect(found(v, 'forbidden-builtin', 'src/access/leak.ts')).toHaveLength(1);
    }
  });

  it('a service importing the uplink, the control server, a driver or the simulation', () => {
    for (const target of [
      '../uplink/service.js',
      '../control-socket/socket-server.js',
      '../../drivers/zigbee/index.js',
      '../../sim/world.js',
    ]) {
      const v = checkLayers(
        rules,
        withFile('src/link/leak.ts', `import { x } from '${target}';\nexport const y = x;\n`),
      );
      expect(found(v, 'forbidden-import', 'src/link/leak.ts'), target).toHaveLength(1);
    }
  });

  it('anything in src/ outside the demo importing sim/, even lazily', () => {
    const statically = checkLayers(
      rules,
      withFile('src/app/sim.ts', "import { SimWorld } from '../../sim/world.js';\n"),
    );
    expect(found(statically, 'forbidden-import', 'src/app/sim.ts')).toHaveLength(1);
    const lazily = checkLayers(
      rules,
      withFile('src/app/sim.ts', "export const w = () => import('../../sim/world.js');\n"),
    );
    expect(found(lazily, 'forbidden-import', 'src/app/sim.ts')).toHaveLength(1);
    const demo = checkLayers(rules, withFile('src/demo/sim.ts', "import { SimWorld } from '../../sim/world.js';\n"));
    expect(found(demo, 'forbidden-import', 'src/demo/sim.ts')).toEqual([]);
  });

  it('the app importing a CLI module; a driver loaded statically where the table says lazily', () => {
    const cli = checkLayers(rules, withFile('src/app/x.ts', "import { runDiag } from '../cli/diag.js';\n"));
    expect(found(cli, 'forbidden-import', 'src/app/x.ts')).toHaveLength(1);
    const driver = checkLayers(
      rules,
      withFile('src/app/x.ts', "import { createBleBearer } from '../../drivers/ble/index.js';\n"),
    );
    expect(found(driver, 'must-be-lazy', 'src/app/x.ts')).toHaveLength(1);
    const lazy = checkLayers(
      rules,
      withFile('src/app/x.ts', "export const ble = () => import('../../drivers/ble/index.js');\n"),
    );
    expect(found(lazy, 'must-be-lazy', 'src/app/x.ts')).toEqual([]);
  });

  it('the contract importing anything but base, or a node: module', () => {
    const v = checkLayers(
      rules,
      withFile(
        'src/contract/x.ts',
        "import { createHash } from 'node:crypto';\nimport { Store } from '../store/store.js';\n",
      ),
    );
    expect(found(v, 'forbidden-builtin', 'src/contract/x.ts')).toHaveLength(1);
    expect(found(v, 'forbidden-import', 'src/contract/x.ts')).toHaveLength(1);
  });

  it("a package a folder may not use (the simulation's broker in the daemon)", () => {
    const v = checkLayers(
      rules,
      withFile('src/app/x.ts', "import { Aedes } from 'aedes';\nimport { CipherSuite } from '@hpke/core';\n"),
    );
    expect(found(v, 'forbidden-package', 'src/app/x.ts')).toHaveLength(2);
  });

  it('an import of a higher layer, even one the row lists (a service reaching up into an adapter)', () => {
    const listed = rules.map((r) =>
      r.folder === 'src/link' ? { ...r, mayImport: new Map([...r.mayImport, ['src/uplink', { lazy: false }]]) } : r,
    );
    const v = checkLayers(listed, withFile('src/link/up.ts', "import { x } from '../uplink/service.js';\n"), order);
    expect(found(v, 'upward-import', 'src/link/up.ts')).toHaveLength(1);
    expect(found(v, 'forbidden-import', 'src/link/up.ts')).toEqual([]);
  });

  it('a cycle between two folders, each import allowed on its own', () => {
    const cyclic = rules.map((r) =>
      r.folder === 'src/base' ? { ...r, mayImport: new Map([...r.mayImport, ['src/store', { lazy: false }]]) } : r,
    );
    const v = checkLayers(cyclic, withFile('src/base/x.ts', "import { Store } from '../store/store.js';\n"));
    const cycles = v.filter((x) => x.rule === 'cycle');
    expect(cycles).toHaveLength(1);
    expect(cycles[0]?.message).toContain('src/base');
    expect(cycles[0]?.message).toContain('src/store');
  });

  it('a file in no folder of the table, and a production file or class over its size', () => {
    expect(found(checkLayers(rules, withFile('lib/x.ts', 'export {};\n')), 'unknown-folder', 'lib/x.ts')).toHaveLength(
      1,
    );
    const long = `${'export const a = 1;\n'.repeat(601)}`;
    expect(found(checkLayers(rules, withFile('src/link/long.ts', long)), 'file-size', 'src/link/long.ts')).toHaveLength(
      1,
    );
    const bigClass = `export class Big {\n${'  a = 1;\n'.repeat(400)}}\n`;
    expect(
      found(checkLayers(rules, withFile('src/link/big.ts', bigClass)), 'class-size', 'src/link/big.ts'),
    ).toHaveLength(1);
  });
});
