import { describe, expect, it } from 'vitest';
import {
  checkTimeZone,
  compileSchedule,
  isValidAt,
  isWithin,
  localTime,
  type Schedule,
  toMillis,
  useZoneinfo,
} from '../../../src/access/schedule.js';
import { ZONEINFO_DIR } from '../../../src/base/tzif.js';
import { refusal } from '../../helpers/refusal.js';

const t = (iso: string) => Date.parse(iso);
const ALL_DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
const mornings: Schedule = [{ days: [...ALL_DAYS], from: '07:00', to: '09:00' }];
const twoToThree: Schedule = [{ days: [...ALL_DAYS], from: '02:00', to: '03:00' }];
const oneToTwo: Schedule = [{ days: [...ALL_DAYS], from: '01:00', to: '02:00' }];

describe('schedule: local wall clock across DST in Europe/Madrid', () => {
  const tz = 'Europe/Madrid';

  it('07:00–09:00 is 07:00–09:00 local the week before spring forward (UTC+1)', () => {
    expect(isWithin(mornings, tz, t('2026-03-28T05:59:59.999Z'))).toBe(false);
    expect(isWithin(mornings, tz, t('2026-03-28T06:00:00Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-03-28T07:59:59.999Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-03-28T08:00:00Z'))).toBe(false);
  });

  it('07:00–09:00 is still 07:00–09:00 local on the day of spring forward (UTC+2 from 2026-03-29)', () => {
    expect(isWithin(mornings, tz, t('2026-03-29T04:59:59.999Z'))).toBe(false);
    expect(isWithin(mornings, tz, t('2026-03-29T05:00:00Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-03-29T06:59:59.999Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-03-29T07:00:00Z'))).toBe(false);
  });

  it('the skipped hour 02:00–03:00 on 2026-03-29 never occurs, so an interval inside it admits nothing', () => {
    // 01:59:59 CET, then the clock jumps to 03:00 CEST.
    expect(localTime(tz, t('2026-03-29T00:59:59Z'))).toEqual({ weekday: 'sun', minute: 60 + 59 });
    expect(localTime(tz, t('2026-03-29T01:00:00Z'))).toEqual({ weekday: 'sun', minute: 180 });
    for (let at = t('2026-03-29T00:00:00Z'); at < t('2026-03-29T03:00:00Z'); at += 60_000) {
      expect(isWithin(twoToThree, tz, at)).toBe(false);
    }
    // ...while the same interval admits that hour the day before and the day after.
    expect(isWithin(twoToThree, tz, t('2026-03-28T01:30:00Z'))).toBe(true);
    expect(isWithin(twoToThree, tz, t('2026-03-30T00:30:00Z'))).toBe(true);
  });

  it('the repeated hour 02:00–03:00 on 2026-10-25 is inside for both of its occurrences', () => {
    expect(isWithin(twoToThree, tz, t('2026-10-24T23:59:59Z'))).toBe(false); // 01:59:59 CEST
    expect(isWithin(twoToThree, tz, t('2026-10-25T00:00:00Z'))).toBe(true); // 02:00 CEST, first time
    expect(isWithin(twoToThree, tz, t('2026-10-25T00:59:59Z'))).toBe(true); // 02:59:59 CEST
    expect(isWithin(twoToThree, tz, t('2026-10-25T01:00:00Z'))).toBe(true); // 02:00 CET, second time
    expect(isWithin(twoToThree, tz, t('2026-10-25T01:59:59Z'))).toBe(true); // 02:59:59 CET
    expect(isWithin(twoToThree, tz, t('2026-10-25T02:00:00Z'))).toBe(false); // 03:00 CET
  });

  it('07:00–09:00 follows fall back (UTC+1 from 2026-10-25) and is UTC+2 the day before', () => {
    expect(isWithin(mornings, tz, t('2026-10-24T05:00:00Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-10-24T07:00:00Z'))).toBe(false);
    expect(isWithin(mornings, tz, t('2026-10-25T05:59:59.999Z'))).toBe(false);
    expect(isWithin(mornings, tz, t('2026-10-25T06:00:00Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-10-25T07:59:59.999Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-10-25T08:00:00Z'))).toBe(false);
  });

  it('the weekday is the local one, not the UTC one', () => {
    // Sunday 23:30 UTC is Monday 01:30 in Madrid (summer time).
    const mondayNight: Schedule = [{ days: ['mon'], from: '01:00', to: '02:00' }];
    expect(localTime(tz, t('2026-03-29T23:30:00Z'))).toEqual({ weekday: 'mon', minute: 90 });
    expect(isWithin(mondayNight, tz, t('2026-03-29T23:30:00Z'))).toBe(true);
    expect(isWithin(mondayNight, 'UTC', t('2026-03-29T23:30:00Z'))).toBe(false);
  });
});

