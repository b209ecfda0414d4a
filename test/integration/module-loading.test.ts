import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createDevPki } from '../../provisioning/dev-pki.js';
import { DEFAULT_CONFIG_PATH } from '../../src/config/paths.js';
import { writeSiteConfig } from '../helpers/cloud-site.js';
import { CLI, requireBuild, start } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

const RECORDER = fileURLToPath(new URL('../fixtures/record-modules.mjs', import.meta.url));

/** Runs `iqhub <args>` with every loaded module recorded; `until` ends it (a daemon: once ready). */
async function modulesOf(args: string[], o: { daemon: boolean }): Promise<string[]> {
  const log = join(tempDir(), 'modules.txt');
  writeFileSync(log, '');
  const saved = process.env.IQHUB_DAEMON_NODE_ARGS;
  process.env.IQHUB_DAEMON_NODE_ARGS = `--import ${RECORDER}`;
  let p: ReturnType<typeof start>;
  try {
    p = start(args, { IQHUB_MODULE_LOG: log }, CLI);
  } finally {
    if (saved === undefined) delete process.env.IQHUB_DAEMON_NODE_ARGS;
    else process.env.IQHUB_DAEMON_NODE_ARGS = saved;
  }
  p.child.stdin?.end();
  if (o.daemon) {
    await p.waitForOutput('iq-hub ready', 60_000);
    p.child.kill('SIGTERM');
  }
  const { code } = await p.exit;
  if (o.daemon) expect(code, p.stderr()).toBe(0);
  return readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

const simulation = (urls: string[]) =>
  urls.filter((u) => /\/dist\/sim\/|\/dist\/src\/demo\/|node_modules\/aedes\/|node_modules\/@hpke\//.test(u));

/** What a call to the daemon must not load: the daemon, the store, the radios, Ajv, yaml, node-forge, MQTT. */
const heavy = (urls: string[]) =>
  urls.filter((u) =>
    /\/node_modules\/(better-sqlite3|ajv|node-forge|zigbee-herdsman|@stoprocent\/noble|yaml|mqtt)\/|\/dist\/src\/(store|app|config\/load)|\/dist\/provisioning\//.test(
      u,
    ),
  );

/** The client-only command line: commander, the program with its help texts, completion, the man page, formatting. */
const clientOnly = (urls: string[]) =>
  urls.filter((u) =>
    /\/node_modules\/commander\/|\/dist\/src\/cli\/(program|demo-command|completion|man-page|format|socket-commands)\.c?js$/.test(
      u,
    ),
  );

/**
 * Every command that only talks to the daemon, as a technician types it (a lock id where one is
 * needed). `diag` is not here: without a daemon it runs the local checks, which read the config.
 */
const SOCKET_CALLS = [
  ['status'],
  ['status', '--check'],
  ['locks'],
  ['offline'],
  ['lock', 'L1'],
  ['lock', 'L1', '--check'],
  ['attach', '--device-id', 'D1', '--setup-code', 'C0DE-C0DE'],
  ['detach', 'L1'],
  ['forget', 'L1', '--force'],
  ['open', 'L1', '--duration', '3'],
  ['backup'],
  ['backup', '--list'],
  ['restore'],
  ['hub-backup'],
  ['events', 'L1', '--limit', '5'],
  ['commands'],
  ['security'],
  ['firmware', 'status'],
];

describe('what a start loads', () => {
  it('a production start (uplink on, no simulation) loads no simulated code, no aedes and no @hpke', async () => {
    const base = tempDir();
    const pki = createDevPki({
      dir: join(base, 'pki'),
      hubId: 'hub-load-1',
      cloudId: 'cloud',
      brokerHost: 'localhost',
    });
    // Nothing listens at port 9: the uplink keeps trying while the daemon runs.
    const config = writeSiteConfig({ base, brokerUrl: 'mqtts://127.0.0.1:9', pki, locks: 0 });
    const urls = await modulesOf(['run', '--config', config], { daemon: true });
    // The recorder saw the daemon's own graph (so an empty list proves nothing is missing from it).
    expect(urls.some((u) => u.endsWith('/dist/src/app/hub.js'))).toBe(true);
    expect(urls.some((u) => u.endsWith('/dist/src/uplink/service.js'))).toBe(true);
    expect(simulation(urls)).toEqual([]);
    // No JSON Schema is compiled at run time: the validators were generated at build time and need
    // only Ajv's small runtime helpers, never its compiler (test/helpers/generate-validators.ts).
    expect(urls.some((u) => u.endsWith('/dist/src/contract/mqtt-validators.generated.js'))).toBe(true);
    expect(urls.filter((u) => /\/node_modules\/ajv\/(?!dist\/runtime\/)/.test(u))).toEqual([]);
    expect(urls.filter((u) => /\/node_modules\/(fast-uri|json-schema-traverse)\//.test(u))).toEqual([]);
    // Metrics are off by default: neither prom-client nor the exporter is loaded.
    expect(urls.filter((u) => /\/node_modules\/prom-client\/|\/dist\/src\/metrics\/exporter\.js$/.test(u))).toEqual([]);
    // `run` is read without commander (src/cli/main.ts): the daemon's process holds nothing of the
    // client-only command line, neither before the daemon starts nor after.
    expect(urls.some((u) => u.endsWith('/dist/src/cli/run-command.js'))).toBe(true);
    expect(clientOnly(urls)).toEqual([]);
  }, 120_000);

  it('a start with metrics.listen set loads prom-client (the recorder sees it when it happens)', async () => {
    const base = tempDir();
    const config = join(base, 'config.yaml');
    writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\nmetrics:\n  listen: ${base}/run/metrics.sock\n`);
    const urls = await modulesOf(['run', '--config', config], { daemon: true });
    expect(urls.some((u) => u.endsWith('/dist/src/metrics/exporter.js'))).toBe(true);
    expect(urls.some((u) => u.includes('/node_modules/prom-client/'))).toBe(true);
  }, 120_000);

  it('a start with simulation.enabled loads the simulated site (the recorder sees it when it happens)', async () => {
    const base = tempDir();
    const config = join(base, 'config.yaml');
    writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\nsimulation:\n  enabled: true\n  locks: 1\n`);
    const urls = await modulesOf(['run', '--config', config], { daemon: true });
    expect(urls.some((u) => u.endsWith('/dist/sim/world.js'))).toBe(true);
    expect(urls.some((u) => u.endsWith('/dist/src/demo/simulated-site.js'))).toBe(true);
  }, 120_000);

  it('a CLI call that talks to the daemon does not load the daemon', async () => {
    const base = tempDir();
    const urls = await modulesOf(['status', '--socket', join(base, 'none.sock')], { daemon: false });
    expect(urls.some((u) => u.endsWith('/dist/src/cli/main.cjs'))).toBe(true);
    expect(urls.filter((u) => /\/dist\/src\/app\/|\/dist\/sim\/|\/dist\/src\/demo\//.test(u))).toEqual([]);
  }, 60_000);

  it('`iqhub status` loads the control client and formatting: no store, no config loader, no provisioning, no radio', async () => {
    const base = tempDir();
    const urls = await modulesOf(['status', '--socket', join(base, 'none.sock')], { daemon: false });
    // The recorder saw the call's own graph, down to the control client.
    expect(urls.some((u) => u.endsWith('/dist/src/control-socket/socket-client.cjs'))).toBe(true);
    expect(urls.some((u) => u.endsWith('/dist/src/cli/format.cjs'))).toBe(true);
    expect(heavy(urls)).toEqual([]);
  }, 60_000);

  it('every call that only talks to the daemon loads the control client and formatting: no daemon, store, radio stack, Ajv, yaml, nor commander', async () => {
    const socket = join(tempDir(), 'none.sock');
    for (const args of SOCKET_CALLS) {
      for (const json of args[0] === 'status' ? [[], ['--json']] : [[]]) {
        const line = [...args, '--socket', socket, ...json];
        const urls = await modulesOf(line, { daemon: false });
        // The recorder saw the call reach the control client (the daemon is not running: exit 3).
        expect(
          urls.some((u) => u.endsWith('/dist/src/control-socket/socket-client.cjs')),
          line.join(' '),
        ).toBe(true);
        expect(heavy(urls), line.join(' ')).toEqual([]);
        expect(
          urls.filter((u) =>
            /\/dist\/src\/app\/|\/dist\/drivers\/|\/dist\/hal\/|\/dist\/sim\/|\/dist\/src\/demo\//.test(u),
          ),
          line.join(' '),
        ).toEqual([]);
        expect(
          urls.filter((u) =>
            /\/node_modules\/commander\/|\/dist\/src\/cli\/(program|completion|man-page)\.js$/.test(u),
          ),
          line.join(' '),
        ).toEqual([]);
      }
    }
  }, 300_000);

  it('a call commander must read (--help) still gets it, and its words', async () => {
    const urls = await modulesOf(['status', '--help'], { daemon: false });
    expect(urls.some((u) => u.endsWith('/dist/src/cli/program.js'))).toBe(true);
    expect(urls.some((u) => u.includes('/node_modules/commander/'))).toBe(true);
    expect(heavy(urls)).toEqual([]);
  }, 60_000);

  it('`iqhub status` with neither --socket nor --config reads no config loader when no config file is there', async () => {
    // The default path /etc/iq-hub/config.yaml is absent on the machines the tests run on; if it is
    // there, the loader must load (to validate it) and this test has nothing to show.
    if (existsSync(DEFAULT_CONFIG_PATH)) return;
    const urls = await modulesOf(['status'], { daemon: false });
    expect(urls.some((u) => u.endsWith('/dist/src/control-socket/socket-client.cjs'))).toBe(true);
    expect(heavy(urls)).toEqual([]);
  }, 60_000);

  it('`iqhub completion` and `iqhub man` (made from the program) load neither the daemon nor the simulation', async () => {
    for (const args of [['completion', 'bash'], ['man']]) {
      const urls = await modulesOf(args, { daemon: false });
      expect(urls.some((u) => u.endsWith('/dist/src/cli/main.cjs'))).toBe(true);
      expect(simulation(urls), args.join(' ')).toEqual([]);
      expect(heavy(urls), args.join(' ')).toEqual([]);
    }
  }, 60_000);

  it('`iqhub status --config FILE` loads the config loader, which validates the file', async () => {
    const base = tempDir();
    const config = join(base, 'config.yaml');
    writeFileSync(config, `runDir: ${base}/run\n`);
    const urls = await modulesOf(['status', '--config', config], { daemon: false });
    expect(urls.some((u) => u.endsWith('/dist/src/config/load.js'))).toBe(true);
    expect(urls.some((u) => u.includes('/node_modules/ajv/'))).toBe(true);
    // Reading a config needs the log levels, not the logger: pino stays out of a CLI call.
    expect(urls.filter((u) => /\/node_modules\/pino\/|\/dist\/src\/log\/logger\.js$/.test(u))).toEqual([]);
  }, 60_000);
});
