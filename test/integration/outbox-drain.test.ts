import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createDevPki } from '../../provisioning/dev-pki.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { systemClock } from '../../src/base/clock.js';
import { systemRandom } from '../../src/base/random.js';
import { openStoreWithKey } from '../../src/crypto/store-identity.js';
import { Outbox } from '../../src/events/outbox.js';
import type { StoredEvent } from '../../src/link/pairing.js';
import { silentLogger } from '../../src/log/logger.js';
import { closeSite, openSite } from '../helpers/cloud-site.js';
import { type Proc, requireBuild, start } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`outbox-drain: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-drain';
const EVENTS = 20_000;
const LOCKS = ['LOCK-D1', 'LOCK-D2', 'LOCK-D3'];

/**
 * A full outbox drained through a real mosquitto to the reference cloud (events leave on the
 * cloud's ack), with the broker stopped in the middle of the drain and started again: every event
 * queued arrives, none is left in the outbox, and each lock's events arrive in order. The drain's
 * bookkeeping (src/events/awaiting-acks.ts, id-tables.ts) is what a restart mid-drain exercises:
 * publishes lost with the connection, acks for events already gone, resends from the oldest row.
 */
describe.skipIf(!haveMosquitto)(`a full outbox drain${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`, () => {
  let base: string;
  let broker: Mosquitto;
  let cloud: ReferenceCloud;
  let pki: ReturnType<typeof createDevPki>;
  let daemon: Proc | undefined;

  beforeAll(async () => {
    ({ base, pki, broker, cloud } = await openSite('outbox-drain', HUB, { persistence: true }));
  }, 60_000);

  afterAll(() => closeSite({ daemon, cloud, broker, base }));

  it(`${EVENTS.toLocaleString('en')} queued events, the broker restarted mid-drain: every one arrives, in per-lock order, and the outbox empties`, async () => {
    const dataDir = join(base, 'data');
    const opened = openStoreWithKey({ dataDir, keyFile: null, credentialsDirectory: undefined, random: systemRandom });
    try {
      const outbox = new Outbox(opened.store, { clock: systemClock, log: silentLogger() });
      const now = Date.now();
      for (let first = 0; first < EVENTS; first += 1000) {
        const batch: StoredEvent[] = Array.from({ length: 1000 }, (_, i) => {
          const n = first + i;
          return {
            lockId: LOCKS[n % LOCKS.length] as string,
            epoch: 1,
            event: { seq: Math.floor(n / LOCKS.length) + 1, at: now - EVENTS + n, type: 'door', open: n % 2 === 0 },
            receivedAt: now,
          };
        });
        opened.store.transaction(() => outbox.enqueueEvents(batch));
      }
      expect(outbox.depth().events).toBe(EVENTS);
    } finally {
      opened.store.close();
    }
    const config = join(base, 'config.yaml');
    writeFileSync(
      config,
      [
        `dataDir: ${dataDir}`,
        `runDir: ${join(base, 'run')}`,
        'log:',
        '  level: warn',
        'uplink:',
        '  enabled: true',
        `  url: ${broker.url}`,
        `  caFile: ${pki.ca.cert}`,
        `  certFile: ${pki.hub.cert}`,
        `  keyFile: ${pki.hub.key}`,
        '  serverName: localhost',
        '  healthIntervalSec: 5',
        '  reconnectBaseMs: 100',
        '  reconnectMaxMs: 1000',
        '  eventAckTimeoutSec: 5',
        'commands:',
        `  otpKeyFile: ${pki.otpKey}`,
        '',
      ].join('\n'),
    );
    daemon = start(['run', '--config', config]);
    // A quarter of the events at the cloud: the broker goes away in the middle of the drain.
    await cloud.waitFor((c) => c.events(HUB).length >= EVENTS / 4, 120_000, 'a quarter of the events');
    await broker.stop();
    const before = cloud.events(HUB).length;
    expect(before).toBeLessThan(EVENTS);
    await broker.start();
    await cloud.waitFor((c) => c.events(HUB).length >= EVENTS, 240_000, 'every event at the cloud');
    await cloud.waitFor(
      (c) => c.health(HUB).some((h) => h.outbox.depth === 0 && h.delivery?.unacknowledged === 0),
      120_000,
      'an empty outbox in the health',
    );
    const events = cloud.events(HUB);
    const ids = new Set(events.map((e) => e.id));
    expect(ids.size).toBe(EVENTS);
    for (const lockId of LOCKS) {
      const seqs = events.filter((e) => e.lockId === lockId).map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
    expect(cloud.orderViolations(HUB)).toEqual([]);
    expect(cloud.invalid).toBe(0);
    daemon.child.kill('SIGTERM');
    expect((await daemon.exit).code).toBe(0);
  }, 480_000);
});
