import type { Database } from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { InboundTopic } from '../../../hal/uplink.js';
import { SeededRandom } from '../../../src/base/random.js';
import type { CommandEnvelope } from '../../../src/commands/otp.js';
import { MAX_INBOUND_BYTES, MAX_SYNC_BYTES, maxInboundBytes } from '../../../src/contract/mqtt.js';
import { commandEnvelopeSchema, syncSchema } from '../../../src/contract/mqtt-cloud-messages.js';
import { conforms, salvageId } from '../../../src/contract/mqtt-validate.js';
import { commandHarness, WIRE_STATE } from '../../helpers/commands.js';

/**
 * 1,000 malformed or hostile messages, generated from the contract's schemas with a seeded random
 * stream, sent to both cmd and sync: each gets exactly one error answer (best effort, ok:false, a
 * code: `bad_request` on cmd, `payload.*` on sync), the locks are never touched, the store does
 * not change by a single row, the JS prototypes stay clean, and the hub still serves a valid
 * command afterwards. Then genuine signed commands altered in transit, each still matching the
 * schema: every one refused by the verifier, none acted on, nothing stored.
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
  /** `args` of a command: an object with its own fields. */
  properties?: Record<string, FieldSchema>;
  required?: readonly string[];
}

interface Variant {
  topic: InboundTopic;
  name: string;
  properties: Record<string, FieldSchema>;
  required: readonly string[];
  /** The field that carries the message id. */
  idField: 'id' | 'cmdId';
}

