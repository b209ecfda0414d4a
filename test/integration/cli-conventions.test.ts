import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevPki } from '../../provisioning/dev-pki.js';
import { writeSiteConfig } from '../helpers/cloud-site.js';
import { type Proc, requireBuild, runCli, start } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

/**
 * Issue 18, "CLI conventions", through the built `iqhub` as an operator or a script runs it:
 * `--json` errors as one object with the exit status of the human form; `status --check` for
 * health checks; lock ids and TLS failures said in words; progress on stderr; completion and the
 * manual page made from the program itself.
 */

const ROOT = join(import.meta.dirname, '..', '..');

/** stdout parsed as exactly one JSON document (throws otherwise). */
const oneJson = (stdout: string) => JSON.parse(stdout) as Record<string, unknown>;

async function daemon(config: string): Promise<Proc> {
  const d = start(['run', '--config', config]);
  await d.waitForOutput('iq-hub ready', 60_000);
  return d;
}

async function stop(d: Proc): Promise<void> {
  d.child.kill('SIGTERM');
  await d.exit;
}

describe('--json errors: one JSON object on stdout, the same exit status as without --json', () => {
  const none = () => join(tempDir(), 'none.sock');

  it('the daemon not running: daemon.not-running, exit 3, nothing on stderr', async () => {
    const r = await runCli(['status', '--json', '--socket', none()]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe('');
    const { error } = oneJson(r.stdout) as { error: Record<string, unknown> };
    expect(Object.keys(error).sort()).toEqual(['code', 'hint', 'message']);
    expect(error.code).toBe('daemon.not-running');
    expect(error.message).toMatch(/not running/);
    expect(error.hint).toMatch(/systemctl start iq-hub/);
    // The human form: the same status, the message and the hint on stderr.
    const human = await runCli(['status', '--socket', none()]);
    expect(human.code).toBe(3);
    expect(human.stdout).toBe('');
    expect(human.stderr).toMatch(/^iqhub: the iq-hub daemon is not running .*\n {2}→ start it/);
  });

  it('a refusal of the CLI itself (forget without --force): its HubError code, exit 1', async () => {
    const r = await runCli(['forget', 'SIM-0001', '--json', '--socket', none()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    expect(oneJson(r.stdout)).toMatchObject({
      error: { code: 'cli.needs-force', hint: expect.stringMatching(/--force/) },
    });
  });

  it("a command line iqhub cannot parse: commander's code, its exit status, no usage text in the way", async () => {
    for (const args of [['status', '--bogus'], ['statu'], ['events', 'SIM-1', '--limit', 'many']]) {
      const human = await runCli(args);
      const r = await runCli([...args, '--json']);
      expect(r.code, args.join(' ')).toBe(human.code);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toBe('');
      const { error } = oneJson(r.stdout) as { error: { code: string; message: string; hint: string } };
      expect(error.code).toMatch(/^commander\./);
      expect(error.message).not.toMatch(/^error:/);
      expect(error.hint).toMatch(/--help/);
    }
  });

  it('--help and --version are not errors, with or without --json', async () => {
    const v = await runCli(['--version', '--json']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+/);
    expect((await runCli(['status', '--help'])).code).toBe(0);
  });
});

describe('a bad lock id is refused in words, before the daemon is asked', () => {
  it('names the rule, not a method name or a regular expression', async () => {
    for (const cmd of ['lock', 'events', 'open', 'detach', 'offline']) {
      const r = await runCli([cmd, 'bad/id', '--socket', join(tempDir(), 'none.sock')]);
      expect(r.code, cmd).toBe(1);
      expect(r.stderr, cmd).toMatch(
        /a lock id is 1-64 characters of A-Z a-z 0-9 \. _ : - starting with a letter or digit/,
      );
      expect(r.stderr, cmd).not.toMatch(/\^\[|locks\.get|params\/|must match pattern/);
      // Refused before any connection: not "daemon not running" (exit 3).
      expect(r.stderr, cmd).not.toMatch(/not running/);
    }
    const j = await runCli(['lock', `x${'y'.repeat(64)}`, '--json']);
    expect(oneJson(j.stdout)).toMatchObject({ error: { code: 'commander.invalidArgument' } });
  });
});

describe('status --check: the health check of the container and the image', () => {
  it('exits 0 on a healthy hub (plain status too), 3 without a daemon (degraded: exit 1, below)', async () => {
    const base = tempDir();
    const config = join(base, 'config.yaml');
    writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\n`);
    const d = await daemon(config);
    try {
      const ok = await runCli(['status', '--check', '--config', config]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toBe('healthy\n');
      const okJson = await runCli(['status', '--check', '--json', '--config', config]);
      expect(okJson.code).toBe(0);
      expect(oneJson(okJson.stdout)).toMatchObject({ health: { healthy: true, problems: [] } });
      // Plain `status` stays 0 whatever the health: it only reports.
      expect((await runCli(['status', '--config', config])).code).toBe(0);
    } finally {
      await stop(d);
    }
    const gone = await runCli(['status', '--check', '--config', config]);
    expect(gone.code).toBe(3);
  }, 120_000);
});

describe('a TLS failure says which CA file, which name, which file to fix', () => {
  let server: Server;
  let port: number;
  let base: string;
  let config: string;
  let d: Proc;

  beforeAll(async () => {
    base = tempDir();
    // The broker's certificate comes from one CA; the hub trusts another (a wrong uplink.caFile).
    const brokerPki = createDevPki({ dir: join(base, 'broker-pki'), hubId: 'hub-tls-1' });
    const hubPki = createDevPki({ dir: join(base, 'hub-pki'), hubId: 'hub-tls-1' });
    server = createServer({ cert: readFileSync(brokerPki.broker.cert), key: readFileSync(brokerPki.broker.key) });
    server.on('tlsClientError', () => {});
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    config = writeSiteConfig({ base, brokerUrl: `mqtts://127.0.0.1:${port}`, pki: hubPki, locks: 0 });
    d = await daemon(config);
  }, 120_000);

  afterAll(async () => {
    await stop(d);
    server.close();
  });

  it('status names the CA file the broker certificate does not chain to; status --check exits 1', async () => {
    const caFile = join(base, 'hub-pki', 'ca.crt');
    let out = '';
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
      out = (await runCli(['status', '--config', config])).stdout;
      if (out.includes('did not issue')) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(out).toMatch(/uplink +degraded .*last error (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)/);
    expect(out).toContain(`the CA in ${caFile} did not issue`);
    expect(out).toContain('uplink.caFile');
    const check = await runCli(['status', '--check', '--config', config]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/^DEGRADED\n {2}uplink degraded: /);
    const json = await runCli(['status', '--check', '--json', '--config', config]);
    expect(json.code).toBe(1);
    const health = (oneJson(json.stdout) as { health: { healthy: boolean; problems: string[] } }).health;
    expect(health.healthy).toBe(false);
    expect(health.problems.join('\n')).toContain(caFile);
    // The daemon log says it too, with the code.
    expect(d.stdout()).toContain(`the CA in ${caFile} did not issue`);
  }, 90_000);
});

describe('pki dev: progress on stderr, the daemon hub id rule, the --force hint', () => {
  it('prints each step on stderr as it happens, the result on stdout', async () => {
    const dir = join(tempDir(), 'pki');
    const r = await runCli(['pki', 'dev', '--dir', dir, '--hub-id', 'hub-0001']);
    expect(r.code, r.stderr).toBe(0);
    const steps = r.stderr.trim().split('\n');
    expect(steps[0]).toMatch(/^making the CA/);
    expect(steps.some((s) => s.startsWith('issuing the hub certificate (CN=hub-0001)'))).toBe(true);
    expect(steps.at(-1)).toMatch(/^writing the files to /);
    expect(r.stdout).toMatch(/CN=hub-0001/);
    // Into the same directory again: the hint names the option that exists.
    const again = await runCli(['pki', 'dev', '--dir', dir, '--hub-id', 'hub-0001']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/→ .*add --force/);
    expect(again.stderr).not.toMatch(/pass overwrite/);
  }, 60_000);

  it('refuses a hub id the daemon would refuse, before making anything', async () => {
    for (const bad of ['hub 1', 'hub@home', '-hub', 'é']) {
      const dir = join(tempDir(), 'pki');
      const r = await runCli(['pki', 'dev', '--dir', dir, '--hub-id', bad, '--json']);
      expect(r.code, bad).toBe(1);
      expect(oneJson(r.stdout), bad).toMatchObject({ error: { code: 'provision.bad-hub-id' } });
      expect(existsSync(dir), bad).toBe(false);
    }
  });
});

describe('provision init: progress on stderr', () => {
  it('says it is making the key, then the CSR', async () => {
    const base = tempDir();
    const config = join(base, 'config.yaml');
    writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\n`);
    const r = await runCli(['provision', 'init', '--config', config, '--hub-id', 'hub-0002']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /^making the hub's private key \(RSA-2048\)\.\.\.\nmaking the CSR \(CN=hub-0002\)\.\.\.\n/,
    );
    const quiet = await runCli(['provision', 'init', '--config', config, '--hub-id', 'hub-0002', '--force', '--json']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
    expect(oneJson(quiet.stdout)).toMatchObject({ hubId: 'hub-0002', replacedKey: true });
  }, 60_000);
});

describe('shell completion, made from the program', () => {
  it('bash: the script parses and completes commands, sub-commands, options and choices', async () => {
    const r = await runCli(['completion', 'bash']);
    expect(r.code).toBe(0);
    const script = join(tempDir(), 'iqhub.bash');
    writeFileSync(script, r.stdout);
    const complete = (words: string[]) => {
      const cw = words.length - 1;
      const arr = words.map((w) => `'${w}'`).join(' ');
      const s = spawnSync(
        'bash',
        ['-c', `source '${script}'; COMP_WORDS=(${arr}); COMP_CWORD=${cw}; _iqhub; printf '%s\\n' "\${COMPREPLY[@]}"`],
        { encoding: 'utf8' },
      );
      expect(s.status, s.stderr).toBe(0);
      return s.stdout.split('\n').filter(Boolean);
    };
    const top = complete(['iqhub', '']);
    for (const c of ['run', 'status', 'locks', 'attach', 'pki', 'provision', 'completion', 'man', 'diag']) {
      expect(top).toContain(c);
    }
    expect(complete(['iqhub', 'pki', ''])).toContain('dev');
    expect(complete(['iqhub', 'provision', 'i'])).toEqual(['init', 'install']);
    expect(complete(['iqhub', 'status', '--'])).toEqual(expect.arrayContaining(['--check', '--json', '--socket']));
    expect(complete(['iqhub', '--config', 'x', 'status', '--ch'])).toEqual(['--check']);
    expect(complete(['iqhub', 'demo', '--scenario', ''])).toEqual(['smoke']);
    expect(complete(['iqhub', 'completion', ''])).toEqual(['bash', 'zsh', 'json']);
  });

  it('zsh: a #compdef script with every command and its description', async () => {
    const r = await runCli(['completion', 'zsh']);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('#compdef iqhub\n')).toBe(true);
    const tree = oneJson((await runCli(['completion', 'json'])).stdout) as {
      commands: { name: string; description: string }[];
    };
    expect(tree.commands.length).toBeGreaterThan(15);
    for (const c of tree.commands) expect(r.stdout).toContain(`'${c.name}:`);
    expect(r.stdout).toContain("'--check:health check");
    // bash -n is no zsh parser, but the shared walker is plain POSIX-ish shell: it must at least parse.
    const zshAvailable = spawnSync('zsh', ['--version']).status === 0;
    if (zshAvailable) {
      const s = spawnSync('zsh', ['-n'], { input: r.stdout, encoding: 'utf8' });
      expect(s.status, s.stderr).toBe(0);
    }
  });
});

describe('the manual page', () => {
  it('docs/iqhub.1 is what `iqhub man` makes now (npm run docs writes it again)', async () => {
    const r = await runCli(['man']);
    expect(r.code).toBe(0);
    expect(readFileSync(join(ROOT, 'docs', 'iqhub.1'), 'utf8')).toBe(r.stdout);
  });

  it('documents every command and option of the program, and renders without a groff warning', async () => {
    const page = (await runCli(['man'])).stdout;
    const tree = oneJson((await runCli(['completion', 'json'])).stdout) as unknown as Node;
    type Node = { path: string[]; options: { long: string | null }[]; commands: Node[] };
    const roff = (s: string) => s.replace(/-/g, '\\-');
    const visit = (n: Node) => {
      if (n.path.length > 0 && n.path[0] !== 'help') expect(page).toContain(roff(`iqhub ${n.path.join(' ')}`));
      for (const o of n.options) if (o.long) expect(page).toContain(roff(o.long));
      n.commands.forEach(visit);
    };
    visit(tree);
    const groff = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: page, encoding: 'utf8' });
    if (groff.error === undefined) expect(groff.stderr).toBe('');
  });
});
