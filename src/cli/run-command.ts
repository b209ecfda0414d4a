import { loadDemoPart } from './demo-package.js';
import { warnUnappliedNodeArgs } from './node-args.js';

/**
 * `iqhub run`: the daemon in the foreground. Reached from main.ts without commander (and from
 * program.ts for a command line only commander reads), so a daemon's process loads nothing of the
 * client-only command line: no commander, no help texts, no formatting.
 */
export async function runCommand(o: { config?: string; logPretty?: boolean }): Promise<void> {
  warnUnappliedNodeArgs();
  // The daemon's code loads only for `run`; the simulation only if the config enables it.
  const { runDaemon } = await import('../app/daemon.js');
  process.exitCode = await runDaemon({
    configPath: o.config,
    logPretty: o.logPretty,
    simulation: async () => (await loadDemoPart('simulation', () => import('../demo/simulated-site.js'))).simulatedSite,
  });
}
