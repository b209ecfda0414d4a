import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RunningDaemon } from '../../../src/app/daemon.js';
import { processHeapSettle } from '../../../src/base/heap-settle.js';
import { startDaemonIn } from '../../helpers/radio-daemon.js';

/**
 * The daemon asks the process's HeapSettle for the start-up settle and the ageing collections
 * (src/base/heap-settle.ts, `afterStart`) once it is started — here with no radio configured, so
 * at once after READY; with radios, once they are up (the same call in `radios.started()`).
 */
describe('the daemon after its start', () => {
  let dir: string | undefined;
  let daemon: RunningDaemon | undefined;
  afterEach(async () => {
    await daemon?.shutdown('test over');
    daemon = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    vi.restoreAllMocks();
  });

  it('asks once for the start-up settle and the ageing of the start code', async () => {
    const afterStart = vi.spyOn(processHeapSettle, 'afterStart').mockImplementation(() => {});
    dir = mkdtempSync(join(tmpdir(), 'iqhub-age-start-'));
    daemon = await startDaemonIn(dir, {});
    expect(afterStart).toHaveBeenCalledTimes(1);
    expect(afterStart).toHaveBeenCalledWith();
  });
});
