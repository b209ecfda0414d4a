import { closeSync, constants, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { join, sep } from 'node:path';

/**
 * A time zone's UTC offsets read from the system's time zone database (TZif files, RFC 8536 and
 * its successor RFC 9636: /usr/share/zoneinfo, Debian's tzdata), so that schedules are evaluated
 * without ICU. The first Intl.DateTimeFormat loads ICU's locale and zone data from the node binary
 * — ~8 MB of RSS, and ~6 MB more as a 10,000-user site's offline-list windows read the wall clock
 * (docs/operations.md, "What a full outbox and a 10k-user site add") — where a zone file is 1–3 KB.
 *
 * Only the version 2+ data block is read (64-bit transition times; the version 1 block before it
 * is skipped). Before the first transition the offset is time type 0's (RFC 8536 §3.2); from a
 * transition's instant on, its type's; after the last transition (or always, when there is none),
 * the POSIX TZ rule of the footer (e.g. `CET-1CEST,M3.5.0,M10.5.0/3`, with RFC 8536 §3.3.1's
 * extensions). Anything unexpected — no such regular file, a file over 256 KB, a file that is not
 * TZif version 2 or later or breaks one of the format's rules, leap seconds (the `right/` zones,
 * whose times are not POSIX times), an empty footer after transitions (time after the last one is
 * then unspecified), a footer this reader does not parse — gives `undefined`, and the caller falls
 * back to ICU: this reader never guesses an offset, never throws, never loops on a hostile file.
 */

/** Where the system keeps its zone files. */
export const ZONEINFO_DIR = '/usr/share/zoneinfo';
/** Zone files are a few KB (the largest in tzdata, fat, ~3 KB); anything larger is not read. */
export const MAX_FILE_BYTES = 256 * 1024;
/** An IANA zone name: segments of letters, digits, `_`, `+`, `-`, never `.` or `..`. */
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9][A-Za-z0-9_+-]*){0,3}$/;
/** RFC 8536 §3.2: a UT offset SHOULD be within (−25 h, +26 h); beyond that a file is not trusted. */
const MAX_UTOFF = 26 * 3600;

