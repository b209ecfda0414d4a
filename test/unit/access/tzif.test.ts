import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadZoneOffsets, parsePosixTz, ZONEINFO_DIR } from '../../../src/base/tzif.js';
import { tempDir } from '../../helpers/tmp.js';

/** ICU's offset (seconds east) of `zone` at `at`, from Intl: the reference the reader must match. */
const icu = new Map<string, Intl.DateTimeFormat>();
function icuOffset(zone: string, at: number): number {
  let f = icu.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    icu.set(zone, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(at)) if (part.type !== 'literal') p[part.type] = Number(part.value);
  const local = Date.UTC(p.year ?? 0, (p.month ?? 1) - 1, p.day ?? 1, p.hour ?? 0, p.minute ?? 0, p.second ?? 0);
  return Math.round((local - Math.floor(at / 1000) * 1000) / 1000);
}

const haveZoneinfo = existsSync(join(ZONEINFO_DIR, 'Europe/Madrid'));

// Zones with DST north and south, half-hour and 45-minute offsets, negative DST (Dublin), none.
const ZONES = [
  'Europe/Madrid',
  'Europe/London',
  'Europe/Dublin',
  'America/New_York',
  'America/Santiago',
  'America/Sao_Paulo',
  'Australia/Sydney',
  'Australia/Lord_Howe',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'Pacific/Auckland',
  'Pacific/Chatham',
  'Africa/Johannesburg',
  'UTC',
];

describe('zone offsets from the system tz database (no ICU for schedules)', () => {
  it.skipIf(!haveZoneinfo)(
    'match ICU every 1 d 5 h 37 min from 1990 to 2060 (listed transitions and the footer rule)',
    () => {
      const from = Date.UTC(1990, 0, 1);
      const until = Date.UTC(2060, 0, 1);
      const step = (29 * 60 + 37) * 60_000;
      for (const zone of ZONES) {
        const z = loadZoneOffsets(zone);
        expect(z, zone).toBeDefined();
        const wrong: string[] = [];
        for (let at = from; at < until; at += step) {
          if (z?.offsetAt(at) !== icuOffset(zone, at)) wrong.push(new Date(at).toISOString());
          if (wrong.length > 3) break;
        }
        expect(wrong, zone).toEqual([]);
      }
    },
  );

  it.skipIf(!haveZoneinfo)('match ICU to the minute around DST changes (Madrid, New York, Sydney, Lord Howe)', () => {
    for (const zone of ['Europe/Madrid', 'America/New_York', 'Australia/Sydney', 'Australia/Lord_Howe']) {
      const z = loadZoneOffsets(zone);
      for (const year of [2026, 2041]) {
        for (let at = Date.UTC(year, 0, 1); at < Date.UTC(year + 1, 0, 1); at += 15 * 60_000) {
          // Only near the changes: where the offset an hour before or after differs.
          const here = z?.offsetAt(at);
          if (here === z?.offsetAt(at - 3_600_000) && here === z?.offsetAt(at + 3_600_000)) continue;
          for (let k = -2; k <= 2; k++)
            expect(z?.offsetAt(at + k * 60_000), `${zone} ${at}`).toBe(icuOffset(zone, at + k * 60_000));
        }
      }
    }
  });

  it('POSIX rules: the forms of the tz database footers', () => {
    expect(parsePosixTz('CET-1CEST,M3.5.0,M10.5.0/3')).toEqual({
      std: 3600,
      dst: {
        offset: 7200,
        start: { kind: 'M', month: 3, week: 5, weekday: 0, time: 7200 },
        end: { kind: 'M', month: 10, week: 5, weekday: 0, time: 10800 },
      },
    });
    expect(parsePosixTz('<+0545>-5:45')).toEqual({ std: 20_700 });
    expect(parsePosixTz('EST5EDT,M3.2.0,M11.1.0')?.dst?.offset).toBe(-4 * 3600);
    expect(parsePosixTz('<-04>4<-03>,M9.1.6/24,M4.1.6/24')?.dst?.end).toEqual({
      kind: 'M',
      month: 4,
      week: 1,
      weekday: 6,
      time: 86_400,
    });
    expect(parsePosixTz('IST-1GMT0,M10.5.0,M3.5.0/1')?.dst?.offset).toBe(0);
    expect(parsePosixTz('<+1030>-10:30<+11>-11,M10.1.0,M4.1.0')?.dst?.offset).toBe(39_600);
    // Not understood: refused, so the caller uses ICU.
    for (const bad of [
      '',
      'CET',
      'CET-1CEST',
      'CET-1CEST,M13.5.0,M10.5.0',
      'CET-1CEST,M3.6.0,M10.5.0',
      'X-1',
      'CET-1CEST,J0,J365',
    ])
      expect(parsePosixTz(bad), bad).toBeUndefined();
  });

  it('anything unexpected gives no offsets (the caller falls back to ICU), never a guess', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'Etc'), { recursive: true });
    // A path out of the directory, odd names, a missing zone.
    for (const name of [
      '../etc/passwd',
      'Europe/../../x',
      '/etc/passwd',
      'Europe//Madrid',
      '.hidden',
      'Etc/Missing',
      '',
    ])
      expect(loadZoneOffsets(name, dir), name).toBeUndefined();
    // Not TZif; a TZif version 1 file (no footer); a truncated file; leap seconds.
    writeFileSync(join(dir, 'Etc/Text'), 'hello world, not a zone file at all........................');
    expect(loadZoneOffsets('Etc/Text', dir)).toBeUndefined();
    if (haveZoneinfo) {
      const real = readFileSync(join(ZONEINFO_DIR, 'Europe/Madrid'));
      const v1 = Buffer.from(real);
      v1[4] = 0;
      writeFileSync(join(dir, 'Etc/V1'), v1);
      expect(loadZoneOffsets('Etc/V1', dir)).toBeUndefined();
      writeFileSync(join(dir, 'Etc/Short'), real.subarray(0, real.length - 40));
      expect(loadZoneOffsets('Etc/Short', dir)).toBeUndefined();
      writeFileSync(join(dir, 'Etc/Whole'), real);
      expect(loadZoneOffsets('Etc/Whole', dir)?.offsetAt(Date.UTC(2026, 6, 1))).toBe(7200);
      // A good zone file outside the directory is never reached by a name.
      const zoneinfo = join(dir, 'zoneinfo');
      mkdirSync(join(zoneinfo, 'Europe'), { recursive: true });
      writeFileSync(join(dir, 'Outside'), real);
      writeFileSync(join(zoneinfo, 'Europe/Inside'), real);
      expect(loadZoneOffsets('Europe/Inside', zoneinfo)).toBeDefined();
      for (const name of ['../Outside', 'Europe/../../Outside', `${dir}/Outside`])
        expect(loadZoneOffsets(name, zoneinfo), name).toBeUndefined();
    }
    // Leap seconds (the right/ zones): refused rather than read as if there were none.
    if (existsSync(join(ZONEINFO_DIR, 'right/Europe/Madrid'))) {
      writeFileSync(join(dir, 'Etc/Leaps'), readFileSync(join(ZONEINFO_DIR, 'right/Europe/Madrid')));
      expect(loadZoneOffsets('Etc/Leaps', dir)).toBeUndefined();
    }
  });
});
