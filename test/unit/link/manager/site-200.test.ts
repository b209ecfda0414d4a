import { describe, expect, it } from 'vitest';
import { Site } from './site.js';

/** A full site: 200 simulated locks on one radio, zero faults. */

describe('a 200-lock site', () => {
  it('attaches every lock and opens every lock', async () => {
    const site = await Site.create({ seed: 'site-200', locks: 200 });
    const hub = site.hub;
    const ids = site.ids();
    expect(ids).toHaveLength(200);

    // The installer walks the site with the maintenance card, a few locks at a time.
    for (let i = 0; i < ids.length; i += 20) {
      const group = ids.slice(i, i + 20);
      for (const id of group) site.world.lock(id).presentMaintenanceCard();
      await site.drive(Promise.all(group.map((id) => hub.startAttach(id))));
    }

    const listed = hub.manager.list();
    expect(listed.map((l) => l.lockId)).toEqual(ids);
    expect(listed.every((l) => l.state === 'bound' && l.connected)).toBe(true);
    for (const id of ids) expect(site.world.lock(id).boundHub()).toEqual(hub.manager.hubPublicKey);
    expect(new Set(listed.map((l) => l.keyFingerprint)).size).toBe(200);

    const states = await site.drive(Promise.all(ids.map((id) => hub.manager.open(id, 60_000))));

    expect(states.every((s) => s.bolt === 'unlocked')).toBe(true);
    for (const id of ids) {
      const lock = site.world.lock(id);
      expect(lock.state().bolt, id).toBe('unlocked');
      expect(lock.requestCounts().handled.open, id).toBe(1);
    }
    await site.until(() => hub.manager.list().every((l) => l.lastEventSeq === 1), 'every open event collected');
    expect(hub.security.filter((e) => e.kind !== 'lock.attached')).toEqual([]);
    expect(site.world.radio.counters().dropped).toBe(0);
  }, 120_000);
});
