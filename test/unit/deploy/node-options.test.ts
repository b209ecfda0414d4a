import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { launcherNodeArgs, unitEnvironment, unitNodeOptions } from '../../../bench/memory.bench.js';
import { tempDir } from '../../helpers/tmp.js';

const UNIT = new URL('../../../systemd/iq-hub.service', import.meta.url);
const LAUNCHER = fileURLToPath(new URL('../../../packaging/iqhub.sh', import.meta.url));
const unitText = readFileSync(UNIT, 'utf8');

/**
 * The daemon's node flags live in one place, the unit: `Environment="NODE_OPTIONS=…"` for the
 * flags node takes there, `Environment="IQHUB_NODE_ARGS=…"` for those it refuses there, which the
 * launcher (packaging/iqhub.sh, /usr/bin/iqhub) puts on node's command line. The memory bench
 * reads both from the unit. A flag node refuses would stop the daemon from starting at all.
 */
describe("the unit's NODE_OPTIONS", () => {
  const options = unitNodeOptions(unitText);

  it('are the young-generation and old-generation limits, read as the bench reads them', () => {
    expect(options).toBe('--max-semi-space-size=1 --max-old-space-size=384');
  });

  it('are accepted by node in NODE_OPTIONS, and take effect', () => {
    const r = spawnSync(
      process.execPath,
      ['-e', 'const v8 = require("node:v8"); process.stdout.write(String(v8.getHeapStatistics().heap_size_limit))'],
      { env: { ...process.env, NODE_OPTIONS: options }, encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    // heap_size_limit = old generation + young generation: well under the default of several GB.
    expect(Number(r.stdout)).toBeLessThan(400 * 1024 * 1024);
    expect(Number(r.stdout)).toBeGreaterThanOrEqual(384 * 1024 * 1024);
  });

  it('parses the unquoted and the quoted forms, and none', () => {
    expect(unitNodeOptions('[Service]\nEnvironment=NODE_OPTIONS=--a\n')).toBe('--a');
    expect(unitNodeOptions('[Service]\nEnvironment="NODE_OPTIONS=--a --b"\n')).toBe('--a --b');
    expect(unitNodeOptions('[Service]\nEnvironment=OTHER=1\n')).toBe('');
    expect(unitEnvironment('Environment="NODE_OPTIONS=--a --b" MALLOC_ARENA_MAX=2\nEnvironment=X=y\n')).toEqual({
      NODE_OPTIONS: '--a --b',
      MALLOC_ARENA_MAX: '2',
      X: 'y',
    });
  });
});

describe("the unit's IQHUB_NODE_ARGS, on node's command line through the launcher", () => {
  const env = unitEnvironment(unitText);
  const args = launcherNodeArgs(env);

  /** The launcher with its /usr/lib/iq-hub/ paths moved to a temporary tree whose main.js prints what node got. */
  function stagedLauncher(): string {
    const root = tempDir();
    mkdirSync(join(root, 'node', 'bin'), { recursive: true });
    symlinkSync(process.execPath, join(root, 'node', 'bin', 'node'));
    mkdirSync(join(root, 'dist', 'src', 'cli'), { recursive: true });
    writeFileSync(
      join(root, 'dist', 'src', 'cli', 'main.js'),
      'process.stdout.write(JSON.stringify({ execArgv: process.execArgv, argv: process.argv.slice(2) }));\n',
    );
    const launcher = join(root, 'iqhub');
    writeFileSync(launcher, readFileSync(LAUNCHER, 'utf8').replaceAll('/usr/lib/iq-hub/', `${root}/`));
    chmodSync(launcher, 0o755);
    return launcher;
  }
  const launch = (launcher: string, argv: string[], extra: Record<string, string | undefined>) =>
    spawnSync(launcher, argv, { env: { ...process.env, NODE_OPTIONS: '', ...extra }, encoding: 'utf8' });

  it('are the memory flags NODE_OPTIONS refuses (docs/operations.md, "Memory")', () => {
    expect(args).toEqual(['--optimize-for-size', '--v8-pool-size=1', '--no-opt']);
    // Each is refused in NODE_OPTIONS: that is why they are not there.
    for (const a of args.filter((x) => x !== '--v8-pool-size=1')) {
      const r = spawnSync(process.execPath, ['-e', '0'], {
        env: { ...process.env, NODE_OPTIONS: a },
        encoding: 'utf8',
      });
      expect(r.status, a).not.toBe(0);
      expect(r.stderr).toMatch(/not allowed in NODE_OPTIONS/);
    }
  });

  it('are accepted by node on its command line, as the launcher passes them, with the arguments intact', () => {
    const launcher = stagedLauncher();
    const argv = ['run', '--config', '/etc/iq-hub/a b.yaml', '*', '$HOME'];
    const r = launch(launcher, argv, { IQHUB_NODE_ARGS: env.IQHUB_NODE_ARGS });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as { execArgv: string[]; argv: string[] };
    expect(got.execArgv).toEqual(args);
    expect(got.argv).toEqual(argv);
  });

  it('are absent from a shell, so a CLI call runs on node alone', () => {
    const r = launch(stagedLauncher(), ['status'], { IQHUB_NODE_ARGS: undefined });
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { execArgv: string[] }).execArgv).toEqual([]);
  });

  it('refuse anything but a --flag (a script path, a glob) with exit 78, running nothing', () => {
    const launcher = stagedLauncher();
    for (const bad of ['/tmp/evil.js', '--optimize-for-size *', '-e']) {
      const r = launch(launcher, ['run'], { IQHUB_NODE_ARGS: bad });
      expect(r.status, bad).toBe(78);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/IQHUB_NODE_ARGS: '.+' is not a node --flag/);
    }
  });

  it('are never globbed: a flag with a * reaches node as written, even where a file matches it', () => {
    const launcher = stagedLauncher();
    const cwd = tempDir();
    writeFileSync(join(cwd, '--title=abc'), '');
    const r = spawnSync(launcher, ['status'], {
      cwd,
      env: { ...process.env, NODE_OPTIONS: '', IQHUB_NODE_ARGS: '--title=a*' },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { execArgv: string[] }).execArgv).toEqual(['--title=a*']);
  });

  it('are split as the bench splits them', () => {
    expect(launcherNodeArgs({ IQHUB_NODE_ARGS: ' --a  --b=1\t--c ' })).toEqual(['--a', '--b=1', '--c']);
    expect(launcherNodeArgs({})).toEqual([]);
  });
});

describe('a daemon started without the launcher', () => {
  const CLI = fileURLToPath(new URL('../../../dist/src/cli/main.js', import.meta.url));
  const run = (nodeArgs: string[]) =>
    spawnSync(process.execPath, [...nodeArgs, CLI, 'run', '--config', join(tempDir(), 'missing.yaml')], {
      env: { ...process.env, NODE_OPTIONS: '', IQHUB_NODE_ARGS: '--optimize-for-size --v8-pool-size=1' },
      encoding: 'utf8',
      timeout: 60_000,
    });

  it.skipIf(!existsSync(CLI))('says on stderr that the unit’s IQHUB_NODE_ARGS did not reach node, and which', () => {
    const bare = run([]);
    expect(bare.stderr).toMatch(
      /IQHUB_NODE_ARGS --optimize-for-size --v8-pool-size=1 did not reach node's command line; start iqhub through its launcher/,
    );
    const launched = run(['--optimize-for-size', '--v8-pool-size=1']);
    expect(launched.stderr).not.toMatch(/IQHUB_NODE_ARGS/);
    // The run goes on either way (here it stops at the missing config, as it would without them).
    expect(bare.status).toBe(launched.status);
  });
});
