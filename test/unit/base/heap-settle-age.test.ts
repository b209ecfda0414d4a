import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { launcherNodeArgs, unitEnvironment } from '../../../bench/memory.bench.js';
import { CODE_AGE_COLLECTIONS, HeapSettle } from '../../../src/base/heap-settle.js';

/**
 * The ageing collections after start-up (`HeapSettle.afterStart`, docs/operations.md "Memory"):
 * fake timers and an injected collection, so "one every gap, only while quiet" is exact and
 * nothing depends on the machine's load. The last test runs V8's real collections in a child
 * node with the unit's flags.
 */

const DELAY = 30;
const GAP = 100;

/** A settle whose collections are recorded (the fake time of each) instead of run. */
function recording(opts: { fail?: boolean; flagFails?: boolean } = {}) {
  const at: number[] = [];
  const flag: number[] = [];
  let now = 0;
  const settle = new HeapSettle({
    delayMs: DELAY,
    ageGapMs: GAP,
    flushBaselineCode: () => {
      flag.push(now);
      if (opts.flagFails) throw new Error('setFlagsFromString refused');
    },
    collect: async () => {
      at.push(now);
      if (opts.fail) throw new Error('measureMemory refused');
    },
  });
  const advance = async (ms: number) => {
    for (let i = 0; i < ms; i++) {
      now++;
      await vi.advanceTimersByTimeAsync(1);
    }
  };
  return { settle, at, flag, advance };
}

describe('HeapSettle.afterStart: the start-up settle, then collections that age the start code', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    // No test leaves a timer behind: the ageing ends by itself, or is cancelled.
    expect(vi.getTimerCount()).toBe(0);
    vi.useRealTimers();
  });

  it('collects twice after the quiet delay, then once every gap, as many times as asked, then never again', async () => {
    const { settle, at, flag, advance } = recording();
    settle.afterStart();
    // V8's flushing of Sparkplug code is on from the call, before any of the collections.
    expect(flag).toEqual([0]);
    await advance(DELAY + GAP * CODE_AGE_COLLECTIONS + 5);
    await settle.idle();
    expect(settle.runs).toBe(1);
    expect(settle.aged).toBe(CODE_AGE_COLLECTIONS);
    // The settle's two at the delay, then one at each gap (the first gap counted from the call).
    expect(at).toEqual([DELAY, DELAY, ...Array.from({ length: CODE_AGE_COLLECTIONS }, (_, i) => GAP * (i + 1))]);
    await advance(10 * GAP);
    expect(at).toHaveLength(2 + CODE_AGE_COLLECTIONS);
    expect(settle.busy).toBe(false);
  });

  it('skips a gap while a collection waits for quiet (the hub busy attaching locks, a sync): it does not count', async () => {
    const { settle, at, advance } = recording();
    settle.afterStart(3);
    await advance(DELAY + 1);
    await settle.idle();
    expect(at).toEqual([DELAY, DELAY]);
    // Activity asks for a settle again and again, each time before its quiet delay has passed.
    for (let i = 0; i < 10; i++) {
      settle.soon();
      await advance(DELAY - 1);
    }
    // 290 ms of activity: the gaps at 100 and 200 were skipped, none counted.
    expect(settle.aged).toBe(0);
    expect(at).toEqual([DELAY, DELAY]);
    await advance(1); // the last soon's delay: its round
    await settle.idle();
    expect(at).toHaveLength(4);
    await advance(4 * GAP);
    expect(settle.aged).toBe(3);
    expect(at).toHaveLength(7);
  });

  it('skips a gap while work holds collections back (offline lists pushed), and resumes after it', async () => {
    const { settle, at, advance } = recording();
    settle.afterStart(2);
    await advance(DELAY + 1);
    let release: () => void = () => {};
    const held = settle.during(() => new Promise<void>((r) => (release = r)));
    await advance(3 * GAP);
    expect(settle.aged).toBe(0);
    expect(at).toHaveLength(2);
    release();
    await held;
    await advance(2 * GAP + 1);
    expect(settle.aged).toBe(2);
    expect(at).toHaveLength(4);
  });

  it('never runs two collections at once: a gap that finds one running (a drain) waits for the next', async () => {
    let gate: Promise<void> | undefined;
    let release: () => void = () => {};
    let running = 0;
    let most = 0;
    const settle = new HeapSettle({
      delayMs: 1,
      ageGapMs: GAP,
      collect: async () => {
        running++;
        most = Math.max(most, running);
        await gate;
        running--;
      },
    });
    settle.afterStart(2);
    await vi.advanceTimersByTimeAsync(1);
    await settle.idle();
    expect(settle.runs).toBe(1);
    gate = new Promise<void>((r) => (release = r));
    const slow = settle.collectOnce(); // still running at the first gap
    await vi.advanceTimersByTimeAsync(GAP);
    expect(settle.aged).toBe(0);
    gate = undefined;
    release();
    await slow;
    await vi.advanceTimersByTimeAsync(2 * GAP);
    await settle.idle();
    expect(settle.aged).toBe(2);
    expect(most).toBe(1);
  });

  it('stops at cancel (the daemon stops): no timer left, no collection after', async () => {
    const { settle, at, advance } = recording();
    settle.afterStart();
    await advance(DELAY + 2 * GAP + 1);
    expect(settle.aged).toBe(2);
    settle.cancel();
    expect(vi.getTimerCount()).toBe(0);
    await advance(10 * GAP);
    expect(settle.aged).toBe(2);
    expect(at).toHaveLength(4);
  });

  it('a cancel while an ageing collection runs leaves nothing armed after it', async () => {
    let release: () => void = () => {};
    let calls = 0;
    const settle = new HeapSettle({
      delayMs: 1,
      ageGapMs: GAP,
      collect: async () => {
        calls++;
        if (calls === 3) await new Promise<void>((r) => (release = r));
      },
    });
    settle.afterStart(4);
    await vi.advanceTimersByTimeAsync(GAP); // the settle's two, then the first ageing one (held)
    expect(calls).toBe(3);
    settle.cancel();
    release();
    await settle.idle();
    await vi.advanceTimersByTimeAsync(10 * GAP);
    expect(calls).toBe(3);
  });

  it('asked again, counts again from the start', async () => {
    const { settle, advance } = recording();
    settle.afterStart(3);
    await advance(DELAY + 2 * GAP + 1);
    expect(settle.aged).toBe(2);
    settle.afterStart(3);
    await advance(DELAY + 3 * GAP + 1);
    await settle.idle();
    expect(settle.aged).toBe(5);
  });

  it('a refused flag changes nothing else: the settle and the ageing still run', async () => {
    const { settle, at, flag, advance } = recording({ flagFails: true });
    settle.afterStart(2);
    await advance(DELAY + 2 * GAP + 1);
    await settle.idle();
    expect(flag).toHaveLength(1);
    expect(settle.runs).toBe(1);
    expect(settle.aged).toBe(2);
    expect(at).toHaveLength(4);
  });

  it('a collection that fails still counts: the ageing ends, it never loops', async () => {
    const { settle, at, advance } = recording({ fail: true });
    settle.afterStart(3);
    await advance(DELAY + 3 * GAP + 1);
    await settle.idle();
    expect(settle.aged).toBe(3);
    await advance(10 * GAP);
    // The settle's first failed (so its second was not tried), then the three ageing ones.
    expect(at).toEqual([DELAY, GAP, 2 * GAP, 3 * GAP]);
  });
});

