import { join } from 'node:path';
import { type DaemonOptions, type RunningDaemon, startDaemon } from '../../src/app/daemon.js';
import type { HubConfig } from '../../src/config/schema.js';

/**
 * The lock link's timing on the emulated radios: ZigBee frames take tens of ms each way through
 * herdsman, and the link's defaults are tuned for BLE; these leave room for both.
 */
export const EMULATED_LINK = { connectTimeoutMs: 5_000, stepTimeoutMs: 1_500, retryMs: 1_000 } as const;

/**
 * startDaemon in-process as the integration tests and benches run it: no config file, data and
 * run directories under `dir`, quiet (`logLevel`, 'fatal' unless told), no simulated site unless
 * `overrides.simulation` says so. `overrides` add to (or replace) these; the other options are
 * passed on as they are.
 */
export function startDaemonIn<W = unknown>(
  dir: string,
  overrides: Partial<HubConfig>,
  options: Omit<DaemonOptions<W>, 'configPath' | 'logPretty' | 'overrides'> & { logLevel?: string } = {},
): Promise<RunningDaemon> {
  const { logLevel = 'fatal', ...rest } = options;
  return startDaemon<W>({
    ...rest,
    configPath: null,
    logPretty: false,
    overrides: {
      dataDir: join(dir, 'data'),
      runDir: join(dir, 'run'),
      log: { level: logLevel, pretty: false } as HubConfig['log'],
      simulation: { enabled: false } as HubConfig['simulation'],
      ...overrides,
    },
  });
}
