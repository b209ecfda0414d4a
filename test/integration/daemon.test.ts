import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { distFile, requireBuild, runCli, start } from '../helpers/daemon.js';
import { FakeNotifySocket } from '../helpers/notify-socket.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

const sockets: FakeNotifySocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

function site(): { base: string; config: string } {
  const base = tempDir();
  const config = join(base, 'config.yaml');
  writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\n`);
  return { base, config };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the daemon under systemd', () => {
  it('notifies READY, pings the watchdog, answers status, and on SIGTERM says STOPPING and exits 0 within 10 s', async () => {
    const { base, config } = site();
    const notify = new FakeNotifySocket(join(base, 'notify.sock'));
    sockets.push(notify);
    const d = start(['run', '--config', config], { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '200000' });
    await notify.waitFor('READY=1');
    expect(notify.messages.some((m) => m.lines.some((l) => l.startsWith('STATUS=')))).toBe(true);
    await sleep(600);
    expect(notify.count('WATCHDOG=1')).toBeGreaterThanOrEqual(3);

    const status = await runCli(['status', '--config', config]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/version\s+\d+\.\d+\.\d+/);
    expect(status.stdout).toMatch(/control\s+running/);

    const t0 = Date.now();
    d.child.kill('SIGTERM');
    const { code } = await d.exit;
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(notify.has('STOPPING=1')).toBe(true);
  });

  it('watchdog pings stop while the process is frozen and resume after', async () => {
    const { base, config } = site();
    const notify = new FakeNotifySocket(join(base, 'notify.sock'));
    sockets.push(notify);
    const d = start(['run', '--config', config], { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '100000' });
    await notify.waitFor('READY=1');
    await sleep(300);
    d.child.kill('SIGSTOP');
    await sleep(100); // pings already in flight arrive
    const frozenAt = performance.now();
    await sleep(600);
    expect(notify.count('WATCHDOG=1', frozenAt)).toBe(0);
    d.child.kill('SIGCONT');
    await sleep(400);
    expect(notify.count('WATCHDOG=1', frozenAt)).toBeGreaterThanOrEqual(2);
    d.child.kill('SIGTERM');
    expect((await d.exit).code).toBe(0);
  });

  it('watchdog pings come from the event loop: a blocked loop sends none', async () => {
    const base = tempDir();
    const notify = new FakeNotifySocket(join(base, 'notify.sock'));
    sockets.push(notify);
    const p = start(
      [],
      { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '100000' },
      distFile('test/fixtures/watchdog-blocker.js'),
    );
    await notify.waitFor('READY=1');
    await sleep(300);
    p.child.stdin?.write('block 800\n');
    const blocking = await notify.waitFor('STATUS=blocking');
    const unblocked = await notify.waitFor('STATUS=unblocked');
    const during = notify.messages.filter(
      (m) => m.at > blocking.at && m.at < unblocked.at && m.lines.includes('WATCHDOG=1'),
    );
    expect(unblocked.at - blocking.at).toBeGreaterThan(600);
    expect(during).toEqual([]);
    await sleep(300);
    expect(notify.count('WATCHDOG=1', unblocked.at)).toBeGreaterThanOrEqual(2);
    p.child.kill('SIGKILL');
    await p.exit;
  });

  it('a config with an unknown key is refused at start with exit 78 and the key named', async () => {
    const { base } = site();
    const config = join(base, 'bad.yaml');
    writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\nlog:\n  levle: debug\n`);
    const r = await runCli(['run', '--config', config]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('unknown key `log.levle`');
    expect(r.stderr).toContain('did you mean `log.level`?');
  });

  it('an unknown site time zone or an unusable cloud signing key is refused at start with exit 78', async () => {
    const { base } = site();
    const config = join(base, 'zone.yaml');
    writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\naccess:\n  timeZone: Mars/Olympus_Mons\n`);
    const zone = await runCli(['run', '--config', config]);
    expect(zone.code).toBe(78);
    expect(zone.stderr).toContain('access.timeZone: Mars/Olympus_Mons is not a known IANA time zone');
    writeFileSync(join(base, 'cloud.pub'), 'not a key\n');
    writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\naccess:\n  cloudKeyFile: ${base}/cloud.pub\n`);
    const key = await runCli(['run', '--config', config]);
    expect(key.code).toBe(78);
    expect(key.stderr).toContain(`access.cloudKeyFile ${base}/cloud.pub: is neither PEM nor 32 bytes of base64url`);
  });

  it('a storage key file with mode 0644 is refused at start with a clear message', async () => {
    const { base, config } = site();
    const d = start(['run', '--config', config]);
    await d.waitForOutput('iq-hub ready');
    d.child.kill('SIGTERM');
    await d.exit;
    chmodSync(join(base, 'data', 'storage-key'), 0o644);
    const r = await runCli(['run', '--config', config]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('has mode 0644');
    expect(r.stderr).toContain('chmod 600');
  });

  it('a second daemon on the same data directory is refused while the first runs (75: try again later)', async () => {
    const { config } = site();
    const d = start(['run', '--config', config]);
    await d.waitForOutput('iq-hub ready');
    const r = await runCli(['run', '--config', config]);
    expect(r.code).toBe(75);
    expect(r.stderr).toContain('in use by another process');
    d.child.kill('SIGTERM');
    expect((await d.exit).code).toBe(0);
  });
});

