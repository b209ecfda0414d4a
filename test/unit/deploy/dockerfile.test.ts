import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { launcherNodeArgs, unitEnvironment, unitNodeOptions } from '../../../bench/memory.bench.js';
import { findTool, run } from './tools.js';

/**
 * Dockerfile.arm64, checked without a Docker engine (none runs here): the essentials of issue 7
 * (multi-stage, linux/arm64, a pinned Debian-based Node image, native modules built in the image,
 * a non-root user with dialout, data in a volume, a HEALTHCHECK with `iqhub status --check`) and the
 * hadolint rules that matter for it. hadolint itself runs too where it is installed; it is in
 * neither Debian nor npm (the npm package "hadolint" only wraps a binary it does not ship).
 */

const ROOT = join(import.meta.dirname, '..', '..', '..');
const DOCKERFILE = join(ROOT, 'Dockerfile.arm64');
const unitText = readFileSync(join(ROOT, 'systemd', 'iq-hub.service'), 'utf8');

interface Instruction {
  cmd: string;
  args: string;
  line: number;
}

interface Stage {
  from: Instruction;
  image: string;
  name: string | undefined;
  flags: string[];
  body: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped (default escape `\`). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && !pending)) return;
    const joined = pending ? `${pending.text} ${line}` : line;
    const start = pending?.line ?? i + 1;
    if (joined.endsWith('\\')) {
      pending = { text: joined.slice(0, -1).trimEnd(), line: start };
      return;
    }
    pending = undefined;
    const m = /^(\S+)\s*(.*)$/s.exec(joined)!;
    out.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, ' ').trim(), line: start });
  });
  if (pending) throw new Error(`line ${pending.line}: continuation at end of file`);
  return out;
}

/** Split into stages, substituting the global ARG defaults (those before the first FROM) in FROM. */
function stages(instructions: Instruction[]): { globals: Map<string, string>; stages: Stage[] } {
  const globals = new Map<string, string>();
  const out: Stage[] = [];
  for (const ins of instructions) {
    if (ins.cmd === 'FROM') {
      const words = ins.args
        .replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => globals.get(a ?? b) ?? '')
        .split(' ')
        .filter(Boolean);
      const flags = words.filter((w) => w.startsWith('--'));
      const rest = words.filter((w) => !w.startsWith('--'));
      const asAt = rest.findIndex((w) => w.toUpperCase() === 'AS');
      out.push({ from: ins, image: rest[0]!, name: asAt > 0 ? rest[asAt + 1] : undefined, flags, body: [] });
    } else if (out.length === 0) {
      if (ins.cmd !== 'ARG') throw new Error(`line ${ins.line}: ${ins.cmd} before the first FROM`);
      const [k, v] = ins.args.split('=');
      globals.set(k!, v ?? '');
    } else {
      out.at(-1)!.body.push(ins);
    }
  }
  return { globals, stages: out };
}

const text = readFileSync(DOCKERFILE, 'utf8');
const instructions = parseDockerfile(text);
const parsed = stages(instructions);
const build = parsed.stages[0]!;
const runtime = parsed.stages.at(-1)!;
const runs = (stage: Stage) => stage.body.filter((i) => i.cmd === 'RUN').map((i) => i.args);
const execForm = (i: Instruction | undefined): string[] => JSON.parse(i!.args.replace(/^CMD /, '')) as string[];

describe('Dockerfile.arm64: structure', () => {
  it('is multi-stage: a build stage and a runtime stage', () => {
    expect(parsed.stages.length).toBeGreaterThanOrEqual(2);
    expect(build.name).toBe('build');
    expect(runtime.name).toBe('runtime');
  });

  it('builds and runs on linux/arm64 in every stage (native modules compiled for arm64)', () => {
    for (const s of parsed.stages) expect(s.flags, `line ${s.from.line}`).toContain('--platform=linux/arm64');
  });

  it('starts from a Debian-based Node 20 image pinned to a full version, the same in both stages', () => {
    for (const s of parsed.stages) {
      expect(s.image, `line ${s.from.line}`).toMatch(/^node:20\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/);
    }
    expect(new Set(parsed.stages.map((s) => s.image)).size).toBe(1);
    // Node as package.json requires it.
    const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } })
      .engines.node;
    const [, minor] = /^>=20\.(\d+)/.exec(engines)!;
    const [, imageMinor] = /^node:20\.(\d+)\./.exec(build.image)!;
    expect(Number(imageMinor)).toBeGreaterThanOrEqual(Number(minor));
  });

  it('has no instruction hadolint would flag as an error: no latest, no ADD, no sudo, absolute WORKDIR', () => {
    for (const i of instructions) {
      expect(i.cmd, `line ${i.line}`).not.toBe('ADD');
      expect(i.cmd, `line ${i.line}: MAINTAINER is deprecated`).not.toBe('MAINTAINER');
      if (i.cmd === 'WORKDIR') expect(i.args, `line ${i.line}`).toMatch(/^\//);
      if (i.cmd === 'RUN') {
        expect(i.args, `line ${i.line}`).not.toMatch(/\bsudo\b|\bcd\s|chmod\s+(-R\s+)?777/);
        expect(i.args, `line ${i.line}: piping needs SHELL -o pipefail`).not.toMatch(/[^|]\|[^|]/);
      }
    }
    for (const s of parsed.stages) expect(s.image).not.toMatch(/:latest$|^[^:]+$/);
  });
});

describe('Dockerfile.arm64: build stage', () => {
  const all = runs(build).join(' && ');

  it('installs the toolchain for better-sqlite3 and unix-dgram, without recommends, and cleans the lists', () => {
    const apt = runs(build).find((r) => r.includes('apt-get install'))!;
    expect(apt).toMatch(/apt-get update && apt-get install -y --no-install-recommends/);
    for (const pkg of ['python3', 'make', 'g++']) expect(apt.split(' ')).toContain(pkg);
    expect(apt).toMatch(/rm -rf \/var\/lib\/apt\/lists\/\*$/);
  });

  it('installs with npm ci (never npm install), builds, and prunes the dev dependencies', () => {
    expect(all).toMatch(/\bnpm ci\b/);
    expect(text).not.toMatch(/\bnpm (install|i|add)\b/);
    expect(all).toMatch(/npm rebuild --build-from-source better-sqlite3 unix-dgram/);
    expect(all).toMatch(/\bnpm run build\b/);
    expect(all).toMatch(/\bnpm prune --omit=dev\b/);
    // ci before build before prune
    expect(all.indexOf('npm ci')).toBeLessThan(all.indexOf('npm run build'));
    expect(all.indexOf('npm run build')).toBeLessThan(all.indexOf('npm prune'));
  });

  it('builds from source every package with an install script, except those that ship linux-arm64 prebuilds', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { hasInstallScript?: boolean; dev?: boolean }>;
    };
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      allowScripts: Record<string, boolean>;
    };
    const scripted = Object.entries(lock.packages)
      .filter(([, p]) => p.hasInstallScript && !p.dev)
      .map(([k]) => k);
    const name = (k: string) => k.replace(/^.*node_modules\//, '');
    // allowScripts false: the package's install script only picks a prebuild (node-gyp-build); check it ships one.
    const prebuilt = scripted.filter((k) => pkg.allowScripts[name(k)] === false);
    for (const k of prebuilt) expect(existsSync(join(ROOT, k, 'prebuilds', 'linux-arm64')), k).toBe(true);
    const native = [...new Set(scripted.filter((k) => pkg.allowScripts[name(k)] !== false).map(name))];
    const rebuilt = /npm rebuild --build-from-source ([^&]+)/.exec(all)![1]!.trim().split(' ');
    expect(rebuilt.sort()).toEqual(native.sort());
  });
});

describe('Dockerfile.arm64: what goes into the image', () => {
  const copies = instructions.filter((i) => i.cmd === 'COPY');
  const fromContext = copies.filter((c) => !c.args.startsWith('--from='));

  it('copies from the build context only named sources that exist, never the whole context', () => {
    const allowed = [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'src',
      'hal',
      'drivers',
      'sim',
      'provisioning',
    ];
    for (const c of fromContext) {
      const words = c.args.split(' ').filter((w) => !w.startsWith('--'));
      const sources = words.slice(0, -1);
      for (const src of sources) {
        expect(allowed, `line ${c.line}: COPY ${src}`).toContain(src);
        expect(existsSync(join(ROOT, src)), `line ${c.line}: ${src} does not exist`).toBe(true);
      }
    }
    expect(fromContext.length).toBeGreaterThan(0);
  });

  it('copies no secrets, and puts none in ENV or ARG', () => {
    const secret = /\.(key|pem|crt|csr|p12|pfx|cred)\b|storage-key|\.env\b|id_rsa|id_ed25519|credentials/i;
    for (const c of copies) expect(c.args, `line ${c.line}`).not.toMatch(secret);
    for (const i of instructions.filter((x) => x.cmd === 'ENV' || x.cmd === 'ARG')) {
      expect(i.args, `line ${i.line}`).not.toMatch(/(PASSWORD|SECRET|TOKEN|PRIVATE|_KEY)\b/i);
    }
  });

  it('has a .dockerignore that keeps dependencies, build output, git and key material out of the context', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const p of [
      'node_modules',
      'dist',
      '.git',
      '**/*.key',
      '**/*.pem',
      '**/*.cred',
      '**/storage-key*',
      '**/*.db',
    ]) {
      expect(ignore).toContain(p);
    }
  });

  it('the runtime stage takes the built daemon and production node_modules from the build stage', () => {
    const fromBuild = runtime.body.filter((i) => i.cmd === 'COPY').map((i) => i.args);
    expect(fromBuild.every((a) => a.startsWith('--from=build '))).toBe(true);
    for (const what of ['package.json', 'node_modules', 'dist']) {
      expect(fromBuild.some((a) => a.startsWith(`--from=build /build/${what} `))).toBe(true);
    }
    // No compiler in the runtime image.
    expect(runs(runtime).join(' ')).not.toMatch(/g\+\+|build-essential|python3/);
  });
});

describe('Dockerfile.arm64: runtime stage', () => {
  it('runs as the non-root user iqhub, a member of dialout', () => {
    const users = runtime.body.filter((i) => i.cmd === 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.args;
    expect(user).toBe('iqhub');
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    const useradd = runs(runtime).find((r) => r.includes('useradd'))!;
    expect(useradd).toMatch(/useradd --system .*--groups dialout .*iqhub/);
    expect(useradd).toMatch(/--shell \/usr\/sbin\/nologin/);
    // USER comes after everything that needs root, and before ENTRYPOINT.
    const order = runtime.body.map((i) => i.cmd);
    expect(order.lastIndexOf('RUN')).toBeLessThan(order.lastIndexOf('USER'));
    expect(order.lastIndexOf('USER')).toBeLessThan(order.indexOf('ENTRYPOINT'));
  });

  it('keeps its data in a volume at the default data directory', () => {
    const volume = runtime.body.find((i) => i.cmd === 'VOLUME')!;
    expect(JSON.parse(volume.args)).toEqual(['/var/lib/iq-hub']);
  });

  it('starts the daemon with the default config path (exec form, so it receives SIGTERM)', () => {
    const entry = runtime.body.filter((i) => i.cmd === 'ENTRYPOINT');
    expect(entry).toHaveLength(1);
    expect(execForm(entry[0])).toEqual([
      'node',
      // The unit's node flags: NODE_OPTIONS, then what the launcher puts on the command line.
      ...unitNodeOptions(unitText).split(/\s+/).filter(Boolean),
      ...launcherNodeArgs(unitEnvironment(unitText)),
      '/usr/lib/iq-hub/dist/src/cli/main.cjs',
      'run',
      '--config',
      '/etc/iq-hub/config.yaml',
    ]);
    expect(runtime.body.find((i) => i.cmd === 'CMD')).toBeUndefined();
  });

  it("sets the unit's environment besides the node flags (MALLOC_ARENA_MAX)", () => {
    const env = unitEnvironment(unitText);
    const envs = runtime.body.filter((i) => i.cmd === 'ENV').map((i) => i.args);
    for (const [k, v] of Object.entries(env)) {
      if (k === 'NODE_OPTIONS' || k === 'IQHUB_NODE_ARGS') continue;
      expect(envs, `${k} of the unit`).toContain(`${k}=${v}`);
    }
  });

  it('has a HEALTHCHECK that asks the daemon with `iqhub status --check` (non-zero when degraded)', () => {
    const hc = runtime.body.filter((i) => i.cmd === 'HEALTHCHECK');
    expect(hc).toHaveLength(1);
    const args = hc[0]!.args;
    expect(args).toMatch(/--interval=\d+s/);
    expect(args).toMatch(/--start-period=\d+m/);
    const cmd = execForm({ ...hc[0]!, args: args.slice(args.indexOf('CMD ')) });
    expect(cmd).toEqual([
      'node',
      '/usr/lib/iq-hub/dist/src/cli/main.cjs',
      'status',
      '--check',
      '--config',
      '/etc/iq-hub/config.yaml',
    ]);
  });

  it('the entry point and health check name files the build produces', () => {
    // dist/src/cli/main.cjs is what the build (tsc, then packaging/quick-cli.mjs) makes of src/cli/main.ts.
    expect(existsSync(join(ROOT, 'src', 'cli', 'main.ts'))).toBe(true);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: { iqhub: string };
      scripts: { build: string };
    };
    expect(pkg.bin.iqhub).toBe('dist/src/cli/main.cjs');
    expect(pkg.scripts.build).toContain('node packaging/quick-cli.mjs');
  });
});

describe('the parser', () => {
  it('joins continuation lines and drops comments', () => {
    const ins = parseDockerfile('# c\nFROM a AS b\nRUN x \\\n  # inner\n  && y\n\nUSER z\n');
    expect(ins.map((i) => [i.cmd, i.args, i.line])).toEqual([
      ['FROM', 'a AS b', 2],
      ['RUN', 'x && y', 3],
      ['USER', 'z', 7],
    ]);
  });
});

const hadolint = findTool('hadolint', 'HADOLINT_BIN');
const HADOLINT_MISSING =
  'hadolint is not installed (not packaged in Debian bookworm or npm); the checks above stand in for it';
if (!hadolint) console.warn(`dockerfile.test.ts: ${HADOLINT_MISSING}`);

describe.skipIf(!hadolint)(hadolint ? 'hadolint' : `hadolint — SKIPPED: ${HADOLINT_MISSING}`, () => {
  it('finds no warning or error', () => {
    const r = run(hadolint!, ['--failure-threshold', 'warning', DOCKERFILE]);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  });
});
