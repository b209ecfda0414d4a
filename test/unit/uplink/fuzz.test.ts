import type { Database } from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/base/clock.js';
import { SeededRandom } from '../../../src/base/random.js';
import type { LockMode, LockState } from '../../../src/link/frames.js';
import type { LockSummary } from '../../../src/link/manager.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import { commandSchema, MAX_INBOUND_BYTES, syncSchema } from '../../../src/uplink/contract.js';
import {
  type CommandTarget,
  Inbound,
  type InboundTopic,
  type ResultSink,
  type ResultTopic,
} from '../../../src/uplink/inbound.js';
import { conforms, salvageId } from '../../../src/uplink/validate.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * 1,000 malformed or hostile messages, generated from the contract's schemas with a seeded random
 * stream, sent to both cmd and sync: each gets exactly one error answer (best effort, ok:false, a
 * code), the locks are never touched, the store does not change by a single row, the JS
 * prototypes stay clean, and the hub still serves a valid command afterwards.
 */

const COUNT = 1000;
const SEED = 'inbound-fuzz-1';

// ----- the schemas, as the generator sees them --------------------------------------------------

interface FieldSchema {
  const?: unknown;
  enum?: readonly unknown[];
  type?: string | readonly string[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
}

interface Variant {
  topic: InboundTopic;
  name: string;
  properties: Record<string, FieldSchema>;
  required: readonly string[];
}

const variants: Variant[] = [
  ...commandSchema.oneOf.map((s) => ({
    topic: 'cmd' as const,
    name: String((s.properties.op as FieldSchema).const),
    properties: s.properties as Record<string, FieldSchema>,
    required: s.required,
  })),
  {
    topic: 'sync',
    name: 'sync',
    properties: syncSchema.properties as unknown as Record<string, FieldSchema>,
    required: syncSchema.required,
  },
];
const fieldsOf = (v: Variant) => Object.keys(v.properties);
/** Every (variant, field) and (variant, required field) pair, so each is covered in turn. */
const everyField = variants.flatMap((v) => fieldsOf(v).map((f) => ({ v, f })));
const everyRequired = variants.flatMap((v) => v.required.map((f) => ({ v, f })));

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

class Gen {
  readonly r: SeededRandom;
  constructor(seed: string) {
    this.r = new SeededRandom(seed);
  }
  int(n: number): number {
    return this.r.int(n);
  }
  pick<T>(xs: readonly T[]): T {
    const x = xs[this.r.int(xs.length)];
    if (x === undefined) throw new Error('pick from an empty list');
    return x;
  }
  word(min = 1, max = 12): string {
    let s = '';
    const n = min + this.r.int(max - min + 1);
    for (let i = 0; i < n; i++) s += this.pick([...ALNUM]);
    return s;
  }

  /** A value that satisfies `s`. */
  valid(s: FieldSchema): unknown {
    if (s.const !== undefined) return s.const;
    if (s.enum) return this.pick(s.enum);
    const type = Array.isArray(s.type) ? s.type[0] : s.type;
    if (type === 'string') return this.word(1, Math.min(s.maxLength ?? 16, 16));
    if (type === 'integer') {
      const min = s.minimum ?? 0;
      const max = Math.min(s.maximum ?? min + 1000, min + 1000);
      return min + this.r.int(max - min + 1);
    }
    if (type === 'object') return this.pick([{}, { users: [{ id: this.word() }] }, { note: this.word() }]);
    // `id` in the result schemas is anyOf; inbound ids are plain strings.
    return this.word();
  }

  message(v: Variant): Record<string, unknown> {
    const m: Record<string, unknown> = {};
    for (const f of fieldsOf(v)) {
      const field = v.properties[f];
      if (field && (v.required.includes(f) || this.int(2) === 0)) m[f] = this.valid(field);
    }
    return m;
  }