describe('the CLI', () => {
  it('says the daemon is not running, and how to start it, with a non-zero exit', async () => {
    const { config } = site();
    const r = await runCli(['status', '--config', config]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('daemon is not running');
    expect(r.stderr).toContain('systemctl start iq-hub');
  });

  it('has --help for the program and for each command', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const cmd of ['run', 'status', 'demo']) expect(top.stdout).toContain(cmd);
    for (const cmd of ['run', 'status', 'demo']) {
      const r = await runCli([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: iqhub ${cmd}`);
    }
  });

  it('an unknown command or option is an error with a pointer to --help', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unknown command/);
    const o = await runCli(['status', '--bogus']);
    expect(o.code).not.toBe(0);
    expect(o.stderr).toMatch(/unknown option/);
  });

  it('status --json is machine-readable and carries no secret', async () => {
    const { base, config } = site();
    const d = start(['run', '--config', config]);
    await d.waitForOutput('iq-hub ready');
    const r = await runCli(['status', '--config', config, '--json']);
    const s = JSON.parse(r.stdout) as {
      storageKey: { origin: string; path: string; fingerprint: string };
      components: { name: string }[];
    };
    expect(s.storageKey.origin).toBe('key-file-created');
    // The key made on a first start waits as storage-key.pending until the store is stamped with it.
    expect(s.storageKey.path).toBe(join(base, 'data', 'storage-key'));
    // Its fingerprint, which tells keys apart, is shown; the key never is.
    expect(s.storageKey.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    const { readFileSync } = await import('node:fs');
    const key = readFileSync(join(base, 'data', 'storage-key'));
    expect(r.stdout).not.toContain(key.toString('hex'));
    expect(r.stdout).not.toContain(key.toString('base64'));
    // No uplink configured: `iqhub commands` says why there is nothing, and what to do.
    const c = await runCli(['commands', '--config', config]);
    expect(c.code).not.toBe(0);
    expect(c.stderr).toContain('no cloud uplink');
    expect(c.stderr).toContain('docs/configuration.md');
    d.child.kill('SIGTERM');
    await d.exit;
  });

  it("`iqhub pki dev` writes the hub's OTP key (0600) and says so, without printing it", async () => {
    const { base } = site();
    const dir = join(base, 'pki');
    const r = await runCli(['pki', 'dev', '--dir', dir, '--hub-id', 'hub-cli']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^otp\.key\s+the hub's OTP key for remote commands/m);
    const { readFileSync, statSync } = await import('node:fs');
    const key = readFileSync(join(dir, 'otp.key'), 'utf8').trim();
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(join(dir, 'otp.key')).mode & 0o777).toBe(0o600);
    expect(r.stdout + r.stderr).not.toContain(key);
    expect(r.stdout + r.stderr).not.toContain(Buffer.from(key, 'hex').toString('base64'));
  });

  it('`iqhub demo --scenario smoke --exit` passes every step and exits 0', async () => {
    const r = await runCli(['demo', '--scenario', 'smoke', '--exit']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^scenario smoke: \d+ passed, 0 failed$/m);
  });
});
