import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type SimFaults, SimRadio } from '../drivers/sim-radio/radio.js';
import type { Bearer } from '../hal/bearer.js';
import { writeFileAtomic } from '../src/base/atomic-file.js';
import type { Clock } from '../src/base/clock.js';
import type { Component, ComponentStatus } from '../src/base/component.js';
import { HubError } from '../src/base/errors.js';
import { type Random, SeededRandom } from '../src/base/random.js';
import { Secret } from '../src/crypto/secret.js';
import { generateKeyPair } from '../src/link/noise.js';
import { SimLock } from './lock/lock.js';
import { FileLockStorage, flushSimulatedFlash, MemoryLockStorage } from './lock/storage.js';
import { simVendor } from './vendor.js';

export interface Sticker {
  deviceId: string;
  setupCode: string;
}

export interface SimWorldOptions {
  clock: Clock;
  random: Random;
  /** Lock identities (keys, setup codes) derive from it, so a site is the same across restarts. */
  seed: string;
  locks: number;
  /** Where the locks keep their flash; in memory when absent. */
  dir?: string;
  faults?: Partial<SimFaults>;
  attachWindowMs?: number;
  /**
   * The site's id, set in every lock at installation (PIN verifiers and tag hashes are bound to
   * it). The PIN key is not here: a lock gets it only from its hub, over the sealed link.
   */
  site?: { siteId: string };
  /** Offline-list capacity of each lock. */
  maxOfflineEntries?: number;
  /** With `dir`: fsync each lock's flash file (default). Off, a lock's flash writes cost the hub machine nothing but the write. */
  flashDurable?: boolean;
  /** The vendor keys in the locks' boot ROM (default: the simulated vendor's, sim/vendor.ts). */
  firmwareVendorKeys?: readonly Uint8Array[];
}

/**
 * The simulated site's id and first PIN key, derived from the simulation seed: the demo's
 * reference cloud uses them to issue PINs and seals the key to the hub; the simulated locks get
 * the key only from the hub over the sealed link (`setPinKey`, docs/digital-keys.md).
 */
export function simulatedSiteSecrets(seed: string): { siteId: string; pinKey: Secret } {
  const pinKey = createHmac('sha256', seed).update('iq-hub simulated site PIN key').digest();
  return { siteId: 'sim-site', pinKey: new Secret(new Uint8Array(pinKey)) };
}

const ALPHABET = 'ABCDEFGHJKMNPQRSTVWXYZ23456789';

function setupCodeFrom(random: Random): string {
  const chars = Array.from(random.bytes(12), (b) => ALPHABET[b % ALPHABET.length]).join('');
  return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8, 12)}`;
}

/**
 * A simulated site: an in-memory radio and simulated locks with factory identities derived from
 * a seed, as if a box of locks had been unpacked. The hub reaches them through `bearer()`.
 */
export class SimWorld implements Component {
  readonly name = 'sim-world';
  readonly radio: SimRadio;
  readonly locks: SimLock[] = [];
  readonly stickers: Sticker[] = [];
  #running = false;

  constructor(opts: SimWorldOptions) {
    if (!Number.isInteger(opts.locks) || opts.locks < 0 || opts.locks > 1000) {
      throw new HubError('sim.config', `a simulated site has 0 to 1000 locks, not ${opts.locks}`);
    }
    this.radio = new SimRadio({ clock: opts.clock, random: opts.random, faults: opts.faults ?? {} });
    if (opts.dir) mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    const vendorKeys = opts.firmwareVendorKeys ?? [simVendor().publicKey];
    for (let i = 0; i < opts.locks; i++) {
      const deviceId = `SIM-${String(i + 1).padStart(4, '0')}`;
      const factory = new SeededRandom(`${opts.seed}/lock/${deviceId}`);
      const keyPair = generateKeyPair(factory);
      const setupCode = setupCodeFrom(factory);
      this.stickers.push({ deviceId, setupCode });
      this.locks.push(
        new SimLock({
          deviceId,
          keyPair,
          setupCode,
          radio: this.radio,
          address: `sim:${deviceId.toLowerCase()}`,
          clock: opts.clock,
          random: opts.random,
          storage: opts.dir
            ? new FileLockStorage(join(opts.dir, `${deviceId}.json`), { durable: opts.flashDurable ?? true })
            : new MemoryLockStorage(),
          ...(opts.attachWindowMs ? { attachWindowMs: opts.attachWindowMs } : {}),
          ...(opts.site ? { siteId: opts.site.siteId } : {}),
          ...(opts.maxOfflineEntries ? { maxOfflineEntries: opts.maxOfflineEntries } : {}),
          firmware: { vendorKeys },
        }),
      );
    }
    if (opts.dir) {
      // Like the stickers in the box: the installer's copy of each device id and setup code.
      const text = this.stickers.map((s) => `${s.deviceId} ${s.setupCode}\n`).join('');
      writeFileAtomic(join(opts.dir, 'stickers.txt'), text, 0o600);
    }
  }

  /** The hub's radio adapter on this site. */
  bearer(): Bearer {
    return this.radio.bearer({ address: 'hub' });
  }

  lock(deviceId: string): SimLock {
    const i = this.stickers.findIndex((s) => s.deviceId === deviceId);
    const lock = this.locks[i];
    if (!lock) throw new HubError('sim.unknown-lock', `no simulated lock ${deviceId}`);
    return lock;
  }

  sticker(deviceId: string): Sticker {
    const s = this.stickers.find((x) => x.deviceId === deviceId);
    if (!s) throw new HubError('sim.unknown-lock', `no simulated lock ${deviceId}`);
    return s;
  }

  async start(): Promise<void> {
    for (const l of this.locks) if (!l.running) l.boot();
    this.#running = true;
  }

  async stop(): Promise<void> {
    // Locks write through: powering them off loses nothing they confirmed (a fast flash —
    // flashDurable: false — has what it wrote behind written now).
    for (const l of this.locks) if (l.running) l.crash();
    flushSimulatedFlash();
    this.#running = false;
  }

  status(): ComponentStatus {
    const bound = this.locks.filter((l) => l.boundHub()).length;
    return {
      name: this.name,
      state: this.#running ? 'running' : 'stopped',
      detail: `${this.locks.length} simulated locks, ${bound} bound`,
    };
  }
}
