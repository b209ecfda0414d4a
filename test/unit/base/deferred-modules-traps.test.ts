import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFERRED, deferHerdsmanExtras, deferModule, shareModule } from '../../../src/base/deferred-modules.js';
import { distFile, requireBuild } from '../../helpers/daemon.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * The stand-in of src/base/deferred-modules.ts against every way a library may use a module's
 * exports (the Proxy traps, their invariants), a module that fails to load, the module tree
 * (`children`), an ESM import, and the version check of a shared copy.
 */

const here = createRequire(import.meta.url);
const cache = here.cache;
const isStandIn = (file: string) => Boolean((cache[file] as { [DEFERRED]?: true } | undefined)?.[DEFERRED]);

let n = 0;
/** A package `lib` whose index requires `dep`, whose source is given; `dep` counts its loads. */
function withDep(depSource: string): { lib: string; dep: string; counter: string } {
  const counter = `deferTraps${++n}`;
  const root = join(tempDir(), 'node_modules');
  const lib = join(root, 'lib', 'index.js');
  const dep = join(root, 'dep', 'index.js');
  mkdirSync(dirname(lib), { recursive: true });
  mkdirSync(dirname(dep), { recursive: true });
  writeFileSync(lib, "module.exports = { dep: require('dep') };\n");
  writeFileSync(
    dep,
    `globalThis[${JSON.stringify(counter)}] = (globalThis[${JSON.stringify(counter)}] ?? 0) + 1;\n${depSource}`,
  );
  return { lib, dep, counter };
}
const loads = (counter: string) => (globalThis as Record<string, unknown>)[counter] ?? 0;
const depOf = <T>(lib: string) => (here(lib) as { dep: T }).dep;

describe('a deferred module whose exports are a class', () => {
  const source =
    'class Thing { constructor(x) { this.x = x; } static make(x) { return new Thing(x); } }\n' +
    'Thing.Thing = Thing;\nmodule.exports = Thing;\n';
  type Thing = (new (x: number) => { x: number }) & { make(x: number): { x: number }; Thing: unknown };

  it('is a function until loaded (typeof), and then `new`, a call, `instanceof`, `extends` and statics reach the class', () => {
    const { lib, dep, counter } = withDep(source);
    expect(deferModule('dep', lib, {}, 'function')).toBe(true);
    const Dep = depOf<Thing>(lib);
    expect(typeof Dep).toBe('function');
    expect(loads(counter)).toBe(0);
    const t = new Dep(3);
    expect(loads(counter)).toBe(1);
    expect(t.x).toBe(3);
    const real = here(dep) as Thing;
    expect(Object.getPrototypeOf(t)).toBe(real.prototype);
    expect(t instanceof Dep).toBe(true);
    expect(t instanceof real).toBe(true);
    expect(Dep.make(4) instanceof Dep).toBe(true);
    expect(Dep.Thing).toBe(real);
    class Sub extends Dep {
      y = 1;
    }
    const s = new Sub(5);
    expect(s instanceof Sub && s instanceof real && s.x === 5 && s.y === 1).toBe(true);
    // A class's prototype is read-only: the stand-in says so too (the Proxy invariants hold).
    expect(Object.getOwnPropertyDescriptor(Dep, 'prototype')).toMatchObject({ writable: false, configurable: false });
    expect(Reflect.ownKeys(Dep)).toEqual(Reflect.ownKeys(real));
  });

  it('a call of a deferred function reaches the function (with its `this`)', () => {
    const { lib } = withDep('module.exports = function (a) { return [this && this.tag, a]; };\n');
    deferModule('dep', lib, {}, 'function');
    const f = depOf<(a: number) => unknown>(lib);
    expect(f.call({ tag: 't' }, 2)).toEqual(['t', 2]);
  });

  it('an arrow function (no `prototype`) and a plain function (a writable one) keep the Proxy invariants', () => {
    const arrow = withDep('module.exports = (a) => a + 1;\nmodule.exports.extra = 1;\n');
    deferModule('dep', arrow.lib, {}, 'function');
    const a = depOf<((n: number) => number) & { extra: number }>(arrow.lib);
    expect(Object.keys(a)).toEqual(['extra']);
    expect(Reflect.ownKeys(a)).toEqual(Reflect.ownKeys(here(arrow.dep) as object));
    expect(Object.getOwnPropertyDescriptor(a, 'prototype')).toBeUndefined();
    expect(a(1)).toBe(2);
    const plain = withDep('module.exports = function F() { this.v = 7; };\n');
    deferModule('dep', plain.lib, {}, 'function');
    const F = depOf<new () => { v: number }>(plain.lib);
    expect(new F().v).toBe(7);
    expect(Object.getOwnPropertyDescriptor(F, 'prototype')).toMatchObject({ writable: true, configurable: false });
    expect(new F() instanceof F).toBe(true);
  });

  it('a kind that is not the real one makes the first use throw an error that says which, and the cache holds the real module', () => {
    const { lib, dep } = withDep(source);
    deferModule('dep', lib);
    const d = depOf<Record<string, unknown>>(lib);
    expect(() => d.make).toThrow(
      /dep \(.*index\.js\) exports a function, where its stand-in .* is an object: pass 'function'/,
    );
    expect(isStandIn(dep)).toBe(false);
    expect(typeof (cache[dep]?.exports as unknown)).toBe('function');
    expect(cache[lib]?.children).toContain(cache[dep]);
    expect(cache[lib]?.children.some((c) => (c as { [DEFERRED]?: true })[DEFERRED])).toBe(false);
    const other = withDep('module.exports = 42;\n');
    deferModule('dep', other.lib, {}, 'function');
    expect(() => depOf<() => void>(other.lib)()).toThrow(/exports a number, .*remove its deferModule call/);
  });

  it("herdsman's bonjour-service stand-in is a function (its exports are the Bonjour class)", () => {
    deferHerdsmanExtras();
    const index = here.resolve('zigbee-herdsman');
    const discovery = join(dirname(index), 'adapter', 'adapterDiscovery.js');
    const file = createRequire(discovery).resolve('bonjour-service');
    expect(isStandIn(file), 'bonjour-service was loaded before this test').toBe(true);
    const b = createRequire(discovery)('bonjour-service') as { Bonjour: unknown };
    expect(typeof b).toBe('function');
    expect(isStandIn(file)).toBe(true);
    expect(b.Bonjour).toBe(here(file));
  });
});