  /** Values of a JSON type other than the field's. */
  wrongType(s: FieldSchema): unknown[] {
    const all: unknown[] = [0, -1, 1.5, 1e300, '', 'x', '1', true, false, null, [], [1], {}, { a: 1 }];
    return all.filter((x) => !matchesType(s, x));
  }
}

function matchesType(s: FieldSchema, x: unknown): boolean {
  if (s.const !== undefined) return x === s.const;
  if (s.enum) return s.enum.includes(x);
  const types = Array.isArray(s.type) ? s.type : [s.type];
  return types.some(
    (t) =>
      (t === 'string' && typeof x === 'string') ||
      (t === 'integer' && Number.isInteger(x)) ||
      (t === 'object' && typeof x === 'object' && x !== null && !Array.isArray(x)) ||
      (t === 'null' && x === null),
  );
}

function inRange(s: FieldSchema, n: number): boolean {
  if (s.const !== undefined) return n === s.const;
  return Number.isInteger(n) && n >= (s.minimum ?? -Infinity) && n <= (s.maximum ?? Infinity);
}

// ----- the hostile messages --------------------------------------------------------------------

interface Case {
  kind: string;
  topic: InboundTopic;
  bytes: Buffer;
}

const text = (s: string) => Buffer.from(s, 'utf8');
const json = (x: unknown) => text(JSON.stringify(x));
/** Insert raw JSON members right after the opening brace of an object's text. */
const withMembers = (m: Record<string, unknown>, raw: string) => {
  const body = JSON.stringify(m);
  return text(`{${raw}${body.length > 2 ? ',' : ''}${body.slice(1)}`);
};
const MB = 1024 * 1024;
const nested = (levels: number, open: string, close: string, inner = '1') =>
  `${open.repeat(levels)}${inner}${close.repeat(levels)}`;
const BAD_UTF8 = [
  [0xff],
  [0xc0, 0x80],
  [0xed, 0xa0, 0x80],
  [0xf5, 0x80, 0x80, 0x80],
  [0xe2, 0x82],
  [0x80],
  [0xfe, 0xfe],
];
const HOSTILE_IDS = [
  'a/b',
  'a+b',
  'a#b',
  '+',
  '#',
  '/',
  'ks/hubs/+/#',
  '../x',
  'a b',
  '',
  'x'.repeat(65),
  'é',
  '\u0000',
];
const HOSTILE_OPS = ['PING', 'ping ', ' ping', 'attach', 'detach', 'forget', 'constructor', '__proto__', 'toString'];
const HOSTILE_NUMBERS = [-1, 0, -1e308, 1.5, 1e308, 600_001, 2 ** 53, -(2 ** 53), 0.1];
const RAW_NUMBERS = ['NaN', 'Infinity', '-Infinity', '1e400', '-1e400', '0x10', '01', '+1', '.5', '1.', '--1'];
const POLLUTERS = [
  '"__proto__":{"polluted":"yes"}',
  '"constructor":{"prototype":{"polluted":"yes"}}',
  '"prototype":{"polluted":"yes"}',
  '"__proto__":[1,2,3]',
  '"__defineGetter__":"polluted"',
];

function generate(g: Gen): Case[] {
  const cases: Case[] = [];
  let fieldTurn = 0;
  let requiredTurn = 0;
  const cmdVariant = () => g.pick(variants.filter((v) => v.topic === 'cmd'));
  // Half to each topic (there are six command variants and one sync).
  const anyVariant = () => (g.int(2) === 0 ? cmdVariant() : g.pick(variants.filter((v) => v.topic === 'sync')));
  const numericVariant = () => g.pick(variants.filter((v) => v.name === 'open' || v.name === 'sync'));

  const kinds: ((i: number) => Case)[] = [
    // A value of the wrong JSON type, for every field of every message in turn.
    () => {
      const { v, f } = everyField[fieldTurn++ % everyField.length]!;
      const m = g.message(v);
      m[f] = g.pick(g.wrongType(v.properties[f]!));
      return { kind: 'wrong-type', topic: v.topic, bytes: json(m) };
    },
    // A required field missing, for every required field in turn.
    () => {
      const { v, f } = everyRequired[requiredTurn++ % everyRequired.length]!;
      const m = g.message(v);
      delete m[f];
      return { kind: 'missing-field', topic: v.topic, bytes: json(m) };
    },
    // A field the contract does not have.
    () => {
      const v = anyVariant();
      const m = g.message(v);
      m[`x${g.word()}`] = g.pick([1, 'x', null, {}, [], true]);
      return { kind: 'extra-field', topic: v.topic, bytes: json(m) };
    },
    // A 1 MB string in some field (above the size limit), or a long one just below it.
    () => {
      const v = anyVariant();
      const m = g.message(v);
      const f = g.pick(fieldsOf(v));
      m[f] = g.int(2) === 0 ? 'A'.repeat(MB) : 'A'.repeat(MAX_INBOUND_BYTES - 200);
      if (v.topic === 'sync' && f === 'data') m.data = { big: m.data, extra: 'A'.repeat(MB) };
      return { kind: 'huge-string', topic: v.topic, bytes: json(m) };
    },
    // 10,000 levels of nesting, as a field or as the whole message.
    () => {
      const v = anyVariant();
      const deep = g.int(2) === 0 ? nested(10_000, '[', ']') : nested(10_000, '{"a":', '}');
      const bytes = g.int(3) === 0 ? text(deep) : withMembers(g.message(v), `"${g.pick(fieldsOf(v))}x":${deep}`);
      return { kind: 'deep-nesting', topic: v.topic, bytes };
    },
    // Not JSON: truncated, garbage, JSON5-isms.
    () => {
      const v = anyVariant();
      const whole = JSON.stringify(g.message(v));
      const broken = [
        () => whole.slice(0, g.int(whole.length)),
        () => `${whole}x`,
        () => `${whole}${whole}`,
        () => whole.replace(/"/g, "'"),
        () => whole.replace(/}$/, ',}'),
        () => `/*c*/${whole}`,
        () => '',
        () => ' ',
      ];
      return { kind: 'bad-json', topic: v.topic, bytes: text(g.pick(broken)()) };
    },
    // Binary garbage.
    () => ({ kind: 'binary', topic: g.pick(['cmd', 'sync'] as const), bytes: Buffer.from(g.r.bytes(1 + g.int(512))) }),
    // Invalid UTF-8 inside a string value (for a sync, inside data, which is otherwise free-form).
    () => {
      const v = anyVariant();
      const m = g.message(v);
      const mark = 'QQBADQQ';
      if (v.topic === 'sync') m.data = { note: `x${mark}y` };
      else m.id = `a${mark}`;
      const [before, after] = JSON.stringify(m).split(mark) as [string, string];
      const bytes = Buffer.concat([text(before), Buffer.from(g.pick(BAD_UTF8)), text(after)]);
      return { kind: 'bad-utf8', topic: v.topic, bytes };
    },
    // Operations the contract does not have (some are real LinkManager methods).
    () => {
      const m = g.message(cmdVariant());
      m.op = g.int(2) === 0 ? g.pick(HOSTILE_OPS) : g.word();
      return { kind: 'unknown-op', topic: 'cmd', bytes: json(m) };
    },
    // Ids and lock ids with MQTT wildcards, separators and other hostile characters.
    () => {
      const v = anyVariant();
      const m = g.message(v);
      const f = 'lockId' in v.properties && g.int(2) === 0 ? 'lockId' : 'id';
      m[f] = g.pick(HOSTILE_IDS);
      return { kind: 'hostile-id', topic: v.topic, bytes: json(m) };
    },
    // Negative, huge, fractional and NaN-ish numbers.
    () => {
      const v = numericVariant();
      const m = g.message(v);
      const f = g.pick(fieldsOf(v).filter((k) => v.properties[k]?.type === 'integer' || k === 'v'));
      if (g.int(2) === 0) {
        // Only the numbers this field refuses: 0 is a valid baseVersion, 600,001 a valid version.
        m[f] = g.pick(HOSTILE_NUMBERS.filter((n) => !inRange(v.properties[f]!, n)));
        return { kind: 'bad-number', topic: v.topic, bytes: json(m) };
      }
      m[f] = 'QQNUMQQ';
      return {
        kind: 'bad-number',
        topic: v.topic,
        bytes: text(JSON.stringify(m).replace('"QQNUMQQ"', g.pick(RAW_NUMBERS))),
      };
    },
    // Prototype-pollution keys, at the top level or in place of a field's value.
    () => {
      const v = anyVariant();
      const m = g.message(v);
      const raw = g.pick(POLLUTERS);
      if (g.int(2) === 0) return { kind: 'pollution', topic: v.topic, bytes: withMembers(m, raw) };
      const f = g.pick(fieldsOf(v).filter((k) => k !== 'data'));
      m[f] = 'QQPOLQQ';
      return { kind: 'pollution', topic: v.topic, bytes: text(JSON.stringify(m).replace('"QQPOLQQ"', `{${raw}}`)) };
    },
    // Arrays (and other non-objects) where an object belongs.
    () => {
      const v = anyVariant();
      const m = g.message(v);
      const shapes = [
        () => json([m]),
        () => json([]),
        () => json(Object.values(m)),
        () => text(g.pick(['null', 'true', '0', '"cmd"', '[[]]'])),
      ];
      if (v.topic === 'sync') shapes.push(() => json({ ...m, data: [m.data] }));
      return { kind: 'array', topic: v.topic, bytes: g.pick(shapes)() };
    },
    // A wrong contract version, or a message for the other topic.
    () => {
      const v = anyVariant();
      const m = g.message(v);
      if (g.int(2) === 0) {
        m.v = g.pick([0, 2, -1, 1.0001, '1', null]);
        return { kind: 'wrong-version', topic: v.topic, bytes: json(m) };
      }
      return { kind: 'wrong-topic', topic: v.topic === 'cmd' ? 'sync' : 'cmd', bytes: json(m) };
    },
  ];

  for (let i = 0; i < COUNT; i++) cases.push(kinds[i % kinds.length]!(i));
  return cases;
}

// ----- the hub side ----------------------------------------------------------------------------

const STATE: LockState = { bolt: 'locked', mode: 'normal', doorOpen: false, batteryPercent: 90, lastSeq: 1, time: 0 };

class CountingTarget implements CommandTarget {
  calls = 0;
  list(): LockSummary[] {
    this.calls++;
    return [];
  }
  async lockState(_lockId: string): Promise<LockState> {
    this.calls++;
    return STATE;
  }
  async open(_lockId: string, _durationMs: number): Promise<LockState> {
    this.calls++;
    return STATE;
  }
  async lockNow(_lockId: string): Promise<LockState> {
    this.calls++;
    return STATE;
  }
  async setMode(_lockId: string, mode: LockMode): Promise<LockState> {
    this.calls++;
    return { ...STATE, mode };
  }
}

class RecordingSink implements ResultSink {
  readonly enqueued: { topic: ResultTopic; payload: Record<string, unknown> }[] = [];
  readonly published: { topic: ResultTopic; payload: Record<string, unknown> }[] = [];
  enqueueMessage(topic: ResultTopic, payload: object): void {
    this.enqueued.push({ topic, payload: payload as Record<string, unknown> });
  }
  publishNow(topic: ResultTopic, payload: object): void {
    this.published.push({ topic, payload: payload as Record<string, unknown> });
  }
}

/** Every row of every table (found through sqlite_master), and the schema itself. */
function snapshot(db: Database): string {
  const schema = db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name').all() as {
    type: string;
    name: string;
  }[];
  const rows: Record<string, string[]> = {};
  for (const t of schema.filter((s) => s.type === 'table')) {
    rows[t.name] = db
      .prepare(`SELECT * FROM "${t.name.replace(/"/g, '""')}"`)
      .all()
      .map((r) => JSON.stringify(r, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v)))
      .sort();
  }
  return JSON.stringify({ schema, rows });
}