export interface ZoneOffsets {
  /** Seconds east of UTC at the instant `atMs` (unix ms). */
  offsetAt(atMs: number): number;
  /** The transitions listed in the file, unix seconds ascending (tests sample around them). */
  readonly transitions: readonly number[];
  /** The footer's POSIX TZ string ('' when none). */
  readonly footer: string;
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

/**
 * The zone's offsets from `dir`, or undefined when they cannot be read with certainty. The file
 * must be a regular file inside `dir` once symlinks are resolved (tzdata's aliases are symlinks
 * within it), opened without blocking (a FIFO never hangs the caller) and at most MAX_FILE_BYTES.
 */
export function loadZoneOffsets(name: string, dir = ZONEINFO_DIR): ZoneOffsets | undefined {
  if (!ZONE_NAME.test(name)) return undefined;
  let fd: number | undefined;
  try {
    const root = realpathSync(dir);
    const path = realpathSync(join(dir, name));
    if (!path.startsWith(root + sep)) return undefined;
    // The resolved path, not followed again (a symlink put there since realpath fails to open).
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return undefined;
    // Read at most one byte more than allowed: a file that grew since fstat is refused too.
    const bytes = Buffer.alloc(Math.min(st.size, MAX_FILE_BYTES) + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, bytes, n, bytes.length - n, null);
      if (got === 0) break;
      n += got;
      if (n === bytes.length) return undefined;
    }
    return parseTzif(bytes.subarray(0, n));
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A TZif header's fields (RFC 8536 §3.1), or undefined when `at` is not one. */
function header(b: Buffer, at: number) {
  if (at + 44 > b.length || b.toString('latin1', at, at + 4) !== 'TZif') return undefined;
  const n = (i: number) => b.readUInt32BE(at + 20 + i * 4);
  return { version: b[at + 4] ?? 0, isut: n(0), isstd: n(1), leap: n(2), time: n(3), type: n(4), char: n(5) };
}

/** Parse a TZif file (version 2 or later); undefined when it is anything else or breaks the format. */
export function parseTzif(b: Buffer): ZoneOffsets | undefined {
  const v1 = header(b, 0);
  if (!v1 || v1.version < 0x32) return undefined; // '2' or later: 64-bit data and a footer
  // The version 1 data block: 32-bit times, then the same records as below with 4-byte leap times.
  const v1Bytes = v1.time * 5 + v1.type * 6 + v1.char + v1.leap * 8 + v1.isstd + v1.isut;
  const at = 44 + v1Bytes;
  const h = header(b, at);
  if (!h || h.version !== v1.version) return undefined;
  // RFC 8536 §3.1: typecnt and charcnt nonzero; isstdcnt and isutcnt zero or typecnt.
  if (h.type === 0 || h.type > 256 || h.char === 0) return undefined;
  if ((h.isstd !== 0 && h.isstd !== h.type) || (h.isut !== 0 && h.isut !== h.type)) return undefined;
  if (h.leap !== 0) return undefined; // leap seconds: ICU (which has none) is used
  let p = at + 44;
  const dataEnd = p + h.time * 9 + h.type * 6 + h.char + h.leap * 12 + h.isstd + h.isut;
  if (dataEnd + 2 > b.length) return undefined; // the data and at least "\n\n"
  const transitions: number[] = [];
  for (let i = 0; i < h.time; i++, p += 8) {
    const t = Number(b.readBigInt64BE(p));
    if (i > 0 && t <= (transitions[i - 1] ?? 0)) return undefined; // strictly ascending
    transitions.push(t);
  }
  const typeOf: number[] = [];
  for (let i = 0; i < h.time; i++, p++) {
    const t = b[p] ?? 0;
    if (t >= h.type) return undefined;
    typeOf.push(t);
  }
  const offsets: number[] = [];
  for (let i = 0; i < h.type; i++, p += 6) {
    const utoff = b.readInt32BE(p);
    if (Math.abs(utoff) > MAX_UTOFF || (b[p + 4] ?? 0) > 1 || (b[p + 5] ?? 0) >= h.char) return undefined;
    offsets.push(utoff);
  }
  p = dataEnd;
  if (b[p] !== 0x0a) return undefined;
  const end = b.indexOf(0x0a, p + 1);
  if (end < 0) return undefined;
  const footer = b.toString('latin1', p + 1, end);
  const rule = footer === '' ? undefined : parsePosixTz(footer);
  if (footer !== '' && !rule) return undefined;
  // RFC 8536 §3.3: with an empty footer, local time after the last transition is unspecified.
  if (!rule && transitions.length > 0) return undefined;
  const first = transitions[0];
  const last = transitions.at(-1);
  // RFC 8536 §3.3: the footer must agree with the last transition's type; a file where it does
  // not is refused rather than one of the two picked.
  if (rule && last !== undefined && ruleOffset(rule, last) !== offsets[typeOf.at(-1) ?? 0]) return undefined;
  return {
    transitions,
    footer,
    offsetAt(atMs: number): number {
      const t = Math.floor(atMs / 1000);
      if (rule && (last === undefined || t >= last)) return ruleOffset(rule, t);
      if (first === undefined || t < first) return offsets[0] ?? 0;
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

/** `[+-]hh[:mm[:ss]]` in seconds (POSIX: positive west of Greenwich, as written); hours ≤ maxHours. */
function hms(text: string, maxHours: number): number | undefined {
  const m = /^([+-]?)([0-9]{1,3})(?::([0-5][0-9]))?(?::([0-5][0-9]))?$/.exec(text);
  if (!m || Number(m[2]) > maxHours) return undefined;
  const v = Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
  return m[1] === '-' ? -v : v;
}

const NAME = '(<[A-Za-z0-9+-]{3,}>|[A-Za-z]{3,})';
const OFFSET = '([+-]?[0-9]{1,2}(?::[0-9]{2}){0,2})';
const POSIX_TZ = new RegExp(`^${NAME}${OFFSET}(?:${NAME}${OFFSET}?,([^,]+),([^,]+))?$`);

/**
 * A POSIX TZ string `std offset [dst [offset] ,start[/time],end[/time]]` with RFC 8536 §3.3.1's
 * extensions (rule times −167..167 h); undefined if not understood — including a DST name without
 * a rule, whose dates POSIX leaves to the implementation (zic never writes one).
 */
export function parsePosixTz(tz: string): PosixRule | undefined {
  const m = POSIX_TZ.exec(tz);
  if (!m) return undefined;
  const stdWest = hms(m[2] ?? '', 24);
  if (stdWest === undefined) return undefined;
  const std = east(stdWest);
  if (m[3] === undefined) return { std };
  const dstWest = m[4] === undefined ? stdWest - 3600 : hms(m[4], 24);
  const start = ruleDate(m[5] ?? '');
  const end = ruleDate(m[6] ?? '');
  if (dstWest === undefined || !start || !end) return undefined;
  return { std, dst: { offset: east(dstWest), start, end } };
}

/** POSIX offsets count west; these count east (and never -0). */
const east = (west: number) => (west === 0 ? 0 : -west);

function ruleDate(text: string): RuleDate | undefined {
  const parts = text.split('/');
  const date = parts[0];
  if (parts.length > 2 || date === undefined) return undefined;
  const time = parts[1] === undefined ? 7200 : hms(parts[1], 167);
  if (time === undefined) return undefined;
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

/** A Gregorian year's mean length in seconds: t's year from it is off by at most one. */
const MEAN_YEAR_S = 31_556_952;

/**
 * The rule's offset at `t` (unix seconds): the state set by the latest of the rule's changes at
 * or before t among those of the years around t's. A change's local time may lie up to 167 h
 * from its date and the offsets up to 26 h from UTC, so a year's changes can fall in the UTC year
 * before or after (Nuuk's M3.5.0/-1; "DST all year", RFC 8536 §3.3.1: `EST5EDT,0/0,J365/25`,
 * where one year's end is the next year's start at the same instant: the later year's change
 * wins). A start is written in standard time, an end in daylight time; an end before its start in
 * the year is a southern-hemisphere or negative-DST rule (Sydney; Dublin's IST-1GMT0,M10.5.0,M3.5.0/1).
 * At a tie within a year the end is applied last (no DST).
 */
function ruleOffset(rule: PosixRule, t: number): number {
  const dst = rule.dst;
  if (!dst) return rule.std;
  const year = 1970 + Math.floor(t / MEAN_YEAR_S);
  let at = Number.NEGATIVE_INFINITY;
  let offset = rule.std;
  const take = (when: number, value: number) => {
    if (when <= t && when >= at) {
      at = when;
      offset = value;
    }
  };
  for (let y = year - 2; y <= year + 2; y++) {
    const start = changeAt(rule, y, true);
    const end = changeAt(rule, y, false);
    if (start <= end) {
      take(start, dst.offset);
      take(end, rule.std);
    } else {
      take(end, rule.std);
      take(start, dst.offset);
    }
  }
  return offset;
}

/** Per rule, the unix seconds of each year's DST start (even keys) and end (odd); a schedule reads a few years. */
const changeCache = new WeakMap<PosixRule, Map<number, number>>();

function changeAt(rule: PosixRule, y: number, start: boolean): number {
  const dst = rule.dst;
  if (!dst) return Number.POSITIVE_INFINITY;
  let years = changeCache.get(rule);
  if (!years) {
    years = new Map();
    changeCache.set(rule, years);
  }
  const key = y * 2 + (start ? 0 : 1);
  let c = years.get(key);
  if (c === undefined) {
    if (years.size >= 256) years.clear();
    c = start ? ruleLocal(dst.start, y) - rule.std : ruleLocal(dst.end, y) - dst.offset;
    years.set(key, c);
  }
  return c;
}
