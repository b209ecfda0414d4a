import { describe, expect, it } from 'vitest';
import { accessSite, businessHour, issueKey } from '../../../bench/access-data.js';
import { CloudKeyIssuer } from '../../../sim/phone/issuer.js';
import { SimPhone } from '../../../sim/phone/phone.js';
import { pinVerifier, tagHash } from '../../../src/access/credentials.js';
import { AccessDecider } from '../../../src/access/decide.js';
import { newChallenge } from '../../../src/access/digital-key.js';
import { AccessMirror } from '../../../src/access/mirror.js';
import { systemClock } from '../../../src/base/clock.js';
import { SeededRandom } from '../../../src/base/random.js';
import { Secret } from '../../../src/crypto/secret.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * The access benchmarks measure decisions that must be grants: this proves the generated site is
 * one the mirror accepts and in which every person's PIN, tag and key opens every lock listed
 * for them at a business hour — and is refused at night, so the schedules really are in play.
 */

const SITE_ID = 'bench-site';
const PIN_KEY = new Secret(new SeededRandom('bench pin key').bytes(32));
const LOCKS = Array.from({ length: 12 }, (_, i) => `door-${i}`);
const options = {
  seed: 'test',
  users: 60,
  lockIds: LOCKS,
  groups: 6,
  locksPerGroup: 3,
  siteId: SITE_ID,
  pinKey: PIN_KEY,
  offlineShare: 0.25,
};

describe('bench access site generator', () => {
  it('is deterministic and holds one PIN, tag and key per user with unique digests', () => {
    const a = accessSite(options);
    const b = accessSite(options);
    expect(a.snapshot).toEqual(b.snapshot);
    const { snapshot } = a;
    expect(snapshot.users).toHaveLength(60);
    expect(new Set(snapshot.pins.map((p) => p.verifier)).size).toBe(60);
    expect(new Set(snapshot.tags.map((t) => t.hash)).size).toBe(60);
    expect(snapshot.keys).toHaveLength(60);
    expect(snapshot.memberships.length).toBe(60 + 12);
    expect(snapshot.users.filter((u) => u.offline).length).toBe(15);
    expect(snapshot.groups.filter((g) => g.schedule).length).toBe(3);
    // The PIN digits stay with the people: nowhere in what the cloud would send.
    const text = JSON.stringify(snapshot);
    for (const p of a.people) expect(text).not.toContain(p.pin);
  });

  it('every person opens each of their locks with PIN, tag and key at a business hour, not at night', async () => {
    const { snapshot, people } = accessSite(options);
    const store = Store.open(tempDir());
    try {
      const mirror = new AccessMirror({ store, clock: systemClock });
      mirror.apply({ v: 1, id: 's-1', kind: 'snapshot', version: 1, data: snapshot as never });
      expect(mirror.counts()).toMatchObject({ users: 60, pins: 60, tags: 60, keys: 60 });
      const cloud = new CloudKeyIssuer(new SeededRandom('bench cloud'));
      const phone = await SimPhone.create(new SeededRandom('bench phone'));
      const decider = new AccessDecider({
        mirror,
        clock: systemClock,
        timeZone: 'Europe/Madrid',
        cloudPublicKey: cloud.publicKey,
        log: silentLogger(),
      });
      const random = new SeededRandom('times');
      let decisions = 0;
      for (const person of people) {
        const signed = issueKey(cloud, person, phone.keys);
        expect(person.lockIds.length).toBeGreaterThan(0);
        for (const lockId of person.lockIds) {
          const at = businessHour(random);
          const pin = decider.verifyAccess(
            lockId,
            { kind: 'pin', verifier: pinVerifier(PIN_KEY, person.pin, SITE_ID) },
            at,
          );
          const tag = decider.verifyAccess(lockId, { kind: 'tag', hash: tagHash(person.tagId, SITE_ID) }, at);
          const challenge = newChallenge(random);
          const presentation = new TextEncoder().encode(JSON.stringify(phone.presentKey(signed, challenge, lockId)));
          const key = decider.verifyAccess(lockId, { kind: 'digitalKey', challenge, presentation }, at);
          expect([pin, tag, key].map((d) => `${d.userId} ${d.reason}`)).toEqual(
            Array(3).fill(`${person.userId} granted`),
          );
          decisions += 3;
        }
      }
      expect(decisions).toBeGreaterThan(3 * 60);
      // Saturday 22:00 in Madrid: the scheduled groups refuse; unscheduled ones still admit.
      const night = Date.parse('2026-06-06T20:00:00Z');
      const reasons = new Set(
        people.map(
          (p) =>
            decider.verifyAccess(p.lockIds[0] as string, { kind: 'tag', hash: tagHash(p.tagId, SITE_ID) }, night)
              .reason,
        ),
      );
      expect(reasons).toEqual(new Set(['granted', 'outside-schedule']));
    } finally {
      store.close();
    }
  });
});
