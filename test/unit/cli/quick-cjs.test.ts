import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, distFile, QUICK_CJS, requireBuild } from '../../helpers/daemon.js';
import { fakeControlSocket } from '../../helpers/fake-control.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * `iqhub` starts dist/src/cli/main.cjs: the quick path as CommonJS, made from the same sources by
 * packaging/quick-cli.mjs after tsc (docs/operations.md, "A light command line"). What a user types
 * must get the same answer from it as from the ES module entry (dist/src/cli/main.js), a quick call
 * must load nothing through the ESM loader, and the build must fail rather than make an entry node
 * refuses.
 */

requireBuild();

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const BUILDER = join(ROOT, 'packaging', 'quick-cli.mjs');
const ESM_CLI = distFile('src/cli/main.js');
const RECORDER = fileURLToPath(new URL('../../fixtures/record-modules.mjs', import.meta.url));

/** A control socket that answers `status` as a daemon would, and any other method as an unknown one. */
const STATUS = {
  version: '0.1.0',
  pid: 4242,
  startedAt: '2026-12-07T22:10:05.070Z',
  uptimeSec: 487,
  configSource: '/etc/iq-hub/config.yaml',
  dataDir: '/var/lib/iq-hub',
  storageKey: { origin: 'key-file', path: '/var/lib/iq-hub/storage-key', fingerprint: '0a81bd3ccb9a9ad3' },
  store: { ok: true, schemaVersion: 10, walPages: 80, diskFull: null, path: '/var/lib/iq-hub/hub.db' },
  components: [
    { name: 'disk', state: 'running', detail: 'room at /var/lib/iq-hub' },
    { name: 'zigbee', state: 'starting', detail: 'the coordinator answers' },
  ],
};

const fakeDaemon = () =>
  fakeControlSocket((c, line) => {
    const { id, method } = JSON.parse(line) as { id: number; method: string };
    const reply =
      method === 'status'
        ? { id, ok: true, result: STATUS }
        : { id, ok: false, error: { code: 'control.unknown-method', message: `unknown method ${method}` } };
    c.end(`${JSON.stringify(reply)}\n`);
  });

