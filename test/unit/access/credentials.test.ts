import * as nodeCrypto from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_PIN_DISABLE_MS,
  PinThrottle,
  pinVerifier,
  samePinVerifier,
  tagHash,
} from '../../../src/access/credentials.js';
import { type Clock, VirtualClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import { Secret } from '../../../src/crypto/secret.js';

// Count calls to timingSafeEqual, to show that verifiers are compared with it.
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

const PIN_KEY_HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const pinKey = () => new Secret(Buffer.from(PIN_KEY_HEX, 'hex'));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('PIN verifier', () => {
  it('is HMAC-SHA-256(pinKey, "iq-hub pin v1" 0 siteId 0 digits), checked against an independent HMAC and a fixed vector', () => {
    const independent = nodeCrypto
      .createHmac('sha256', Buffer.from(PIN_KEY_HEX, 'hex'))
      .update(Buffer.from('iq-hub pin v1\u0000site-1\u0000123456', 'utf8'))
      .digest('hex');
    const v = pinVerifier(pinKey(), '123456', 'site-1');
    expect(v).toBeInstanceOf(Uint8Array);
    expect(v.length).toBe(32);
    expect(hex(v)).toBe(independent);
    // The vector of docs/digital-keys.md ("PIN"), so a cloud can check its own implementation.
    expect(hex(v)).toBe('2b4d0d861d9ccfd5c794709adf5c2b2d26790e42095d7597585cd685b106b436');
  });

  it('binds the site and the digits: another site or another PIN gives another verifier', () => {
    const v = pinVerifier(pinKey(), '123456', 'site-1');
    expect(samePinVerifier(v, pinVerifier(pinKey(), '123456', 'site-2'))).toBe(false);
    expect(samePinVerifier(v, pinVerifier(pinKey(), '123457', 'site-1'))).toBe(false);
    // Without separators "site-1" + "123456" and "site-11" + "23456" would collide.
    expect(samePinVerifier(v, pinVerifier(pinKey(), '23456', 'site-11'))).toBe(false);
    expect(samePinVerifier(v, pinVerifier(pinKey(), '123456', 'site-1'))).toBe(true);
  });

  it('refuses malformed PINs, a wrong-size key and a bad site id', () => {
    for (const pin of ['123', '1234567890123', '12a4', ' 1234', '1234\n', '١٢٣٤', '']) {
      expect(() => pinVerifier(pinKey(), pin, 'site-1')).toThrow(HubError);
    }
    expect(() => pinVerifier(new Secret(new Uint8Array(16)), '1234', 'site-1')).toThrow(/32 bytes/);
    expect(() => pinVerifier(pinKey(), '1234', 'site\u00001')).toThrow(HubError);
    expect(() => pinVerifier(pinKey(), '1234', '')).toThrow(HubError);
  });

  it('the PIN digits appear in no thrown error and no returned value', () => {
    const seen: string[] = [];
    const record = (x: unknown) => {
      seen.push(JSON.stringify(x) ?? '', String(x), inspect(x, { depth: 5 }));
      if (x instanceof Error) seen.push(JSON.stringify({ ...x, message: x.message, stack: x.stack }));
    };
    const attempt = (fn: () => unknown) => {
      try {
        record(fn());
      } catch (e) {
        record(e);
      }
    };
    const pins = ['58203917', '582039174', '5820391', '946130527381'];
    for (const pin of pins) {
      attempt(() => pinVerifier(pinKey(), pin, 'site-1'));
      attempt(() => hex(pinVerifier(pinKey(), pin, 'site-1')));
      attempt(() => Buffer.from(pinVerifier(pinKey(), pin, 'site-1')).toString('base64'));
      attempt(() => pinVerifier(pinKey(), `${pin}x`, 'site-1')); // malformed: refused
      attempt(() => pinVerifier(pinKey(), `${pin}0000000`, 'site-1')); // too long: refused
      attempt(() => pinVerifier(pinKey(), 'site-1', pin)); // arguments swapped: refused
      attempt(() => pinVerifier(new Secret(new Uint8Array(3)), pin, 'site-1')); // bad key: refused
      attempt(() => samePinVerifier(pinVerifier(pinKey(), pin, 'site-1'), new Uint8Array(32)));
    }
    expect(seen.length).toBeGreaterThan(50);
    const all = seen.join('\n');
    expect(all).toContain('a PIN must be'); // the refusals were recorded
    for (const pin of pins) expect(all).not.toContain(pin);
  });
});

describe('samePinVerifier', () => {
  const v = pinVerifier(pinKey(), '2580', 'site-1');

  it('matches equal verifiers and nothing else', () => {
    expect(samePinVerifier(v, Uint8Array.from(v))).toBe(true);
    for (const i of [0, 15, 31]) {
      const w = Uint8Array.from(v);
      w[i] = (w[i] ?? 0) ^ 1;
      expect(samePinVerifier(v, w)).toBe(false);
    }
    expect(samePinVerifier(v, v.subarray(0, 31))).toBe(false);
    expect(samePinVerifier(new Uint8Array(0), new Uint8Array(0))).toBe(false);
    expect(samePinVerifier(v, 'not bytes' as unknown as Uint8Array)).toBe(false);
  });

  it('compares in constant time (crypto.timingSafeEqual), not with an early-exit loop', () => {
    const spy = vi.mocked(nodeCrypto.timingSafeEqual);
    spy.mockClear();
    samePinVerifier(v, new Uint8Array(32));
    samePinVerifier(v, Uint8Array.from(v));
    expect(spy).toHaveBeenCalledTimes(2);
  });
});

describe('PIN throttle', () => {
  it('5 wrong codes disable the lock for 60 s; codes are refused unchecked meanwhile; then it recovers', async () => {
    const clock = new VirtualClock();
    const t = new PinThrottle(clock);
    for (let i = 1; i <= 4; i++) expect(t.wrong('L-1')).toEqual({ disabled: false, wrongCodes: i });
    expect(t.wrong('L-1')).toEqual({ disabled: true, remainingMs: 60_000, began: true });

    await clock.advance(59_999);
    expect(t.check('L-1')).toEqual({ disabled: true, remainingMs: 1, began: false });
    // More tries while disabled do not extend it, and a right code does not end it.
    expect(t.wrong('L-1')).toMatchObject({ disabled: true, began: false });
    t.right('L-1');
    expect(t.check('L-1').disabled).toBe(true);

    await clock.advance(1);
    expect(t.check('L-1')).toEqual({ disabled: false, wrongCodes: 0 });
    expect(t.wrong('L-1')).toEqual({ disabled: false, wrongCodes: 1 });
  });

  it('is per lock: one lock disabled leaves the others working', () => {
    const t = new PinThrottle(new VirtualClock());
    for (let i = 0; i < 5; i++) t.wrong('L-1');
    expect(t.check('L-1').disabled).toBe(true);
    expect(t.check('L-2')).toEqual({ disabled: false, wrongCodes: 0 });
  });

  it('a right code resets the count of wrong ones', () => {
    const t = new PinThrottle(new VirtualClock());
    for (let i = 0; i < 4; i++) t.wrong('L-1');
    t.right('L-1');
    for (let i = 0; i < 4; i++) expect(t.wrong('L-1').disabled).toBe(false);
    expect(t.wrong('L-1').disabled).toBe(true);
  });

  it('takes its limit and disable time from options, and refuses nonsense', async () => {
    const clock = new VirtualClock();
    const t = new PinThrottle(clock, { wrongCodeLimit: 3, disableMs: 10_000 });
    t.wrong('L-1');
    t.wrong('L-1');
    expect(t.wrong('L-1')).toEqual({ disabled: true, remainingMs: 10_000, began: true });
    await clock.advance(10_000);
    expect(t.check('L-1').disabled).toBe(false);
    expect(DEFAULT_PIN_DISABLE_MS).toBe(60_000);
    expect(() => new PinThrottle(clock, { wrongCodeLimit: 0 })).toThrow(HubError);
    expect(() => new PinThrottle(clock, { disableMs: -1 })).toThrow(HubError);
  });

  it('runs on monotonic time: a wall-clock step does not end a disable', () => {
    const clock = new VirtualClock();
    let step = 0;
    const stepped: Clock = {
      now: () => clock.now() + step,
      monotonic: () => clock.monotonic(),
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
      clearTimeout: (h) => clock.clearTimeout(h),
      sleep: (ms) => clock.sleep(ms),
    };
    const t = new PinThrottle(stepped);
    for (let i = 0; i < 5; i++) t.wrong('L-1');
    step = 3_600_000;
    expect(t.check('L-1').disabled).toBe(true);
  });
});

describe('tag hash', () => {
  const uid = Uint8Array.from([0x04, 0x5a, 0x3c, 0x12, 0x9f, 0x61, 0x80]); // a 7-byte DESFire UID

  it('is SHA-256("iq-hub tag v1" 0 siteId 0 id), checked against an independent hash and a fixed vector', () => {
    const independent = nodeCrypto
      .createHash('sha256')
      .update(Buffer.concat([Buffer.from('iq-hub tag v1\u0000site-1\u0000', 'utf8'), uid]))
      .digest('hex');
    expect(hex(tagHash(uid, 'site-1'))).toBe(independent);
    expect(hex(tagHash(uid, 'site-1'))).toBe('5c529a1f2e0bd8ae532b08db8fa24425ab2d3c71ed498cc50291ceda793dc19a');
  });

  it('binds the site, and refuses empty or oversized ids', () => {
    expect(hex(tagHash(uid, 'site-1'))).not.toBe(hex(tagHash(uid, 'site-2')));
    expect(() => tagHash(new Uint8Array(0), 'site-1')).toThrow(HubError);
    expect(() => tagHash(new Uint8Array(65), 'site-1')).toThrow(HubError);
    expect(() => tagHash(uid, 'bad site')).toThrow(HubError);
  });
});
