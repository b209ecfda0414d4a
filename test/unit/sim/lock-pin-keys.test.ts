import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { factoryState, validateLockPersisted } from '../../../sim/lock/storage.js';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import { Secret } from '../../../src/crypto/secret.js';
import { Site } from '../link/manager/site.js';

/**
 * The simulated lock's side of the site PIN key: kept in flash through a power cut, the previous
 * key dropped by the lock's own clock at the end of the overlap, forgotten at detach, and a flash
 * whose keys are not well formed refused.
 */

const K1 = new Secret(new SeededRandom('lock pin k1').bytes(32));
const K2 = new Secret(new SeededRandom('lock pin k2').bytes(32));
const sites: Site[] = [];
afterEach(async () => {
  for (const s of sites.splice(0)) await s.close();
});

async function bound() {
  const site = await Site.bound({ seed: 'lock-pin', locks: 1, lockFiles: true, lockSite: { siteId: 's' } });
  sites.push(site);
  const [id] = site.ids() as [string];
  return { site, id, lock: site.world.lock(id) };
}

describe('the simulated lock and its PIN keys', () => {
  it('has no key until the hub installs one: the keypad is off', async () => {
    const { lock } = await bound();
    expect(lock.pinKeyVersions()).toEqual({ version: 0, previous: 0 });
    expect(() => lock.typePin('1234')).toThrow(HubError);
  });

  it('keeps its keys through a power cut, drops the previous one by its own clock, forgets both at detach', async () => {
    const { site, id, lock } = await bound();
    const hub = site.hub;
    await site.drive(hub.manager.setPinKey(id, { version: 1, key: K1.reveal(), previousUntil: 0 }));
    const until = site.clock.now() + 2_000;
    expect(await site.drive(hub.manager.setPinKey(id, { version: 2, key: K2.reveal(), previousUntil: until }))).toEqual(
      { version: 2, previous: 1 },
    );
    lock.crash();
    lock.boot();
    expect(lock.pinKeyVersions()).toEqual({ version: 2, previous: 1 });
    // The hub is gone; the lock's clock alone ends the overlap.
    hub.kill();
    await site.pass(2_100);
    expect(lock.pinKeyVersions()).toEqual({ version: 2, previous: 0 });
    expect(JSON.parse(readFileSync(site.flashPath(id), 'utf8')).pinKeys).toHaveLength(1);
    await hub.start();
    await site.drive(hub.manager.detach(id));
    expect(lock.pinKeyVersions()).toEqual({ version: 0, previous: 0 });
  });

  it('refuses a flash whose keys are malformed; reads a flash from before keys were delivered as none', () => {
    const good = factoryState();
    const key = 'ab'.repeat(32);
    const bad = [
      [{ version: 0, key, until: null }],
      [{ version: 1, key: 'zz', until: null }],
      [{ version: 1, key, until: 5 }],
      [
        { version: 3, key, until: null },
        { version: 1, key, until: 5 },
      ],
      [
        { version: 2, key, until: null },
        { version: 1, key, until: 5 },
        { version: 1, key, until: 5 },
      ],
    ];
    for (const pinKeys of bad) {
      expect(() => validateLockPersisted({ ...good, pinKeys }, 'flash')).toThrow(/pinKeys/);
    }
    const { pinKeys: _, ...old } = good;
    expect(validateLockPersisted(old, 'flash').pinKeys).toEqual([]);
    const two = [
      { version: 2, key, until: null },
      { version: 1, key, until: 5 },
    ];
    expect(validateLockPersisted({ ...good, pinKeys: two }, 'flash').pinKeys).toEqual(two);
  });
});
