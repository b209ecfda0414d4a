import { describe, expect, it } from 'vitest';
import type { SyncTarget } from '../../../src/access/cloud-sync.js';
import { AccessMirror } from '../../../src/access/mirror.js';
import { commandHarness } from '../../helpers/commands.js';

/** The cloud's `sync` through the inbound handler into the real mirror, as the hub wires it. */
function harness() {
  let mirror: AccessMirror | undefined;
  const sync: SyncTarget = { apply: async (p) => ({ version: (mirror as AccessMirror).apply(p).version }) };
  const t = commandHarness({ sync });
  mirror = new AccessMirror({ store: t.store, clock: t.clock });
  return { t, mirror };
}

const snapshot = (version: number) => ({
  v: 1,
  id: `snap-${version}`,
  kind: 'snapshot',
  version,
  data: {
    users: [{ id: 'u-1', offline: true, blocked: false }],
    groups: [{ id: 'staff', lockIds: ['SIM-0001'] }],
    memberships: [{ userId: 'u-1', groupId: 'staff' }],
    pins: [],
    tags: [{ id: 't-1', userId: 'u-1', hash: 'ab'.repeat(32) }],
    keys: [],
  },
});

describe('sync into the access mirror', () => {
  it('a snapshot is applied and acknowledged with its version; the mirror holds it', async () => {
    const { t, mirror } = harness();
    await t.sendRaw('sync', snapshot(3));
    expect(t.sink.enqueued.at(-1)?.payload).toEqual({ v: 1, id: 'snap-3', ok: true, version: 3 });
    expect(mirror.version()).toBe(3);
    expect(mirror.userByTagHash(Buffer.from('ab'.repeat(32), 'hex'))?.user.id).toBe('u-1');
  });

  it('a snapshot delivered three times at once is applied once and each delivery is acknowledged alike', async () => {
    const { t, mirror } = harness();
    await Promise.all([t.sendRaw('sync', snapshot(4)), t.sendRaw('sync', snapshot(4)), t.sendRaw('sync', snapshot(4))]);
    const acks = t.sink.enqueued.map((a) => a.payload);
    expect(acks).toEqual(Array(3).fill({ v: 1, id: 'snap-4', ok: true, version: 4 }));
    expect(mirror.version()).toBe(4);
  });

  it('a delta on the wrong base is refused with sync.base-mismatch and changes nothing', async () => {
    const { t, mirror } = harness();
    await t.sendRaw('sync', snapshot(3));
    const before = mirror.counts();
    await t.sendRaw('sync', {
      v: 1,
      id: 'delta-1',
      kind: 'delta',
      version: 5,
      baseVersion: 2,
      data: { delete: { tags: ['t-1'] } },
    });
    expect(t.sink.enqueued.at(-1)?.payload).toMatchObject({
      id: 'delta-1',
      ok: false,
      error: { code: 'sync.base-mismatch' },
    });
    expect(mirror.version()).toBe(3);
    expect(mirror.counts()).toEqual(before);
  });

  it('a revocation by delta takes effect at once', async () => {
    const { t, mirror } = harness();
    await t.sendRaw('sync', snapshot(3));
    await t.sendRaw('sync', {
      v: 1,
      id: 'delta-2',
      kind: 'delta',
      version: 4,
      baseVersion: 3,
      data: { delete: { tags: ['t-1'] } },
    });
    expect(t.sink.enqueued.at(-1)?.payload).toEqual({ v: 1, id: 'delta-2', ok: true, version: 4 });
    expect(mirror.userByTagHash(Buffer.from('ab'.repeat(32), 'hex'))).toBeUndefined();
  });
});
