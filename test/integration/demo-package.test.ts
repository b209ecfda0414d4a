import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevPki, issueClientCert } from '../../provisioning/dev-pki.js';
import { requireBuild, runCli, start } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

/**
 * The demo and the simulation are the package iq-hub-demo, not part of iq-hub (issue 18;
 * packaging/build-deb.sh): a tree laid out as the production package installs it (dist/ without
 * sim/ and src/demo/, node_modules without aedes) answers `iqhub demo` and `simulation.enabled`
 * with the package to install. And `iqhub demo --broker` plays the whole scenario against a real
 * mosquitto (what the VM boot test does from inside the hub image, against the host's broker).
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** A copy of dist/ as a package installs it: `withDemo` adds sim/ and src/demo/; aedes is never there. */
function installedTree(withDemo: boolean): string {
  const lib = join(mkdtempSync(join(tmpdir(), 'iqhub-pkg-')), 'lib');
  trees.push(dirname(lib));
  for (const d of ['src', 'hal', 'drivers', 'provisioning', ...(withDemo ? ['sim'] : [])]) {
    cpSync(join(REPO, 'dist', d), join(lib, 'dist', d), {
      recursive: true,
      filter: (src) => withDemo || !src.startsWith(join(REPO, 'dist/src/demo')),
    });
  }
  copyFileSync(join(REPO, 'package.json'), join(lib, 'package.json'));
  // Every production dependency, by symlink; aedes (the demo's broker, a devDependency) left out.
  const nm = join(lib, 'node_modules');
  mkdirSync(nm);
  for (const e of readdirSync(join(REPO, 'node_modules'))) {
    if (e === 'aedes' || e.startsWith('.')) continue;
    symlinkSync(join(REPO, 'node_modules', e), join(nm, e));
  }
  return lib;
}

const trees: string[] = [];
let production = '';
let demoWithoutAedes = '';

beforeAll(() => {
  production = installedTree(false);
  demoWithoutAedes = installedTree(true);
});

afterAll(() => {
  for (const t of trees) rmSync(t, { recursive: true, force: true });
});

const cli = (lib: string) => join(lib, 'dist/src/cli/main.cjs');

/** `iqhub <args>` of the tree at `lib`, to completion. */
async function runIn(lib: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = start(args, {}, cli(lib));
  p.child.stdin?.end();
  const { code } = await p.exit;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

describe('a hub without the package iq-hub-demo', () => {
  it('`iqhub demo` says which package to install, in words, not as a module resolution error', async () => {
    const r = await runIn(production, ['demo', '--exit']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('iqhub demo needs the package iq-hub-demo, which is not installed here');
    expect(r.stderr).toMatch(/→ install the package iq-hub-demo/);
    expect(r.stderr).not.toMatch(/Cannot find module|ERR_MODULE_NOT_FOUND/);
  });

  it('with the demo but without aedes (a partial install), the same answer', async () => {
    const r = await runIn(demoWithoutAedes, ['demo', '--exit']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('iqhub demo needs the package iq-hub-demo, which is not installed here');
  });

  it('a config with simulation.enabled: exit 78 (not restarted by systemd), naming the package', async () => {
    const base = tempDir();
    const config = join(base, 'config.yaml');
    writeFileSync(
      config,
      [
        `dataDir: ${join(base, 'data')}`,
        `runDir: ${join(base, 'run')}`,
        'simulation:',
        '  enabled: true',
        '  locks: 1',
        '',
      ].join('\n'),
    );
    const p = start(['run', '--config', config], {}, cli(production));
    p.child.stdin?.end();
    const { code } = await p.exit;
    expect(code, p.stdout() + p.stderr()).toBe(78);
    expect(p.stdout() + p.stderr()).toContain('the simulation is not installed on this hub');
    expect(p.stdout() + p.stderr()).toContain('iq-hub-demo');
  });

  it('the production tree still runs everything else (iqhub --version, completion)', async () => {
    const v = await runIn(production, ['--version']);
    expect(v.code, v.stderr).toBe(0);
    const c = await runIn(production, ['completion', 'bash']);
    expect(c.code, c.stderr).toBe(0);
  });
});

const mosquittoBin = requireMosquitto();

describe.skipIf(!mosquittoBin)(
  `iqhub demo --broker: the whole scenario against mosquitto ${mosquittoBin ? '' : `(${MOSQUITTO_MISSING})`}`,
  () => {
    let broker: Mosquitto | undefined;
    let demoPki = '';
    let pkiDir = '';
    let base = '';

    beforeAll(async () => {
      base = mkdtempSync(join(tmpdir(), 'iqhub-demo-broker-'));
      pkiDir = join(base, 'pki');
      // The broker's PKI, with identities of its own for the demo's hub and cloud.
      createDevPki({ dir: pkiDir, hubId: 'hub-other' });
      issueClientCert({ dir: pkiDir, cn: 'demo-hub-m', fileName: 'demo-hub' });
      issueClientCert({ dir: pkiDir, cn: 'demo-cloud', fileName: 'demo-cloud' });
      demoPki = join(base, 'demo-pki');
      mkdirSync(demoPki);
      for (const [from, to] of [
        ['ca.crt', 'ca.crt'],
        ['demo-hub.crt', 'hub.crt'],
        ['demo-hub.key', 'hub.key'],
        ['demo-cloud.crt', 'cloud.crt'],
        ['demo-cloud.key', 'cloud.key'],
      ] as const) {
        copyFileSync(join(pkiDir, from), join(demoPki, to));
      }
      broker = await startMosquitto({ pkiDir, cloudIds: ['cloud', 'demo-cloud'] });
    }, 60_000);

    afterAll(async () => {
      await broker?.close();
      rmSync(base, { recursive: true, force: true });
    });

    it('--broker without --broker-pki is refused before anything starts', async () => {
      const r = await runCli(['demo', '--exit', '--broker', 'mqtts://127.0.0.1:1']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('iqhub demo: --broker and --broker-pki go together');
      expect(r.stdout).not.toContain('iq-hub demo: data in');
    });

    it('passes every step, the hub cut from the broker and back through the relay', async () => {
      const r = await runCli(['demo', '--exit', '--broker', broker?.url ?? '', '--broker-pki', demoPki]);
      expect(r.code, `${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`).toBe(0);
      expect(r.stdout).toMatch(/^external MQTT broker mqtts:\/\/127\.0\.0\.1:\d+ \(the hub through a relay/m);
      expect(r.stdout).toContain('hub id demo-hub-m, cloud id demo-cloud');
      expect(r.stdout).toMatch(/^scenario smoke: \d+ passed, 0 failed$/m);
    }, 360_000);
  },
);
