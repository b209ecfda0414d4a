import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HubError } from '../../../src/base/errors.js';
import {
  type OcraInput,
  ocraDataInput,
  ocraPasswordHash,
  ocraResponse,
  ocraResponsesEqual,
  ocraTimeStep,
  parseOcraSuite,
  verifyOcraResponse,
} from '../../../src/crypto/ocra.js';

// RFC 6287 Appendix C: the standard seeds are these ASCII strings.
const KEY20 = Buffer.from('12345678901234567890', 'ascii');
const KEY32 = Buffer.from('12345678901234567890123456789012', 'ascii');
const KEY64 = Buffer.from('1234567890123456789012345678901234567890123456789012345678901234', 'ascii');
// PIN "1234" hashed with SHA1, as printed in the RFC.
const PIN_SHA1 = '7110eda4d09e062aa5e4a390b0a572ac0d2c0220';
// Time-step count used by the RFC's time-based vectors (minutes since the epoch).
const T_1M = 0x132d0b6n;

interface Vector {
  readonly name: string;
  readonly suite: string;
  readonly input: OcraInput;
  readonly expected: string;
}

const vectors: Vector[] = [];
const add = (suite: string, expected: string, input: OcraInput, name: string): void => {
  vectors.push({ suite, expected, input, name });
};

// C.1 One-way challenge-response.
{
  const suite = 'OCRA-1:HOTP-SHA1-6:QN08';
  const table: [string, string][] = [
    ['00000000', '237653'],
    ['11111111', '243178'],
    ['22222222', '653583'],
    ['33333333', '740991'],
    ['44444444', '608993'],
    ['55555555', '388898'],
    ['66666666', '816933'],
    ['77777777', '224598'],
    ['88888888', '750600'],
    ['99999999', '294470'],
  ];
  for (const [q, r] of table) add(suite, r, { key: KEY20, question: q }, `Q=${q}`);
}
{
  const suite = 'OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1';
  const table: [number, string][] = [
    [0, '65347737'],
    [1, '86775851'],
    [2, '78192410'],
    [3, '71565254'],
    [4, '10104329'],
    [5, '65983500'],
    [6, '70069104'],
    [7, '91771096'],
    [8, '75011558'],
    [9, '08522129'],
  ];
  const passwordHash = Buffer.from(PIN_SHA1, 'hex');
  for (const [c, r] of table) add(suite, r, { key: KEY32, counter: c, question: '12345678', passwordHash }, `C=${c}`);
}
{
  const suite = 'OCRA-1:HOTP-SHA256-8:QN08-PSHA1';
  const table: [string, string][] = [
    ['00000000', '83238735'],
    ['11111111', '01501458'],
    ['22222222', '17957585'],
    ['33333333', '86776967'],
    ['44444444', '86807031'],
  ];
  const passwordHash = Buffer.from(PIN_SHA1, 'hex');
  for (const [q, r] of table) add(suite, r, { key: KEY32, question: q, passwordHash }, `Q=${q}`);
}
{
  const suite = 'OCRA-1:HOTP-SHA512-8:C-QN08';
  const table: [bigint, string, string][] = [
    [0n, '00000000', '07016083'],
    [1n, '11111111', '63947962'],
    [2n, '22222222', '70123924'],
    [3n, '33333333', '25341727'],
    [4n, '44444444', '33203315'],
    [5n, '55555555', '34205738'],
    [6n, '66666666', '44343969'],
    [7n, '77777777', '51946085'],
    [8n, '88888888', '20403879'],
    [9n, '99999999', '31409299'],
  ];
  for (const [c, q, r] of table) add(suite, r, { key: KEY64, counter: c, question: q }, `C=${c} Q=${q}`);
}
{
  const suite = 'OCRA-1:HOTP-SHA512-8:QN08-T1M';
  const table: [string, string][] = [
    ['00000000', '95209754'],
    ['11111111', '55907591'],
    ['22222222', '22048402'],
    ['33333333', '24218844'],
    ['44444444', '36209546'],
  ];
  for (const [q, r] of table) add(suite, r, { key: KEY64, question: q, timestamp: T_1M }, `Q=${q} T=132d0b6`);
}

