import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from '../app/daemon.js';
import { describeError } from '../base/errors.js';
import { systemRandom } from '../base/random.js';
import { runSteps } from './scenario.js';
import { afterRestartSteps, smokeSteps } from './smoke.js';

export interface DemoOptions {
  scenario: 'smoke';
  exit: boolean;
  dataDir?: string | undefined;
  pretty: boolean;
}

/**
 * `iqhub demo` (`npm start`): the daemon in a temporary data directory with simulated parts,
 * a scripted scenario, and then — unless --exit — the daemon keeps running until Ctrl-C.
 */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const base = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'iq-hub-demo-'));
  const overrides = { dataDir: join(base, 'data'), runDir: join(base, 'run') };
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const marker = Buffer.from(systemRandom.bytes(8)).toString('hex');
  out(`iq-hub demo: data in ${base}`);

  try {
    const first = await startDaemon({ configPath: null, overrides, logPretty: opts.pretty });
    out(`\nscenario ${opts.scenario}, part 1: a fresh daemon`);
    const r1 = await runSteps(smokeSteps(first.hub, marker), out);
    await first.shutdown('demo: restart');

    const second = await startDaemon({
      configPath: null,
      overrides,
      logPretty: opts.pretty,
      handleSignals: !opts.exit,
    });
    out(`\nscenario ${opts.scenario}, part 2: the same data directory after a restart`);
    const r2 = await runSteps(afterRestartSteps(second.hub, marker), out);
    const passed = r1.passed + r2.passed;
    const failed = r1.failed + r2.failed;
    out(`\nscenario ${opts.scenario}: ${passed} passed, ${failed} failed`);

    if (opts.exit) {
      const code = await second.shutdown('demo finished');
      return failed === 0 && code === 0 ? 0 : 1;
    }
    out(
      `\nthe daemon keeps running. In another terminal: node dist/src/cli/main.js status --socket ${second.hub.control.path}`,
    );
    out('press Ctrl-C to stop it.\n');
    const code = await second.done;
    return failed === 0 ? code : 1;
  } catch (e) {
    out(`iq-hub demo failed: ${describeError(e)}`);
    return 1;
  }
}
