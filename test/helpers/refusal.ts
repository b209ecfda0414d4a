import { expect } from 'vitest';
import { HubError } from '../../src/base/errors.js';

/** Run `fn`, which must throw a HubError; return it for the test to inspect. */
export function refusal(fn: () => unknown): HubError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(HubError);
    return e as HubError;
  }
  throw new Error('expected a refusal, but it was accepted');
}

/** The code of the HubError `fn` throws, or 'accepted' if it returns (any other error is thrown on). */
export function refusalCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof HubError) return e.code;
    throw e;
  }
  return 'accepted';
}
