import type { BearerError } from '../../hal/bearer.js';

/**
 * The BearerErrors the driver words itself, kept together so a caller gets the same words and the
 * same advice whichever part of the driver refused.
 */

export function stoppedError(): BearerError {
  return { code: 'stopped', message: 'the BLE bearer is not started; start() it first' };
}

export function unavailableError(reason: string): BearerError {
  return { code: 'adapter-unavailable', message: `the BLE adapter is unavailable: ${reason}`, reason };
}

export function timeoutError(address: string, timeoutMs: number): BearerError {
  return {
    code: 'timeout',
    message: `${address} was heard but did not connect within ${timeoutMs} ms; check that the lock is powered and in range`,
    address,
    timeoutMs,
  };
}

export function notFoundError(address: string, timeoutMs: number): BearerError {
  return {
    code: 'not-found',
    message: `nothing answering to ${address} was heard or connected within ${timeoutMs} ms; check the address and that the lock is powered`,
    address,
  };
}
