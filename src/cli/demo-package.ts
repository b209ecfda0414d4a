import { HubError } from '../base/errors.js';

/**
 * The demo, the simulated site and the demo's embedded broker (aedes) are not part of the
 * production package `iq-hub`: they ship in `iq-hub-demo` (packaging/build-deb.sh,
 * docs/installing.md). On a hub without it, `iqhub demo` and a config with `simulation.enabled`
 * say what to install instead of a module resolution error.
 */
export const DEMO_PACKAGE = 'iq-hub-demo';

/** What the demo package adds: its compiled trees (dist/sim, dist/src/demo) and its only npm dependency. */
const DEMO_PARTS = /\/sim\/|\/src\/demo\/|'aedes'/;

/**
 * True when `e` says that a module of the demo package could not be found: Node's message names the
 * missing module, then "imported from" the file that wanted it (only the first part counts).
 */
export function isDemoPartMissing(e: unknown): boolean {
  const err = e as NodeJS.ErrnoException | undefined;
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') return false;
  return DEMO_PARTS.test(String(err.message).split(' imported from ')[0] ?? '');
}

/**
 * `load()` (a dynamic import of the demo or the simulated site), or, when a part of the demo
 * package is missing, the error that names the package to install. Any other failure is thrown
 * as it is.
 */
export async function loadDemoPart<T>(what: 'demo' | 'simulation', load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if (!isDemoPartMissing(e)) throw e;
    const hint = `install the package ${DEMO_PACKAGE} of the same version as iq-hub (apt-get install ./${DEMO_PACKAGE}_<version>_<arch>.deb, built beside iq-hub by npm run package)`;
    if (what === 'simulation') {
      throw new HubError(
        'config.simulation',
        `simulation.enabled is set, but the simulation is not installed on this hub (it ships in the package ${DEMO_PACKAGE}, not in iq-hub)`,
        { hint: `${hint}; on a hub with real locks, set simulation.enabled to false`, cause: e },
      );
    }
    throw new HubError(
      'demo.not-installed',
      `iqhub demo needs the package ${DEMO_PACKAGE}, which is not installed here (the demo, the simulated site and the demo's broker are not part of iq-hub)`,
      { hint, cause: e },
    );
  }
}
