import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SimWorld } from '../../sim/world.js';
import { type RunningDaemon, startDaemon } from '../app/daemon.js';
import { describeError } from '../base/errors.js';
import { systemRandom } from '../base/random.js';
import type { HubConfig } from '../config/schema.js';
import { runSteps } from './scenario.js';
import { siteAfterRestartSteps, siteSteps } from './site-steps.js';
import { afterRestartSteps, smokeSteps } from './smoke.js';

export interface DemoOptions {
  scenario: 'smoke';
  exit: boolean;
  dataDir?: string | undefined;
  pretty: boolean;
  locks?: number;
}

/**
 * `iqhub demo` (`npm start`): the daemon in a temporary data directory hosting a simulated site
 * (locks on an in-memory radio), a scripted scenario through the control socket, a restart, and
 * then — unless --exit — the daemon keeps running until Ctrl-C.
 */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const base = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'iq-hub-demo-'));
  const overrides: Partial<HubConfig> = {
    dataDir: join(base, 'data'),
    runDir: join(base, 'run'),
    simulation: { enabled: true, locks: opts.locks ?? 3 } as HubConfig['simulation'],
  };
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const marker = Buffer.from(systemRandom.bytes(8)).toString('hex');
  out(`iq-hub demo: data in ${base}`);

  let world: SimWorld | undefined;
  const start = (handleSignals: boolean): Promise<RunningDaemon> =>
    startDaemon({
      configPath: null,
      overrides,
      logPretty: opts.pretty,
      handleSignals,
      onBuilt: (_hub, w) => {
        world = w;
      },
    });

  try {
    const first = await start(false);
    if (!world) throw new Error('the simulated site was not built');
    out(`\nscenario ${opts.scenario}, part 1: a fresh daemon and a simulated site of ${world.locks.length} locks`);
    const r1 = await runSteps([...smokeSteps(first.hub, marker), ...siteSteps(first.hub, world)], out);
    await first.shutdown('demo: restart');

    const second = await start(!opts.exit);
    out(`\nscenario ${opts.scenario}, part 2: the same data directory after a restart`);
    const r2 = await runSteps(
      [...afterRestartSteps(second.hub, marker), ...siteAfterRestartSteps(second.hub, world)],
      out,
    );
    const passed = r1.passed + r2.passed;
    const failed = r1.failed + r2.failed;
    out(`\nscenario ${opts.scenario}: ${passed} passed, ${failed} failed`);

    if (opts.exit) {
      const code = await second.shutdown('demo finished');
      return failed === 0 && code === 0 ? 0 : 1;
    }
    const cli = `node dist/src/cli/main.js`;
    out('\nthe daemon keeps running with its simulated locks. In another terminal:');
    out(`  ${cli} status --socket ${second.hub.control.path}`);
    out(`  ${cli} locks  --socket ${second.hub.control.path}`);
    out(`  ${cli} open SIM-0002 --socket ${second.hub.control.path}`);
    out('press Ctrl-C to stop it.\n');
    const code = await second.done;
    return failed === 0 ? code : 1;
  } catch (e) {
    out(`iq-hub demo failed: ${describeError(e)}`);
    return 1;
  }
}