describe('the traps of a stand-in keep the Proxy invariants and the real behaviour', () => {
  it('a non-configurable export is reported as it is, and one can be defined through the stand-in', () => {
    const { lib, dep } = withDep(
      "Object.defineProperty(exports, 'fixed', { value: 1, enumerable: true });\nexports.free = 2;\n",
    );
    deferModule('dep', lib);
    const d = depOf<Record<string, unknown>>(lib);
    expect(Object.getOwnPropertyDescriptor(d, 'fixed')).toEqual({
      value: 1,
      writable: false,
      enumerable: true,
      configurable: false,
    });
    expect(d.fixed).toBe(1);
    Object.defineProperty(d, 'added', { value: 3, enumerable: true });
    expect(Object.getOwnPropertyDescriptor(d, 'added')?.configurable).toBe(false);
    expect((here(dep) as Record<string, unknown>).added).toBe(3);
    expect(Object.keys(d)).toEqual(['fixed', 'free', 'added']);
    expect(delete d.free).toBe(true);
    expect('free' in (here(dep) as object)).toBe(false);
    expect(() => {
      delete d.fixed;
    }).toThrow(TypeError);
  });

  it('frozen exports are frozen through the stand-in, and freezing the stand-in freezes the module', () => {
    const frozen = withDep('module.exports = Object.freeze({ a: 1 });\n');
    deferModule('dep', frozen.lib);
    const f = depOf<Record<string, unknown>>(frozen.lib);
    expect(Object.isFrozen(f)).toBe(true);
    expect(Object.keys(f)).toEqual(['a']);
    expect(f.a).toBe(1);
    const open = withDep('module.exports = { a: 1 };\n');
    deferModule('dep', open.lib);
    const o = depOf<Record<string, unknown>>(open.lib);
    Object.freeze(o);
    expect(Object.isFrozen(here(open.dep))).toBe(true);
    expect(Object.isFrozen(o)).toBe(true);
    expect({ ...o }).toEqual({ a: 1 });
    expect(Object.getOwnPropertyDescriptor(o, 'a')).toMatchObject({ value: 1, writable: false });
  });

  it('symbol keys, the prototype, getters (with the real exports as `this`) and writes reach the real exports', () => {
    const { lib, dep } = withDep(
      "const tag = Symbol.for('deferTraps.tag');\n" +
        'class Base { get who() { return this.name; } }\n' +
        "module.exports = Object.assign(Object.create(Base.prototype), { name: 'real', [tag]: 'sym', [Symbol.toStringTag]: 'Dep' });\n",
    );
    deferModule('dep', lib);
    const d = depOf<Record<PropertyKey, unknown>>(lib);
    expect(d[Symbol.for('deferTraps.tag')]).toBe('sym');
    expect(Object.prototype.toString.call(d)).toBe('[object Dep]');
    expect(d.who).toBe('real');
    const real = here(dep) as Record<string, unknown>;
    expect(Object.getPrototypeOf(d)).toBe(Object.getPrototypeOf(real));
    d.name = 'renamed';
    expect(real.name).toBe('renamed');
    // An object that inherits from the stand-in: a getter sees it, a write lands on it.
    const child = Object.create(d) as Record<string, unknown>;
    child.name = 'child';
    expect(child.who).toBe('child');
    expect(real.name).toBe('renamed');
    Object.setPrototypeOf(d, null);
    expect(Object.getPrototypeOf(real)).toBe(null);
  });

  it('a promise resolved with the stand-in resolves to it (no `then` invented: the real one has none)', async () => {
    const { lib, counter } = withDep('module.exports = { a: 1 };\n');
    deferModule('dep', lib);
    const d = depOf<Record<string, unknown>>(lib);
    const resolved = await Promise.resolve(d);
    expect(resolved).toBe(d);
    expect(loads(counter)).toBe(1);
    const thenable = withDep('module.exports = { then: (ok) => ok("then of the module") };\n');
    deferModule('dep', thenable.lib);
    expect(await Promise.resolve(depOf<unknown>(thenable.lib))).toBe('then of the module');
  });

  it('a built-in module is never stood in for, nor put in the cache', () => {
    const { lib } = withDep('module.exports = {};\n');
    expect(deferModule('events', lib)).toBe(false);
    expect(deferModule('node:events', lib)).toBe(false);
    expect(cache.events).toBeUndefined();
  });
});

