import { createHash, createHmac } from 'node:crypto';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import {
  type CommandEnvelope,
  canonicalBytes,
  challengeOf,
  computeOtp,
  OTP_SUITE,
  openSetupCode,
  otpMatches,
  sealSetupCode,
  signCommand,
  timeStepOf,
  type UnsignedCommand,
} from '../../../src/commands/otp.js';
import { Secret } from '../../../src/crypto/secret.js';
import { refusal } from '../../helpers/refusal.js';

// The RFC 6287 Appendix C seed for the SHA-256 suites.
const KEY32 = Buffer.from('12345678901234567890123456789012', 'ascii');
const KEY = new Secret(KEY32);

const COMMAND: UnsignedCommand = {
  v: 1,
  cmdId: 'cmd-0001',
  hubId: 'hub-0001',
  lockId: 'SIM-0001',
  op: 'open',
  args: { durationMs: 5000 },
  issuedAt: '2026-11-27T20:01:02.003Z',
  expiresAt: '2026-11-27T20:02:02.003Z',
  counter: 42,
};

/** The OTP of COMMAND under KEY32, as computed by independentOcra (and by the hub). */
const KNOWN_OTP = '27816559';

/** RFC 8785 by hand: members sorted by name (UTF-16 code units), no whitespace, `otp` left out. */
const CANONICAL =
  '{"args":{"durationMs":5000},"cmdId":"cmd-0001","counter":42,"expiresAt":"2026-11-27T20:02:02.003Z",' +
  '"hubId":"hub-0001","issuedAt":"2026-11-27T20:01:02.003Z","lockId":"SIM-0001","op":"open","v":1}';

/**
 * OCRA-1:HOTP-SHA256-8:C-QH64-T30S computed from RFC 6287 directly, without src/crypto/ocra.ts:
 * DataInput = suite ‖ 0x00 ‖ C (8 bytes) ‖ Q (hex-decoded, right-padded with zeros to 128 bytes)
 * ‖ T (8 bytes); HMAC-SHA-256; dynamic truncation (RFC 4226 section 5.3) to 8 digits.
 */
function independentOcra(key: Buffer, counter: bigint, questionHex: string, step: bigint): string {
  const c = Buffer.alloc(8);
  c.writeBigUInt64BE(counter);
  const q = Buffer.alloc(128);
  Buffer.from(questionHex, 'hex').copy(q);
  const t = Buffer.alloc(8);
  t.writeBigUInt64BE(step);
  const data = Buffer.concat([Buffer.from('OCRA-1:HOTP-SHA256-8:C-QH64-T30S', 'ascii'), Buffer.from([0]), c, q, t]);
  const h = createHmac('sha256', key).update(data).digest();
  const offset = (h[h.length - 1] ?? 0) & 0x0f;
  const code = (h.readUInt32BE(offset) & 0x7fffffff) % 100_000_000;
  return String(code).padStart(8, '0');
}

