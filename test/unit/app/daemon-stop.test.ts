import { afterEach, describe, expect, it } from 'vitest';
import { processHeapSettle } from '../../../src/base/heap-settle.js';
import { startDaemonIn } from '../../helpers/radio-daemon.js';
import { tempDir } from '../../helpers/tmp.js';

// The daemon's stop (src/app/daemon.ts, shutdown), in-process with the defaults: no radios, no uplink.

afterEach(() => processHeapSettle.cancel());

describe("the daemon's stop", () => {
  it('forgets a heap-settle collection still waiting for quiet: none is left pending', async () => {
    const daemon = await startDaemonIn(tempDir(), {});
    // A large sync just applied (src/access/mirror.ts): a collection waits for the hub to be quiet.
    processHeapSettle.soon();
    expect(processHeapSettle.busy).toBe(true);
    expect(await daemon.shutdown('test over')).toBe(0);
    // Nothing pending (its timer cleared): the process's HeapSettle starts nothing more.
    expect(processHeapSettle.busy).toBe(false);
  });
});
