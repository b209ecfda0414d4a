import { describe, expect, it } from 'vitest';
import { SiteAdmin } from '../../../sim/cloud/admin.js';
import type { ReferenceCloud, SyncRequest } from '../../../sim/cloud/cloud.js';
import { SimPhone } from '../../../sim/phone/phone.js';
import { pinVerifier } from '../../../src/access/credentials.js';
import { AccessMirror } from '../../../src/access/mirror.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import type { SyncPayload } from '../../../src/contract/mqtt-cloud-messages.js';
import type { SyncAckPayload } from '../../../src/contract/mqtt-hub-messages.js';
import { Secret } from '../../../src/crypto/secret.js';
import { Store } from '../../../src/store/store.js';
import { tempDir } from '../../helpers/tmp.js';

const PIN_KEY = new Secret(new Uint8Array(32).fill(9));

/** A cloud whose sync goes straight into a hub's mirror (what the uplink does, without MQTT). */
function hubMirror() {
  const mirror = new AccessMirror({ store: Store.open(tempDir()), clock: new VirtualClock() });
  const sent: SyncRequest[] = [];
  let n = 0;
  const cloud = {
    sync: async (_hubId: string, req: SyncRequest): Promise<SyncAckPayload> => {
      sent.push(req);
      try {
        const r = mirror.apply({ ...req, v: 1, id: `s-${++n}` } as SyncPayload);
        return { v: 1, id: `s-${n}`, ok: true, version: r.version };
      } catch (e) {
        return { v: 1, id: `s-${n}`, ok: false, error: { code: (e as HubError).code, message: (e as Error).message } };
      }
    },
  } as unknown as ReferenceCloud;
  return { mirror, cloud, sent };
}

describe('reference cloud site administration', () => {
  it('issues a PIN once (only its verifier is kept and synced), then syncs deltas of what changed', async () => {
    const { mirror, cloud, sent } = hubMirror();
    const admin = new SiteAdmin({ siteId: 'site-a', pinKey: PIN_KEY, random: new SeededRandom('admin') });
    admin.addUser('ana', { offline: true });
    admin.addGroup('staff', ['front']);
    admin.addMember('ana', 'staff');
    const pin = admin.issuePin('pin-ana', 'ana');
    expect(pin).toMatch(/^[0-9]{6}$/);
    admin.issueTag('tag-ana', 'ana', new TextEncoder().encode('uid-1'));
    expect((await admin.sync(cloud, 'hub-1')).ok).toBe(true);
    expect(sent[0]?.kind).toBe('snapshot');
    expect(JSON.stringify(sent)).not.toContain(pin);
    expect(mirror.userByPinVerifier(pinVerifier(PIN_KEY, pin, 'site-a'))?.credentialId).toBe('pin-ana');

    admin.revokeTag('tag-ana');
    admin.addUser('ben');
    const phone = await SimPhone.create(new SeededRandom('phone'), { cloudPublicKey: admin.issuer.publicKey });
    await phone.receiveKey(
      await admin.issueKey('key-ben', 'ben', phone.keys, { lockIds: ['front'] }, { validFrom: 0, validUntil: 2e12 }),
    );
    const ack = await admin.sync(cloud, 'hub-1');
    expect(ack).toMatchObject({ ok: true, version: 2 });
    expect(sent[1]).toMatchObject({ kind: 'delta', baseVersion: 1, version: 2 });
    expect(sent[1]?.data).toEqual({
      upsert: { users: [{ id: 'ben' }], keys: [{ id: 'key-ben', userId: 'ben', expiresAt: 2e12 }] },
      delete: { tags: ['tag-ana'] },
    });
    admin.revokeKey('key-ben');
    await admin.sync(cloud, 'hub-1');
    expect(mirror.digitalKey('key-ben')?.revoked).toBe(true);
    expect(mirror.counts()).toMatchObject({ users: 2, tags: 0, pins: 1, keys: 1, memberships: 1 });
  });

  it('a hub that lost its mirror refuses the delta; the next sync is a snapshot', async () => {
    const first = hubMirror();
    const admin = new SiteAdmin({ siteId: 'site-a', pinKey: PIN_KEY, random: new SeededRandom('admin 2') });
    admin.addUser('ana');
    await admin.sync(first.cloud, 'hub-1');
    admin.addUser('ben');
    const fresh = hubMirror();
    const refused = await admin.sync(fresh.cloud, 'hub-1');
    expect(refused).toMatchObject({ ok: false, error: { code: 'sync.base-mismatch' } });
    const again = await admin.sync(fresh.cloud, 'hub-1');
    expect(again.ok).toBe(true);
    expect(fresh.sent.map((s) => s.kind)).toEqual(['delta', 'snapshot']);
    expect(fresh.mirror.counts().users).toBe(2);
  });

  it('refuses credentials for unknown users and revocations of unknown credentials', () => {
    const admin = new SiteAdmin({ siteId: 'site-a', pinKey: PIN_KEY, random: new SeededRandom('admin 3') });
    expect(() => admin.issuePin('p', 'nobody')).toThrow(HubError);
    expect(() => admin.revokeTag('t')).toThrow(/no tag t/);
  });
});
