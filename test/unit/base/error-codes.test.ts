import { describe, expect, it } from 'vitest';
import { ERROR_CODES, type HubErrorCode } from '../../../src/base/error-codes.js';
import { describeError, HubError, isHubErrorCode } from '../../../src/base/errors.js';
import { LOCK_ERROR_CODES } from '../../../src/contract/link-messages.js';
import { CERT_ERROR_CODES } from '../../../src/contract/mqtt-certificates.js';
import { REFUSAL_CODES } from '../../../src/contract/mqtt-cloud-messages.js';

const SPELLING = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$/;
const codes = Object.keys(ERROR_CODES) as HubErrorCode[];

describe('the error code registry', () => {
  it('spells every code area.detail: lowercase, words joined by -, dot-separated parts', () => {
    expect(codes.length).toBeGreaterThan(0);
    expect(codes.filter((c) => !SPELLING.test(c))).toEqual([]);
  });

  it('gives every code a hint', () => {
    expect(codes.filter((c) => ERROR_CODES[c].trim() === '')).toEqual([]);
  });

  it('holds none of the MQTT contract codes, which are answers to the cloud, not HubErrors', () => {
    for (const c of [...REFUSAL_CODES, ...CERT_ERROR_CODES, 'unknown_outcome']) expect(isHubErrorCode(c)).toBe(false);
  });

  it('holds lock.<code> for every refusal a lock may answer, as the link manager builds them', () => {
    expect(LOCK_ERROR_CODES.filter((c) => !isHubErrorCode(`lock.${c}`))).toEqual([]);
  });

  it('isHubErrorCode knows the codes and nothing else, not even what every object inherits', () => {
    expect(isHubErrorCode('store.corrupt')).toBe(true);
    expect(isHubErrorCode('lock.battery-critical')).toBe(true);
    for (const s of ['bad_request', 'zigbee-config', 'store', '', 'toString', '__proto__', 'constructor']) {
      expect(isHubErrorCode(s)).toBe(false);
    }
  });
});

describe('HubError hints', () => {
  it("takes its code's hint when the throw site gives none", () => {
    const e = new HubError('store.locked', 'the database is in use');
    expect(e.hint).toBe(ERROR_CODES['store.locked']);
    expect(describeError(e)).toBe(`the database is in use\n  → ${ERROR_CODES['store.locked']}`);
  });

  it("keeps the throw site's hint, which knows more, and ignores an empty one", () => {
    expect(new HubError('lock.unknown', 'no lock L9', { hint: 'see iqhub locks' }).hint).toBe('see iqhub locks');
    expect(new HubError('lock.unknown', 'no lock L9', { hint: '' }).hint).toBe(ERROR_CODES['lock.unknown']);
  });
});

describe('the compiler keeps the codes to the list', () => {
  it('an unknown or misspelt code does not compile (npm test runs tsc first)', () => {
    // Each line below is a type error; were `code` a plain string, tsc would fail on the unused directives.
    // @ts-expect-error: not a code of the list
    const unknown = () => new HubError('store.gone', 'x');
    // @ts-expect-error: the old spelling, refused
    const oldSpelling = () => new HubError('zigbee-config', 'x');
    // @ts-expect-error: an MQTT refusal code is the contract's, not a HubError code
    const contract = () => new HubError('bad_request', 'x');
    expect([unknown, oldSpelling, contract].map((f) => f().code)).toEqual([
      'store.gone',
      'zigbee-config',
      'bad_request',
    ]);
  });
});
