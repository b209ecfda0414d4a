/**
 * The radio side of bench/offline.bench.ts, in its own process (forked with an IPC channel): the
 * ZNP emulator on tcp:// and `count` SimLocks on it, so the figure is the hub's and not the
 * emulated locks' (each real lock has its own CPU). Messages from the bench: `card` (every lock in
 * attach mode), `lists` (each lock's offline list: its digest and count, and its setOffline
 * requests handled; and the air frames counted so far, each way), `stop`. Started with: the lock count and the seed as arguments; it answers
 * `{ ready: url }` once the emulator listens.
 */
import { ZnpEmulator } from '../sim/emu/znp/emulator.js';
import { SimLock } from '../sim/lock/lock.js';
import { systemClock } from '../src/base/clock.js';
import { SeededRandom } from '../src/base/random.js';
import { offlineListDigest } from '../src/contract/link-offline.js';
import { generateKeyPair } from '../src/link/noise.js';

export const siteDeviceId = (i: number) => `ZB-${String(i).padStart(2, '0')}`;
export const siteSetupCode = (i: number) => `ZB${String(i).padStart(2, '0')}-OFFL-CODE`;

/** ZCL frames the emulated coordinator put on the air to the locks, and heard from them (not the locks' periodic reports), so far. */
export interface SiteAir {
  toLocks: number;
  fromLocks: number;
}

export interface SiteLists {
  /** lockId → hex digest of what the lock holds, its entry count and the setOffline requests it handled. */
  [lockId: string]: { digest: string; held: number; setOffline: number };
}

async function main(count: number, seed: string): Promise<void> {
  const znp = await ZnpEmulator.start({ advertiseIntervalMs: 300, joinRetryMs: 100 });
  const random = new SeededRandom(`${seed} locks`);
  const locks: SimLock[] = [];
  for (let i = 1; i <= count; i++) {
    const lock = new SimLock({
      deviceId: siteDeviceId(i),
      keyPair: generateKeyPair(new SeededRandom(`${seed}/${siteDeviceId(i)}`)),
      setupCode: siteSetupCode(i),
      radio: znp,
      address: `${seed}-${i}`,
      clock: systemClock,
      random,
      attachWindowMs: 60_000,
    });
    lock.boot();
    locks.push(lock);
  }
  const send = (m: unknown) => process.send?.(m);
  process.on('message', async (m: { op: string }) => {
    if (m.op === 'card') {
      for (const lock of locks) lock.presentMaintenanceCard();
      send({ op: 'card' });
    } else if (m.op === 'lists') {
      const lists: SiteLists = {};
      for (const lock of locks) {
        const held = lock.offlineAccess();
        const digest = offlineListDigest(
          held.map((e) => ({
            kind: e.kind,
            credentialId: e.credentialId,
            digest: new Uint8Array(Buffer.from(e.digest, 'hex')),
            windows: e.windows,
          })),
        );
        lists[lock.deviceId] = {
          digest: Buffer.from(digest).toString('hex'),
          held: held.length,
          setOffline: lock.requestCounts().handled.setOffline ?? 0,
        };
      }
      const c = znp.counters;
      send({
        op: 'lists',
        lists,
        air: { toLocks: c.airFramesToDevices, fromLocks: c.airFramesFromDevices - c.airAdvertisements },
      });
    } else if (m.op === 'stop') {
      for (const lock of locks) if (lock.running) lock.crash();
      await znp.close();
      send({ op: 'stopped' });
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
  send({ op: 'ready', url: znp.url });
}

if (process.argv[2] === 'site') await main(Number(process.argv[3]), String(process.argv[4]));
