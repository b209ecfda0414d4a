import { describe, expect, it } from 'vitest';
import { EXIT_CONFIG, EXIT_FAILED, EXIT_TEMPFAIL, startFailureExit } from '../../../src/app/exit-codes.js';
import { HubError, type HubErrorCode } from '../../../src/base/errors.js';

const exitFor = (code: HubErrorCode) => startFailureExit(new HubError(code, 'x'));
const errno = (code: string) => Object.assign(new Error(code), { code });

describe('start-up faults and their exit codes', () => {
  it('every permanent fault exits 78: config, store format, the store and key not one identity, permissions, read-only', () => {
    const permanent: HubErrorCode[] = [
      'config.invalid',
      'config.syntax',
      'config.yaml-aliases',
      'store.not-a-database',
      'store.corrupt',
      'store.too-new',
      'store.missing',
      'store.emptied',
      'store.key-missing',
      'store.key-mismatch',
      'store.hub-mismatch',
      'seal.open',
      'store.not-writable',
      'store.read-only',
      'storage-key.permissions',
      'uplink.key.mismatch',
      'identity.key-mismatch',
      'access.time-zone',
    ];
    expect(permanent.filter((c) => exitFor(c) !== EXIT_CONFIG)).toEqual([]);
  });

  it('a full disk or a store held by another process exits 75: systemd may try again', () => {
    expect(exitFor('store.disk-full')).toBe(EXIT_TEMPFAIL);
    expect(exitFor('store.locked')).toBe(EXIT_TEMPFAIL);
    expect(startFailureExit(errno('ENOSPC'))).toBe(EXIT_TEMPFAIL);
  });

  it('an errno outside a HubError is classified too; anything unforeseen exits 1', () => {
    expect(startFailureExit(errno('EROFS'))).toBe(EXIT_CONFIG);
    expect(startFailureExit(errno('EACCES'))).toBe(EXIT_CONFIG);
    expect(startFailureExit(new Error('boom'))).toBe(EXIT_FAILED);
    expect(startFailureExit(undefined)).toBe(EXIT_FAILED);
    expect(exitFor('store.open')).toBe(EXIT_FAILED);
    expect([EXIT_CONFIG, EXIT_TEMPFAIL]).toEqual([78, 75]);
  });
});
