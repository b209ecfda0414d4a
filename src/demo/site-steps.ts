import { SimLock } from '../../sim/lock/lock.js';
import type { SimWorld } from '../../sim/world.js';
import type { Hub } from '../app/hub.js';
import { systemClock } from '../base/clock.js';
import { HubError, type HubErrorCode } from '../base/errors.js';
import { SeededRandom, systemRandom } from '../base/random.js';
import { callDaemon } from '../control-socket/socket-client.js';
import type { LockSummary } from '../link/manager.js';
import { generateKeyPair } from '../link/noise.js';
import { check, type Step, until } from './scenario.js';

async function refusedWith(p: Promise<unknown>, code: HubErrorCode): Promise<void> {
  try {
    await p;
  } catch (e) {
    check(e instanceof HubError && e.code === code, `expected ${code}, got ${(e as Error).message}`);
    return;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

/** The simulated site, part 1: attach, open, events, refusals, detach — all through the control socket. */
export function siteSteps(hub: Hub, world: SimWorld): Step[] {
  const socket = hub.control.path;
  const call = (method: string, params: Record<string, unknown> = {}) => callDaemon(socket, method, params, 60_000);
  const ids = world.stickers.map((s) => s.deviceId);
  const [a, b, c] = ids as [string, string, string];
  const stored = (id: string) => hub.link?.pairing.events(id, 1000) ?? [];
  return [
    {
      name: `every simulated lock (${ids.join(', ')}) attaches after its maintenance card, with its setup code`,
      async run() {
        for (const id of ids) {
          world.lock(id).presentMaintenanceCard();
          const l = (await call('locks.attach', {
            deviceId: id,
            setupCode: world.sticker(id).setupCode,
          })) as LockSummary;
          check(l.state === 'bound', `${id} is ${l.state}`);
          check(world.lock(id).boundHub() !== undefined, `${id} did not store the hub key`);
        }
      },
    },
    {
      name: 'a device id that is not on the site is not found, and nothing is recorded',
      async run() {
        await refusedWith(
          call('locks.attach', { deviceId: 'SIM-9999', setupCode: 'AAAA-BBBB-CCCC', timeoutMs: 1500 }),
          'attach.not-found',
        );
      },
    },
    {
      name: 'the technician opens a door; the lock reports it and the hub stores the event',
      async run() {
        const state = (await call('locks.open', { lockId: a, durationMs: 3000 })) as { bolt: string };
        check(state.bolt === 'unlocked', `bolt is ${state.bolt}`);
        await until('the opened event is stored', () => stored(a).some((e) => e.type === 'opened'));
      },
    },
    {
      name: 'events made on the lock (door, tamper) reach the store exactly once, in order',
      async run() {
        const lock = world.lock(b);
        lock.setDoor(true);
        lock.setDoor(false);
        lock.tamper();
        await until('three events are stored', () => stored(b).length >= 3);
        const seqs = stored(b)
          .map((e) => e.seq)
          .sort((x, y) => x - y);
        check(new Set(seqs).size === seqs.length, `duplicates in ${seqs}`);
        await until('the lock dropped what the hub acknowledged', () => lock.events().length === 0);
      },
    },
    {
      name: 'a detached lock forgets the hub; without the maintenance card it refuses to attach again',
      async run() {
        const r = (await call('locks.detach', { lockId: c })) as { detached: boolean };
        check(r.detached, 'detach did not complete');
        check(world.lock(c).boundHub() === undefined, 'the lock still holds the hub key');
        await refusedWith(
          call('locks.attach', { deviceId: c, setupCode: world.sticker(c).setupCode, timeoutMs: 1500 }),
          'attach.not-in-attach-mode',
        );
      },
    },
    {
      name: 'a wrong setup code is refused and reported, and the lock stays unbound',
      async run() {
        const id = c;
        world.lock(id).presentMaintenanceCard();
        await refusedWith(
          call('locks.attach', { deviceId: id, setupCode: 'WRNG-CODE-0000' }),
          'attach.wrong-setup-code',
        );
        check(world.lock(id).boundHub() === undefined, 'the lock bound to a hub that gave a wrong code');
        const events = (await call('security.events', { limit: 20 })) as { kind: string }[];
        check(
          events.some((e) => e.kind === 'attach.proof-mismatch'),
          'no security event',
        );
      },
    },
    {
      name: 'a rogue device imitating a bound lock is refused, quarantined and reported; the other locks keep working',
      async run() {
        const real = world.lock(a);
        real.crash();
        const rogue = new SimLock({
          deviceId: a,
          keyPair: generateKeyPair(new SeededRandom(`rogue/${systemRandom.float()}`)),
          setupCode: 'ROGU-E000-0000',
          radio: world.radio,
          address: 'sim:rogue',
          clock: systemClock,
          random: systemRandom,
        });
        rogue.boot();
        await new Promise((r) => setTimeout(r, 300));
        try {
          for (let i = 0; i < 3; i++) await call('locks.open', { lockId: a, durationMs: 1000 }).catch(() => {});
          const l = (await call('locks.get', { lockId: a })) as LockSummary;
          check(l.state === 'quarantined', `state is ${l.state}`);
          check(l.failedHandshakes > 0, 'failed handshakes not counted');
          const events = (await call('security.events', { limit: 50 })) as { kind: string; lockId: string }[];
          check(
            events.some((e) => e.kind === 'lock.quarantined' && e.lockId === a),
            'no quarantine event',
          );
          const other = (await call('locks.open', { lockId: b, durationMs: 1000 })) as { bolt: string };
          check(other.bolt === 'unlocked', 'the other lock stopped working');
        } finally {
          rogue.crash();
          real.boot();
        }
      },
    },
    {
      name: "a quarantined lock is sent no open; a technician's check proves the real lock's key and lifts the quarantine",
      async run() {
        await new Promise((r) => setTimeout(r, 300));
        await refusedWith(call('locks.open', { lockId: a, durationMs: 1000 }), 'lock.quarantined');
        const l = (await call('locks.check', { lockId: a })) as LockSummary;
        check(l.state === 'bound', `state is ${l.state}`);
        const state = (await call('locks.open', { lockId: a, durationMs: 1000 })) as { bolt: string };
        check(state.bolt === 'unlocked', 'open failed');
      },
    },
  ];
}

/** Part 2, after the daemon restarted on the same data directory. */
export function siteAfterRestartSteps(hub: Hub, world: SimWorld): Step[] {
  const socket = hub.control.path;
  const [a, b] = world.stickers.map((s) => s.deviceId) as [string, string];
  return [
    {
      name: 'the bound locks are still bound after the restart and open on request',
      async run() {
        const locks = (await callDaemon(socket, 'locks.list')) as LockSummary[];
        check(
          locks.filter((l) => l.state === 'bound').length === 2,
          `locks: ${JSON.stringify(locks.map((l) => l.state))}`,
        );
        const s = (await callDaemon(socket, 'locks.open', { lockId: b, durationMs: 1000 }, 60_000)) as { bolt: string };
        check(s.bolt === 'unlocked', 'open failed');
      },
    },
    {
      name: 'no event was lost or stored twice across the restart',
      async run() {
        const lock = world.lock(a);
        lock.openByHand();
        const pairing = hub.link?.pairing;
        check(pairing, 'no link');
        await until('the new event is stored', () => lock.events().length === 0 && pairing.events(a, 1000).length > 0);
        const seqs = pairing.events(a, 1000).map((e) => e.seq);
        check(new Set(seqs).size === seqs.length, 'duplicate events');
        const max = Math.max(...seqs);
        check(seqs.length === max, `gap in the stored sequence: ${seqs.length} events up to #${max}`);
      },
    },
  ];
}
