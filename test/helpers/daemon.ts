import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';

/** The CLI as `iqhub` runs it: the CommonJS entry (packaging/quick-cli.mjs; `run` and commander's commands load the ES modules). */
export const CLI = fileURLToPath(new URL('../../dist/src/cli/main.cjs', import.meta.url));
export const distFile = (rel: string) => fileURLToPath(new URL(`../../dist/${rel}`, import.meta.url));

/** Tests of real processes run the compiled code; say how to get it rather than fail obscurely. */
export function requireBuild(): void {
  if (!existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` first (npm test does it for you)');
  // `npx tsc` alone rewrites the ES modules, not the CLI's CommonJS copies (packaging/quick-cli.mjs).
  for (const f of QUICK_CJS) {
    const cjs = distFile(f);
    const esm = cjs.replace(/\.cjs$/, '.js');
    if (existsSync(esm) && (!existsSync(cjs) || statSync(esm).mtimeMs > statSync(cjs).mtimeMs))
      throw new Error(`dist/${f} is older than tsc's output: run \`npm run build\` (tsc alone does not make it)`);
  }
}

/** The CLI's CommonJS quick path as the build makes it (test/unit/cli/quick-cjs.test.ts checks the list). */
export const QUICK_CJS = [
  'src/cli/main.cjs',
  'src/cli/quick-parse.cjs',
  'src/cli/socket-commands.cjs',
  'src/cli/arg-checks.cjs',
  'src/cli/format.cjs',
  'src/config/paths.cjs',
  'src/contract/control-socket.cjs',
  'src/contract/mqtt-topics.cjs',
  'src/control-socket/socket-client.cjs',
  'src/diag/refused.cjs',
];

export interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForOutput(pattern: RegExp | string, timeoutMs?: number): Promise<void>;
}

const children = new Set<ChildProcess>();

// A test file that fails half-way must not leave a daemon running (holding ports, files and CPU).
// After the whole file, not after each test: some files share one daemon between tests. Only
// under vitest: the benchmarks use these helpers too.
if (process.env.VITEST)
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    children.clear();
  });

export function start(args: string[], env: NodeJS.ProcessEnv = {}, script = CLI): Proc {
  const nodeArgs = process.env.IQHUB_DAEMON_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    env: { ...process.env, NOTIFY_SOCKET: '', WATCHDOG_USEC: '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return watch(child);
}

/**
 * Collect a spawned process's output and exit, and kill it after the test file if it still runs:
 * what `start` returns, for a process started another way too (a daemon in a mount namespace).
 */
export function watch(child: ChildProcess): Proc {
  children.add(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exit,
    async waitForOutput(pattern, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      const matches = () => (typeof pattern === 'string' ? out.includes(pattern) : pattern.test(out));
      while (!matches()) {
        if (child.exitCode !== null || Date.now() > end) {
          throw new Error(
            `waiting for ${pattern}: ${child.exitCode !== null ? `exited ${child.exitCode}` : 'timed out'}\nstdout:\n${out}\nstderr:\n${err}`,
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}

/** Run a CLI command to completion. */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  stdin = '',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = start(args, env);
  p.child.stdin?.end(stdin);
  const { code } = await p.exit;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}
