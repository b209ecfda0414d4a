import { describe, expect, it } from 'vitest';
import { HubError } from '../../../../src/base/errors.js';
import { Secret } from '../../../../src/crypto/secret.js';
import { Site } from './site.js';

describe('attach with an install code', () => {
  it('on a radio without install codes: refused attach.install-code before anything is recorded', async () => {
    const site = await Site.create({ seed: 'install-code', locks: 1 });
    const [id] = site.ids() as [string];
    site.world.lock(id).presentMaintenanceCard();
    const code = '0011223344556677|AABBCCDDEEFF00112233445566778899';
    let error: unknown;
    try {
      await site.drive(
        site.hub.manager.attach(id, Secret.fromUtf8(site.world.sticker(id).setupCode), 2000, {
          installCode: Secret.fromUtf8(code),
        }),
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HubError);
    expect((error as HubError).code).toBe('attach.install-code');
    expect((error as HubError).message).not.toContain('AABBCC');
    expect(site.hub.manager.list()).toEqual([]);
    // Without one the same lock attaches.
    expect((await site.drive(site.hub.startAttach(id))).state).toBe('bound');
  });
});
