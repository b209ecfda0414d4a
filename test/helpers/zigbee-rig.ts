import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createZigbeeBearer, type ZigbeeBearer, type ZigbeeBearerOptions } from '../../drivers/zigbee/index.js';
import type { Advertisement, BearerState } from '../../hal/bearer.js';
import { ZnpEmulator } from '../../sim/emu/znp/emulator.js';
import { systemClock } from '../../src/base/clock.js';
import { systemRandom } from '../../src/base/random.js';
import { Sealer } from '../../src/crypto/seal.js';
import { Secret } from '../../src/crypto/secret.js';
import { createLogger } from '../../src/log/logger.js';

/**
 * One real zigbee-herdsman against one ZNP emulator over TCP, shared by the tests of a file
 * (herdsman's fresh start waits a fixed ~3 s). Everything it starts, close() stops.
 */
export interface ZigbeeRig {
  emulator: ZnpEmulator;
  bearer: ZigbeeBearer;
  sealer: Sealer;
  dataDir: string;
  /** Every log line the driver (and herdsman through it) wrote, at debug level. */
  logs: string[];
  ads: Advertisement[];
  states: BearerState[];
  close(): Promise<void>;
}

export async function startRig(options: Partial<ZigbeeBearerOptions> = {}): Promise<ZigbeeRig> {
  const dataDir = mkdtempSync(join(tmpdir(), 'iqhub-zigbee-'));
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const emulator = await ZnpEmulator.start({ advertiseIntervalMs: 300, joinRetryMs: 100 });
  const sealer = new Sealer(new Secret(randomBytes(32)), systemRandom);
  const bearer = createZigbeeBearer({
    serialPath: emulator.url,
    dataDir,
    sealer,
    random: systemRandom,
    clock: systemClock,
    log: createLogger({ level: 'debug', pretty: false, destination }),
    healthIntervalMs: 500,
    probeTimeoutMs: 1_500,
    recoverBaseMs: 200,
    recoverMaxMs: 1_000,
    sendTimeoutMs: 2_000,
    backupIntervalMs: 2_000,
    backupsKept: 3,
    ...options,
  });
  const ads: Advertisement[] = [];
  const states: BearerState[] = [];
  bearer.onAdvertisement((ad) => ads.push(ad));
  bearer.onStateChange((s) => states.push(s));
  return {
    emulator,
    bearer,
    sealer,
    dataDir,
    logs,
    ads,
    states,
    async close() {
      await bearer.stop();
      await emulator.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