// C.2 Mutual challenge-response: the server answers QC ‖ QS, the client QS ‖ QC.
const mutual: [string, string][] = [
  ['CLI22220', 'SRV11110'],
  ['CLI22221', 'SRV11111'],
  ['CLI22222', 'SRV11112'],
  ['CLI22223', 'SRV11113'],
  ['CLI22224', 'SRV11114'],
];
{
  const server = ['28247970', '01984843', '65387857', '03351211', '83412541'];
  const client = ['15510767', '90175646', '33777207', '95285278', '28934924'];
  const suite = 'OCRA-1:HOTP-SHA256-8:QA08';
  mutual.forEach(([qc, qs], i) => {
    add(suite, server[i] ?? '', { key: KEY32, question: [qc, qs] }, `server Q=${qc}${qs}`);
    add(suite, client[i] ?? '', { key: KEY32, question: [qs, qc] }, `client Q=${qs}${qc}`);
  });
}
{
  const server = ['79496648', '76831980', '12250499', '90856481', '12761449'];
  const client = ['18806276', '70020315', '01600026', '18951020', '32528969'];
  const passwordHash = Buffer.from(PIN_SHA1, 'hex');
  mutual.forEach(([qc, qs], i) => {
    add('OCRA-1:HOTP-SHA512-8:QA08', server[i] ?? '', { key: KEY64, question: [qc, qs] }, `server Q=${qc}${qs}`);
    add(
      'OCRA-1:HOTP-SHA512-8:QA08-PSHA1',
      client[i] ?? '',
      { key: KEY64, question: [qs, qc], passwordHash },
      `client Q=${qs}${qc}`,
    );
  });
}

// C.3 Plain signature.
{
  const suite = 'OCRA-1:HOTP-SHA256-8:QA08';
  const table: [string, string][] = [
    ['SIG10000', '53095496'],
    ['SIG11000', '04110475'],
    ['SIG12000', '31331128'],
    ['SIG13000', '76028668'],
    ['SIG14000', '46554205'],
  ];
  for (const [q, r] of table) add(suite, r, { key: KEY32, question: q }, `Q=${q}`);
}
{
  const suite = 'OCRA-1:HOTP-SHA512-8:QA10-T1M';
  const table: [string, string][] = [
    ['SIG1000000', '77537423'],
    ['SIG1100000', '31970405'],
    ['SIG1200000', '10235557'],
    ['SIG1300000', '95213541'],
    ['SIG1400000', '65360607'],
  ];
  for (const [q, r] of table) add(suite, r, { key: KEY64, question: q, timestamp: T_1M }, `Q=${q} T=132d0b6`);
}

describe('RFC 6287 Appendix C test vectors', () => {
  it('has every vector of the appendix (40 one-way, 20 mutual, 10 signature)', () => {
    expect(vectors).toHaveLength(70);
    expect(new Set(vectors.map((v) => `${v.suite} ${v.name}`)).size).toBe(70);
  });

  it('uses the RFC PIN hash: SHA1("1234")', () => {
    expect(ocraPasswordHash('OCRA-1:HOTP-SHA256-8:QN08-PSHA1', '1234').toString('hex')).toBe(PIN_SHA1);
  });

  it.each(vectors.map((v) => [v.suite, v.name, v] as const))('%s %s', (_suite, _name, v) => {
    expect(ocraResponse(v.suite, v.input)).toBe(v.expected);
    expect(verifyOcraResponse(v.suite, v.input, v.expected)).toBe(true);
  });

  it('derives the RFC time step 132d0b6 from wall-clock time for T1M', () => {
    const ms = Number(T_1M) * 60_000;
    const suite = 'OCRA-1:HOTP-SHA512-8:QN08-T1M';
    expect(ocraTimeStep(suite, ms)).toBe(T_1M);
    expect(ocraTimeStep(suite, ms + 59_999)).toBe(T_1M);
    expect(ocraTimeStep(suite, ms - 1)).toBe(T_1M - 1n);
    const timestamp = ocraTimeStep(suite, ms + 30_000);
    expect(ocraResponse(suite, { key: KEY64, question: '00000000', timestamp })).toBe('95209754');
  });
});

