import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { registerSimMethods } from '../../../sim/control-methods.js';
import {
  registerAccessMethods,
  registerCommandMethods,
  registerLinkMethods,
  registerRadioMethods,
} from '../../../src/app/control-methods.js';
import { registerFirmwareMethods } from '../../../src/app/firmware-wiring.js';
import { registerHubBackupMethod } from '../../../src/app/hub-backup-method.js';
import { paramCheck } from '../../../src/control-socket/param-check.js';
import type { ControlServer, MethodSpec } from '../../../src/control-socket/socket-server.js';

/** Every params schema the hub and the simulated site register, read with a recording server. */
function allSchemas(): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  const recorder = {
    register(method: string, spec: MethodSpec) {
      out.set(method, { type: 'object', additionalProperties: false, ...spec.params });
    },
  } as unknown as ControlServer;
  const none = {} as never;
  registerLinkMethods(recorder, none);
  registerAccessMethods(recorder, undefined);
  registerCommandMethods(recorder, undefined);
  registerRadioMethods(recorder, () => undefined);
  registerFirmwareMethods(recorder, none, { clock: none, maxImageBytes: 512 * 1024 });
  registerHubBackupMethod(recorder, none);
  registerSimMethods(recorder, none);
  return out;
}

/** Seeded, so a failure is the same on every run. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Values around each keyword's edge, of the right type and of others. */
function candidates(s: Record<string, unknown>): unknown[] {
  const out: unknown[] = [null, true, 7, -1, 1.5, 'x', '', [], {}, ['L1'], 'bad/id', 'L1', '😀😀😀😀'];
  if (Array.isArray(s.enum)) out.push(...(s.enum as unknown[]), 'nope');
  for (const k of ['minLength', 'maxLength'] as const) {
    const n = s[k];
    if (typeof n === 'number')
      out.push('a'.repeat(n), 'a'.repeat(n + 1), 'a'.repeat(Math.max(0, n - 1)), '😀'.repeat(n));
  }
  for (const k of ['minimum', 'maximum'] as const) {
    const n = s[k];
    if (typeof n === 'number') out.push(n, n - 1, n + 1, n + 0.5);
  }
  for (const k of ['minItems', 'maxItems'] as const) {
    const n = s[k];
    if (typeof n === 'number')
      out.push(Array(n).fill('L1'), Array(n + 1).fill('L1'), Array(Math.max(0, n - 1)).fill('x/'));
  }
  if (typeof s.pattern === 'string') out.push('0'.repeat(64), 'AAAA', 'ab+/==', 'a b', '\u0000');
  return out;
}

const pick = <T>(r: () => number, xs: T[]): T => xs[Math.floor(r() * xs.length)] as T;

describe('the control params check', () => {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
  const schemas = allSchemas();

  it('knows every method the hub and the simulated site register', () => {
    expect(schemas.size).toBeGreaterThanOrEqual(25);
    expect([...schemas.keys()]).toEqual(
      expect.arrayContaining(['locks.open', 'firmware.upload', 'sim.act', 'hub.backup']),
    );
  });

  it('reports exactly what Ajv reports (keyword, path, params, message, order) for every method, on edge and random params', () => {
    const r = prng(15);
    let compared = 0;
    for (const [method, schema] of schemas) {
      const ours = paramCheck(schema, method);
      const theirs = ajv.compile(schema);
      const props = Object.entries((schema.properties ?? {}) as Record<string, Record<string, unknown>>);
      const inputs: Record<string, unknown>[] = [{}, { extra: 1 }, { 'a/b~c': 1 }];
      for (const [name, s] of props) for (const v of candidates(s)) inputs.push({ [name]: v });
      for (let i = 0; i < 300; i++) {
        const o: Record<string, unknown> = {};
        for (const [name, s] of props) if (r() < 0.7) o[name] = pick(r, candidates(s));
        if (r() < 0.2) o[pick(r, ['extra', 'lockid', '__x'])] = 1;
        inputs.push(o);
      }
      for (const input of inputs) {
        const a = structuredClone(input);
        const b = structuredClone(input);
        const okOurs = ours(a);
        const okTheirs = theirs(b);
        const strip = (es: typeof ours.errors) =>
          (es ?? []).map((e) => ({
            instancePath: e.instancePath,
            schemaPath: e.schemaPath,
            keyword: e.keyword,
            params: e.params,
            message: e.message,
          }));
        expect({ method, input, ok: okOurs, errors: strip(ours.errors) }).toEqual({
          method,
          input,
          ok: okTheirs,
          errors: strip(theirs.errors as typeof ours.errors),
        });
        expect(a).toEqual(b);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(8000);
  });

  it('refuses at registration a schema it does not fully check, rather than letting a value through', () => {
    const bad: Record<string, unknown>[] = [
      { type: 'object', additionalProperties: false, properties: { a: { type: 'string', format: 'email' } } },
      { type: 'object', additionalProperties: false, properties: { a: { type: 'object' } } },
      { type: 'object', additionalProperties: false, properties: { a: { anyOf: [{ type: 'string' }] } } },
      { type: 'object', additionalProperties: false, properties: { a: { type: 'integer', multipleOf: 2 } } },
      { type: 'object', additionalProperties: true, properties: {} },
      { type: 'object', additionalProperties: false, properties: {}, patternProperties: {} },
      { type: 'object', additionalProperties: false, properties: {}, required: ['missing'] },
    ];
    for (const s of bad) expect(() => paramCheck(s, 'm'), JSON.stringify(s)).toThrow(/control method m/);
  });

  it('compiles nothing: the module imports no Ajv at run time', async () => {
    const text = (await import('node:fs')).readFileSync(
      new URL('../../../src/control-socket/param-check.ts', import.meta.url),
      'utf8',
    );
    expect(text).not.toMatch(/^import (?!type ).*from 'ajv'/m);
  });
});
