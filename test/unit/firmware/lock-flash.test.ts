import { describe, expect, it } from 'vitest';
import { factoryState, validateLockPersisted } from '../../../sim/lock/storage.js';

/** The simulated lock's firmware state in flash is checked like the rest: a lock never boots on a staging area it cannot trust. */

const staging = { sha256: 'ab'.repeat(32), manifest: '01'.repeat(40), signature: 'cd'.repeat(64), data: 'AAAA' };

describe('simulated lock flash: firmware', () => {
  it('a flash without firmware state (older) or with a valid one loads', () => {
    expect(validateLockPersisted(factoryState(), 'x').firmware).toBeUndefined();
    const p = validateLockPersisted({ ...factoryState(), firmware: { version: '1.2.3', staging } }, 'x');
    expect(p.firmware).toEqual({ version: '1.2.3', staging });
  });

  it('a bad version, digest, signature, data or an extra member is refused as corrupt', () => {
    const bad = [
      { version: '1.2', staging: null },
      { version: '1.2.3', staging: { ...staging, sha256: 'zz' } },
      { version: '1.2.3', staging: { ...staging, signature: 'cd' } },
      { version: '1.2.3', staging: { ...staging, data: 'not base64!' } },
      { version: '1.2.3', staging: { ...staging, extra: 1 } },
      { version: '1.2.3', staging: null, extra: 1 },
    ];
    for (const firmware of bad) {
      expect(() => validateLockPersisted({ ...factoryState(), firmware }, 'x'), JSON.stringify(firmware)).toThrow(
        /firmware is not a valid firmware state/,
      );
    }
  });
});
