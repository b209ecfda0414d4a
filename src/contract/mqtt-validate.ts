import type { ErrorObject, ValidateFunction } from 'ajv';
import { err, ok, type Result } from '../base/result.js';
import { MAX_INBOUND_BYTES, MAX_INBOUND_DEPTH, maxInboundBytes, type TopicMap } from './mqtt.js';
import { byTopic } from './mqtt-validators.generated.js';

/** The contract's schemas, one per topic, compiled at build time (test/helpers/generate-validators.ts). */
const validators = byTopic as unknown as {
  [T in keyof TopicMap]: ValidateFunction<TopicMap[T]['payload']>;
};

export interface ContractError {
  /** `payload.too-large`, `payload.too-deep`, `payload.not-json`, `payload.invalid`. */
  code: string;
  message: string;
}

function describe(e: ErrorObject | undefined): string {
  if (!e) return 'invalid';
  const where = e.instancePath || '(top level)';
  if (e.keyword === 'additionalProperties') {
    return `${where}: unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty).slice(0, 70)}`;
  }
  if (e.keyword === 'discriminator') return `${where}: op is missing or not one of the known operations`;
  return `${where} ${e.message ?? 'is invalid'}`;
}

/**
 * The first member name that appears twice in one object of a JSON text, or undefined. The text
 * must already be valid JSON (JSON.parse accepted it): this only follows strings and brackets.
 * Names are compared as decoded ("a" and "\u0061" are one name).
 */
export function duplicateMemberName(text: string): string | undefined {
  return scanJson(text, Number.POSITIVE_INFINITY).duplicate;
}

/** What one pass over a JSON text finds (scanJson). */
interface Scan {
  /** Deeper than the limit (the scan stopped there). */
  tooDeep: boolean;
  /** The first member name given twice in one object (meaningful for valid JSON only). */
  duplicate: string | undefined;
}

/**
 * A member name with escapes, decoded. The scan runs before JSON.parse: a text that is not JSON
 * may hold an escape JSON.parse refuses — its raw form then stands (JSON.parse refuses the text
 * next, and the duplicate found matters only for valid JSON).
 */
function decodeName(quoted: string): string {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return quoted;
  }
}

/**
 * One pass over a JSON text for what JSON.parse does not tell: whether it nests deeper than
 * `depthLimit` (counted before parsing, strings skipped: a `[` or `{` in a string is not a level)
 * and the first member name given twice in one object. Strings are skipped with `indexOf`, not a
 * character at a time: on a command most of the text is inside strings, and the interpreter
 * (the daemon runs without the optimising compiler) pays for every character it looks at —
 * this is half the cost of the two scans it replaced (a depth scan and the duplicate check, 43 µs of
 * a command's 61 µs of checks here). A string ends at the first `"` not escaped (after an even
 * run of backslashes); a string cut short ends the scan, as it ended both scans before.
 */
function scanJson(text: string, depthLimit: number): Scan {
  // One entry per open object (its names so far) or array (null).
  const open: (Set<string> | null)[] = [];
  let depth = 0;
  let expectName = false;
  let duplicate: string | undefined;
  // The first backslash at or after some point of the text (-1: none left; -2: not looked for yet).
  let backslash = -2;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let end = text.indexOf('"', i + 1);
      while (end !== -1) {
        // The run of backslashes just before this quote: an odd one escapes it.
        let k = end;
        while (k - 1 > i && text.charCodeAt(k - 1) === 0x5c) k--;
        if ((end - k) % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (end === -1) break;
      if (expectName) {
        if (backslash !== -1 && backslash <= i) backslash = text.indexOf('\\', i + 1);
        const escaped = backslash !== -1 && backslash < end;
        const names = open[open.length - 1];
        const name = escaped ? decodeName(text.slice(i, end + 1)) : text.slice(i + 1, end);
        if (duplicate === undefined && names?.has(name)) duplicate = name;
        names?.add(name);
        expectName = false;
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > depthLimit) return { tooDeep: true, duplicate };
      open.push(c === 0x7b ? new Set() : null);
      expectName = c === 0x7b;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      open.pop();
      expectName = false;
    } else if (c === 0x2c) {
      expectName = open[open.length - 1] !== null;
    }
  }
  return { tooDeep: false, duplicate };
}