const HEAP_SETTLE_JS = fileURLToPath(new URL('../../../dist/src/base/heap-settle.js', import.meta.url));

const UNIT = new URL('../../../systemd/iq-hub.service', import.meta.url);
/**
 * V8's own behaviour, in a child node with the unit's flags: functions that ran once and then not
 * during the ageing collections lose their bytecode and — with the flushing of Sparkplug code that
 * `afterStart` turns on — their Sparkplug code. `gc()` (--expose-gc) would not show it: V8 does not
 * flush code in a GC forced that way; the collections here are the daemon's own (vm.measureMemory,
 * eager). `--always-sparkplug` gives every function Sparkplug code at once, as running a while does.
 */
describe.skipIf(!existsSync(HEAP_SETTLE_JS))("afterStart's collections in V8", () => {
  const script = (turnOn: boolean) => `
    const v8 = require('node:v8');
    const fns = [];
    for (let i = 0; i < 300; i++) fns.push(new Function('a', 'let s = ' + i + '; for (let j = 0; j < a; j++) s += j * ' + i + ' % 7; return s;'));
    for (const f of fns) for (let k = 0; k < 20; k++) f(50);
    import(${JSON.stringify(HEAP_SETTLE_JS)}).then(async ({ HeapSettle }) => {
      const settle = new HeapSettle({ delayMs: 1, ageGapMs: 5${turnOn ? '' : ', flushBaselineCode: () => {}'} });
      const before = v8.getHeapCodeStatistics();
      settle.afterStart(6);
      while (settle.aged < 6) await new Promise((r) => setTimeout(r, 5));
      const after = v8.getHeapCodeStatistics();
      process.stdout.write(JSON.stringify({
        code: [before.code_and_metadata_size, after.code_and_metadata_size],
        bytecode: [before.bytecode_and_metadata_size, after.bytecode_and_metadata_size],
        live: fns.length,
      }));
    });`;
  const run = (turnOn: boolean) => {
    const unit = unitEnvironment(readFileSync(UNIT, 'utf8'));
    const flags = [...(unit.NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean), ...launcherNodeArgs(unit)];
    const r = spawnSync(process.execPath, [...flags, '--always-sparkplug', '-e', script(turnOn)], {
      env: { ...process.env, NODE_OPTIONS: '' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { code: [number, number]; bytecode: [number, number]; live: number };
  };

  it('drop the code of functions that did not run, their Sparkplug code only once afterStart turned its flushing on', () => {
    const withFlush = run(true);
    const without = run(false);
    // The 300 functions are alive (held in an array) but did not run: their code goes.
    expect(withFlush.live).toBe(300);
    expect(withFlush.code[1]).toBeLessThan(withFlush.code[0] - 200_000);
    expect(withFlush.bytecode[1]).toBeLessThan(withFlush.bytecode[0] / 2);
    // Without it V8 keeps every function's Sparkplug code, and with it the bytecode.
    expect(withFlush.code[1]).toBeLessThan(without.code[1] - 100_000);
    expect(withFlush.bytecode[1]).toBeLessThan(without.bytecode[1]);
  });
});
