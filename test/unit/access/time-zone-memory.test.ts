import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { checkTimeZone, localTime, useZoneinfo } from '../../../src/access/schedule.js';
import { ZONEINFO_DIR } from '../../../src/base/tzif.js';
import { refusal } from '../../helpers/refusal.js';

/**
 * Issue 15, "Memory": the daemon checks the site's time zone at start (the access decider), but the
 * first Intl.DateTimeFormat loads ICU's locale data (~8 MB of RSS). A canonical zone is checked on
 * ICU's list of zones, so a hub builds a formatter only when a schedule is evaluated — and none
 * then either when the system's tz database has the zone (src/base/tzif.ts); what is accepted
 * and refused is unchanged.
 */
describe('checking a time zone', () => {
  const original = Intl.DateTimeFormat;
  afterEach(() => {
    Intl.DateTimeFormat = original;
    useZoneinfo(ZONEINFO_DIR);
  });
  /** Counts the formatters built from now on. */
  function countFormatters(): { n: number } {
    const count = { n: 0 };
    Intl.DateTimeFormat = new Proxy(original, {
      construct(target, args: ConstructorParameters<typeof Intl.DateTimeFormat>) {
        count.n++;
        return new target(...args);
      },
    });
    return count;
  }

  it.skipIf(!existsSync(`${ZONEINFO_DIR}/America/Argentina/Ushuaia`))(
    'with the system tz database: no formatter for a canonical zone, not even when a schedule needs the local time',
    () => {
      useZoneinfo(ZONEINFO_DIR);
      const built = countFormatters();
      checkTimeZone('America/Argentina/Ushuaia');
      expect(localTime('America/Argentina/Ushuaia', Date.parse('2026-12-07T12:00:00Z'))).toEqual({
        weekday: 'mon',
        minute: 9 * 60,
      });
      expect(localTime('Europe/Madrid', Date.parse('2026-03-29T01:30:00Z'))).toEqual({
        weekday: 'sun',
        minute: 3 * 60 + 30,
      });
      expect(built.n).toBe(0);
      // An alias is not read from a file: ICU, as before.
      expect(localTime('US/Eastern', Date.parse('2026-12-07T12:00:00Z'))).toEqual({ weekday: 'mon', minute: 7 * 60 });
      expect(built.n).toBeGreaterThan(0);
    },
  );

  it('without it (no such directory): no formatter for a canonical zone until a schedule needs the local time', () => {
    useZoneinfo('/nonexistent/zoneinfo');
    const built = countFormatters();
    checkTimeZone('America/Argentina/Ushuaia');
    checkTimeZone('Europe/Madrid');
    expect(built.n).toBe(0);
    expect(localTime('America/Argentina/Ushuaia', Date.parse('2026-12-07T12:00:00Z'))).toEqual({
      weekday: 'mon',
      minute: 9 * 60,
    });
    expect(built.n).toBe(1);
  });

  it('still accepts what a formatter accepts (aliases, UTC, any case) and refuses the rest', () => {
    for (const tz of ['UTC', 'Etc/GMT+5', 'US/Eastern', 'Asia/Kolkata', 'europe/madrid']) checkTimeZone(tz);
    for (const tz of ['Europe/Atlantis', '', 'Europe/Madrid ', '../../etc/passwd', 'x'.repeat(300)]) {
      const e = refusal(() => checkTimeZone(tz));
      expect(e.code).toBe('access.time-zone');
      expect(e.message.length).toBeLessThan(200);
    }
  });
});