/**
 * Parse and validate an inbound payload for `topic`: size and nesting limits first, then JSON,
 * then the contract's schema. Never throws; the error says what is wrong and where.
 */
export function parseInbound<T extends keyof TopicMap>(
  topic: T,
  payload: Uint8Array,
): Result<TopicMap[T]['payload'], ContractError> {
  const limit = maxInboundBytes(topic);
  if (payload.length > limit) {
    return err({
      code: 'payload.too-large',
      message: `payload of ${payload.length} bytes exceeds ${limit}`,
    });
  }
  return parseInboundText(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('utf8'));
}

/**
 * parseInbound for a payload already decoded, within its size limit (a sync joined from its parts:
 * no byte copy of megabytes of text just to decode it again).
 */
export function parseInboundText<T extends keyof TopicMap>(
  topic: T,
  text: string,
): Result<TopicMap[T]['payload'], ContractError> {
  const scan = scanJson(text, MAX_INBOUND_DEPTH);
  if (scan.tooDeep) {
    return err({ code: 'payload.too-deep', message: `payload nests deeper than ${MAX_INBOUND_DEPTH} levels` });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return err({ code: 'payload.not-json', message: 'payload is not valid JSON' });
  }
  // JSON.parse keeps the last of two members with one name; another reader (a logger, a proxy,
  // the signer's canonical form) may keep the first and see a different message. I-JSON (RFC
  // 7493), which RFC 8785 canonicalises, forbids them: refused before anything reads a field.
  const twice = scan.duplicate;
  if (twice !== undefined) {
    return err({
      code: 'payload.duplicate-name',
      message: `member name ${JSON.stringify(twice).slice(0, 70)} appears twice in one object (RFC 7493 I-JSON: names are unique)`,
    });
  }
  const validate = validators[topic];
  if (!validate(value)) return err({ code: 'payload.invalid', message: describe(validate.errors?.[0]) });
  return ok(value as TopicMap[T]['payload']);
}

/** For outbound payloads (tests, and a guard before publishing): true if it matches the contract. */
export function conforms<T extends keyof TopicMap>(topic: T, value: unknown): value is TopicMap[T]['payload'] {
  return validators[topic](value);
}

/**
 * The id of a payload too broken to validate, if one can be read safely (for error results):
 * `cmdId` for a command, `id` for a sync, `deliveryId` for an OTP key delivery.
 */
export function salvageId(
  payload: Uint8Array,
  field: 'id' | 'cmdId' | 'deliveryId' = 'id',
  limit = MAX_INBOUND_BYTES,
): string | null {
  if (payload.length > limit) return null;
  try {
    const text = Buffer.from(payload).toString('utf8');
    if (scanJson(text, MAX_INBOUND_DEPTH).tooDeep) return null;
    const v = JSON.parse(text) as Record<string, unknown> | null;
    const id = v !== null && typeof v === 'object' && Object.hasOwn(v, field) ? v[field] : undefined;
    return typeof id === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(id) ? id : null;
  } catch {
    return null;
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Well-formed UTF-8 (RFC 3629), checked by the platform's decoder. */
function isUtf8(b: Uint8Array): boolean {
  try {
    strictUtf8.decode(b);
    return true;
  } catch {
    return false;
  }
}

/** Payloads must be UTF-8: a lossy decode would let a mangled message through as a different one. */
export function checkUtf8(payload: Uint8Array, limit: number): { ok: false; error: ContractError } | undefined {
  if (payload.length > limit || isUtf8(payload)) return undefined;
  return {
    ok: false,
    error: {
      code: 'payload.not-utf8',
      message: `payload is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(payload)})`,
    },
  };
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629), or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i] ?? 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    const n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    if (n === 0 || i + n >= b.length) return i;
    for (let k = 1; k <= n; k++) if (((b[i + k] ?? 0) & 0xc0) !== 0x80) return i;
    const c1 = b[i + 1] ?? 0;
    // Overlong forms, UTF-16 surrogates, and code points above U+10FFFF.
    if (
      (c === 0xe0 && c1 < 0xa0) ||
      (c === 0xed && c1 > 0x9f) ||
      (c === 0xf0 && c1 < 0x90) ||
      (c === 0xf4 && c1 > 0x8f)
    ) {
      return i;
    }
    i += n + 1;
  }
  return -1;
}
