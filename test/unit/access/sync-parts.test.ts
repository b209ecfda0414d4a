import { describe, expect, it } from 'vitest';
import type { SyncTarget } from '../../../src/access/cloud-sync.js';
import { AccessMirror } from '../../../src/access/mirror.js';
import { SyncParts, wholeDigest } from '../../../src/access/sync-parts.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { MAX_SYNC_PARTS, type SyncPartPayload, type SyncPayload } from '../../../src/contract/mqtt-cloud-messages.js';
import { conforms, parseInbound } from '../../../src/contract/mqtt-validate.js';
import { partsDigest, splitSync } from '../../../src/contract/sync-parts.js';
import { Store } from '../../../src/store/store.js';
import { commandHarness } from '../../helpers/commands.js';
import { tempDir } from '../../helpers/tmp.js';

/** A sync sent in parts through the inbound handler into the real mirror, as the hub wires it. */
function harness(o: { dir?: string; clock?: VirtualClock; timeoutMs?: number } = {}) {
  let mirror: AccessMirror | undefined;
  const sync: SyncTarget = { apply: async (p) => ({ version: (mirror as AccessMirror).apply(p).version }) };
  const t = commandHarness({
    sync,
    ...(o.dir ? { dir: o.dir } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
    syncPartsTimeoutMs: o.timeoutMs ?? 60_000,
  });
  mirror = new AccessMirror({ store: t.store, clock: t.clock });
  const heldParts = () => (t.store.db.prepare('SELECT COUNT(*) AS n FROM sync_parts').get() as { n: number }).n;
  /** The mirror as a comparable value: version and rows per table. */
  const snapshotOf = () => ({ version: mirror.version(), counts: mirror.counts() });
  return { t, mirror, heldParts, snapshotOf };
}

const tagHash = (i: number) => i.toString(16).padStart(64, '0');

function site(id: string, version: number, users: number, tagOffset = 0): SyncPayload {
  const list = Array.from({ length: users }, (_, i) => `user-${String(i).padStart(4, '0')}`);
  return {
    v: 1,
    id,
    kind: 'snapshot',
    version,
    data: {
      users: list.map((u) => ({ id: u, name: `Resident "${u}" \\ ünïcödé 🗝`, offline: true })),
      groups: [{ id: 'staff', lockIds: ['SIM-0001'] }],
      memberships: list.map((u) => ({ userId: u, groupId: 'staff' })),
      pins: [],
      tags: list.map((u, i) => ({ id: `t-${u}`, userId: u, hash: tagHash(i + 1 + tagOffset) })),
      keys: [],
    },
  };
}

/** `sync` cut into parts of at most 2 KiB, with part ids `<id>.p<index>`. */
function parts(sync: SyncPayload, maxBytes = 2048): SyncPartPayload[] {
  const out = splitSync(sync, maxBytes, (i) => `${sync.id}.p${i}`);
  if (!out.every((p) => 'part' in p)) throw new Error('expected parts');
  return out as SyncPartPayload[];
}

const ack = (t: ReturnType<typeof harness>['t']) => t.sink.enqueued.at(-1)?.payload;

describe('a sync in parts', () => {
  it('is cut so that every part fits the limit, and the parts conform to the contract', () => {
    const ps = parts(site('s-1', 1, 40));
    expect(ps.length).toBeGreaterThan(4);
    for (const p of ps) {
      expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThanOrEqual(2048);
      expect(conforms('sync', p)).toBe(true);
    }
    expect(partsDigest(ps.map((p) => p.chunk).join(''))).toBe(ps[0]?.part.digest);
    // A sync that fits goes as it is.
    expect(splitSync(site('s-2', 1, 1), 131072, () => 'x')).toEqual([site('s-2', 1, 1)]);
  });

  it('is stored part by part, each answered with what is held, and applied whole with the last', async () => {
    const h = harness();
    const ps = parts(site('s-1', 3, 40));
    const before = h.snapshotOf();
    for (const [i, p] of ps.slice(0, -1).entries()) {
      await h.t.sendRaw('sync', p);
      expect(ack(h.t)).toEqual({ v: 1, id: p.id, ok: true, part: { sync: 's-1', received: i + 1, count: ps.length } });
      expect(h.snapshotOf()).toEqual(before);
    }
    expect(h.heldParts()).toBe(ps.length - 1);
    const last = ps.at(-1) as SyncPartPayload;
    await h.t.sendRaw('sync', last);
    expect(ack(h.t)).toEqual({
      v: 1,
      id: last.id,
      ok: true,
      version: 3,
      part: { sync: 's-1', received: ps.length, count: ps.length },
    });
    expect(h.mirror.version()).toBe(3);
    expect(h.mirror.counts().users).toBe(40);
    expect(h.mirror.userByTagHash(Buffer.from(tagHash(40), 'hex'))?.user.id).toBe('user-0039');
    expect(h.heldParts()).toBe(0);
  });

  it('arrives in any order', async () => {
    const h = harness();
    const ps = parts(site('s-1', 2, 30));
    for (const p of [...ps].reverse()) await h.t.sendRaw('sync', p);
    expect(ack(h.t)).toMatchObject({ ok: true, version: 2 });
    expect(h.mirror.counts().users).toBe(30);
  });

  it('survives a restart: the parts held before it and the rest after it make the whole', async () => {
    const dir = tempDir();
    const clock = new VirtualClock();
    const ps = parts(site('s-1', 2, 30));
    const first = harness({ dir, clock });
    for (const p of ps.slice(0, 3)) await first.t.sendRaw('sync', p);
    first.t.inbound.close();
    first.t.store.close();
    const second = harness({ dir, clock });
    await second.t.inbound.recover();
    for (const p of ps.slice(3)) await second.t.sendRaw('sync', p);
    expect(ack(second.t)).toMatchObject({ ok: true, version: 2 });
    expect(second.mirror.counts().users).toBe(30);
  });

  it('a repeated part changes nothing: the same count is answered, and a redelivery gets its stored answer', async () => {
    const h = harness();
    const ps = parts(site('s-1', 2, 30));
    const [p0, p1] = ps as [SyncPartPayload, SyncPartPayload];
    await h.t.sendRaw('sync', p0);
    await h.t.sendRaw('sync', p1);
    await h.t.sendRaw('sync', { ...p0, id: 'again-0' });
    expect(ack(h.t)).toEqual({ v: 1, id: 'again-0', ok: true, part: { sync: 's-1', received: 2, count: ps.length } });
    await h.t.sendRaw('sync', p1);
    expect(ack(h.t)).toEqual({ v: 1, id: p1.id, ok: true, part: { sync: 's-1', received: 2, count: ps.length } });
    expect(h.heldParts()).toBe(2);
    expect(h.mirror.version()).toBe(0);
  });

  it('a changed part under an index already held is refused sync.part-conflict; the one held is applied', async () => {
    const h = harness();
    const ps = parts(site('s-1', 2, 30));
    const [p0, ...rest] = ps as [SyncPartPayload, ...SyncPartPayload[]];
    await h.t.sendRaw('sync', p0);
    const forged = { ...p0, id: 'forged-0', chunk: p0.chunk.replace('user-0000', 'user-9999') };
    await h.t.sendRaw('sync', forged);
    expect(ack(h.t)).toMatchObject({ id: 'forged-0', ok: false, error: { code: 'sync.part-conflict' } });
    expect(h.heldParts()).toBe(1);
    expect(h.t.row('forged-0')).toBeUndefined();
    for (const p of rest) await h.t.sendRaw('sync', p);
    expect(ack(h.t)).toMatchObject({ ok: true, version: 2 });
    expect(h.mirror.userByTagHash(Buffer.from(tagHash(1), 'hex'))?.user.id).toBe('user-0000');
  });

  it('a part of another generation is refused sync.part-mismatch and mixes nothing into the set', async () => {
    const h = harness();
    const ps = parts(site('s-1', 5, 30));
    const older = parts(site('s-0', 4, 30, 1000));
    const [p0, p1] = ps as [SyncPartPayload, SyncPartPayload];
    await h.t.sendRaw('sync', p0);
    // Same sync id, another version.
    await h.t.sendRaw('sync', { ...p1, id: 'gen-1', version: 6 });
    expect(ack(h.t)).toMatchObject({ id: 'gen-1', ok: false, error: { code: 'sync.part-mismatch' } });
    // Same sync id, another digest, count or kind.
    await h.t.sendRaw('sync', { ...p1, id: 'gen-2', part: { ...p1.part, digest: 'ab'.repeat(32) } });
    expect(ack(h.t)).toMatchObject({ id: 'gen-2', ok: false, error: { code: 'sync.part-mismatch' } });
    await h.t.sendRaw('sync', { ...p1, id: 'gen-3', part: { ...p1.part, count: p1.part.count + 1 } });
    expect(ack(h.t)).toMatchObject({ id: 'gen-3', ok: false, error: { code: 'sync.part-mismatch' } });
    await h.t.sendRaw('sync', { ...p1, id: 'gen-4', kind: 'delta', baseVersion: 4 });
    expect(ack(h.t)).toMatchObject({ id: 'gen-4', ok: false, error: { code: 'sync.part-mismatch' } });
    // Another set of an older version while this one is open.
    await h.t.sendRaw('sync', older[1]);
    expect(ack(h.t)).toMatchObject({ ok: false, error: { code: 'sync.part-mismatch' } });
    expect(h.heldParts()).toBe(1);
    for (const p of ps.slice(1)) await h.t.sendRaw('sync', p);
    expect(ack(h.t)).toMatchObject({ ok: true, version: 5 });
    expect(h.mirror.userByTagHash(Buffer.from(tagHash(1001), 'hex'))).toBeUndefined();
  });

  it('a newer sync replaces an incomplete older one, which is reported sync.incomplete', async () => {
    const h = harness();
    const old = parts(site('s-old', 2, 30));
    const fresh = parts(site('s-new', 3, 30));
    await h.t.sendRaw('sync', old[0]);
    await h.t.sendRaw('sync', fresh[0]);
    const report = h.t.sink.enqueued.find((s) => s.payload.id === 's-old');
    expect(report?.payload).toMatchObject({
      ok: false,
      error: { code: 'sync.incomplete' },
      part: { sync: 's-old', received: 1, count: old.length },
    });
    for (const p of fresh.slice(1)) await h.t.sendRaw('sync', p);
    expect(ack(h.t)).toMatchObject({ ok: true, version: 3 });
  });

  it('parts that do not join to their digest are refused sync.digest-mismatch, and nothing is applied', async () => {
    const h = harness();
    const ps = parts(site('s-1', 2, 30));
    const wrong = 'cd'.repeat(32);
    const before = h.snapshotOf();
    for (const p of ps) await h.t.sendRaw('sync', { ...p, part: { ...p.part, digest: wrong } });
    expect(ack(h.t)).toMatchObject({ ok: false, error: { code: 'sync.digest-mismatch' } });
    expect(h.snapshotOf()).toEqual(before);
    expect(h.heldParts()).toBe(0);
  });

  it('a part beyond the count is refused sync.part-out-of-range', async () => {
    const h = harness();
    const [p0] = parts(site('s-1', 2, 30)) as [SyncPartPayload];
    await h.t.sendRaw('sync', { ...p0, id: 'beyond', part: { ...p0.part, index: p0.part.count } });
    expect(ack(h.t)).toMatchObject({ id: 'beyond', ok: false, error: { code: 'sync.part-out-of-range' } });
    expect(h.heldParts()).toBe(0);
  });

  it('a count above the limit is refused sync.too-large before anything is stored', async () => {
    const h = harness();
    const [p0] = parts(site('s-1', 2, 30)) as [SyncPartPayload];
    await h.t.sendRaw('sync', { ...p0, id: 'huge', part: { ...p0.part, count: MAX_SYNC_PARTS + 1 } });
    expect(ack(h.t)).toMatchObject({ id: 'huge', ok: false, error: { code: 'sync.too-large' } });
    expect(h.heldParts()).toBe(0);
  });

  it('a set whose chunks pass MAX_SYNC_BYTES is dropped sync.too-large', async () => {
    const h = harness();
    const big = 'A'.repeat(17 * 1024 * 1024);
    const head = { v: 1, kind: 'snapshot', version: 2 } as const;
    const part = (index: number) => ({
      ...head,
      id: `big-${index}`,
      part: { sync: 's-big', index, count: 3, digest: 'ab'.repeat(32) },
      chunk: big,
    });
    await h.t.sendRaw('sync', part(0));
    expect(ack(h.t)).toMatchObject({ ok: true, part: { received: 1, count: 3 } });
    await h.t.sendRaw('sync', part(1));
    expect(ack(h.t)).toMatchObject({ id: 'big-1', ok: false, error: { code: 'sync.too-large' } });
    expect(h.heldParts()).toBe(0);
    expect(h.mirror.version()).toBe(0);
  }, 60_000);

  it('a chunk cannot smuggle a member into the whole sync: the joined header must be the parts’ own', async () => {
    const h = harness();
    const sync = site('s-1', 2, 3);
    const text = `${JSON.stringify(sync.data)},"baseVersion":1`;
    const p: SyncPartPayload = {
      v: 1,
      id: 'smuggle',
      kind: 'snapshot',
      version: 2,
      part: { sync: 's-1', index: 0, count: 1, digest: partsDigest(text) },
      chunk: text,
    };
    await h.t.sendRaw('sync', p);
    expect(ack(h.t)).toMatchObject({ id: 'smuggle', ok: false, error: { code: 'sync.part-mismatch' } });
    const dup = `${JSON.stringify(sync.data)},"version":9`;
    await h.t.sendRaw('sync', { ...p, id: 'smuggle-2', chunk: dup, part: { ...p.part, digest: partsDigest(dup) } });
    expect(ack(h.t)).toMatchObject({ id: 'smuggle-2', ok: false, error: { code: 'payload.duplicate-name' } });
    expect(h.mirror.version()).toBe(0);
  });

  it('a set never completed is dropped after its time and answered sync.incomplete under its sync id', async () => {
    const clock = new VirtualClock();
    const h = harness({ clock, timeoutMs: 60_000 });
    const ps = parts(site('s-1', 2, 30));
    for (const p of ps.slice(0, 2)) await h.t.sendRaw('sync', p);
    const before = h.snapshotOf();
    await clock.advance(59_000);
    expect(h.t.sink.enqueued.some((s) => s.payload.id === 's-1')).toBe(false);
    await clock.advance(2_000);
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    const report = h.t.sink.enqueued.find((s) => s.payload.id === 's-1');
    expect(report?.topic).toBe('sync/ack');
    expect(report?.payload).toMatchObject({
      ok: false,
      error: { code: 'sync.incomplete' },
      part: { sync: 's-1', received: 2, count: ps.length },
    });
    expect(conforms('sync/ack', report?.payload)).toBe(true);
    expect(h.heldParts()).toBe(0);
    expect(h.snapshotOf()).toEqual(before);
  });

  it('a set whose time ran out while the hub was stopped is answered sync.incomplete at the start', async () => {
    const dir = tempDir();
    const clock = new VirtualClock();
    const ps = parts(site('s-1', 2, 30));
    const first = harness({ dir, clock, timeoutMs: 60_000 });
    await first.t.sendRaw('sync', ps[0]);
    first.t.inbound.close();
    first.t.store.close();
    await clock.advance(120_000);
    const second = harness({ dir, clock, timeoutMs: 60_000 });
    await second.t.inbound.recover();
    expect(second.t.sink.enqueued.find((s) => s.payload.id === 's-1')?.payload).toMatchObject({
      ok: false,
      error: { code: 'sync.incomplete' },
    });
    expect(second.heldParts()).toBe(0);
  });

  it('a whole sync in one message still works beside parts', async () => {
    const h = harness();
    await h.t.sendRaw('sync', site('whole', 7, 5));
    expect(ack(h.t)).toEqual({ v: 1, id: 'whole', ok: true, version: 7 });
  });

  it('a message with both data and a part is refused by the schema', async () => {
    const h = harness();
    const [p0] = parts(site('s-1', 2, 30)) as [SyncPartPayload];
    await h.t.sendRaw('sync', { ...p0, data: {} });
    expect(ack(h.t) ?? h.t.last()).toMatchObject({ ok: false, error: { code: 'payload.invalid' } });
    expect(h.heldParts()).toBe(0);
  });
});

describe('a sync in parts is joined without extra copies, into the very message sent whole', () => {
  /** The set `ps` (chunks possibly rewritten by `edit`, digest recomputed) taken by SyncParts: the outcome of the last. */
  function take(ps: SyncPartPayload[], edit: (chunk: string) => string = (c) => c) {
    const chunks = ps.map((p) => edit(p.chunk));
    const digest = partsDigest(chunks.join(''));
    const store = Store.open(tempDir());
    try {
      const sp = new SyncParts({
        store,
        clock: new VirtualClock(Date.parse('2026-06-03T10:00:00Z')),
        timeoutMs: 60_000,
      });
      let outcome: ReturnType<SyncParts['take']> | undefined;
      for (const [i, p] of ps.entries()) {
        outcome = sp.take({ ...p, part: { ...p.part, digest }, chunk: chunks[i] as string }, () => {});
      }
      return { outcome, text: chunks.join('') };
    } finally {
      store.close();
    }
  }

  it('a snapshot and a delta come out as parseInbound reads the same message sent whole', () => {
    const snapshot = site('s-9', 4, 40);
    const delta: SyncPayload = { ...site('d-9', 5, 30), kind: 'delta', baseVersion: 4 };
    delta.data = { upsert: snapshot.data, delete: { keys: ['k-1'] } };
    for (const sync of [snapshot, delta]) {
      const ps = parts(sync);
      const { outcome } = take(ps);
      const whole = parseInbound('sync', Buffer.from(JSON.stringify(sync)));
      expect(whole.ok).toBe(true);
      expect(outcome).toEqual({ kind: 'complete', sync: whole.ok && whole.value, count: ps.length });
    }
  });

  it('an unpaired surrogate in a chunk does not survive the store: the set is refused sync.digest-mismatch', () => {
    const ps = parts(site('s-10', 4, 40));
    // A raw high surrogate with no low one after it, inside a name (the first of each chunk).
    const { outcome } = take(ps, (c) => c.replace('ünïcödé', '\ud800ünïcödé'));
    expect(outcome).toMatchObject({ kind: 'refused', code: 'sync.digest-mismatch' });
  });

  it('the digest through node:crypto is partsDigest, for any text', () => {
    for (const text of ['', '{"a":1}', 'ünïcödé 🗝', 'lone \ud800 high and \udc00 low', 'x'.repeat(300_000)]) {
      expect(wholeDigest(text)).toBe(partsDigest(text));
    }
  });
});