describe('the module tree and a failure to load', () => {
  it("once loaded, the real module takes the stand-in's place among its parents' children", () => {
    const { lib, dep } = withDep('module.exports = { a: 1 };\n');
    deferModule('dep', lib);
    const d = depOf<Record<string, unknown>>(lib);
    const parent = cache[lib];
    const standIn = cache[dep];
    expect(parent?.children).toContain(standIn);
    expect(d.a).toBe(1);
    expect(parent?.children).not.toContain(standIn);
    expect(parent?.children).toContain(cache[dep]);
    expect(cache[dep]?.exports).toBe(here(dep));
  });

  it('a module that throws: a clear error (which module, that it was loaded late, the cause, its code), the cache left clean, and a later use tries again', () => {
    const { lib, dep } = withDep("throw Object.assign(new Error('dep is broken'), { code: 'E_BROKEN' });\n");
    deferModule('dep', lib);
    const d = depOf<Record<string, unknown>>(lib);
    let error: (Error & { code?: string; cause?: unknown }) | undefined;
    try {
      void d.answer;
    } catch (e) {
      error = e as typeof error;
    }
    expect(error?.message).toMatch(
      /^dep \(.*dep\/index\.js\), whose loading .*deferred-modules\.ts put off until its first use, failed to load: dep is broken$/,
    );
    expect(error?.code).toBe('E_BROKEN');
    expect((error?.cause as Error | undefined)?.message).toBe('dep is broken');
    expect(cache[dep]).toBeUndefined();
    // A require from elsewhere meets the failure, as without the stand-in.
    expect(() => createRequire(lib)('dep')).toThrow('dep is broken');
    // Fixed (a file restored): the stand-in's next use loads it.
    writeFileSync(dep, 'module.exports = { answer: 42 };\n');
    expect(d.answer).toBe(42);
    expect(isStandIn(dep)).toBe(false);
    expect(cache[lib]?.children.some((c) => (c as { [DEFERRED]?: true })[DEFERRED])).toBe(false);
  });

  it('a missing file of the real module keeps MODULE_NOT_FOUND as its code', () => {
    const { lib, dep } = withDep("require('./gone');\n");
    deferModule('dep', lib);
    const d = depOf<Record<string, unknown>>(lib);
    expect(() => d.a).toThrow(expect.objectContaining({ code: 'MODULE_NOT_FOUND' }));
    expect(cache[dep]).toBeUndefined();
  });
});