const variants: Variant[] = [
  ...commandEnvelopeSchema.oneOf.map((s) => {
    const properties = s.properties as unknown as Record<string, FieldSchema>;
    return {
      topic: 'cmd' as const,
      name: String(properties.op?.const),
      properties,
      required: s.required,
      idField: 'cmdId' as const,
    };
  }),
  // A whole sync (`data`) and one part of one (`part` and `chunk` instead): never both.
  ...(['sync', 'sync-part'] as const).map((name) => {
    const { data, part, chunk, ...common } = syncSchema.properties as unknown as Record<string, FieldSchema>;
    const own = (name === 'sync' ? { data } : { part, chunk }) as Record<string, FieldSchema>;
    return {
      topic: 'sync' as const,
      name,
      properties: { ...common, ...own },
      required: [...syncSchema.required, ...Object.keys(own)],
      idField: 'id' as const,
    };
  }),
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
    if (type === 'string') {
      if (s.pattern === '^[0-9]{8}$') return String(this.r.int(100_000_000)).padStart(8, '0');
      if (s.pattern === '^[0-9a-f]{64}$')
        return Array.from({ length: 64 }, () => this.pick([...'0123456789abcdef'])).join('');
      if (s.pattern?.startsWith('^[0-9]{4}-')) return new Date(Date.UTC(2026, 0, 1) + this.r.int(1e9)).toISOString();
      const min = Math.max(1, s.minLength ?? 1);
      return this.word(min, Math.max(min, Math.min(s.maxLength ?? 16, 16)));
    }
    if (type === 'integer') {
      const min = s.minimum ?? 0;
      const max = Math.min(s.maximum ?? min + 1000, min + 1000);
      return min + this.r.int(max - min + 1);
    }
    if (type === 'object' && s.properties) return this.fields(s.properties, s.required ?? []);
    if (type === 'object') return this.pick([{}, { users: [{ id: this.word() }] }, { note: this.word() }]);
    // `id` in the result schemas is anyOf; inbound ids are plain strings.
    return this.word();
  }

  fields(properties: Record<string, FieldSchema>, required: readonly string[]): Record<string, unknown> {
    const m: Record<string, unknown> = {};
    for (const [f, field] of Object.entries(properties)) {
      if (required.includes(f) || this.int(2) === 0) m[f] = this.valid(field);
    }
    return m;
  }

  message(v: Variant): Record<string, unknown> {
    return this.fields(v.properties, v.required);
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
const HOSTILE_OPS = ['PING', 'ping ', ' ping', 'forget', 'pair', 'reset', 'constructor', '__proto__', 'toString'];
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
  // Half to each topic (there are nine command variants and one sync).
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
    // A 1 MB string in some field (above a command's size limit; within a sync's, refused by its schema), or a long one just below 256 KiB.
    () => {
      const v = anyVariant();
      const m = g.message(v);
      const f = g.pick(fieldsOf(v));
      m[f] = g.int(2) === 0 ? 'A'.repeat(MB) : 'A'.repeat(MAX_INBOUND_BYTES - 200);
      // A sync's data is any object to the envelope: only the size limit stops a huge one.
      if (v.topic === 'sync' && f === 'data') m.data = { big: m.data, extra: 'A'.repeat(MAX_SYNC_BYTES + 1) };
      // A part's chunk is any string too: a part over the size limit.
      if (v.topic === 'sync' && f === 'chunk') m.chunk = 'A'.repeat(MAX_SYNC_BYTES + 1);
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
      else m.cmdId = `a${mark}`;
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
      const f = 'lockId' in v.properties && g.int(2) === 0 ? 'lockId' : v.idField;
      m[f] = g.pick(HOSTILE_IDS);
      return { kind: 'hostile-id', topic: v.topic, bytes: json(m) };
    },
    // Negative, huge, fractional and NaN-ish numbers.
    () => {
      const v = numericVariant();
      const m = g.message(v);
      const duration = v.properties.args?.properties?.durationMs;
      if (duration && g.int(3) === 0) {
        // The one integer argument: open's args.durationMs.
        m.args = { durationMs: g.pick(HOSTILE_NUMBERS.filter((n) => !inRange(duration, n))) };
        return { kind: 'bad-number', topic: v.topic, bytes: json(m) };
      }
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

  // Wrong types and missing fields twice as often: every field of the nine command envelopes and
  // the sync gets its turn within the 1,000.
  const [wrongType, missingField] = kinds as [(i: number) => Case, (i: number) => Case];
  kinds.push(wrongType, missingField);
  for (let i = 0; i < COUNT; i++) cases.push(kinds[i % kinds.length]!(i));
  return cases;
}

// ----- the hub side ----------------------------------------------------------------------------

/** Every row of every table (found through sqlite_master), and the schema itself. */
/** Every table's schema and rows, but those of `except`. */
function snapshot(db: Database, except: readonly string[] = []): string {
  const schema = db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name').all() as {
    type: string;
    name: string;
  }[];
  const rows: Record<string, string[]> = {};
  for (const t of schema.filter((s) => s.type === 'table' && !except.includes(s.name))) {
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
    const t = commandHarness();
    const { store, clock, target, sink, inbound } = t;

    // Some history first, so "nothing changes" is about a store with rows in it.
    store.journal('test.fuzz', { seed: SEED }, clock.now());
    await t.run({ op: 'ping' });
    await t.run({ op: 'getState', lockId: 'L1' });
    await t.sendRaw('sync', { v: 1, id: 'before-3', kind: 'snapshot', version: 1, data: {} });
    expect(sink.enqueued).toHaveLength(3);
    expect(sink.enqueued.every((a) => a.payload.id !== null)).toBe(true);
    const callsBefore = target.calls.length;
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
      if (c.topic === 'cmd') expect(p.error?.code, where).toBe('bad_request');
      else expect(p.error?.code, where).toMatch(/^payload\.[a-z0-9-]+$/);
      expect(p.error?.message.length, where).toBeGreaterThan(0);
      expect(p.id, where).toBe(salvageId(c.bytes, c.topic === 'cmd' ? 'cmdId' : 'id', maxInboundBytes(c.topic)));
      expect(conforms(answer?.topic ?? 'cmd/result', p), where).toBe(true);
      codes.set(p.error?.code ?? '', (codes.get(p.error?.code ?? '') ?? 0) + 1);
    }

    expect(target.calls).toHaveLength(callsBefore);
    expect(sink.enqueued).toHaveLength(3);
    expect(inbound.inFlight).toBe(0);
    expect((store.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n).toBe(changesBefore);
    expect(snapshot(store.db)).toBe(before);
    expect(prototypes()).toEqual(protoBefore);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
    // Every kind of refusal the contract has was exercised.
    expect([...codes.keys()].sort()).toEqual([
      'bad_request',
      'payload.invalid',
      'payload.not-json',
      'payload.not-utf8',
      'payload.too-deep',
      'payload.too-large',
    ]);
    expect(t.verifier.stats().refused).toEqual({ bad_request: codes.get('bad_request') });
    expect(t.verifier.lockedOut).toBe(false);

    // And the hub keeps serving.
    const after = await t.run({ op: 'setMode', lockId: 'L1', args: { mode: 'office' } });
    expect(target.calls).toHaveLength(callsBefore + 1);
    expect(sink.enqueued.at(-1)?.payload).toEqual({
      v: 1,
      id: after.cmdId,
      ok: true,
      result: { state: { ...WIRE_STATE, mode: 'office' } },
    });
  });

  it('300 genuine commands altered in transit (each still matching the schema): all refused, none acted on', async () => {
    const t = commandHarness({ config: { lockoutFailures: 1000 } });
    const g = new Gen(`${SEED}-altered`);
    await t.run({ op: 'ping' });
    // The lockout's counted refusals are stored (they survive a restart): the one table that moves.
    const before = snapshot(t.store.db, ['command_lockout']);
    const specs = [
      { op: 'open', lockId: 'L1', args: { durationMs: 4000 } },
      { op: 'lock', lockId: 'L1', args: {} },
      { op: 'setMode', lockId: 'L2', args: { mode: 'office' } },
      { op: 'detach', lockId: 'L2', args: {} },
      { op: 'getState', lockId: 'L1', args: {} },
    ] as const;
    const alterations: ((e: CommandEnvelope) => CommandEnvelope)[] = [
      (e) => ({ ...e, cmdId: `x${g.word()}` }),
      (e) => ({ ...e, lockId: e.lockId === 'L1' ? 'L2' : 'L1' }),
      (e) => ({ ...e, op: e.op === 'lock' ? 'getState' : 'lock', args: {} }),
      (e) => ({ ...e, args: e.op === 'open' ? { durationMs: 1 + g.int(600_000) } : e.args, counter: e.counter + 1 }),
      (e) => ({ ...e, args: e.op === 'open' ? {} : e.args, counter: e.counter + 2 + g.int(5) }),
      (e) => ({ ...e, issuedAt: new Date(Date.parse(e.issuedAt) + 1 + g.int(999)).toISOString() }),
      (e) => ({ ...e, expiresAt: new Date(Date.parse(e.expiresAt) - 1 - g.int(999)).toISOString() }),
      (e) => {
        let otp = e.otp;
        while (otp === e.otp) otp = String(g.int(100_000_000)).padStart(8, '0');
        return { ...e, otp };
      },
      (e) => ({ ...e, counter: Math.max(1, e.counter - 1 - g.int(3)) }),
      (e) => ({ ...e, hubId: `hub-${g.word(4, 4)}` }),
    ];
    const codes = new Map<string, number>();
    const originals: CommandEnvelope[] = [];
    for (let i = 0; i < 300; i++) {
      const spec = specs[i % specs.length];
      if (!spec) throw new Error('no spec');
      // Signed with the counter a genuine next command would carry, never sent.
      const genuine = t.sign({ op: spec.op, lockId: spec.lockId, args: { ...spec.args } }, { counter: 2 + (i % 50) });
      originals.push(genuine);
      const altered = alterations[i % alterations.length]?.(genuine);
      if (!altered) throw new Error('no alteration');
      expect(conforms('cmd', altered), JSON.stringify(altered)).toBe(true);
      const published = t.sink.published.length;
      await t.send(altered);
      expect(t.sink.published).toHaveLength(published + 1);
      const p = t.sink.published.at(-1)?.payload as { id: string; ok: boolean; error: { code: string } };
      expect(p.ok).toBe(false);
      expect(p.id).toBe(altered.cmdId);
      codes.set(p.error.code, (codes.get(p.error.code) ?? 0) + 1);
    }
    expect(Object.fromEntries(codes)).toEqual({ otp_mismatch: 270, wrong_hub: 30 });
    expect(t.target.calls).toEqual([]);
    expect(t.sink.enqueued).toHaveLength(1);
    expect(snapshot(t.store.db, ['command_lockout'])).toBe(before);
    const lockout = t.store.db.prepare('SELECT failures, locked_until FROM command_lockout').get() as {
      failures: string;
      locked_until: number | null;
    };
    expect((JSON.parse(lockout.failures) as number[]).length).toBe(270);
    expect(lockout.locked_until).toBeNull();

    // One of the originals, unaltered, is accepted.
    const genuine = originals.find((e) => e.op === 'open');
    if (!genuine) throw new Error('no open');
    await t.send(genuine);
    expect(t.target.calls).toEqual([`open L1 4000`]);
    expect(t.last()).toMatchObject({ id: genuine.cmdId, ok: true });
  });
});
