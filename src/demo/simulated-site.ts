import { join } from 'node:path';
import { registerSimMethods } from '../../sim/control-methods.js';
import { SimWorld, simulatedSiteSecrets } from '../../sim/world.js';
import type { SimulationFactory } from '../app/daemon.js';

/**
 * The simulated site a daemon hosts when `simulation.enabled` is set: seeded simulated locks on
 * the in-memory radio, with their physical acts on the control socket. The entry points that may
 * run a simulation import this lazily (src/cli/main.ts) or directly (the demo, the benches); the
 * daemon itself never does.
 */
export const simulatedSite: SimulationFactory<SimWorld> = (config, clock, random) => {
  const s = config.simulation;
  const world = new SimWorld({
    clock,
    random,
    seed: s.seed,
    locks: s.locks,
    dir: join(config.dataDir, 'sim'),
    // The site id only: the locks get the PIN key from the hub, over the sealed link.
    site: { siteId: simulatedSiteSecrets(s.seed).siteId },
    flashDurable: s.flashDurable,
    faults: {
      lossRate: s.lossRate,
      duplicateRate: s.duplicateRate,
      reorderRate: s.reorderRate,
      latencyMs: s.latencyMs,
    },
  });
  return {
    world,
    locks: world.locks.length,
    bearer: world.bearer(),
    component: world,
    registerMethods: (control) => registerSimMethods(control, world),
  };
};

/** For `startDaemon({ simulation })`. */
export const loadSimulatedSite = async (): Promise<SimulationFactory<SimWorld>> => simulatedSite;
