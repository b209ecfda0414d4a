import { describe, expect, it } from 'vitest';
import { HubError } from '../../../../src/base/errors.js';
import { LINK_LIMIT_HINT } from '../../../../src/link/connections.js';
import { expectServing, Site } from './site.js';

/**
 * The hub keeps a session with every bound lock it hears, so a radio whose link limit is below the
 * number of its locks leaves some unreachable. That must read as the limit, with what to do about
 * it, never as a lock out of range.
 */

const [A, B, C] = ['SIM-0001', 'SIM-0002', 'SIM-0003'];

async function failure(site: Site, work: Promise<unknown>): Promise<HubError> {
  try {
    await site.drive(work);
  } catch (e) {
    if (e instanceof HubError) return e;
    throw e;
  }
  return expect.fail('succeeded');
}

describe('the radio link limit', () => {
  it('an attach beyond it fails attach.unreachable naming the limit, with the hint to raise it or detach a lock', async () => {
    const site = await Site.create({ seed: 'link-limit-attach', locks: 3 });
    const hub = site.hub;
    hub.maxLinks = 2;
    await hub.restart();
    await hub.attach(A);
    await hub.attach(B);
    site.world.lock(C).presentMaintenanceCard();
    const e = await failure(site, hub.startAttach(C));
    expect(e.code).toBe('attach.unreachable');
    expect(e.message).toMatch(/limit of 2 connections/);
    expect(e.hint).toBe(LINK_LIMIT_HINT);
    expect(site.world.lock(C).boundHub()).toBeUndefined();
    await expectServing(hub, [A, B]);
  });

  it('a bound lock left without a link after a restart with a smaller limit: its command fails lock.unreachable with that hint', async () => {
    const site = await Site.create({ seed: 'link-limit-open', locks: 2 });
    const hub = site.hub;
    await hub.attach(A);
    await hub.attach(B);
    hub.maxLinks = 1;
    await hub.restart();
    // Both locks are heard; one takes the only link.
    await site.until(() => hub.manager.list().some((l) => l.connected), 'one lock connected');
    const [held, left] = hub.manager.list().some((l) => l.lockId === A && l.connected) ? [A, B] : [B, A];
    expect(await hub.tryOpen(held)).toEqual({ ok: true });
    const e = await failure(site, hub.manager.open(left, 1_000));
    expect(e.code).toBe('lock.unreachable');
    expect(e.message).toMatch(/limit of 1 connections/);
    expect(e.hint).toBe(LINK_LIMIT_HINT);
  });
});
