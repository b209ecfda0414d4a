import { describe, expect, it } from 'vitest';
import { MAX_INBOUND_DEPTH } from '../../../src/contract/mqtt.js';
import { duplicateMemberName, parseInboundText, salvageId } from '../../../src/contract/mqtt-validate.js';

/**
 * The inbound checks' one pass over a JSON text (scanJson in mqtt-validate.ts: strings skipped with
 * indexOf) finds what the two character-at-a-time scans it replaced found: the nesting depth
 * (refused as payload.too-deep before parsing) and the first member name given twice. Both
 * references below are those scans as they were.
 */

function referenceDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > max) max = depth;
      if (max > limit) return max;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

function referenceDuplicate(text: string): string | undefined {
  const open: (Set<string> | null)[] = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let end = i + 1;
      let escaped = false;
      for (; end < text.length; end++) {
        const d = text.charCodeAt(end);
        if (d === 0x5c) {
          escaped = true;
          end++;
        } else if (d === 0x22) break;
      }
      if (expectName) {
        const names = open[open.length - 1];
        const name = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : text.slice(i + 1, end);
        if (names?.has(name)) return name;
        names?.add(name);
        expectName = false;
      }
      i = end;
    } else if (c === 0x7b) {
      open.push(new Set());
      expectName = true;
    } else if (c === 0x5b) {
      open.push(null);
    } else if (c === 0x7d || c === 0x5d) {
      open.pop();
      expectName = false;
    } else if (c === 0x2c) {
      expectName = open[open.length - 1] !== null;
    }
  }
  return undefined;
}

/** A deterministic pseudo-random source (the test must be repeatable). */
function prng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

/** Names and strings with the escapes that matter: quotes, backslash runs, \u forms of plain letters. */
const PIECES = ['a', 'b', 'k', '\\"', '\\\\', '\\u0061', '\\\\\\"', '{', '[', ']', '}', ',', ':', ' ', 'é'];

function str(rand: (n: number) => number): string {
  let s = '';
  for (let i = rand(4); i > 0; i--) s += PIECES[rand(PIECES.length)];
  return `"${s}"`;
}

/** A valid JSON text, built by hand so that names may repeat in one object. */
function value(rand: (n: number) => number, depth: number): string {
  const kind = depth > 12 ? rand(3) : rand(6);
  if (kind === 0) return str(rand);
  if (kind === 1) return String(rand(1000));
  if (kind === 2) return ['true', 'false', 'null'][rand(3)]!;
  if (kind === 3) return `[${Array.from({ length: rand(4) }, () => value(rand, depth + 1)).join(', ')}]`;
  const members = Array.from({ length: rand(5) }, () => `${str(rand)}:${value(rand, depth + 1)}`);
  return `{${members.join(',')}}`;
}

describe('the inbound checks scan a JSON text once', () => {
  it('finds the duplicate names the character scan found, on 3,000 random valid texts', () => {
    const rand = prng(15);
    let duplicates = 0;
    for (let i = 0; i < 3000; i++) {
      const text = value(rand, 0);
      JSON.parse(text); // valid JSON, as the check requires
      const expected = referenceDuplicate(text);
      if (expected !== undefined) duplicates++;
      expect(duplicateMemberName(text), text).toBe(expected);
    }
    expect(duplicates).toBeGreaterThan(100);
  });

  it('refuses as too deep exactly the texts the depth scan refused, valid or not', () => {
    const rand = prng(7);
    const ALPHABET = '{}[]"\\,: a';
    let deep = 0;
    for (let i = 0; i < 3000; i++) {
      const text =
        i % 2 === 0
          ? Array.from({ length: 10 + rand(120) }, () => ALPHABET[rand(ALPHABET.length)]).join('')
          : `${'['.repeat(rand(MAX_INBOUND_DEPTH + 4))}${value(rand, 0)}`;
      const tooDeep = referenceDepth(text, MAX_INBOUND_DEPTH) > MAX_INBOUND_DEPTH;
      if (tooDeep) deep++;
      const r = parseInboundText('cmd', text);
      expect(!r.ok && r.error.code === 'payload.too-deep', text).toBe(tooDeep);
    }
    expect(deep).toBeGreaterThan(100);
  });

  it('a bracket or an escaped quote inside a string is not structure', () => {
    expect(duplicateMemberName('{"a\\"":1,"a\\"":2}')).toBe('a"');
    expect(duplicateMemberName('{"x":"\\\\","x":1}')).toBe('x');
    expect(duplicateMemberName('{"x":"\\\\\\"{","y":{"x":1},"z":1}')).toBeUndefined();
    const deepInString = `{"s":"${'['.repeat(MAX_INBOUND_DEPTH + 5)}"}`;
    const r = parseInboundText('cmd', deepInString);
    expect(!r.ok && r.error.code).not.toBe('payload.too-deep');
    const deep = `${'['.repeat(MAX_INBOUND_DEPTH + 1)}${']'.repeat(MAX_INBOUND_DEPTH + 1)}`;
    const d = parseInboundText('cmd', deep);
    expect(!d.ok && d.error.code).toBe('payload.too-deep');
  });

  it('never throws on a text that is not JSON, even with an escape JSON refuses in a name', () => {
    for (const text of ['{"\\a":1,"\\a":2}', '{"\\u00zz":1', '{"a":1,"\\', '{"\\x']) {
      const r = parseInboundText('cmd', text);
      expect(!r.ok && r.error.code, text).toBe('payload.not-json');
    }
  });

  it("an error result's id is read only from a text no deeper than the limit (the same scan)", () => {
    const nest = (levels: number) => `{"cmdId":"c-1","a":${'['.repeat(levels)}${']'.repeat(levels)}}`;
    const bytes = (text: string) => Buffer.from(text, 'utf8');
    expect(salvageId(bytes(nest(MAX_INBOUND_DEPTH - 1)), 'cmdId')).toBe('c-1');
    expect(salvageId(bytes(nest(MAX_INBOUND_DEPTH)), 'cmdId')).toBeNull();
    // Brackets inside a string are not levels.
    expect(salvageId(bytes(`{"cmdId":"c-2","s":"${'['.repeat(MAX_INBOUND_DEPTH * 2)}"}`), 'cmdId')).toBe('c-2');
  });
});
