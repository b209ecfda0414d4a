import type { ErrorObject } from 'ajv';

/**
 * The control methods' params, checked without compiling a schema at run time. A method's params
 * are a flat object whose schema uses a small closed set of JSON Schema keywords; this checks that
 * set directly and reports each problem as Ajv does with `allErrors` (same keyword, path, params,
 * message and order, so the server's words stay the same: test/unit/control-socket/param-check.test.ts
 * compares both on every method's schema). A schema with any other keyword is refused when the
 * method is registered, so nothing is silently left unchecked.
 */

export type ParamCheck = ((data: Record<string, unknown>) => boolean) & { errors: ErrorObject[] | null };

interface ValueSchema {
  type?: 'string' | 'integer' | 'number' | 'boolean' | 'array' | 'object';
  enum?: readonly unknown[];
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  items?: ValueSchema;
  default?: unknown;
}

const VALUE_KEYWORDS: Record<string, readonly string[]> = {
  string: ['minLength', 'maxLength', 'pattern'],
  integer: ['minimum', 'maximum'],
  number: ['minimum', 'maximum'],
  boolean: [],
  array: ['minItems', 'maxItems', 'items'],
  object: [],
};
const COMMON = ['type', 'enum', 'default', 'description'];
const OBJECT_KEYWORDS = ['type', 'additionalProperties', 'properties', 'required'];

/** Throws (at registration, a programming error) for a schema outside the supported set. */
function checkValueSchema(s: ValueSchema, where: string): void {
  if (typeof s !== 'object' || s === null) throw new Error(`${where}: not a schema`);
  if (s.type === undefined && s.enum === undefined) throw new Error(`${where}: needs a type or an enum`);
  if (s.type !== undefined && !(s.type in VALUE_KEYWORDS)) throw new Error(`${where}: type ${s.type} not supported`);
  const allowed = [...COMMON, ...(s.type ? (VALUE_KEYWORDS[s.type] ?? []) : [])];
  for (const k of Object.keys(s)) {
    if (!allowed.includes(k)) throw new Error(`${where}: keyword ${k} is not supported by the param check`);
  }
  if (s.type === 'object') throw new Error(`${where}: nested objects are not supported by the param check`);
  if (s.items) checkValueSchema(s.items, `${where}.items`);
}

const isType: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  integer: (v) => typeof v === 'number' && Number.isFinite(v) && v % 1 === 0,
  number: (v) => typeof v === 'number' && Number.isFinite(v),
  boolean: (v) => typeof v === 'boolean',
  array: (v) => Array.isArray(v),
  object: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
};

/** Length in code points, as JSON Schema counts it (Ajv's ucs2length). */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function err(
  instancePath: string,
  schemaPath: string,
  keyword: string,
  params: Record<string, unknown>,
  message: string,
): ErrorObject {
  return { instancePath, schemaPath, keyword, params, message };
}

