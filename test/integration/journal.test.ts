import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startRadioSite } from '../../sim/emu/site.js';
import { CLI, requireBuild } from '../helpers/daemon.js';
import { requireSocat, SOCAT_MISSING } from '../helpers/socat.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();
const socat = requireSocat();

/**
 * `iqhub run` with stdout and stderr on one file, as systemd connects a service to journald;
 * `stream` is what JOURNAL_STREAM says (`same`: that file's device:inode). Once ready, sent
 * `after.signal`, then stopped by SIGTERM `after.atLeastMs` later and once `after.until` holds for
 * what it wrote (up to 60 s; or left to exit on its own). Returns the lines written.
 */
async function run(
  config: string,
  stream: 'same' | 'other' | 'none',
  after: { signal?: NodeJS.Signals; atLeastMs?: number; until?: (written: string) => boolean } = {},
  nodeArgs: string[] = [],
): Promise<{ code: number | null; lines: string[] }> {
  const dir = tempDir();
  const outPath = join(dir, 'journal');
  const fd = openSync(outPath, 'w');
  const st = fstatSync(fd);
  const journal =
    stream === 'same' ? `${st.dev}:${st.ino}` : stream === 'other' ? `${st.dev}:${st.ino + 12345}` : undefined;
  const env: NodeJS.ProcessEnv = { ...process.env, NOTIFY_SOCKET: '', WATCHDOG_USEC: '' };
  if (journal) env.JOURNAL_STREAM = journal;
  else delete env.JOURNAL_STREAM;
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'run', '--config', config], {
    env,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const end = Date.now() + 60_000;
  let code: number | null | undefined;
  void exited.then((c) => {
    code = c;
  });
  while (code === undefined && !readFileSync(outPath, 'utf8').includes('iq-hub ready') && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
  }
  if (code === undefined && after.signal) child.kill(after.signal);
  const until = after.until ?? (() => true);
  const atLeast = Date.now() + (after.atLeastMs ?? 0);
  const settled = Date.now() + 60_000;
  while (
    code === undefined &&
    Date.now() < settled &&
    (Date.now() < atLeast || !until(readFileSync(outPath, 'utf8')))
  ) {
    await new Promise((r) => setTimeout(r, 50));
  }
  if (code === undefined) child.kill('SIGTERM');
  const finalCode = await exited;
  return { code: finalCode, lines: readFileSync(outPath, 'utf8').split('\n').filter(Boolean) };
}

function simConfig(): string {
  const base = tempDir();
  const config = join(base, 'config.yaml');
  writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\nsimulation:\n  enabled: true\n  locks: 1\n`);
  return config;
}

describe('logs on the journal (JOURNAL_STREAM)', () => {
  it('every line of a daemon whose stdout is the journal carries its priority: info <6>, warn <4>', async () => {
    const { code, lines } = await run(simConfig(), 'same');
    expect(code).toBe(0);
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines) expect(l, l).toMatch(/^<[2-7]>\{"level":"/);
    const byMsg = (m: string) => lines.find((l) => l.includes(`"msg":"${m}`));
    expect(byMsg('iq-hub ready')?.slice(0, 3)).toBe('<6>');
    expect(byMsg('simulation mode')?.slice(0, 3)).toBe('<4>');
  }, 90_000);

  it('a start-up failure is an error (<3>) on stderr, so `journalctl -p err` shows it', async () => {
    const base = tempDir();
    const config = join(base, 'config.yaml');
    writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\nmetrics:\n  listen: "0.0.0.0:9464"\n`);
    const { code, lines } = await run(config, 'same');
    expect(code).toBe(78);
    const failure = lines.filter((l) => !l.includes('"level"'));
    expect(failure[0]).toMatch(/^<3>iq-hub: cannot start: .*metrics\.listen/);
    for (const l of failure) expect(l.startsWith('<3>'), l).toBe(true);
    // The info lines before it stay info: `-p err` leaves them out.
    expect(lines.find((l) => l.includes('"msg":"iq-hub starting"'))?.slice(0, 3)).toBe('<6>');
  }, 60_000);

  it('no prefix when JOURNAL_STREAM names another stream or is unset', async () => {
    for (const stream of ['other', 'none'] as const) {
      const { code, lines } = await run(simConfig(), stream);
      expect(code).toBe(0);
      for (const l of lines) expect(l.startsWith('{'), `${stream}: ${l}`).toBe(true);
    }
  }, 120_000);

  it.skipIf(!socat)(
    `real noble and zigbee-herdsman (on the emulators) write nothing but prefixed JSON lines${socat ? '' : ` (${SOCAT_MISSING})`}`,
    async () => {
      const site = await startRadioSite({ socat: socat as string, locks: [], seed: 'journal' });
      try {
        const base = tempDir();
        const config = join(base, 'config.yaml');
        // YAML takes JSON: the radios section as the emulators give it.
        writeFileSync(
          config,
          `dataDir: ${base}/data\nrunDir: ${base}/run\nlog:\n  level: debug\nradios: ${JSON.stringify(site.radios)}\n`,
        );
        // A few seconds of scanning after ready (a scenario, not a wait): what the libraries print
        // comes then; and on a slow machine, on until both have printed.
        const { code, lines } = await run(config, 'same', {
          atLeastMs: 3_000,
          until: (w) => w.includes('"component":"ble"') && w.includes('"component":"zigbee"'),
        });
        expect(code).toBe(0);
        expect(lines.some((l) => l.includes('"component":"ble"'))).toBe(true);
        expect(lines.some((l) => l.includes('"component":"zigbee"'))).toBe(true);
        for (const l of lines) expect(l, l).toMatch(/^<[2-7]>\{"level":"/);
      } finally {
        await site.close();
      }
    },
    90_000,
  );

  it("a library's console output becomes JSON lines with their priority, once per change, without key material", async () => {
    const chatter = fileURLToPath(new URL('../fixtures/console-chatter.mjs', import.meta.url));
    // The fixture prints on SIGUSR2, sent once ready; the daemon stops after its last line.
    const { code, lines } = await run(
      simConfig(),
      'same',
      { signal: 'SIGUSR2', until: (w) => w.includes('an error of the library') },
      ['--import', chatter],
    );
    expect(code).toBe(0);
    for (const l of lines) expect(l, l).toMatch(/^<[2-7]>\{"level":"/);
    const fromConsole = lines.filter((l) => l.includes('"component":"console"'));
    const unknown = fromConsole.filter((l) => l.includes('unknown peripheral'));
    expect(unknown).toHaveLength(1);
    expect(unknown[0]?.slice(0, 3)).toBe('<4>');
    expect(fromConsole.find((l) => l.includes('an error of the library'))?.slice(0, 3)).toBe('<3>');
    expect(fromConsole.find((l) => l.includes('plain log line'))?.slice(0, 3)).toBe('<6>');
    expect(lines.join('\n')).not.toContain('c0ffee00'.repeat(8));
    expect(fromConsole.some((l) => l.includes('key [redacted] in a dump'))).toBe(true);
  }, 90_000);
});