describe('schedule: local wall clock across DST in America/New_York', () => {
  const tz = 'America/New_York';

  it('07:00–09:00 local on both sides of spring forward (2026-03-08: UTC-5 → UTC-4)', () => {
    expect(isWithin(mornings, tz, t('2026-03-07T11:59:59.999Z'))).toBe(false);
    expect(isWithin(mornings, tz, t('2026-03-07T12:00:00Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-03-07T13:59:59.999Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-03-07T14:00:00Z'))).toBe(false);
    expect(isWithin(mornings, tz, t('2026-03-08T10:59:59.999Z'))).toBe(false);
    expect(isWithin(mornings, tz, t('2026-03-08T11:00:00Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-03-08T12:59:59.999Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-03-08T13:00:00Z'))).toBe(false);
  });

  it('the skipped hour 02:00–03:00 on 2026-03-08 admits nothing', () => {
    expect(localTime(tz, t('2026-03-08T06:59:59Z'))).toEqual({ weekday: 'sun', minute: 60 + 59 });
    expect(localTime(tz, t('2026-03-08T07:00:00Z'))).toEqual({ weekday: 'sun', minute: 180 });
    for (let at = t('2026-03-08T05:00:00Z'); at < t('2026-03-08T09:00:00Z'); at += 60_000) {
      expect(isWithin(twoToThree, tz, at)).toBe(false);
    }
  });

  it('the repeated hour 01:00–02:00 on 2026-11-01 is inside for both occurrences', () => {
    expect(isWithin(oneToTwo, tz, t('2026-11-01T04:59:59Z'))).toBe(false); // 00:59:59 EDT
    expect(isWithin(oneToTwo, tz, t('2026-11-01T05:00:00Z'))).toBe(true); // 01:00 EDT
    expect(isWithin(oneToTwo, tz, t('2026-11-01T05:59:59Z'))).toBe(true); // 01:59:59 EDT
    expect(isWithin(oneToTwo, tz, t('2026-11-01T06:00:00Z'))).toBe(true); // 01:00 EST
    expect(isWithin(oneToTwo, tz, t('2026-11-01T06:59:59Z'))).toBe(true); // 01:59:59 EST
    expect(isWithin(oneToTwo, tz, t('2026-11-01T07:00:00Z'))).toBe(false); // 02:00 EST
  });

  it('07:00–09:00 local on both sides of fall back (2026-11-01: UTC-4 → UTC-5)', () => {
    expect(isWithin(mornings, tz, t('2026-10-31T11:00:00Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-10-31T13:00:00Z'))).toBe(false);
    expect(isWithin(mornings, tz, t('2026-11-01T11:59:59.999Z'))).toBe(false);
    expect(isWithin(mornings, tz, t('2026-11-01T12:00:00Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-11-01T13:59:59.999Z'))).toBe(true);
    expect(isWithin(mornings, tz, t('2026-11-01T14:00:00Z'))).toBe(false);
  });
});

