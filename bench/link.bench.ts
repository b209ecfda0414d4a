import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimWorld } from '../sim/world.js';
import { systemClock } from '../src/base/clock.js';
import { systemRandom } from '../src/base/random.js';
import { Sealer } from '../src/crypto/seal.js';
import { Secret } from '../src/crypto/secret.js';
import { LinkManager } from '../src/link/manager.js';
import { PairingStore } from '../src/link/pairing.js';
import { connectBound } from '../src/link/session.js';
import { silentLogger } from '../src/log/logger.js';
import { Store } from '../src/store/store.js';
import { type Benchmark, distribution, round } from './lib.js';

/**
 * link.openRoundTrip: the technician's `open` from the hub's call to the lock's answer, over the
 * simulated radio with zero added latency: the cost of our own stack (sealing, framing, the lock
 * model, the request client), not of a radio. One open at a time: the next starts once the
 * previous one's event is collected (the collection follows the answer on the next turn). link.handshake: Noise KK connections per second.
 */
export const linkBench: Benchmark = {
  name: 'link',
  description: 'open round trip over the zero-latency simulated radio; KK handshakes per second',
  async run() {
    const dir = mkdtempSync(join(tmpdir(), 'iqhub-bench-'));
    const world = new SimWorld({ clock: systemClock, random: systemRandom, seed: 'bench', locks: 2 });
    const store = Store.open(dir);
    const sealer = new Sealer(new Secret(systemRandom.bytes(32)), systemRandom);
    const manager = new LinkManager({
      pairing: new PairingStore(store),
      bearer: world.bearer(),
      sealer,
      clock: systemClock,
      random: systemRandom,
      log: silentLogger(),
    });
    try {
      await world.start();
      await manager.start();
      for (const s of world.stickers) {
        world.lock(s.deviceId).presentMaintenanceCard();
        await manager.attach(s.deviceId, Secret.fromUtf8(s.setupCode));
      }
      const [a, b] = world.stickers;
      if (!a || !b) throw new Error('two locks expected');
      for (let i = 0; i < 100; i++) await manager.open(a.deviceId, 1000);
      const open: number[] = [];
      const lock = world.lock(a.deviceId);
      for (let i = 0; i < 2000; i++) {
        const t = performance.now();
        await manager.open(a.deviceId, 1000);
        open.push(performance.now() - t);
        // One open at a time: the next starts once this one's event is collected (not timed).
        while (manager.get(a.deviceId).lastEventSeq < lock.state().lastSeq) {
          await new Promise((r) => setImmediate(r));
        }
      }

      // Handshakes straight on the session layer, against the second lock.
      const bearer = world.radio.bearer({ address: 'bench-hub' });
      await bearer.start();
      const rec = manager.pairing.get(b.deviceId);
      const hub = manager.pairing.hubIdentity(sealer, systemRandom, 0);
      if (!rec) throw new Error('lock not attached');
      const timing = { clock: systemClock, random: systemRandom, stepTimeoutMs: 1000, attempts: 1 };
      const n = 300;
      const hs: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const link = await bearer.connect(rec.address, { timeoutMs: 1000 });
        if (!link.ok) throw new Error(link.error.message);
        const t = performance.now();
        const s = await connectBound(link.value, hub, rec.staticPublic, timing);
        hs.push(performance.now() - t);
        if (!s.ok) throw new Error(s.error.message);
        await link.value.close();
      }
      const seconds = (performance.now() - t0) / 1000;
      await bearer.stop();
      return {
        'link.openRoundTrip': distribution('ms', open),
        'link.handshake': { unit: 'handshakes/s', value: round(n / seconds), n },
        'link.handshakeLatency': distribution('ms', hs),
      };
    } finally {
      await manager.stop();
      await world.stop();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
