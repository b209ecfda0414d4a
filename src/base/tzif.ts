import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A time zone's UTC offsets read from the system's time zone database (TZif files, RFC 8536:
 * /usr/share/zoneinfo, Debian's tzdata), so that schedules are evaluated without ICU. The first
 * Intl.DateTimeFormat loads ICU's locale and zone data from the node binary — ~8 MB of RSS, and
 * ~6 MB more as a 10,000-user site's offline-list windows read the wall clock (docs/operations.md,
 * "What a full outbox and a 10k-user site add") — where a zone file is 1–3 KB.
 *
 * The transitions listed in the file are used as they are; after the last one, the POSIX TZ rule
 * of its footer (e.g. `CET-1CEST,M3.5.0,M10.5.0/3`). Anything unexpected — no such file, a file
 * that is not TZif version 2 or later, leap seconds, a footer this reader does not parse — gives
 * `undefined`, and the caller falls back to ICU: this reader never guesses an offset.
 */

/** Where the system keeps its zone files. */
export const ZONEINFO_DIR = '/usr/share/zoneinfo';
/** Zone files are a few KB; anything larger is not read. */
const MAX_FILE_BYTES = 256 * 1024;
/** An IANA zone name: segments of letters, digits, `_`, `+`, `-`, never `.` or `..`. */
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9][A-Za-z0-9_+-]*){0,3}$/;

export interface ZoneOffsets {
  /** Seconds east of UTC at the instant `atMs` (unix ms). */
  offsetAt(atMs: number): number;
}

/** A POSIX TZ rule's date: `Jn` (1–365, no Feb 29), `n` (0–365 zero-based), or `Mm.w.d`. */
type RuleDate =
  | { kind: 'J'; day: number; time: number }
  | { kind: 'n'; day: number; time: number }
  | { kind: 'M'; month: number; week: number; weekday: number; time: number };

interface PosixRule {
  /** Standard and daylight offsets, seconds east of UTC. */
  std: number;
  dst?: { offset: number; start: RuleDate; end: RuleDate };
}

/** The zone's offsets from `dir`, or undefined when they cannot be read with certainty. */
export function loadZoneOffsets(name: string, dir = ZONEINFO_DIR): ZoneOffsets | undefined {
  if (!ZONE_NAME.test(name)) return undefined;
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(dir, name));
  } catch {
    return undefined;
  }
  if (bytes.length > MAX_FILE_BYTES) return undefined;
  try {
    return parseTzif(bytes);
  } catch {
    return undefined;
  }
}

/** Parse a TZif file (version 2 or later); undefined when it is anything else. Throws on a short file. */
export function parseTzif(b: Buffer): ZoneOffsets | undefined {
  const counts = (at: number) => {
    if (b.toString('latin1', at, at + 4) !== 'TZif') throw new Error('not TZif');
    const n = (i: number) => b.readUInt32BE(at + 20 + i * 4);
    return { version: b[at + 4] ?? 0, isut: n(0), isstd: n(1), leap: n(2), time: n(3), type: n(4), char: n(5) };
  };
  const v1 = counts(0);
  if (v1.version < 0x32) return undefined; // '2': 64-bit data and a footer
  const v1Bytes = v1.time * 5 + v1.type * 6 + v1.char + v1.leap * 8 + v1.isstd + v1.isut;
  const at = 44 + v1Bytes;
  const h = counts(at);
  if (h.leap !== 0 || h.type === 0) return undefined;
  let p = at + 44;
  const transitions: number[] = [];
  for (let i = 0; i < h.time; i++, p += 8) transitions.push(Number(b.readBigInt64BE(p)));
  const typeOf: number[] = [];
  for (let i = 0; i < h.time; i++, p++) typeOf.push(b[p] ?? 0);
  const offsets: number[] = [];
  for (let i = 0; i < h.type; i++, p += 6) offsets.push(b.readInt32BE(p));
  p += h.char + h.leap * 12 + h.isstd + h.isut;
  if (b[p] !== 0x0a) throw new Error('no footer');
  const end = b.indexOf(0x0a, p + 1);
  if (end < 0) throw new Error('no footer end');
  const footer = b.toString('latin1', p + 1, end);
  if (typeOf.some((t) => t >= offsets.length)) throw new Error('bad type index');
  const rule = footer === '' ? undefined : parsePosixTz(footer);
  if (footer !== '' && !rule) return undefined;
  const last = transitions.at(-1);
  return {
    offsetAt(atMs: number): number {
      const t = Math.floor(atMs / 1000);
      if (rule && (last === undefined || t >= last)) return ruleOffset(rule, t);
      if (transitions.length === 0 || t < (transitions[0] ?? 0)) return offsets[0] ?? 0;
      // The last transition at or before t.
      let lo = 0;
      let hi = transitions.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if ((transitions[mid] ?? 0) <= t) lo = mid;
        else hi = mid - 1;
      }
      return offsets[typeOf[lo] ?? 0] ?? 0;
    },
  };
}

