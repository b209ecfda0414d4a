import { HubError } from '../base/errors.js';
import { loadZoneOffsets, ZONEINFO_DIR, type ZoneOffsets } from '../base/tzif.js';
import { WEEKDAYS, type Weekday } from '../contract/sync-data.js';

/**
 * Weekly schedules and validity periods, evaluated in the site's IANA time zone.
 *
 * A schedule is read on the local wall clock: "mon 07:00–09:00" is 07:00–09:00 local time on
 * every Monday, on both sides of a DST change. The local weekday and time of an instant come from
 * the zone's rules, never from a fixed offset: those of the system's tz database (tzif.ts:
 * /usr/share/zoneinfo, kept current by the OS's tzdata package) when it has the zone, else
 * Intl.DateTimeFormat's (the ICU data Node ships). Both give the same offsets (tzif-all-zones.test.ts:
 * every zone, around every change 1970–2100); the first costs no ICU data in memory (~8–14 MB of
 * RSS with ICU).
 * Around a change: a local time that is skipped (spring forward) never occurs, so an interval
 * lying wholly inside the skipped hour admits nothing that day; a local time that occurs twice
 * (fall back) is inside an interval for both of its occurrences.
 */

/** Local wall-clock minutes `[from, to)` on each of `days`; `to` may be '24:00' (end of the day). */
export interface Interval {
  days: readonly Weekday[];
  from: string;
  to: string;
}

/** Admits an instant when any of its intervals does; an empty schedule admits nothing. */
export type Schedule = readonly Interval[];

/** A schedule as minute ranges per local weekday (index 0 = Monday), each `[from, to)` in minutes after midnight. */
export interface CompiledSchedule {
  readonly ranges: readonly (readonly (readonly [number, number])[])[];
}

/**
 * When something is valid: from `validFrom` (inclusive) until `validUntil` (exclusive); an absent
 * bound is open. Unix milliseconds, or ISO 8601 text with `Z` or an explicit offset (local time
 * without an offset is ambiguous and refused).
 */
export interface Validity {
  validFrom?: number | string | undefined;
  validUntil?: number | string | undefined;
}

/** The local wall-clock position of an instant. */
export interface LocalTime {
  weekday: Weekday;
  /** Minutes after local midnight, 0–1439. */
  minute: number;
}

const TIME = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;
const ISO_TIME = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})$/;
const DAY_INDEX: Readonly<Record<string, number>> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };
/** The latest instant a JavaScript Date can hold. */
const MAX_TIME = 8.64e15;

/** One formatter per zone: building one costs far more than using it. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  const cached = formatters.get(timeZone);
  if (cached) return cached;
  let f: Intl.DateTimeFormat;
  try {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      weekday: 'short',
      hour: 'numeric',
      minute: 'numeric',
    });
  } catch {
    throw new HubError('access.time-zone', `unknown time zone ${JSON.stringify(timeZone).slice(0, 80)}`, {
      hint: 'give the site an IANA time zone name such as Europe/Madrid or America/New_York',
    });
  }
  formatters.set(timeZone, f);
  return f;
}

/** ICU's canonical zone names (what Intl.supportedValuesOf lists: every one a formatter accepts). */
let canonicalZones: ReadonlySet<string> | undefined;

/**
 * Refuse a time zone that is not a known IANA name (HubError `access.time-zone`). A canonical name
 * passes on ICU's list of zones, without building a formatter: the first formatter loads ICU's
 * locale data (~8 MB of RSS, docs/operations.md "Memory"), which only a schedule needs (an alias
 * such as UTC or US/Eastern is still checked by building one).
 */
export function checkTimeZone(timeZone: string): void {
  canonicalZones ??= new Set(Intl.supportedValuesOf('timeZone'));
  if (!canonicalZones.has(timeZone)) formatter(timeZone);
}

/** Each canonical zone's offsets from the system's tz database; null: not there, ICU is used. */
const zoneFiles = new Map<string, ZoneOffsets | null>();
let zoneinfoDir: string | null = ZONEINFO_DIR;

/** Where zone files are read (null: none, ICU only); forgets the zones read so far. For tests. */
export function useZoneinfo(dir: string | null): void {
  zoneinfoDir = dir;
  zoneFiles.clear();
}

/** The system's rules for a zone on ICU's list of canonical zones (validated as before), if it has them. */
function systemZone(timeZone: string): ZoneOffsets | undefined {
  const known = zoneFiles.get(timeZone);
  if (known !== undefined) return known ?? undefined;
  checkTimeZone(timeZone);
  const z =
    zoneinfoDir !== null && canonicalZones?.has(timeZone) ? (loadZoneOffsets(timeZone, zoneinfoDir) ?? null) : null;
  zoneFiles.set(timeZone, z);
  return z ?? undefined;
}

/** The local weekday and minute of the day of `at` (unix ms) in `timeZone`. */
export function localTime(timeZone: string, at: number): LocalTime {
  if (!Number.isFinite(at) || Math.abs(at) > MAX_TIME) {
    throw new HubError('access.time', `not a valid instant: ${at}`);
  }
  const zone = systemZone(timeZone);
  if (zone) {
    const local = new Date(at + zone.offsetAt(at) * 1000);
    const weekday = WEEKDAYS[(local.getUTCDay() + 6) % 7];
    // Within a day of Date's last instant the local time is no Date (NaN): ICU's formatter reads it.
    if (weekday !== undefined) return { weekday, minute: local.getUTCHours() * 60 + local.getUTCMinutes() };
  }
  let day: number | undefined;
  let hour = 0;
  let minute = 0;
  for (const part of formatter(timeZone).formatToParts(at)) {
    if (part.type === 'weekday') day = DAY_INDEX[part.value];
    else if (part.type === 'hour') hour = Number(part.value) % 24;
    else if (part.type === 'minute') minute = Number(part.value);
  }
  const weekday = day === undefined ? undefined : WEEKDAYS[day];
  if (weekday === undefined) throw new HubError('access.time', `no weekday for ${at} in ${timeZone}`);
  return { weekday, minute: hour * 60 + minute };
}

