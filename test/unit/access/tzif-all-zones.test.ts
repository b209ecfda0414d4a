import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadZoneOffsets, ZONEINFO_DIR, type ZoneOffsets } from '../../../src/base/tzif.js';

/**
 * Every zone ICU knows that the system's tz database also has: the reader's offsets against
 * ICU's where an error would show — the second before and the second of each listed transition
 * and of each change the footer's rule makes up to 2100 (found by scanning the reader's offsets
 * weekly and bisecting to the second: a change ICU makes earlier or later than the reader shows
 * at one of the two), and a 97-day grid 1970–2100 (a change ICU has and the file has not).
 * ~280,000 instants in ~420 zones, ~3 s on an idle machine (most of it ICU's formatting; 7 s at a
 * load of 14 on 2 cores). ICU's canonical names include old ones (America/Godthab, Asia/Calcutta):
 * tzdata's symlinks to the current files, which the reader follows inside the directory.
 * Not before 1970: there the databases differ by design (Debian builds tzdata with its `backzone`
 * history, e.g. Africa/Accra's own LMT; ICU keeps only one zone of those that agree since 1970),
 * and no schedule reads that far back. Time type 0 before the first transition (RFC 8536 §3.2)
 * is checked in tzif.test.ts.
 */

const FROM = Date.UTC(1970, 0, 1) / 1000;
const UNTIL = Date.UTC(2100, 0, 1) / 1000;
const haveZoneinfo = existsSync(join(ZONEINFO_DIR, 'Europe/Madrid'));

/**
 * Where the system's tz release and ICU's (process.versions.tz) genuinely disagree because one is
 * older: a change of the newer release that the older file cannot have. Allowed only while the
 * system's release is older than `release`, only before `until`, only in `zone`. The daemon uses
 * the system's data there (it is the OS's to keep current; docs/operations.md, "Time zones").
 */
const NEWER_RELEASE_CHANGES = [
  // 2025c: Baja California observed DST in 1953 and 1961–1975 (America/Tijuana).
  { zone: 'America/Tijuana', release: '2025c', until: Date.UTC(1976, 0, 1) / 1000 },
];

/** The system tz release ("2025b"), from tzdata.zi's first line; undefined when not stated. */
function systemRelease(): string | undefined {
  try {
    return /^# version (\S+)/.exec(readFileSync(join(ZONEINFO_DIR, 'tzdata.zi'), 'latin1').slice(0, 64))?.[1];
  } catch {
    return undefined;
  }
}

function allowed(zone: string, t: number): boolean {
  const release = systemRelease();
  return NEWER_RELEASE_CHANGES.some(
    (c) => c.zone === zone && t < c.until && release !== undefined && release < c.release,
  );
}

/** ICU's offset (seconds east) of a zone: 'GMT', 'GMT+05:30', 'GMT-00:44:30'. */
function icuOffsets(zone: string): (t: number) => number {
  const f = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' });
  return (t) => {
    const text = f.format(t * 1000);
    const m = /GMT(?:([+-])([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?$/.exec(text);
    if (!m) throw new Error(`ICU offset ${text}`);
    if (m[1] === undefined) return 0;
    const v = Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4] ?? 0);
    return m[1] === '-' ? -v : v;
  };
}

/** The instants (unix s) where the reader's offset changes after the listed transitions, to UNTIL. */
function ruleChanges(z: ZoneOffsets): number[] {
  const off = (t: number) => z.offsetAt(t * 1000);
  const out: number[] = [];
  const week = 7 * 86_400;
  let a = Math.max(FROM, z.transitions.at(-1) ?? FROM);
  let offA = off(a);
  while (a < UNTIL) {
    const b = a + week;
    const offB = off(b);
    if (offA !== offB) {
      let lo = a; // off(lo) === offA, off(hi) !== offA: the change is in (lo, hi]
      let hi = b;
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (off(mid) === offA) lo = mid;
        else hi = mid;
      }
      out.push(hi);
    }
    a = b;
    offA = offB;
  }
  return out;
}

