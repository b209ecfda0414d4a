import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadZoneOffsets, MAX_FILE_BYTES, parsePosixTz, parseTzif, ZONEINFO_DIR } from '../../../src/base/tzif.js';
import { tempDir } from '../../helpers/tmp.js';
import { tzif } from '../../helpers/tzif.js';

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

// Every zone against ICU, around every change to 2100: tzif-all-zones.test.ts.

describe('zone offsets from the system tz database (no ICU for schedules)', () => {
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

  it('refuses footers that are out of range or malformed (each once accepted)', () => {
    for (const bad of [
      'ABC99', // offset hours over 24: was read as UTC−99 h
      'ABC-25',
      'CET-1:99', // minutes over 59: was read as 2 h 39 min
      'CET-1:00:60',
      'CET-1CEST,M3.5.0/2/3,M10.5.0', // a second time: the tail was ignored
      'CET-1CEST,M3.5.0/168,M10.5.0', // rule time beyond RFC 8536's 167 h
      'CET-1CEST,M3.5.0/-168,M10.5.0',
      'CET-1CEST-25,M3.5.0,M10.5.0',
      'CET-1CEST,M3.5.0', // one rule date
    ])
      expect(parsePosixTz(bad), bad).toBeUndefined();
    expect(parsePosixTz('<-02>2<-01>,M3.5.0/-1,M10.5.0/0')?.dst?.start.time).toBe(-3600); // Nuuk
    expect(parsePosixTz('EST5EDT,0/0,J365/25')?.dst?.end).toEqual({ kind: 'J', day: 365, time: 25 * 3600 });
    expect(parsePosixTz('XXX3YYY,M3.5.0/167,M10.5.0/-167')?.dst?.end.time).toBe(-167 * 3600);
  });

  it('the footer rule: DST all year, changes across 1 January, southern and negative DST', () => {
    const at = (footer: string, iso: string) => parseTzif(tzif({ footer }))?.offsetAt(Date.parse(iso));
    // RFC 8536 §3.3.1's example: DST all year.
    for (const iso of ['2030-01-01T04:59:59Z', '2030-01-01T05:00:00Z', '2030-07-01T00:00:00Z', '2031-12-31T23:00:00Z'])
      expect(at('EST5EDT,0/0,J365/25', iso), iso).toBe(-4 * 3600);
    // A start written before 1 January (J1/-2 = 31 December 22:00): the year's rule before t's.
    const wrap = '<+00>0<+01>-1,J1/-2,J60/0';
    expect(at(wrap, '2030-12-31T21:59:59Z')).toBe(0);
    expect(at(wrap, '2030-12-31T22:00:00Z')).toBe(3600);
    expect(at(wrap, '2031-01-15T00:00:00Z')).toBe(3600);
    expect(at(wrap, '2031-02-28T22:59:59Z')).toBe(3600); // J60 = 1 March 00:00 DST = 28 Feb 23:00 UTC
    expect(at(wrap, '2031-02-28T23:00:00Z')).toBe(0);
    // An end after 31 December (M12.5.0/100: four days and 4 h after the last Sunday of December).
    const late = '<+00>0<+01>-1,M6.1.0/0,M12.5.0/100';
    expect(at(late, '2030-12-29T00:00:00Z')).toBe(3600); // last Sunday 29 Dec; ends 2 Jan 03:00 UTC
    expect(at(late, '2031-01-02T02:59:59Z')).toBe(3600);
    expect(at(late, '2031-01-02T03:00:00Z')).toBe(0);
    // Southern hemisphere (Sydney) and negative DST (Dublin) at the turn of the year.
    expect(at('AEST-10AEDT,M10.1.0,M4.1.0/3', '2030-12-31T23:30:00Z')).toBe(11 * 3600);
    expect(at('AEST-10AEDT,M10.1.0,M4.1.0/3', '2030-06-30T23:30:00Z')).toBe(10 * 3600);
    expect(at('IST-1GMT0,M10.5.0,M3.5.0/1', '2030-12-31T23:30:00Z')).toBe(0);
    expect(at('IST-1GMT0,M10.5.0,M3.5.0/1', '2030-06-30T23:30:00Z')).toBe(3600);
    // Jn never counts 29 February, n does.
    expect(at('<+00>0<+01>-1,J60/0,J300/0', '2032-02-29T12:00:00Z')).toBe(0);
    expect(at('<+00>0<+01>-1,59/0,J300/0', '2032-02-29T12:00:00Z')).toBe(3600);
  });

  it('before the first transition: time type 0 (RFC 8536 §3.2), even when it is not the first listed', () => {
    // Types: 0 = +00:30 (LMT-like), 1 = +01, 2 = +02; transitions 2000 → type 2, 2010 → type 1.
    const b = tzif({
      types: [1800, 3600, 7200],
      transitions: [
        [Date.UTC(2000, 0, 1) / 1000, 2],
        [Date.UTC(2010, 0, 1) / 1000, 1],
      ],
      footer: '<+01>-1',
    });
    const z = parseTzif(b);
    expect(z?.offsetAt(Date.UTC(1999, 11, 31, 23, 59, 59))).toBe(1800);
    expect(z?.offsetAt(Date.UTC(2000, 0, 1))).toBe(7200);
    expect(z?.offsetAt(Date.UTC(2009, 11, 31, 23, 59, 59, 999))).toBe(7200);
    expect(z?.offsetAt(Date.UTC(2010, 0, 1))).toBe(3600);
    expect(z?.offsetAt(Date.UTC(2050, 0, 1))).toBe(3600);
    // No transitions and an empty footer: type 0 always; transitions and an empty footer: unspecified after.
    expect(parseTzif(tzif({ types: [-18_000], footer: '' }))?.offsetAt(Date.UTC(2050, 0, 1))).toBe(-18_000);
    expect(parseTzif(tzif({ types: [0, 3600], transitions: [[0, 1]], footer: '' }))).toBeUndefined();
  });

  it('refuses files that break the format (each once read as if sound)', () => {
    const good = { types: [3600, 7200], transitions: [[100, 1] as [number, number], [200, 0] as [number, number]] };
    expect(parseTzif(tzif({ ...good, footer: '<+01>-1' }))).toBeDefined();
    for (const [what, b] of [
      [
        'descending transitions',
        tzif({
          ...good,
          transitions: [
            [200, 1],
            [100, 0],
          ],
          footer: '<+01>-1',
        }),
      ],
      ['an offset of −2^31', tzif({ types: [-(2 ** 31)], footer: '' })],
      ['an offset of 30 h', tzif({ types: [30 * 3600], footer: '' })],
      ['a type index out of range', tzif({ ...good, transitions: [[100, 2]], footer: '<+01>-1' })],
      ['the second header another version', tzif({ ...good, footer: '<+01>-1', version2: 0x33 })],
      ['isstdcnt neither 0 nor typecnt', tzif({ ...good, footer: '<+01>-1', isstd: 1 })],
      ['no types', tzif({ types: [], footer: '' })],
      [
        'a footer that disagrees with the last transition',
        tzif({
          ...good,
          transitions: [
            [100, 0],
            [200, 1],
          ],
          footer: '<+01>-1',
        }),
      ],
      ['no footer', tzif({ ...good, footer: undefined })],
      ['an unterminated footer', tzif({ ...good, footer: '<+01>-1', unterminated: true })],
    ] as const)
      expect(parseTzif(b), what).toBeUndefined();
  });

  // A FIFO (which must not block), a file growing, a symlink swapped in, each check on its own: tzif-files.test.ts.
  it('a hostile zone directory: huge, directory, device and symlinked-out files give no offsets', () => {
    const dir = tempDir();
    const zones = join(dir, 'zoneinfo');
    mkdirSync(join(zones, 'Etc'), { recursive: true });
    const small = tzif({ types: [3600], footer: '<+01>-1' });
    writeFileSync(join(dir, 'Outside'), small);
    writeFileSync(join(zones, 'Etc/Small'), small);
    expect(loadZoneOffsets('Etc/Small', zones)?.offsetAt(0)).toBe(3600);
    // Over the size limit, even when it starts as a sound zone file.
    writeFileSync(join(zones, 'Etc/Huge'), Buffer.concat([small, Buffer.alloc(MAX_FILE_BYTES)]));
    expect(loadZoneOffsets('Etc/Huge', zones)).toBeUndefined();
    // A symlink out of the directory (an alias inside it is fine), a directory, a device.
    symlinkSync(join(dir, 'Outside'), join(zones, 'Etc/Out'));
    symlinkSync('Small', join(zones, 'Etc/Alias'));
    expect(loadZoneOffsets('Etc/Out', zones)).toBeUndefined();
    expect(loadZoneOffsets('Etc/Alias', zones)?.offsetAt(0)).toBe(3600);
    expect(loadZoneOffsets('Etc', zones)).toBeUndefined();
    symlinkSync('/dev/zero', join(zones, 'Etc/Zero'));
    expect(loadZoneOffsets('Etc/Zero', zones)).toBeUndefined();
  });

  it.skipIf(!haveZoneinfo)(
    'fuzz: random mutations of real zone files never throw, hang or give an absurd offset',
    () => {
      let seed = 0x1234_5678;
      const rand = (n: number) => {
        seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
        return seed % n;
      };
      const files = ['Europe/Madrid', 'America/Nuuk', 'Australia/Lord_Howe', 'Africa/Casablanca', 'UTC'].map((z) =>
        readFileSync(join(ZONEINFO_DIR, z)),
      );
      let read = 0;
      for (let i = 0; i < 3000; i++) {
        const b = Buffer.from(files[i % files.length] ?? Buffer.alloc(0));
        let m: Buffer = b;
        switch (rand(5)) {
          case 0: // flip bytes anywhere
            for (let k = 0; k < 1 + rand(4); k++) m[rand(m.length)] = rand(256);
            break;
          case 1: // truncate
            m = b.subarray(0, rand(b.length));
            break;
          case 2: // a header count (v1 or v2) set to something big or small
            m.writeUInt32BE(
              [0, 1, 2, 3, 4, 5, 0xffff_ffff, 0x7fff_ffff, rand(2 ** 32)][rand(9)] ?? 0,
              (rand(2) ? 0 : 44) + 20 + rand(6) * 4,
            );
            break;
          case 3: // the footer region garbled
            for (let k = 0; k < 1 + rand(6); k++) m[m.length - 1 - rand(Math.min(40, m.length))] = 32 + rand(96);
            break;
          default: // bytes inserted
            m = Buffer.concat([
              b.subarray(0, rand(b.length)),
              Buffer.from([rand(256), rand(256)]),
              b.subarray(rand(b.length)),
            ]);
        }
        const z = parseTzif(m);
        if (!z) continue;
        read++;
        for (const at of [-2e12, 0, 1e12, Date.UTC(2026, 5, 1), Date.UTC(2090, 0, 1), 8.64e15, -8.64e15]) {
          const o = z.offsetAt(at);
          expect(Number.isInteger(o) && Math.abs(o) <= 26 * 3600, `${i} ${at} ${o}`).toBe(true);
        }
      }
      expect(read).toBeGreaterThan(0); // some mutations leave a sound file (a changed name, a changed offset)
    },
  );
});