/** One call, to completion (async: the fake daemon answers from this process). */
function call(script: string, args: string[], nodeArgs: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
      env: { ...process.env, NODE_OPTIONS: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the CommonJS entry answers as the ES module entry does', () => {
  beforeAll(() => {
    expect(CLI.endsWith('/dist/src/cli/main.cjs')).toBe(true);
  });

  it('for the quick calls, their failures, and the calls commander reads', async () => {
    const socket = await fakeDaemon();
    const missing = join(tempDir(), 'none.sock');
    const lines = [
      ['status', '--socket', socket],
      ['status', '--socket', socket, '--json'],
      ['status', '--check', '--socket', socket],
      ['locks', '--socket', socket],
      ['open', 'L1', '--duration', '3', '--socket', socket, '--json'],
      ['status', '--socket', missing],
      ['status', '--socket', missing, '--json'],
      ['status', '--socket', ''],
      ['open', 'not a lock id', '--socket', socket],
      ['status', '--bogus'],
      ['--version'],
      ['no-such-command'],
    ];
    for (const args of lines) {
      const [cjs, esm] = [await call(CLI, args), await call(ESM_CLI, args)];
      expect(cjs, args.join(' ')).toEqual(esm);
    }
    // Not vacuous: the calls answered, failed as they should, and reached the fake daemon.
    const ok = await call(CLI, ['status', '--socket', socket]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('pid          4242');
    const down = await call(CLI, ['status', '--socket', missing]);
    expect(down.code).toBe(3);
    expect(down.stderr).toContain('not running');
  });

  it('a quick call loads only CommonJS files of iq-hub (no ES module of its own)', async () => {
    const socket = await fakeDaemon();
    const log = join(tempDir(), 'modules.txt');
    writeFileSync(log, '');
    const r = await call(CLI, ['status', '--socket', socket], ['--import', RECORDER], { IQHUB_MODULE_LOG: log });
    expect(r.code, r.stderr).toBe(0);
    const ours = readFileSync(log, 'utf8')
      .split('\n')
      .filter((u) => u.includes('/dist/'));
    expect(ours.some((u) => u.endsWith('/dist/src/control-socket/socket-client.cjs'))).toBe(true);
    expect(ours.filter((u) => !u.endsWith('.cjs'))).toEqual([]);
  });
});

describe('a call that never settles (what a top-level await caught)', () => {
  it('does not end as a success: exit 13, as node gives an unsettled top-level await, and says so', async () => {
    // A fault injected before the entry runs: a connection that never answers nor closes, and
    // timers that do not keep node running, so the call's promise is left pending with nothing to
    // wait for — the shape of a bug in a command.
    const preload = join(tempDir(), 'stall.cjs');
    writeFileSync(
      preload,
      [
        "const net = require('node:net');",
        "const { EventEmitter } = require('node:events');",
        'net.createConnection = () => Object.assign(new EventEmitter(), { setEncoding() {}, write() {}, destroy() {} });',
        'const setTimer = globalThis.setTimeout;',
        'globalThis.setTimeout = (...a) => setTimer(...a).unref();',
        '',
      ].join('\n'),
    );
    const r = await call(CLI, ['status', '--socket', '/nonexistent/control.sock'], ['--require', preload]);
    expect(r.code).toBe(13);
    expect(r.stderr).toContain('iqhub: internal error: the command ended before it finished');
    expect(r.stdout).toBe('');
  });
});

describe('dist/ holds what the build makes of the sources today', () => {
  it('every CommonJS file is the builder’s output for the current sources (else: npm run build)', () => {
    const out = tempDir();
    const r = spawnSync(process.execPath, [BUILDER, out, ROOT], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const made = (dir: string): string[] =>
      readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.cjs'));
    const files = made(out).sort();
    // The list the tests' build check (requireBuild) walks.
    expect(files).toEqual([...QUICK_CJS].sort());
    // The quick path only: not the daemon, the config loader, the program or the errors' hints.
    expect(files.filter((f) => /app\/|store\/|config\/load|program|base\/errors/.test(f))).toEqual([]);
    for (const f of files) {
      expect(readFileSync(distFile(f), 'utf8'), `dist/${f} is stale: run npm run build`).toBe(
        readFileSync(join(out, f), 'utf8'),
      );
    }
    expect(statSync(join(out, 'src/cli/main.cjs')).mode & 0o111).not.toBe(0);
  });
});

describe('the builder (packaging/quick-cli.mjs)', () => {
  /** A source tree with src/cli/main.ts and socket-commands.ts as given (plus other files). */
  function tree(files: Record<string, string>): { root: string; dist: string } {
    const root = tempDir();
    const all = { 'src/cli/socket-commands.ts': 'export const QUICK = 1;\n', ...files };
    for (const [f, text] of Object.entries(all)) {
      mkdirSync(dirname(join(root, f)), { recursive: true });
      writeFileSync(join(root, f), text);
    }
    return { root, dist: join(root, 'dist') };
  }
  const build = (t: { root: string; dist: string }) =>
    spawnSync(process.execPath, [BUILDER, t.dist, t.root], { encoding: 'utf8' });

  it('requires quick modules as .cjs, and leaves every other dynamic import to the ESM loader', () => {
    const t = tree({
      'src/cli/main.ts': [
        "import { x } from './quick.js';",
        'export async function go() {',
        "  const a = await import('./socket-commands.js');",
        "  const b = await import('../app/daemon.js');",
        '  return [x, a, b];',
        '}',
        '',
      ].join('\n'),
      'src/cli/quick.ts': 'export const x = 1;\n',
    });
    const r = build(t);
    expect(r.status, r.stderr).toBe(0);
    const main = readFileSync(join(t.dist, 'src/cli/main.cjs'), 'utf8');
    expect(main).toContain('require("./quick.cjs")');
    expect(main).toContain('require("./socket-commands.cjs")');
    expect(main).toContain("import('../app/daemon.js')");
    expect(main).not.toMatch(/require\("\.\/quick\.js"\)|require\("\.\.\/app/);
    expect(
      readdirSync(t.dist, { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.cjs'))
        .map((f) => relative('.', f))
        .sort(),
    ).toEqual(['src/cli/main.cjs', 'src/cli/quick.cjs', 'src/cli/socket-commands.cjs']);
  });

  it.each([
    ['import.meta', 'export const here = import.meta.url;\n', /src\/cli\/main\.ts: not a valid CommonJS module/],
    [
      'a top-level await',
      "await import('../app/daemon.js');\nexport {};\n",
      /src\/cli\/main\.ts: not a valid CommonJS module/,
    ],
    [
      'a static import of a missing source',
      "import { y } from './gone.js';\nexport const z = y;\n",
      /src\/cli\/gone\.ts: no such source file/,
    ],
    ['a syntax error', 'export const = ;\n', /src\/cli\/main\.ts: /],
  ])('fails on %s, naming the file, and writes no entry', (_, main, message) => {
    const t = tree({ 'src/cli/main.ts': main });
    const r = build(t);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(() => statSync(join(t.dist, 'src/cli/main.cjs'))).toThrow(/ENOENT/);
  });
});