/** `[+-]hh[:mm[:ss]]` in seconds (POSIX: positive west of Greenwich, as written). */
function hms(text: string): number | undefined {
  const m = /^([+-]?)([0-9]{1,3})(?::([0-9]{1,2}))?(?::([0-9]{1,2}))?$/.exec(text);
  if (!m) return undefined;
  const v = Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
  return m[1] === '-' ? -v : v;
}

/** A POSIX TZ string (with RFC 8536's extensions: hours −167..167 in rule times); undefined if not understood. */
export function parsePosixTz(tz: string): PosixRule | undefined {
  const m =
    /^(<[A-Za-z0-9+-]{3,}>|[A-Za-z]{3,})([+-]?[0-9]{1,2}(?::[0-9]{1,2}){0,2})(?:(<[A-Za-z0-9+-]{3,}>|[A-Za-z]{3,})([+-]?[0-9]{1,2}(?::[0-9]{1,2}){0,2})?,([^,]+),([^,]+))?$/.exec(
      tz,
    );
  if (!m) return undefined;
  const stdWest = hms(m[2] ?? '');
  if (stdWest === undefined) return undefined;
  const std = east(stdWest);
  if (m[3] === undefined) return { std };
  const dstWest = m[4] === undefined ? stdWest - 3600 : hms(m[4]);
  const start = ruleDate(m[5] ?? '');
  const end = ruleDate(m[6] ?? '');
  if (dstWest === undefined || !start || !end) return undefined;
  return { std, dst: { offset: east(dstWest), start, end } };
}

/** POSIX offsets count west; these count east (and never -0). */
const east = (west: number) => (west === 0 ? 0 : -west);

function ruleDate(text: string): RuleDate | undefined {
  const [date, timeText] = text.split('/');
  const time = timeText === undefined ? 7200 : hms(timeText);
  if (time === undefined || Math.abs(time) > 167 * 3600 || date === undefined) return undefined;
  let m = /^J([0-9]{1,3})$/.exec(date);
  if (m) {
    const day = Number(m[1]);
    return day >= 1 && day <= 365 ? { kind: 'J', day, time } : undefined;
  }
  m = /^([0-9]{1,3})$/.exec(date);
  if (m) {
    const day = Number(m[1]);
    return day <= 365 ? { kind: 'n', day, time } : undefined;
  }
  m = /^M([0-9]{1,2})\.([1-5])\.([0-6])$/.exec(date);
  if (m) {
    const month = Number(m[1]);
    if (month < 1 || month > 12) return undefined;
    return { kind: 'M', month, week: Number(m[2]), weekday: Number(m[3]), time };
  }
  return undefined;
}

const DAY_S = 86_400;
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

/** Seconds from 1970-01-01T00:00 (as if UTC) to the rule's local date and time in `year`. */
function ruleLocal(r: RuleDate, year: number): number {
  const jan1 = Date.UTC(year, 0, 1) / 1000;
  if (r.kind === 'J') return jan1 + (r.day - 1 + (isLeap(year) && r.day >= 60 ? 1 : 0)) * DAY_S + r.time;
  if (r.kind === 'n') return jan1 + r.day * DAY_S + r.time;
  const first = new Date(Date.UTC(year, r.month - 1, 1));
  const daysInMonth = new Date(Date.UTC(year, r.month, 0)).getUTCDate();
  let day = 1 + ((r.weekday - first.getUTCDay() + 7) % 7) + (r.week - 1) * 7;
  while (day > daysInMonth) day -= 7;
  return Date.UTC(year, r.month - 1, day) / 1000 + r.time;
}

function ruleOffset(rule: PosixRule, t: number): number {
  const dst = rule.dst;
  if (!dst) return rule.std;
  // The rule's year is the local year; the UTC year's neighbours cover instants near 1 January.
  const year = new Date((t + rule.std) * 1000).getUTCFullYear();
  const start = ruleLocal(dst.start, year) - rule.std;
  const end = ruleLocal(dst.end, year) - dst.offset;
  const inside = start <= end ? t >= start && t < end : !(t >= end && t < start);
  return inside ? dst.offset : rule.std;
}