describe('schedule: intervals', () => {
  const tz = 'Europe/Madrid';

  it("an interval ending at '24:00' includes the last minute of the day and nothing of the next", () => {
    const lateSaturday: Schedule = [{ days: ['sat'], from: '22:00', to: '24:00' }];
    expect(isWithin(lateSaturday, tz, t('2026-06-06T19:59:59.999Z'))).toBe(false); // sat 21:59:59
    expect(isWithin(lateSaturday, tz, t('2026-06-06T20:00:00Z'))).toBe(true); // sat 22:00
    expect(isWithin(lateSaturday, tz, t('2026-06-06T21:59:59.999Z'))).toBe(true); // sat 23:59:59.999
    expect(isWithin(lateSaturday, tz, t('2026-06-06T22:00:00Z'))).toBe(false); // sun 00:00
  });

  it('only the listed days are admitted, and an empty schedule admits nothing', () => {
    const weekdays: Schedule = [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '00:00', to: '24:00' }];
    expect(isWithin(weekdays, tz, t('2026-06-05T12:00:00Z'))).toBe(true); // Friday
    expect(isWithin(weekdays, tz, t('2026-06-06T12:00:00Z'))).toBe(false); // Saturday
    expect(isWithin([], tz, t('2026-06-05T12:00:00Z'))).toBe(false);
  });

  it('an interval that does not end after its start is refused, with the way to write one past midnight', () => {
    const e = refusal(() => compileSchedule([{ days: ['fri'], from: '22:00', to: '06:00' }]));
    expect(e.code).toBe('access.schedule');
    expect(e.message).toContain('schedule[0]: ends at 06:00, not after its start 22:00');
    expect(e.hint).toContain('24:00');
    expect(refusal(() => compileSchedule([{ days: ['fri'], from: '08:00', to: '08:00' }])).code).toBe(
      'access.schedule',
    );
  });

  it("malformed times are refused: '24:00' only as an end, no '7:00', no '23:60'", () => {
    for (const [from, to] of [
      ['24:00', '24:00'],
      ['7:00', '09:00'],
      ['07:00', '23:60'],
      ['07:00', '24:01'],
    ] as const) {
      expect(refusal(() => compileSchedule([{ days: ['mon'], from, to }])).code).toBe('access.schedule');
    }
  });
});

describe('schedule: time zones and validity', () => {
  it('an unknown time zone is refused with a HubError that names it', () => {
    const e = refusal(() => checkTimeZone('Europe/Atlantis'));
    expect(e.code).toBe('access.time-zone');
    expect(e.message).toContain('Europe/Atlantis');
    expect(refusal(() => isWithin(mornings, 'Mars/Olympus_Mons', 0)).code).toBe('access.time-zone');
    expect(refusal(() => localTime('', 0)).code).toBe('access.time-zone');
  });

  it('known zones are accepted', () => {
    for (const tz of ['UTC', 'Europe/Madrid', 'America/New_York', 'Asia/Kolkata']) checkTimeZone(tz);
  });

  it('a validity period includes validFrom and excludes validUntil, in unix ms or ISO 8601', () => {
    const v = { validFrom: '2026-03-01T00:00:00+01:00', validUntil: t('2026-04-01T00:00:00Z') };
    expect(isValidAt(v, t('2026-02-28T22:59:59.999Z'))).toBe(false);
    expect(isValidAt(v, t('2026-02-28T23:00:00Z'))).toBe(true);
    expect(isValidAt(v, t('2026-03-31T23:59:59.999Z'))).toBe(true);
    expect(isValidAt(v, t('2026-04-01T00:00:00Z'))).toBe(false);
    expect(isValidAt({}, 0)).toBe(true);
  });

  it('an ISO time without Z or an offset is refused (it would depend on the zone of the hub)', () => {
    expect(toMillis('2026-03-29T02:30:00Z')).toBe(t('2026-03-29T02:30:00Z'));
    const e = refusal(() => toMillis('2026-03-29T02:30:00', 'validFrom'));
    expect(e.code).toBe('access.time');
    expect(e.message).toContain('validFrom');
    expect(refusal(() => toMillis(1.5)).code).toBe('access.time');
    expect(refusal(() => localTime('UTC', Number.NaN)).code).toBe('access.time');
  });

  it('the last instants a Date holds: the same local time from the zone file as from ICU, no error', () => {
    const ends = [8.64e15, 8.64e15 - 1, -8.64e15];
    try {
      useZoneinfo(ZONEINFO_DIR);
      const fromFile = ends.map((at) => localTime('Asia/Tokyo', at));
      useZoneinfo(null);
      expect(ends.map((at) => localTime('Asia/Tokyo', at))).toEqual(fromFile);
    } finally {
      useZoneinfo(ZONEINFO_DIR);
    }
  });
});
