import { describe, expect, it } from 'vitest';
import { LockPasses } from '../../../src/access/lock-passes.js';

/** The per-lock push loop the PIN key delivery and the offline lists share. */

function rig(o: { concurrency?: number; bound?: string[] } = {}) {
  const state = { active: true, bound: o.bound ?? ['A', 'B', 'C', 'D'] };
  const updated: string[] = [];
  let inFlight = 0;
  let most = 0;
  const release: (() => void)[] = [];
  const passes = new LockPasses({
    active: () => state.active,
    boundLocks: () => state.bound,
    concurrency: o.concurrency,
    update: async (id) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise<void>((r) => release.push(r));
      inFlight--;
      updated.push(id);
    },
  });
  const drain = async () => {
    for (let i = 0; i < 100 && (release.length > 0 || updated.length === 0); i++) {
      for (const r of release.splice(0)) r();
      await new Promise((r) => setImmediate(r));
    }
    await passes.settled();
  };
  return { passes, state, updated, drain, most: () => most };
}

describe('LockPasses', () => {
  it('updates the marked bound locks one at a time by default, in the order marked, each once', async () => {
    const r = rig();
    r.passes.mark(['C', 'A', 'C', 'X']);
    await r.drain();
    expect(r.updated).toEqual(['C', 'A']);
    expect(r.most()).toBe(1);
  });

  it('runs at most `concurrency` updates at once', async () => {
    const r = rig({ concurrency: 2 });
    r.passes.mark(['A', 'B', 'C', 'D']);
    await r.drain();
    expect(r.updated.sort()).toEqual(['A', 'B', 'C', 'D']);
    expect(r.most()).toBe(2);
  });

  it('a lock marked during a pass is updated by the next; a forgotten one is not; nothing runs while inactive', async () => {
    const r = rig();
    r.passes.mark(['A']);
    r.passes.mark(['B', 'C']);
    r.passes.forget('B');
    await r.drain();
    expect(r.updated).toEqual(['A', 'C']);
    r.state.active = false;
    r.passes.mark(['D']);
    await r.passes.settled();
    expect(r.updated).toEqual(['A', 'C']);
  });
});