const prototypes = () =>
  [Object.prototype, Array.prototype, Function.prototype, String.prototype].map((p) =>
    Object.getOwnPropertyNames(p).sort().join(','),
  );

const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

describe('inbound fuzz', () => {
  it('generates messages the contract refuses, of every kind, for both topics', () => {
    const cases = generate(new Gen(SEED));
    expect(cases).toHaveLength(COUNT);
    const kinds = new Set(cases.map((c) => c.kind));
    expect(kinds.size).toBeGreaterThanOrEqual(15);
    expect(cases.filter((c) => c.topic === 'cmd').length).toBeGreaterThan(300);
    expect(cases.filter((c) => c.topic === 'sync').length).toBeGreaterThan(300);
    // Every field of every message had a wrong type at least once, and every required field went missing.
    expect(cases.filter((c) => c.kind === 'wrong-type').length).toBeGreaterThanOrEqual(everyField.length);
    expect(cases.filter((c) => c.kind === 'missing-field').length).toBeGreaterThanOrEqual(everyRequired.length);
    // The generator's unmutated messages are valid, so each mutation is what makes a case invalid.
    const g = new Gen(`${SEED}-valid`);
    for (const v of variants) for (let i = 0; i < 20; i++) expect(conforms(v.topic, g.message(v))).toBe(true);
  });

  it(`${COUNT} malformed or hostile messages: one error answer each, nothing acted on, nothing stored`, async () => {
    const store = Store.open(tempDir());
    stores.push(store);
    const clock = new VirtualClock();
    const target = new CountingTarget();
    const sink = new RecordingSink();
    const inbound = new Inbound({ store, clock, log: silentLogger(), target, results: sink });

    // Some history first, so "nothing changes" is about a store with rows in it.
    store.journal('test.fuzz', { seed: SEED }, clock.now());
    await inbound.handle('cmd', json({ v: 1, id: 'before-1', op: 'ping' }));
    await inbound.handle('cmd', json({ v: 1, id: 'before-2', op: 'getState', lockId: 'L1' }));
    await inbound.handle('sync', json({ v: 1, id: 'before-3', kind: 'snapshot', version: 1, data: {} }));
    expect(sink.enqueued).toHaveLength(3);
    const callsBefore = target.calls;
    const before = snapshot(store.db);
    const changesBefore = (store.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
    const protoBefore = prototypes();

    const cases = generate(new Gen(SEED));
    const codes = new Map<string, number>();
    for (const [i, c] of cases.entries()) {
      const published = sink.published.length;
      await inbound.handle(c.topic, c.bytes);
      const where = `case ${i} (${c.kind}, ${c.topic}): ${JSON.stringify(c.bytes.subarray(0, 120).toString('latin1'))}`;
      expect(sink.published.length, where).toBe(published + 1);
      const answer = sink.published.at(-1);
      expect(answer?.topic, where).toBe(c.topic === 'cmd' ? 'cmd/result' : 'sync/ack');
      const p = answer?.payload as { id: unknown; ok: unknown; error?: { code: string; message: string } };
      expect(p.ok, where).toBe(false);
      expect(p.error?.code, where).toMatch(/^payload\.[a-z0-9-]+$/);
      expect(p.error?.message.length, where).toBeGreaterThan(0);
      expect(p.id, where).toBe(salvageId(c.bytes));
      expect(conforms(answer?.topic ?? 'cmd/result', p), where).toBe(true);
      codes.set(p.error?.code ?? '', (codes.get(p.error?.code ?? '') ?? 0) + 1);
    }

    expect(target.calls).toBe(callsBefore);
    expect(sink.enqueued).toHaveLength(3);
    expect(inbound.inFlight).toBe(0);
    expect((store.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n).toBe(changesBefore);
    expect(snapshot(store.db)).toBe(before);
    expect(prototypes()).toEqual(protoBefore);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
    // Every kind of refusal the contract has was exercised.
    expect([...codes.keys()].sort()).toEqual([
      'payload.invalid',
      'payload.not-json',
      'payload.not-utf8',
      'payload.too-deep',
      'payload.too-large',
    ]);

    // And the hub keeps serving.
    await inbound.handle('cmd', json({ v: 1, id: 'after-1', op: 'setMode', lockId: 'L1', mode: 'office' }));
    expect(target.calls).toBe(callsBefore + 1);
    expect(sink.enqueued.at(-1)?.payload).toEqual({
      v: 1,
      id: 'after-1',
      ok: true,
      result: { state: { ...STATE, mode: 'office' } },
    });
  });
});
