import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Bearer, BearerState } from '../../../hal/bearer.js';
import { commandsCheck, radiosCheck } from '../../../src/app/daemon-diag.js';
import { formatDiag } from '../../../src/cli/format.js';
import type { CertSummary, DiagCheck } from '../../../src/contract/control-socket.js';
import { certificateCheck, clockCheck, diskCheck, storeFileCheck, worst } from '../../../src/diag/checks.js';
import { tempDir } from '../../helpers/tmp.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-06-01T12:00:00Z');
const cert = (from: number, until: number): CertSummary => ({
  hubId: 'hub-0001',
  notBefore: new Date(from).toISOString(),
  notAfter: new Date(until).toISOString(),
  fingerprint: 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89',
  source: '/var/lib/iq-hub/identity/hub.crt',
});
const on = { uplinkEnabled: true };

describe('diag checks', () => {
  it('store (no daemon): a hub.db that is gone or emptied while its trace remains fails, with restore or reset', () => {
    const dir = tempDir();
    expect(storeFileCheck(dir).verdict).toBe('warn');
    writeFileSync(join(dir, 'store-identity.json'), '{"keyFingerprint":"0123456789abcdef"}');
    const lost = storeFileCheck(dir);
    expect(lost.verdict).toBe('fail');
    expect(lost.detail).toContain('is missing');
    expect(lost.action).toContain('iqhub reset --yes');
    writeFileSync(join(dir, 'hub.db'), '');
    expect(storeFileCheck(dir).detail).toContain('is empty (0 bytes)');
  });

  it('certificate: ok, warn under 30 days, fail expired or not yet valid, fail missing when the uplink needs it', () => {
    expect(certificateCheck(cert(NOW - DAY, NOW + 200 * DAY), NOW, on)).toMatchObject({ verdict: 'ok', action: null });
    const soon = certificateCheck(cert(NOW - DAY, NOW + 10 * DAY), NOW, on);
    expect(soon).toMatchObject({ verdict: 'warn' });
    expect(soon.detail).toContain('expires in 10 days');
    expect(soon.action).toContain('iqhub provision install');
    const expired = certificateCheck(cert(NOW - 90 * DAY, NOW - DAY), NOW, on);
    expect(expired.verdict).toBe('fail');
    expect(expired.detail).toContain('expired on');
    expect(certificateCheck(cert(NOW + DAY, NOW + 90 * DAY), NOW, on).verdict).toBe('fail');
    expect(certificateCheck(undefined, NOW, on).verdict).toBe('fail');
    expect(certificateCheck(undefined, NOW, { uplinkEnabled: false }).verdict).toBe('warn');
    const enrolling = certificateCheck(undefined, NOW, { uplinkEnabled: true, enrolling: true });
    expect(enrolling.verdict).toBe('warn');
    expect(enrolling.detail).toContain('claim certificate');
  });

  it('certificate: a newer certificate on disk than the daemon loaded asks for a restart', () => {
    const c = certificateCheck(cert(NOW - DAY, NOW + 200 * DAY), NOW, {
      uplinkEnabled: true,
      installedFingerprint: 'XX',
    });
    expect(c.verdict).toBe('warn');
    expect(c.action).toContain('systemctl restart iq-hub');
  });

  it('clock: before the certificate start is wrong, before 2024 suspicious', () => {
    expect(clockCheck(NOW, new Date(NOW - DAY).toISOString()).verdict).toBe('ok');
    const early = clockCheck(NOW, new Date(NOW + DAY).toISOString());
    expect(early.verdict).toBe('fail');
    expect(early.detail).toContain('the clock is wrong');
    expect(early.action).toContain('NTP');
    expect(clockCheck(Date.parse('1970-01-02T00:00:00Z'), undefined).verdict).toBe('warn');
    expect(clockCheck(NOW, undefined).verdict).toBe('ok');
  });

  it('disk: measures the nearest existing directory', () => {
    const dir = tempDir();
    const c = diskCheck(join(dir, 'not', 'yet'));
    expect(['ok', 'warn', 'fail']).toContain(c.verdict);
    expect(c.detail).toMatch(new RegExp(`^\\d+ MB free on the file system of ${dir}$`));
  });

  it('disk: fails while the running store has met a full disk, whatever the free space now', () => {
    const dir = tempDir();
    const full = `disk full at ${dir}: events are kept on the locks until space returns`;
    const c = diskCheck(dir, full);
    expect(c.verdict).toBe('fail');
    expect(c.detail).toMatch(
      new RegExp(`^disk full at ${dir}: events are kept on the locks until space returns \\(\\d+ MB free\\)$`),
    );
    expect(c.action).toContain('free space on');
    expect(diskCheck(dir, null).detail).not.toContain('disk full');
  });

  it('radios: ready is ok, unavailable fails with the reason, none warns', () => {
    const bearer = (st: BearerState) => ({ kind: 'ble', state: () => st }) as unknown as Bearer;
    expect(radiosCheck([bearer({ status: 'ready' })])).toMatchObject({ verdict: 'ok', detail: 'ble: ready' });
    const down = radiosCheck([bearer({ status: 'unavailable', reason: 'adapter hci0 is gone' })]);
    expect(down).toMatchObject({ verdict: 'fail', detail: 'ble: unavailable (adapter hci0 is gone)' });
    expect(down.action).toContain('rfkill');
    expect(radiosCheck([]).verdict).toBe('warn');
  });

  it('commands: ok when nothing points at a problem; a lockout, a wrong key or a wrong clock warns with what to look at', () => {
    const stats = { accepted: 4, refused: {}, lockouts: 0, lockedOutUntil: null };
    expect(commandsCheck(undefined)).toBeUndefined();
    expect(commandsCheck(stats)).toMatchObject({
      verdict: 'ok',
      detail: 'since start: 4 accepted, 0 refused',
      action: null,
    });
    // A malformed command alone proves nothing about keys or clocks.
    expect(commandsCheck({ ...stats, refused: { bad_request: 2 } })?.verdict).toBe('ok');
    const key = commandsCheck({ ...stats, refused: { otp_mismatch: 3 } });
    expect(key?.verdict).toBe('warn');
    expect(key?.action).toContain('another OTP key');
    const clock = commandsCheck({ ...stats, refused: { expired: 1, not_yet_valid: 1 } });
    expect(clock?.detail).toBe('since start: 4 accepted, 2 refused (expired 1, not_yet_valid 1)');
    expect(clock?.action).toContain('clock');
    const locked = commandsCheck({
      ...stats,
      refused: { otp_mismatch: 5, locked_out: 9 },
      lockouts: 1,
      lockedOutUntil: '2026-06-01T12:01:00.000Z',
    });
    expect(locked?.verdict).toBe('warn');
    expect(locked?.detail).toContain('LOCKED OUT until 2026-06-01T12:01:00.000Z');
    expect(locked?.action).toContain('iqhub commands');
  });

  it('the worst verdict wins, and the readable form shows what to do under each problem', () => {
    const checks: DiagCheck[] = [
      { name: 'disk', verdict: 'ok', detail: '5000 MB free', action: null },
      { name: 'clock', verdict: 'warn', detail: 'the clock says 1970', action: 'set the clock' },
    ];
    expect(worst(checks)).toBe('warn');
    expect(worst([...checks, { name: 'x', verdict: 'fail', detail: '', action: 'y' }])).toBe('fail');
    expect(worst([])).toBe('ok');
    const text = formatDiag({ source: 'daemon', verdict: 'warn', checks });
    expect(text).toMatch(/^OK {4}disk {3}5000 MB free\nWARN {2}clock {2}the clock says 1970\n {13}→ set the clock\n/);
    expect(text).toContain('WARN (checked by the running daemon)');
  });
});
