import { Writable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { ZSpec } from 'zigbee-herdsman';
import { createZigbeeBearer } from '../../../drivers/zigbee/bearer.js';
import { crc16X25, parseInstallCodeText } from '../../../drivers/zigbee/install-code.js';
import { ZnpEmulator } from '../../../sim/emu/znp/emulator.js';
import { systemClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import { systemRandom } from '../../../src/base/random.js';
import { Sealer } from '../../../src/crypto/seal.js';
import { Secret } from '../../../src/crypto/secret.js';
import { createLogger } from '../../../src/log/logger.js';
import { withCrc } from '../../helpers/radio-rig.js';
import { tempDir } from '../../helpers/tmp.js';

const IEEE = '00124b0012345678';
/** The ZigBee specification's example: a 16-byte install code and its CRC (0xb5c3, little-endian). */
const SPEC_CODE = '83fed3407a939723a5c639b26916d505c3b5';
/** The same with one byte mistyped: its CRC no longer matches. */
const TYPO = `${SPEC_CODE.slice(0, 10)}ff${SPEC_CODE.slice(12)}`;

describe('install code texts', () => {
  test('the CRC is CRC-16/X-25 as herdsman computes it, and the spec example checks', () => {
    const code = Buffer.from(SPEC_CODE, 'hex');
    expect(crc16X25(code.subarray(0, 16))).toBe(0xb5c3);
    for (const n of [6, 8, 12, 16]) {
      const data = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
      expect(crc16X25(data)).toBe(ZSpec.Utils.crc16X25(data));
    }
  });

  test.each([
    ['pipe-separated', `${IEEE}|${SPEC_CODE}`],
    ['pipe-enclosed', `|${IEEE.toUpperCase()}|${SPEC_CODE.toUpperCase()}|`],
    ['QR (Z:…$I:…)', `51:Z:${IEEE}$I:${SPEC_CODE}%G$M:ABC`],
    ['surrounding blanks', `  ${IEEE}|${SPEC_CODE}\n`],
  ])('%s: the address and the code with its CRC', (_, text) => {
    const parsed = parseInstallCodeText(text);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value.ieee).toBe(`0x${IEEE}`);
    expect(Buffer.from(parsed.value.code).toString('hex')).toBe(SPEC_CODE);
  });

  test('every code size ZigBee 3.0 allows (6, 8, 12, 16 bytes + CRC) is accepted', () => {
    for (const n of [6, 8, 12, 16]) {
      const code = withCrc('a5'.repeat(n)).toString('hex');
      const parsed = parseInstallCodeText(`${IEEE}|${code}`);
      expect(parsed.ok ? parsed.value.code.length : parsed.reason).toBe(n + 2);
    }
  });

  const typo = TYPO;
  test.each([
    ['empty', '   ', /empty/],
    ['no known format', `Z:${IEEE}I:${SPEC_CODE}`, /no known format/],
    ['plain code without an address', SPEC_CODE, /no known format/],
    ['a typo (CRC mismatch)', `${IEEE}|${typo}`, /CRC .*does not match/],
    ['no CRC', `${IEEE}|${SPEC_CODE.slice(0, 32)}`, /CRC is missing/],
    ['odd number of digits', `${IEEE}|${SPEC_CODE}5`, /even number of hex digits/],
    ['not hex', `${IEEE}|${SPEC_CODE.slice(0, 34)}zz`, /hex digits/],
    ['a size no install code has', `${IEEE}|${withCrc('11'.repeat(9)).toString('hex')}`, /11 bytes; install codes are/],
    ['address not hex', `00124b00123456zz|${SPEC_CODE}`, /address is not 16 hex digits/],
    ['absurdly long', `${IEEE}|${'ab'.repeat(200)}`, /characters long/],
  ])('%s is refused with a reason that does not quote the code', (_, text, reason) => {
    const parsed = parseInstallCodeText(text);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.reason).toMatch(reason);
    for (const part of [SPEC_CODE, typo, SPEC_CODE.slice(0, 32), SPEC_CODE.slice(0, 12), IEEE]) {
      expect(parsed.reason.toLowerCase()).not.toContain(part);
    }
  });
});

describe('ZigbeeBearer.addInstallCode before the adapter is up', () => {
  function bearer() {
    const dataDir = tempDir('iqhub-zigbee-ic-');
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const b = createZigbeeBearer({
      serialPath: 'tcp://127.0.0.1:1',
      dataDir,
      sealer: new Sealer(Secret.fromUtf8('k'.repeat(32)), systemRandom),
      random: systemRandom,
      clock: systemClock,
      log: createLogger({ level: 'debug', pretty: false, destination }),
    });
    return { b, lines };
  }

  async function refusal(promise: Promise<void>): Promise<HubError> {
    const e = await promise.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(e).toBeInstanceOf(HubError);
    expect((e as HubError).code).toBe('attach.install-code');
    return e as HubError;
  }

  test('a malformed code: attach.install-code "not valid", counted, the code in neither the error nor the log', async () => {
    const { b, lines } = bearer();
    const e = await refusal(b.addInstallCode(Secret.fromUtf8(`${IEEE}|${TYPO}`)));
    expect(e.message).toMatch(/^the install code is not valid: its CRC/);
    expect(e.hint).toMatch(/as printed on the lock/);
    expect(e.cause).toBeUndefined();
    expect(b.counters().installCodesRefused).toBe(1);
    const all = `${lines.join('')}${e.message}${e.hint}${e.stack}`;
    expect(all).toContain('install code refused');
    expect(all.toLowerCase()).not.toContain(TYPO);
  });

  test('bytes that are not UTF-8 text are refused the same way', async () => {
    const { b } = bearer();
    const e = await refusal(b.addInstallCode(new Secret(Uint8Array.from([0xff, 0xfe, 0x80]))));
    expect(e.message).toMatch(/not valid: it is not text/);
  });

  test('a valid code while the adapter is not ready: attach.install-code saying so (retry when ready)', async () => {
    const { b, lines } = bearer();
    const e = await refusal(b.addInstallCode(Secret.fromUtf8(`${IEEE}|${SPEC_CODE}`)));
    expect(e.message).toMatch(/was not registered: the ZigBee adapter is not ready \(stopped\)/);
    expect(e.hint).toMatch(/retry once/);
    expect(`${lines.join('')}${e.message}`.toLowerCase()).not.toContain(SPEC_CODE);
    expect(b.counters().installCodesAdded).toBe(0);
  });
});

describe('ZNP emulator: hosted locks with an install code', () => {
  test('setInstallCode takes only a code with its CRC (any ZigBee 3.0 size)', async () => {
    const emulator = await ZnpEmulator.start();
    try {
      expect(() => emulator.setInstallCode('lock-x', Buffer.from(SPEC_CODE, 'hex'))).not.toThrow();
      expect(() => emulator.setInstallCode('lock-y', withCrc('0102030405aa'))).not.toThrow();
      expect(() => emulator.setInstallCode('lock-z', Buffer.from(TYPO, 'hex'))).toThrow(/wrong CRC/);
      expect(() => emulator.setInstallCode('lock-z', Buffer.from(SPEC_CODE.slice(0, 32), 'hex'))).toThrow(/16 bytes/);
      expect(emulator.hasLinkKeyFor('lock-x')).toBe(false);
    } finally {
      await emulator.close();
    }
  });
});