/** Checks one value; appends its problems in Ajv's order (type, then the keywords of the data's type, then enum). */
function checkValue(
  s: ValueSchema,
  v: unknown,
  path: string,
  sp: string,
  patterns: Map<string, RegExp>,
  out: ErrorObject[],
): void {
  if (s.type !== undefined && !isType[s.type]?.(v)) {
    out.push(err(path, `${sp}/type`, 'type', { type: s.type }, `must be ${s.type}`));
  }
  // Each keyword applies to the data of its own type (an integer's bounds to a number that is not whole too).
  if (typeof v === 'string') {
    if (s.maxLength !== undefined && codePoints(v) > s.maxLength) {
      out.push(
        err(
          path,
          `${sp}/maxLength`,
          'maxLength',
          { limit: s.maxLength },
          `must NOT have more than ${s.maxLength} characters`,
        ),
      );
    }
    if (s.minLength !== undefined && codePoints(v) < s.minLength) {
      out.push(
        err(
          path,
          `${sp}/minLength`,
          'minLength',
          { limit: s.minLength },
          `must NOT have fewer than ${s.minLength} characters`,
        ),
      );
    }
    if (s.pattern !== undefined && !patterns.get(s.pattern)?.test(v)) {
      out.push(err(path, `${sp}/pattern`, 'pattern', { pattern: s.pattern }, `must match pattern "${s.pattern}"`));
    }
  } else if (typeof v === 'number' && Number.isFinite(v)) {
    if (s.maximum !== undefined && !(v <= s.maximum)) {
      out.push(
        err(path, `${sp}/maximum`, 'maximum', { comparison: '<=', limit: s.maximum }, `must be <= ${s.maximum}`),
      );
    }
    if (s.minimum !== undefined && !(v >= s.minimum)) {
      out.push(
        err(path, `${sp}/minimum`, 'minimum', { comparison: '>=', limit: s.minimum }, `must be >= ${s.minimum}`),
      );
    }
  } else if (Array.isArray(v)) {
    if (s.maxItems !== undefined && v.length > s.maxItems) {
      out.push(
        err(path, `${sp}/maxItems`, 'maxItems', { limit: s.maxItems }, `must NOT have more than ${s.maxItems} items`),
      );
    }
    if (s.minItems !== undefined && v.length < s.minItems) {
      out.push(
        err(path, `${sp}/minItems`, 'minItems', { limit: s.minItems }, `must NOT have fewer than ${s.minItems} items`),
      );
    }
    if (s.items) {
      const items = s.items;
      for (let i = 0; i < v.length; i++) checkValue(items, v[i], `${path}/${i}`, `${sp}/items`, patterns, out);
    }
  }
  if (s.enum !== undefined && !s.enum.some((e) => e === v)) {
    out.push(err(path, `${sp}/enum`, 'enum', { allowedValues: s.enum }, 'must be equal to one of the allowed values'));
  }
}

/** JSON Pointer escaping of a member name, as Ajv writes instance paths. */
const pointer = (name: string) => name.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * A check for a method's params schema: `{ type: 'object', additionalProperties: false,
 * properties: { name: value schema }, required?: [names] }`. Throws if the schema uses anything else.
 */
export function paramCheck(schema: Record<string, unknown>, method: string): ParamCheck {
  for (const k of Object.keys(schema)) {
    if (!OBJECT_KEYWORDS.includes(k)) throw new Error(`control method ${method}: params keyword ${k} is not supported`);
  }
  if (schema.type !== 'object' || schema.additionalProperties !== false) {
    throw new Error(`control method ${method}: params must be an object without additional properties`);
  }
  const properties = (schema.properties ?? {}) as Record<string, ValueSchema>;
  const required = (schema.required ?? []) as string[];
  const patterns = new Map<string, RegExp>();
  const collect = (s: ValueSchema) => {
    if (s.pattern !== undefined) patterns.set(s.pattern, new RegExp(s.pattern, 'u'));
    if (s.items) collect(s.items);
  };
  for (const [name, s] of Object.entries(properties)) {
    checkValueSchema(s, `control method ${method}: params.${name}`);
    collect(s);
  }
  for (const r of required) {
    if (!Object.hasOwn(properties, r)) throw new Error(`control method ${method}: required ${r} is not a property`);
  }
  const names = Object.keys(properties);
  const check = ((data: Record<string, unknown>) => {
    const out: ErrorObject[] = [];
    if (!isType.object?.(data)) {
      out.push(err('', '#/type', 'type', { type: 'object' }, 'must be object'));
    } else {
      for (const [name, s] of Object.entries(properties)) {
        if (s.default !== undefined && data[name] === undefined) data[name] = structuredClone(s.default);
      }
      for (const r of required) {
        if (data[r] === undefined) {
          out.push(err('', '#/required', 'required', { missingProperty: r }, `must have required property '${r}'`));
        }
      }
      for (const key in data) {
        if (!names.includes(key)) {
          out.push(
            err(
              '',
              '#/additionalProperties',
              'additionalProperties',
              { additionalProperty: key },
              'must NOT have additional properties',
            ),
          );
        }
      }
      for (const name of names) {
        const s = properties[name];
        if (s && data[name] !== undefined) {
          checkValue(s, data[name], `/${pointer(name)}`, `#/properties/${name}`, patterns, out);
        }
      }
    }
    check.errors = out.length > 0 ? out : null;
    return out.length === 0;
  }) as ParamCheck;
  check.errors = null;
  return check;
}
