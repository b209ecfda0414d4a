import { afterEach, describe, expect, it } from 'vitest';
import { checkTimeZone, localTime } from '../../../src/access/schedule.js';
import { refusal } from '../../helpers/refusal.js';

/**
 * Issue 15, "Memory": the daemon checks the site's time zone at start (the access decider), but the
 * first Intl.DateTimeFormat loads ICU's locale data (~8 MB of RSS). A canonical zone is checked on
 * ICU's list of zones, so a hub builds a formatter only when a schedule is evaluated; what is
 * accepted and refused is unchanged.
 */
describe('checking a time zone', () => {
  const original = Intl.DateTimeFormat;
  afterEach(() => {
    Intl.DateTimeFormat = original;
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

  it('builds no formatter for a canonical zone, and one when a schedule needs the local time', () => {
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