/** The instants where `zone` is checked. */
function instants(z: ZoneOffsets): Set<number> {
  const at = new Set<number>();
  for (const t of z.transitions) if (t >= FROM && t < UNTIL) at.add(t - 1).add(t);
  for (const t of ruleChanges(z)) at.add(t - 1).add(t);
  for (let t = FROM + 4321; t < UNTIL; t += 97 * 86_400) at.add(t);
  return at;
}

describe('the TZif reader against ICU, every zone', () => {
  it.skipIf(!haveZoneinfo)(
    'gives ICU offsets around every change 1970–2100 and on a grid',
    () => {
      const zones = Intl.supportedValuesOf('timeZone').filter((z) => existsSync(join(ZONEINFO_DIR, z)));
      expect(zones.length).toBeGreaterThan(300);
      const unread: string[] = [];
      const wrong: string[] = [];
      let compared = 0;
      for (const zone of zones) {
        const z = loadZoneOffsets(zone);
        if (!z) {
          unread.push(zone);
          continue;
        }
        const icu = icuOffsets(zone);
        let bad = 0;
        for (const t of instants(z)) {
          compared++;
          const mine = z.offsetAt(t * 1000);
          const theirs = icu(t);
          if (mine !== theirs && !allowed(zone, t) && bad++ < 3)
            wrong.push(`${zone} ${new Date(t * 1000).toISOString()} tzif ${mine} icu ${theirs}`);
        }
      }
      expect(unread).toEqual([]);
      expect(wrong).toEqual([]);
      expect(compared).toBeGreaterThan(100_000);
    },
    30_000,
  );

  it.skipIf(!haveZoneinfo)('the zones of the brief: changes and instants exactly at them', () => {
    // [zone, instant (unix s), offset from that second on, offset the second before]
    const cases: [string, string, number, number][] = [
      ['Europe/Madrid', '2026-03-29T01:00:00Z', 7200, 3600],
      ['Europe/Madrid', '2026-10-25T01:00:00Z', 3600, 7200],
      ['Europe/Dublin', '2026-10-25T01:00:00Z', 0, 3600], // negative DST: winter is the "DST"
      ['Europe/Dublin', '2061-03-27T01:00:00Z', 3600, 0], // from the footer rule
      ['America/Nuuk', '2026-03-29T01:00:00Z', -3600, -7200], // M3.5.0/-1: Saturday 23:00 local
      ['America/Nuuk', '2050-03-27T01:00:00Z', -3600, -7200],
      ['Australia/Lord_Howe', '2026-10-03T15:30:00Z', 39_600, 37_800], // 30-minute DST
      ['Australia/Lord_Howe', '2050-04-02T15:00:00Z', 37_800, 39_600],
      ['Pacific/Chatham', '2050-09-24T14:00:00Z', 49_500, 45_900], // +12:45 / +13:45
      ['America/Sao_Paulo', '2019-02-17T02:00:00Z', -10_800, -7200], // its last DST end
      ['Antarctica/Troll', '2050-03-27T01:00:00Z', 7200, 0], // +00 / +02 DST
      ['Africa/Casablanca', '2026-02-15T02:00:00Z', 0, 3600], // Ramadan: listed transitions to 2087
    ];
    for (const [zone, iso, after, before] of cases) {
      const z = loadZoneOffsets(zone);
      const t = Date.parse(iso);
      expect([z?.offsetAt(t - 1000), z?.offsetAt(t)], `${zone} ${iso}`).toEqual([before, after]);
    }
    // No transitions, no DST: a fixed offset at any instant (POSIX's sign: Etc/GMT+5 is UTC−5).
    for (const [zone, offset] of [
      ['UTC', 0],
      ['Etc/GMT+5', -18_000],
      ['Etc/GMT-14', 50_400],
      ['Asia/Kolkata', 19_800],
    ] as const) {
      const z = loadZoneOffsets(zone);
      for (const iso of ['1971-01-01T00:00:00Z', '2026-06-01T00:00:00Z', '2099-12-31T23:59:59Z'])
        expect(z?.offsetAt(Date.parse(iso)), `${zone} ${iso}`).toBe(offset);
    }
    // Asia/Tehran: no DST since 2022; the footer is a fixed +0330.
    expect(loadZoneOffsets('Asia/Tehran')?.offsetAt(Date.UTC(2030, 5, 1))).toBe(12_600);
  });
});