describe('an ESM import of a deferred CommonJS module (node, outside vitest)', () => {
  it('gets the named exports cjs-module-lexer finds and the real values; the module loads then, once', () => {
    requireBuild();
    const { lib, dep, counter } = withDep(
      'exports.answer = 42;\nexports.double = (n) => 2 * n;\nexports.__esModule = true;\nexports.default = "dflt";\n',
    );
    const script = `
      import { deferModule } from ${JSON.stringify(pathToFileURL(distFile('src/base/deferred-modules.js')).href)};
      import { createRequire } from 'node:module';
      const ok = deferModule('dep', ${JSON.stringify(lib)});
      const viaLib = createRequire(${JSON.stringify(lib)})(${JSON.stringify(lib)}).dep;
      const before = globalThis[${JSON.stringify(counter)}] ?? 0;
      const ns = await import(${JSON.stringify(pathToFileURL(dep).href)});
      const nsLib = await import(${JSON.stringify(pathToFileURL(lib).href)});
      console.log(JSON.stringify({ ok, before, after: globalThis[${JSON.stringify(counter)}],
        keys: Object.keys(ns).sort(), answer: ns.answer, double: ns.double(2), dflt: ns.default.default,
        same: ns.default === viaLib, libDep: nsLib.default.dep.answer, viaLib: viaLib.answer }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({
      ok: true,
      before: 0,
      after: 1,
      keys: ['__esModule', 'answer', 'default', 'double'],
      answer: 42,
      double: 4,
      dflt: 'dflt',
      same: true,
      libDep: 42,
      viaLib: 42,
    });
  });
});

describe('a shared copy (shareModule)', () => {
  function twoCopies(one: Record<string, string>, two: Record<string, string>) {
    const root = join(tempDir(), 'node_modules');
    const files: Record<string, string> = {};
    for (const [pkg, content] of [
      ['one', one],
      ['two', two],
    ] as const) {
      const dir = join(root, pkg, 'node_modules', 'dep');
      mkdirSync(dir, { recursive: true });
      for (const [name, text] of Object.entries(content)) writeFileSync(join(dir, name), text);
      files[pkg] = join(root, pkg, 'index.js');
      writeFileSync(files[pkg], "module.exports = require('dep');\n");
    }
    return files as { one: string; two: string };
  }
  const pkg = (main: string) => JSON.stringify({ name: 'dep', version: '1.0.0', main });

  it('is not made when the same version resolves to another file of the package (a patched copy)', () => {
    const { one, two } = twoCopies(
      { 'package.json': pkg('a.js'), 'a.js': 'module.exports = "one a";' },
      { 'package.json': pkg('b.js'), 'b.js': 'module.exports = "two b";', 'a.js': '' },
    );
    expect(shareModule('dep', two, one)).toBe(false);
    expect(here(two)).toBe('two b');
  });

  it('is not made when the shared copy fails to load: the library meets its own copy as before', () => {
    const { one, two } = twoCopies(
      { 'package.json': pkg('a.js'), 'a.js': 'throw new Error("one is broken");' },
      { 'package.json': pkg('a.js'), 'a.js': 'module.exports = "two a";' },
    );
    expect(shareModule('dep', two, one)).toBe(false);
    expect(here(two)).toBe('two a');
  });

  it('is not made for a package.json whose version is not a string', () => {
    const { one, two } = twoCopies(
      { 'package.json': JSON.stringify({ name: 'dep', version: 1, main: 'a.js' }), 'a.js': 'module.exports = "one";' },
      { 'package.json': JSON.stringify({ name: 'dep', version: 1, main: 'a.js' }), 'a.js': 'module.exports = "two";' },
    );
    // No name@version found up to the root (the temp dirs have no package.json): not shared.
    expect(shareModule('dep', two, one)).toBe(false);
    expect(here(two)).toBe('two');
  });
});

describe('a partial export', () => {
  it('that cannot be served (its smaller module is gone) is read from the real module instead', () => {
    const { lib, counter } = withDep('module.exports = { queue: "the real queue" };\n');
    deferModule('dep', lib, {
      queue: () => createRequire(lib)('dep/no-such-file'),
    });
    const d = depOf<Record<string, unknown>>(lib);
    expect(d.queue).toBe('the real queue');
    expect(loads(counter)).toBe(1);
  });
});
