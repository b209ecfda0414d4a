import type { ControlServer } from '../src/control-socket/socket-server.js';
import type { SimWorld } from './world.js';

const deviceId = { type: 'string', pattern: '^SIM-[0-9]{4}$' } as const;

/**
 * Physical acts on simulated locks, for demos and tests of a daemon in simulation mode: the
 * control socket stands in for a hand on the lock. Registered only when `simulation.enabled`.
 */
export function registerSimMethods(server: ControlServer, world: SimWorld): void {
  server.register('sim.card', {
    params: { properties: { deviceId }, required: ['deviceId'] },
    handler: (p) => {
      world.lock(p.deviceId as string).presentMaintenanceCard();
      return { attachMode: true };
    },
  });
  server.register('sim.act', {
    params: {
      properties: {
        deviceId,
        act: { enum: ['open-by-hand', 'door-open', 'door-close', 'tamper', 'battery'] },
        percent: { type: 'integer', minimum: 0, maximum: 100 },
      },
      required: ['deviceId', 'act'],
    },
    handler: (p) => {
      const lock = world.lock(p.deviceId as string);
      switch (p.act) {
        case 'open-by-hand':
          return lock.openByHand();
        case 'door-open':
          return lock.setDoor(true) ?? null;
        case 'door-close':
          return lock.setDoor(false) ?? null;
        case 'tamper':
          return lock.tamper();
        default:
          return lock.setBattery((p.percent as number | undefined) ?? 50) ?? null;
      }
    },
  });
  // A PIN typed at a lock's keypad (tests of a spawned daemon; the digits never reach the hub).
  server.register('sim.pin', {
    params: {
      properties: { deviceId, pin: { type: 'string', pattern: '^[0-9]{4,12}$' } },
      required: ['deviceId', 'pin'],
    },
    handler: (p) => world.lock(p.deviceId as string).typePin(p.pin as string),
  });
  server.register('sim.locks', {
    params: { properties: {} },
    handler: () =>
      world.locks.map((l, i) => ({
        deviceId: world.stickers[i]?.deviceId,
        running: l.running,
        bound: l.boundHub() !== undefined,
        attachMode: l.inAttachMode(),
        // PIN key versions only (0: none), never a key.
        pinKey: l.running ? l.pinKeyVersions() : null,
        state: l.state(),
        unackedEvents: l.events().length,
        // Requests the lock handled since it booted, by operation: tests prove with it that a
        // refused command never reached a lock.
        requestCounts: l.requestCounts(),
      })),
  });
}