describe('the command OTP (OCRA-1:HOTP-SHA256-8:C-QH64-T30S)', () => {
  it('is the suite the docs name', () => {
    expect(OTP_SUITE).toBe('OCRA-1:HOTP-SHA256-8:C-QH64-T30S');
  });

  it("canonical bytes: RFC 8785's own examples (numbers, string escapes, member order by UTF-16 code units)", () => {
    const jcs = (json: string) => canonicalBytes(JSON.parse(json) as UnsignedCommand).toString('utf8');
    // RFC 8785 section 3.2.2.
    expect(
      jcs(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
          ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
      ),
    ).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
    // RFC 8785 section 3.2.3.
    expect(
      jcs(
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One",' +
          ' "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", "\\u00f6": "Latin Small Letter O With Diaeresis"}',
      ),
    ).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",' +
        '"€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('canonical bytes: RFC 8785, members sorted at every level, no whitespace, without otp', () => {
    expect(canonicalBytes(COMMAND).toString('utf8')).toBe(CANONICAL);
    const signed = signCommand(KEY, COMMAND);
    expect(canonicalBytes(signed).toString('utf8')).toBe(CANONICAL);
    // The order members arrive in does not matter.
    const shuffled = JSON.parse(
      '{"otp":"00000000","v":1,"op":"open","lockId":"SIM-0001","issuedAt":"2026-11-27T20:01:02.003Z","hubId":"hub-0001",' +
        '"expiresAt":"2026-11-27T20:02:02.003Z","counter":42,"cmdId":"cmd-0001","args":{"durationMs":5000}}',
    ) as CommandEnvelope;
    expect(canonicalBytes(shuffled).toString('utf8')).toBe(CANONICAL);
    // Numbers are canonical (ECMAScript number serialisation): 5.0e3 and 42.00 are 5000 and 42.
    const spelled = JSON.parse(
      '{"v":1.0,"cmdId":"cmd-0001","hubId":"hub-0001","lockId":"SIM-0001","op":"open","args":{"durationMs":5.0e3},' +
        '"issuedAt":"2026-11-27T20:01:02.003Z","expiresAt":"2026-11-27T20:02:02.003Z","counter":42.00}',
    ) as UnsignedCommand;
    expect(canonicalBytes(spelled).toString('utf8')).toBe(CANONICAL);
    // Nested members are sorted too, and an absent lockId is absent (not null).
    const { lockId: _l, ...noLock } = COMMAND;
    expect(canonicalBytes({ ...noLock, op: 'setMode', args: { mode: 'office' } }).toString('utf8')).toBe(
      '{"args":{"mode":"office"},"cmdId":"cmd-0001","counter":42,"expiresAt":"2026-11-27T20:02:02.003Z",' +
        '"hubId":"hub-0001","issuedAt":"2026-11-27T20:01:02.003Z","op":"setMode","v":1}',
    );
    expect(canonicalBytes({ ...COMMAND, lockId: undefined } as unknown as UnsignedCommand).toString('utf8')).toBe(
      canonicalBytes(noLock).toString('utf8'),
    );
  });

  it('known answer: the challenge is SHA-256 of the canonical bytes, the OTP matches an independent HMAC computation', () => {
    const challenge = createHash('sha256').update(CANONICAL, 'utf8').digest('hex');
    expect(challengeOf(COMMAND)).toBe(challenge);
    const step = BigInt(Math.floor(Date.UTC(2026, 10, 27, 20, 1, 2, 3) / 30_000));
    expect(timeStepOf(COMMAND.issuedAt)).toBe(step);
    const expected = independentOcra(KEY32, 42n, challenge, step);
    expect(computeOtp(KEY, COMMAND)).toBe(expected);
    expect(signCommand(KEY, COMMAND).otp).toBe(expected);
    // Pinned, so a change to any part of the construction shows here.
    expect(expected).toBe(KNOWN_OTP);
  });

  it('binds every field: changing any of them (or the key) changes the OTP', () => {
    const signed = signCommand(KEY, COMMAND);
    expect(otpMatches(KEY, signed)).toBe(true);
    const altered: CommandEnvelope[] = [
      { ...signed, cmdId: 'cmd-0002' },
      { ...signed, hubId: 'hub-0002' },
      { ...signed, lockId: 'SIM-0002' },
      { ...signed, op: 'lock', args: {} },
      { ...signed, args: { durationMs: 5001 } },
      { ...signed, args: {} },
      { ...signed, issuedAt: '2026-11-27T20:01:02.004Z' },
      { ...signed, expiresAt: '2026-11-27T20:02:02.004Z' },
      { ...signed, counter: 43 },
      { ...signed, v: 2 as 1 },
    ];
    for (const a of altered) expect(otpMatches(KEY, a), JSON.stringify(a)).toBe(false);
    expect(otpMatches(new Secret(Buffer.alloc(32, 1)), signed)).toBe(false);
    for (let i = 0; i < 8; i++) {
      const digit = String((Number(signed.otp[i]) + 1) % 10);
      expect(otpMatches(KEY, { ...signed, otp: signed.otp.slice(0, i) + digit + signed.otp.slice(i + 1) })).toBe(false);
    }
  });

  it('the time step is that of issuedAt (30 s)', () => {
    expect(timeStepOf('1970-01-01T00:00:29.999Z')).toBe(0n);
    expect(timeStepOf('1970-01-01T00:00:30.000Z')).toBe(1n);
    expect(timeStepOf('2026-01-01T00:00:00Z')).toBe(BigInt(Date.UTC(2026, 0, 1) / 30_000));
  });
});

describe('sealed setup codes (attach)', () => {
  it('matches the published test vector (docs/mqtt-api.md), computed here with another implementation', () => {
    const key = new Secret(Buffer.from('12345678901234567890123456789012', 'ascii'));
    const nonce = Uint8Array.from({ length: 12 }, (_, i) => i);
    const fixed = { bytes: (n: number) => nonce.slice(0, n) } as unknown as SeededRandom;
    const vector = 'AAECAwQFBgcICQoL8l5HPLF+S0gGIoBQLmCF2RP401Q7zrZMGzxFBDt7';
    expect(sealSetupCode(key, 'c-0001', 'K7Q2-XW9P-33RA', fixed)).toBe(vector);
    expect(openSetupCode(key, 'c-0001', vector)).toBe('K7Q2-XW9P-33RA');
    // The same construction written out with @noble (HKDF-SHA-256, empty salt; ChaCha20-Poly1305).
    const derived = hkdf(
      sha256,
      key.reveal(),
      new Uint8Array(0),
      new TextEncoder().encode('iq-hub attach setup code v1'),
      32,
    );
    expect(Buffer.from(derived).toString('hex')).toBe(
      'dbcf82811e935d81add50a5b0b87aa9a151db582b06072ff423a66e9dbf1fe3e',
    );
    const sealed = chacha20poly1305(derived, nonce, new TextEncoder().encode('c-0001')).encrypt(
      new TextEncoder().encode('K7Q2-XW9P-33RA'),
    );
    expect(Buffer.concat([nonce, sealed]).toString('base64')).toBe(vector);
  });

  const random = new SeededRandom('setup-code');
  const CODE = 'K7Q2-XW9P-33RA';

  it('open only with the same key and cmdId; the error never holds the code', () => {
    const sealed = sealSetupCode(KEY, 'cmd-1', CODE, random);
    expect(sealed).toMatch(/^[A-Za-z0-9+/=]+$/);
    expect(sealed).not.toContain(CODE);
    expect(openSetupCode(KEY, 'cmd-1', sealed)).toBe(CODE);
    const wrong = [
      () => openSetupCode(KEY, 'cmd-2', sealed),
      () => openSetupCode(new Secret(Buffer.alloc(32, 9)), 'cmd-1', sealed),
      () => {
        const raw = Buffer.from(sealed, 'base64');
        raw[14] = (raw[14] ?? 0) ^ 1;
        return openSetupCode(KEY, 'cmd-1', raw.toString('base64'));
      },
      () => openSetupCode(KEY, 'cmd-1', 'AAAA'),
    ];
    for (const w of wrong) {
      const e = refusal(w);
      expect(e).toBeInstanceOf(HubError);
      expect(e.code).toBe('otp.setup-code');
      expect(e.message).not.toContain(CODE);
    }
  });
});