describe('parseOcraSuite', () => {
  it('parses every component', () => {
    expect(parseOcraSuite('OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1')).toEqual({
      text: 'OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1',
      version: 1,
      hash: 'SHA256',
      digits: 8,
      counter: true,
      question: { format: 'N', maxLength: 8 },
      password: 'SHA1',
      sessionLength: undefined,
      timeStepSeconds: undefined,
    });
    expect(parseOcraSuite('OCRA-1:HOTP-SHA512-8:QN08-T1M')).toMatchObject({
      hash: 'SHA512',
      counter: false,
      question: { format: 'N', maxLength: 8 },
      timeStepSeconds: 60,
    });
    expect(parseOcraSuite('OCRA-1:HOTP-SHA1-0:C-QH64-PSHA512-S512-T48H')).toMatchObject({
      hash: 'SHA1',
      digits: 0,
      counter: true,
      question: { format: 'H', maxLength: 64 },
      password: 'SHA512',
      sessionLength: 512,
      timeStepSeconds: 48 * 3600,
    });
    expect(parseOcraSuite('OCRA-1:HOTP-SHA256-10:QA04-T30S')).toMatchObject({ digits: 10, timeStepSeconds: 30 });
    expect(parseOcraSuite('OCRA-1:HOTP-SHA256-4:QA04-S064')).toMatchObject({ digits: 4, sessionLength: 64 });
  });

  const malformed: [string, RegExp][] = [
    ['', /three parts/],
    ['OCRA-1:HOTP-SHA1-6', /three parts/],
    ['OCRA-1:HOTP-SHA1-6:QN08:extra', /three parts/],
    ['OCRA-2:HOTP-SHA1-6:QN08', /version "2" is not supported/],
    ['OCRA:HOTP-SHA1-6:QN08', /algorithm "OCRA" is not of the form OCRA-v/],
    ['ocra-1:hotp-sha1-6:qn08', /algorithm "ocra-1"/],
    ['OCRA-1:TOTP-SHA1-6:QN08', /crypto function "TOTP-SHA1-6"/],
    ['OCRA-1:HOTP-MD5-6:QN08', /HMAC hash "MD5" is not one of SHA1, SHA256, SHA512/],
    ['OCRA-1:HOTP-SHA384-6:QN08', /HMAC hash "SHA384"/],
    ['OCRA-1:HOTP-SHA1-3:QN08', /truncation "3" must be 0 \(none\) or 4 to 10 digits/],
    ['OCRA-1:HOTP-SHA1-11:QN08', /truncation "11"/],
    ['OCRA-1:HOTP-SHA1-06:QN08', /truncation "06"/],
    ['OCRA-1:HOTP-SHA1:QN08', /crypto function "HOTP-SHA1"/],
    ['OCRA-1:HOTP-SHA1-6:', /must contain the challenge QFxx first/],
    ['OCRA-1:HOTP-SHA1-6:C', /must contain the challenge QFxx right after C/],
    ['OCRA-1:HOTP-SHA1-6:PSHA1-QN08', /must contain the challenge QFxx first/],
    ['OCRA-1:HOTP-SHA1-6:QX08', /challenge "QX08" is not of the form QFxx/],
    ['OCRA-1:HOTP-SHA1-6:QN8', /challenge "QN8" is not of the form QFxx/],
    ['OCRA-1:HOTP-SHA1-6:QN03', /challenge length 03 .* must be between 04 and 64/],
    ['OCRA-1:HOTP-SHA1-6:QN65', /challenge length 65/],
    ['OCRA-1:HOTP-SHA1-6:QN08-C', /unexpected data input "C".*\(C must come first\)/],
    ['OCRA-1:HOTP-SHA1-6:QN08-X1', /unexpected data input "X1"/],
    ['OCRA-1:HOTP-SHA1-6:QN08-', /unexpected data input ""/],
    ['OCRA-1:HOTP-SHA1-6:QN08-QN08', /unexpected data input "QN08"/],
    ['OCRA-1:HOTP-SHA1-6:QN08-PMD5', /password input "PMD5" must be PSHA1, PSHA256 or PSHA512/],
    ['OCRA-1:HOTP-SHA1-6:QN08-P', /password input "P"/],
    ['OCRA-1:HOTP-SHA1-6:QN08-S64', /session input "S64" must be S followed by three digits/],
    ['OCRA-1:HOTP-SHA1-6:QN08-S000', /session input "S000"/],
    ['OCRA-1:HOTP-SHA1-6:QN08-T', /timestamp input "T" must be T followed by a time step/],
    ['OCRA-1:HOTP-SHA1-6:QN08-T1D', /timestamp input "T1D"/],
    ['OCRA-1:HOTP-SHA1-6:QN08-T0H', /timestamp input "T0H"/],
    ['OCRA-1:HOTP-SHA1-6:QN08-T60S', /time step in "T60S" must be 1-59 seconds/],
    ['OCRA-1:HOTP-SHA1-6:QN08-T60M', /time step in "T60M"/],
    ['OCRA-1:HOTP-SHA1-6:QN08-T49H', /time step in "T49H"/],
    ['OCRA-1:HOTP-SHA1-6:QN08-T1M-PSHA1', /"PSHA1" is repeated or out of order/],
    ['OCRA-1:HOTP-SHA1-6:QN08-S064-PSHA1', /"PSHA1" is repeated or out of order/],
    ['OCRA-1:HOTP-SHA1-6:QN08-PSHA1-PSHA1', /"PSHA1" is repeated or out of order/],
    ['OCRA-1:HOTP-SHA1-6:QN08-T1M-T1M', /"T1M" is repeated or out of order/],
  ];

  it.each(malformed)('refuses %j', (suite, message) => {
    let caught: unknown;
    try {
      parseOcraSuite(suite);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(HubError);
    const err = caught as HubError;
    expect(err.code).toBe('ocra.suite-invalid');
    expect(err.message).toMatch(message);
    expect(err.hint).toMatch(/OCRA-1:/);
  });

  it('refuses a malformed suite in ocraResponse as well', () => {
    expect(() => ocraResponse('OCRA-1:HOTP-SHA1-6:QN99', { key: KEY20, question: '1' })).toThrow(/challenge length 99/);
  });
});

describe('DataInput layout', () => {
  it('is suite ‖ 0x00 ‖ C(8) ‖ Q(128) ‖ P ‖ S ‖ T(8)', () => {
    const suite = 'OCRA-1:HOTP-SHA256-8:C-QH08-PSHA256-S004-T30S';
    const passwordHash = Buffer.alloc(32, 0xaa);
    const data = ocraDataInput(suite, {
      counter: 0x0102030405060708n,
      question: 'ABCDEF1',
      passwordHash,
      session: Buffer.from([0xbb, 0xcc]),
      timestamp: 0x1122334455667788n,
    });
    const expected = Buffer.concat([
      Buffer.from(suite, 'ascii'),
      Buffer.from([0]),
      Buffer.from('0102030405060708', 'hex'),
      Buffer.concat([Buffer.from('abcdef10', 'hex'), Buffer.alloc(124)]),
      passwordHash,
      Buffer.from([0, 0, 0xbb, 0xcc]),
      Buffer.from('1122334455667788', 'hex'),
    ]);
    expect(data.toString('hex')).toBe(expected.toString('hex'));
    expect(data.length).toBe(suite.length + 1 + 8 + 128 + 32 + 4 + 8);
  });

  it('encodes a numeric challenge as its hexadecimal value, exactly, past 2^53', () => {
    const suite = 'OCRA-1:HOTP-SHA1-6:QN64';
    const q = (question: string): string => {
      const data = ocraDataInput(suite, { question });
      return data.subarray(suite.length + 1).toString('hex');
    };
    // 2^53 + 1 is not representable as a double; BigInt keeps the last bit.
    expect(q('9007199254740993')).toBe('20000000000001'.padEnd(256, '0'));
    // 2^64: 17 hex digits, placed from the left, the odd one padded with a zero nibble.
    expect(q('18446744073709551616')).toBe('10000000000000000'.padEnd(256, '0'));
    expect(q('12345678')).toBe('bc614e'.padEnd(256, '0'));
    expect(q('00000000')).toBe('0'.repeat(256));
    const big = '9'.repeat(64);
    expect(q(big)).toBe((10n ** 64n - 1n).toString(16).padEnd(256, '0'));
  });

  it('encodes an alphanumeric challenge as its ASCII bytes', () => {
    const suite = 'OCRA-1:HOTP-SHA256-8:QA08';
    const data = ocraDataInput(suite, { question: ['CLI22220', 'SRV11110'] });
    expect(data.subarray(suite.length + 1, suite.length + 17).toString('ascii')).toBe('CLI22220SRV11110');
    expect(data.subarray(suite.length + 17).equals(Buffer.alloc(112))).toBe(true);
  });

  it('matches an independent HMAC computation for a hex challenge', () => {
    const suite = 'OCRA-1:HOTP-SHA256-8:C-QH64-T30S';
    const question = 'ab'.repeat(32);
    const data = Buffer.concat([
      Buffer.from(suite, 'ascii'),
      Buffer.from([0]),
      Buffer.from('0000000000000007', 'hex'),
      Buffer.from(question.padEnd(256, '0'), 'hex'),
      Buffer.from('000000000000abcd', 'hex'),
    ]);
    const mac = createHmac('sha256', KEY32).update(data).digest();
    const offset = (mac[31] ?? 0) & 0xf;
    const expected = String((mac.readUInt32BE(offset) & 0x7fffffff) % 1e8).padStart(8, '0');
    expect(ocraResponse(suite, { key: KEY32, counter: 7, question, timestamp: 0xabcd })).toBe(expected);
  });

  it('returns the whole HMAC in hex when the suite truncates to 0', () => {
    const suite = 'OCRA-1:HOTP-SHA512-0:QN08';
    const data = ocraDataInput(suite, { question: '1' });
    const mac = createHmac('sha512', KEY64).update(data).digest('hex');
    expect(ocraResponse(suite, { key: KEY64, question: '1' })).toBe(mac);
    expect(mac).toHaveLength(128);
  });
});

describe('verify', () => {
  const suite = 'OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1';
  const input: OcraInput = {
    key: KEY32,
    counter: 0,
    question: '12345678',
    passwordHash: Buffer.from(PIN_SHA1, 'hex'),
  };

  it('accepts the right response and refuses a wrong one', () => {
    expect(verifyOcraResponse(suite, input, '65347737')).toBe(true);
    expect(verifyOcraResponse(suite, input, '65347738')).toBe(false);
    expect(verifyOcraResponse(suite, input, '86775851')).toBe(false); // right for counter 1
    expect(verifyOcraResponse(suite, { ...input, counter: 1 }, '65347737')).toBe(false);
    expect(verifyOcraResponse(suite, { ...input, question: '12345679' }, '65347737')).toBe(false);
    const otherKey = Buffer.from(KEY32);
    otherKey[0] = 0x30;
    expect(verifyOcraResponse(suite, { ...input, key: otherKey }, '65347737')).toBe(false);
  });

  it('refuses responses of a different length', () => {
    expect(verifyOcraResponse(suite, input, '6534773')).toBe(false);
    expect(verifyOcraResponse(suite, input, '653477370')).toBe(false);
    expect(verifyOcraResponse(suite, input, '065347737')).toBe(false);
    expect(verifyOcraResponse(suite, input, '')).toBe(false);
    expect(verifyOcraResponse(suite, input, ' 65347737')).toBe(false);
  });

  it('compares strings in constant time without throwing on odd input', () => {
    expect(ocraResponsesEqual('12345678', '12345678')).toBe(true);
    expect(ocraResponsesEqual('12345678', '12345679')).toBe(false);
    expect(ocraResponsesEqual('12345678', '1234567')).toBe(false);
    expect(ocraResponsesEqual('', '')).toBe(true);
    // Same number of characters, different number of bytes.
    expect(ocraResponsesEqual('1234567é', '12345678')).toBe(false);
    expect(ocraResponsesEqual('12345678', undefined as unknown as string)).toBe(false);
  });
});

describe('input validation', () => {
  const cases: [string, string, Partial<OcraInput>, RegExp][] = [
    ['missing counter', 'OCRA-1:HOTP-SHA512-8:C-QN08', {}, /has C but no counter/],
    ['unused counter', 'OCRA-1:HOTP-SHA1-6:QN08', { counter: 1 }, /counter was given but the suite has no C/],
    ['negative counter', 'OCRA-1:HOTP-SHA512-8:C-QN08', { counter: -1 }, /counter must be/],
    ['counter ≥ 2^64', 'OCRA-1:HOTP-SHA512-8:C-QN08', { counter: 1n << 64n }, /between 0 and 2\^64-1/],
    ['fractional counter', 'OCRA-1:HOTP-SHA512-8:C-QN08', { counter: 1.5 }, /non-negative integer/],
    ['unsafe counter', 'OCRA-1:HOTP-SHA512-8:C-QN08', { counter: 2 ** 60 }, /up to 2\^53-1/],
    ['empty question', 'OCRA-1:HOTP-SHA1-6:QN08', { question: '' }, /non-empty/],
    ['long question', 'OCRA-1:HOTP-SHA1-6:QN08', { question: '123456789' }, /9 characters; .* at most 8/],
    ['non-numeric', 'OCRA-1:HOTP-SHA1-6:QN08', { question: '1234567a' }, /decimal digits only/],
    ['signed numeric', 'OCRA-1:HOTP-SHA1-6:QN08', { question: '-1' }, /decimal digits only/],
    ['non-hex', 'OCRA-1:HOTP-SHA1-6:QH08', { question: '12345g' }, /hexadecimal digits only/],
    ['non-alphanumeric', 'OCRA-1:HOTP-SHA1-6:QA08', { question: 'SIG 1000' }, /letters and digits/],
    ['three challenges', 'OCRA-1:HOTP-SHA1-6:QA08', { question: ['A', 'B', 'C'] }, /two strings/],
    ['long 2nd challenge', 'OCRA-1:HOTP-SHA1-6:QA08', { question: ['A', 'B'.repeat(9)] }, /challenge 2 has 9/],
    ['missing P', 'OCRA-1:HOTP-SHA256-8:QN08-PSHA1', {}, /has PSHA1 but no password hash/],
    ['short P', 'OCRA-1:HOTP-SHA256-8:QN08-PSHA1', { passwordHash: Buffer.alloc(4) }, /4 bytes; PSHA1 needs 20/],
    ['unused P', 'OCRA-1:HOTP-SHA1-6:QN08', { passwordHash: Buffer.alloc(20) }, /suite has no P/],
    ['missing S', 'OCRA-1:HOTP-SHA1-6:QN08-S064', {}, /has S but no session/],
    ['long S', 'OCRA-1:HOTP-SHA1-6:QN08-S064', { session: Buffer.alloc(65) }, /65 bytes; .* at most 64/],
    ['unused S', 'OCRA-1:HOTP-SHA1-6:QN08', { session: Buffer.alloc(1) }, /suite has no S/],
    ['missing T', 'OCRA-1:HOTP-SHA512-8:QN08-T1M', {}, /has T but no timestamp/],
    ['unused T', 'OCRA-1:HOTP-SHA1-6:QN08', { timestamp: 1 }, /suite has no T/],
    ['short key', 'OCRA-1:HOTP-SHA1-6:QN08', { key: Buffer.alloc(15, 1) }, /key is too short \(15 bytes/],
    ['string key', 'OCRA-1:HOTP-SHA1-6:QN08', { key: 'secret' as unknown as Uint8Array }, /key must be a Uint8Array/],
  ];

  it.each(cases)('refuses %s', (_name, suite, overrides, message) => {
    const input = { key: KEY64, question: '1234', ...overrides } as OcraInput;
    let caught: unknown;
    try {
      ocraResponse(suite, input);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(HubError);
    expect((caught as HubError).code).toBe('ocra.input-invalid');
    expect((caught as HubError).message).toMatch(message);
    expect((caught as HubError).message).toContain(suite);
  });

  it('refuses time and password helpers for suites without T or P', () => {
    expect(() => ocraTimeStep('OCRA-1:HOTP-SHA1-6:QN08', 0)).toThrow(/suite has no T/);
    expect(() => ocraTimeStep('OCRA-1:HOTP-SHA1-6:QN08-T1M', -1)).toThrow(/non-negative/);
    expect(() => ocraPasswordHash('OCRA-1:HOTP-SHA1-6:QN08', '1234')).toThrow(/suite has no P/);
  });
});

describe('secrecy', () => {
  // A key whose every rendering is distinctive and would be found if it leaked.
  const key = Buffer.from('k3y-M4terial-Never-Printed-0123456789', 'ascii');
  const renderings = [
    key.toString('ascii'),
    key.toString('hex'),
    key.toString('hex').toUpperCase(),
    key.toString('base64'),
    key.toString('base64url'),
    Array.from(key).join(','),
    'k3y-M4terial',
  ];

  const attempts: [string, () => unknown][] = [
    ['bad suite', () => ocraResponse('OCRA-1:HOTP-SHA1-3:QN08', { key, question: '1' })],
    ['bad question', () => ocraResponse('OCRA-1:HOTP-SHA1-6:QN08', { key, question: 'x' })],
    ['missing counter', () => ocraResponse('OCRA-1:HOTP-SHA1-6:C-QN08', { key, question: '1' })],
    ['bad counter', () => ocraResponse('OCRA-1:HOTP-SHA1-6:C-QN08', { key, question: '1', counter: -5 })],
    ['bad P', () => ocraResponse('OCRA-1:HOTP-SHA1-6:QN08-PSHA1', { key, question: '1', passwordHash: key })],
    ['long S', () => ocraResponse('OCRA-1:HOTP-SHA1-6:QN08-S016', { key, question: '1', session: key })],
    ['short key', () => ocraResponse('OCRA-1:HOTP-SHA1-6:QN08', { key: key.subarray(0, 12), question: '1' })],
    [
      'string key',
      () =>
        ocraResponse('OCRA-1:HOTP-SHA1-6:QN08', { key: key.toString('ascii') as unknown as Uint8Array, question: '1' }),
    ],
    [
      'verify, bad input',
      () => verifyOcraResponse('OCRA-1:HOTP-SHA1-6:QN08-T1M', { key, question: '1', timestamp: -1 }, '123456'),
    ],
  ];

  it.each(attempts)('no rendering of the key in the error for %s', (_name, attempt) => {
    let caught: unknown;
    try {
      attempt();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(HubError);
    const err = caught as HubError;
    const text = [err.message, err.hint ?? '', err.explanation, String(err), err.stack ?? '', JSON.stringify(err)].join(
      '\n',
    );
    for (const r of renderings) expect(text).not.toContain(r);
  });

  it('the leak check itself detects a leaked key', () => {
    const leaky = new HubError('ocra.input-invalid', `key ${key.toString('hex')}`);
    expect(renderings.some((r) => leaky.message.includes(r))).toBe(true);
  });
});