function minutes(text: string, end: boolean, where: string): number {
  if (end && text === '24:00') return 24 * 60;
  const m = TIME.exec(text);
  if (!m) {
    throw new HubError(
      'access.schedule',
      `${where}: ${JSON.stringify(text).slice(0, 20)} is not a time HH:MM${end ? ' (or 24:00)' : ''}`,
    );
  }
  return Number(m[1]) * 60 + Number(m[2]);
}

/**
 * Check a schedule and turn it into minute ranges per weekday. Refuses (HubError
 * `access.schedule`) a malformed time, an unknown day, or an interval whose end is not after its
 * start: an interval past midnight is written as two (… to '24:00', then '00:00' to … next day).
 */
export function compileSchedule(schedule: Schedule, where = 'schedule'): CompiledSchedule {
  const ranges: [number, number][][] = WEEKDAYS.map(() => []);
  schedule.forEach((interval, i) => {
    const at = `${where}[${i}]`;
    const from = minutes(interval.from, false, `${at}.from`);
    const to = minutes(interval.to, true, `${at}.to`);
    if (to <= from) {
      throw new HubError('access.schedule', `${at}: ends at ${interval.to}, not after its start ${interval.from}`, {
        hint: 'an interval past midnight is two intervals: one ending at 24:00 and one starting at 00:00 the next day',
      });
    }
    if (interval.days.length === 0) throw new HubError('access.schedule', `${at}: no days`);
    for (const d of interval.days) {
      const index = WEEKDAYS.indexOf(d);
      if (index < 0) throw new HubError('access.schedule', `${at}: unknown day ${JSON.stringify(d).slice(0, 20)}`);
      ranges[index]?.push([from, to]);
    }
  });
  return { ranges };
}

const compiled = new WeakMap<Schedule, CompiledSchedule>();

function isCompiled(s: Schedule | CompiledSchedule): s is CompiledSchedule {
  return !Array.isArray(s);
}

/** Whether `schedule` admits the instant `at` (unix ms), read on the wall clock of `timeZone`. */
export function isWithin(schedule: Schedule | CompiledSchedule, timeZone: string, at: number): boolean {
  let c: CompiledSchedule;
  if (isCompiled(schedule)) c = schedule;
  else {
    const known = compiled.get(schedule);
    c = known ?? compileSchedule(schedule);
    if (!known) compiled.set(schedule, c);
  }
  const local = localTime(timeZone, at);
  const day = c.ranges[WEEKDAYS.indexOf(local.weekday)] ?? [];
  return day.some(([from, to]) => local.minute >= from && local.minute < to);
}

/** Unix milliseconds of a validity bound given as unix ms or ISO 8601 text (HubError `access.time`). */
export function toMillis(value: number | string, what = 'time'): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && Math.abs(value) <= MAX_TIME) return value;
    throw new HubError('access.time', `${what}: ${value} is not a time in whole unix milliseconds`);
  }
  const ms = ISO_TIME.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new HubError(
      'access.time',
      `${what}: ${JSON.stringify(value).slice(0, 40)} is not an ISO 8601 time with Z or an offset`,
      { hint: 'write it like 2026-03-29T07:00:00Z or 2026-03-29T09:00:00+02:00' },
    );
  }
  return ms;
}

/** Whether `at` lies within the validity period: validFrom ≤ at < validUntil. */
export function isValidAt(validity: Validity, at: number): boolean {
  if (validity.validFrom !== undefined && at < toMillis(validity.validFrom, 'validFrom')) return false;
  if (validity.validUntil !== undefined && at >= toMillis(validity.validUntil, 'validUntil')) return false;
  return true;
}

const MINUTE = 60_000;
const QUARTER = 15 * MINUTE;

/**
 * The instants in `[from, until)` that `schedule` admits in `timeZone`, as absolute intervals
 * `[from, until)` in unix ms, oldest first (for a lock that has no zone rules: offline lists).
 * Exact to the minute and across DST changes: the wall clock is read once per quarter hour (every
 * zone's offset, and every change of it, falls on a quarter hour) and minutes are counted within.
 */
export function scheduleIntervals(
  schedule: Schedule | CompiledSchedule,
  timeZone: string,
  from: number,
  until: number,
): { from: number; until: number }[] {
  const c = isCompiled(schedule) ? schedule : compileSchedule(schedule);
  const out: { from: number; until: number }[] = [];
  let start: number | undefined;
  const first = Math.floor(from / QUARTER) * QUARTER;
  for (let block = first; block < until; block += QUARTER) {
    const local = localTime(timeZone, block);
    const day = c.ranges[WEEKDAYS.indexOf(local.weekday)] ?? [];
    for (let k = 0; k < 15; k++) {
      const at = block + k * MINUTE;
      if (at < from) continue;
      if (at >= until) break;
      const minute = local.minute + k;
      const inside = day.some(([f, t]) => minute >= f && minute < t);
      if (inside && start === undefined) start = at;
      else if (!inside && start !== undefined) {
        out.push({ from: start, until: at });
        start = undefined;
      }
    }
  }
  if (start !== undefined) out.push({ from: start, until });
  return out;
}
