import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, requireBuild, runCli, start } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

/**
 * Issue 16, items 4-5: each start-up fault exits with the code that says what systemd should do
 * (78: fix the installation, not restarted; 75: try again later), and stderr names the path and
 * the fix and never a secret. docs/operations.md, "Exit codes", is the table these tests hold.
 */

interface Site {
  base: string;
  data: string;
  config: string;
}

function site(): Site {
  const base = tempDir();
  chmodSync(base, 0o755);
  const data = join(base, 'data');
  const config = join(base, 'config.yaml');
  writeFileSync(config, `dataDir: ${data}\nrunDir: ${base}/run\n`, { mode: 0o644 });
  return { base, data, config };
}

/** Start the daemon once and stop it: a store and a key exist, a healthy hub. */
async function ranOnce(s: Site): Promise<Buffer> {
  const d = start(['run', '--config', s.config]);
  await d.waitForOutput('iq-hub ready');
  d.child.kill('SIGTERM');
  expect((await d.exit).code).toBe(0);
  const key = readFileSync(join(s.data, 'storage-key'));
  // The first start logs the stamp by the key's fingerprint, never the key.
  expect(d.stdout()).toContain('store stamped with its storage key');
  expectNoSecret(d.stdout() + d.stderr(), key);
  return key;
}

const run = (s: Site) => runCli(['run', '--config', s.config]);

/** stderr holds no form of a key. */
function expectNoSecret(stderr: string, ...keys: Buffer[]): void {
  for (const k of keys) {
    expect(stderr).not.toContain(k.toString('hex'));
    expect(stderr).not.toContain(k.toString('base64'));
    expect(stderr).not.toContain(k.toString('latin1'));
  }
}

/** `iqhub run` inside a mount namespace after `setup` (shell commands, as root). */
function runInMountNamespace(setup: string, s: Site): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(
    'unshare',
    ['-m', 'sh', '-c', `${setup} && exec "$0" "$1" run --config "$2"`, process.execPath, CLI, s.config],
    {
      env: { ...process.env, NOTIFY_SOCKET: '', WATCHDOG_USEC: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

const isRoot = process.getuid?.() === 0;
const canMount = isRoot && spawnSync('unshare', ['-m', 'true']).status === 0;

describe('exit codes of `iqhub run`', () => {
  it('78: a config with a YAML alias bomb, refused with the file, the line and the fix', async () => {
    const s = site();
    const bomb = [
      `dataDir: ${s.data}`,
      `runDir: ${s.base}/run`,
      'a: &a [x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
    ].join('\n');
    writeFileSync(s.config, bomb);
    const r = await run(s);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`${s.config}:4:`);
    expect(r.stderr).toContain('aliases expand too far');
    expect(r.stderr).toContain('write the values out');
  });

  it('78: a hub.db that is not a database is named, and only then told to move it aside', async () => {
    const s = site();
    const key = await ranOnce(s);
    writeFileSync(join(s.data, 'hub.db'), Buffer.alloc(8192, 0x41));
    rmSync(join(s.data, 'hub.db-wal'), { force: true });
    const r = await run(s);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`${join(s.data, 'hub.db')} is not an iq-hub database`);
    expect(r.stderr).toContain('move');
    expect(r.stderr).toContain('restore hub.db from a backup');
    expectNoSecret(r.stderr, key);
  });

  it('78: a truncated hub.db is refused as damaged, with the fix', async () => {
    const s = site();
    await ranOnce(s);
    const db = join(s.data, 'hub.db');
    writeFileSync(db, readFileSync(db).subarray(0, 5000));
    const r = await run(s);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(db);
    expect(r.stderr).toMatch(/damaged|integrity check/);
    expect(r.stderr).toContain('restore from a backup');
  });

  it('78: a deleted hub.db beside its storage key is refused, not replaced by an empty store', async () => {
    const s = site();
    const key = await ranOnce(s);
    rmSync(join(s.data, 'hub.db'));
    const r = await run(s);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`the store ${join(s.data, 'hub.db')} is missing`);
    expect(r.stderr).toContain('restore');
    expect(r.stderr).toContain('iqhub reset --yes');
    expect(existsSync(join(s.data, 'hub.db'))).toBe(false);
    expectNoSecret(r.stderr, key);
  });

  it('78: an emptied hub.db is refused', async () => {
    const s = site();
    await ranOnce(s);
    writeFileSync(join(s.data, 'hub.db'), '');
    const r = await run(s);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('is empty (0 bytes)');
    expect(r.stderr).toContain('iqhub reset --yes');
  });

  it('78: a deleted storage key beside its store is refused, and no new key is made', async () => {
    const s = site();
    await ranOnce(s);
    rmSync(join(s.data, 'storage-key'));
    const r = await run(s);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`the storage key is missing (looked for ${join(s.data, 'storage-key')})`);
    expect(r.stderr).toContain('put back the storage key');
    expect(existsSync(join(s.data, 'storage-key'))).toBe(false);
  });

  it("78: a storage key that is not the store's is refused by fingerprint, never showing either key", async () => {
    const s = site();
    const key = await ranOnce(s);
    const other = Buffer.alloc(32, 0x5a);
    writeFileSync(join(s.data, 'storage-key'), other, { mode: 0o600 });
    const r = await run(s);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`the storage key ${join(s.data, 'storage-key')} (fingerprint `);
    expect(r.stderr).toContain('put back the storage key that sealed');
    expectNoSecret(r.stderr, key, other);
  });

  it.skipIf(!isRoot)("78: a data directory the daemon's user cannot write says how to fix permissions", async () => {
    const s = site();
    await ranOnce(s);
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'run', '--config', s.config], {
        uid: 65534,
        gid: 65534,
        env: { ...process.env, NOTIFY_SOCKET: '', WATCHDOG_USEC: '' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      child.on('exit', (code) => resolve({ code, stderr }));
    });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`cannot write the data directory ${s.data}`);
    expect(r.stderr).toContain(`chown -R iqhub:iqhub ${s.data}`);
    expect(r.stderr).not.toContain('not an iq-hub database');
    expect(r.stderr).not.toContain('move');
  });

  it.skipIf(!canMount)(
    '78: a read-only data directory is told apart from a damaged store (the store is kept)',
    async () => {
      const s = site();
      await ranOnce(s);
      const r = await runInMountNamespace(
        `mount --bind "${s.data}" "${s.data}" && mount -o remount,ro,bind "${s.data}"`,
        s,
      );
      expect(r.code).toBe(78);
      expect(r.stderr).toContain(`the data directory ${s.data} is on a read-only file system`);
      expect(r.stderr).toContain('remount');
      expect(r.stderr).toContain('kept as it is');
      expect(r.stderr).not.toContain('not an iq-hub database');
      expect(r.stderr).not.toContain('move');
    },
  );

  it.skipIf(!canMount)(
    '75: a full disk at start exits 75 (systemd tries again) and names where to free space',
    async () => {
      const s = site();
      const r = await runInMountNamespace(
        `mkdir -p "${s.data}" && mount -t tmpfs -o size=48k,mode=0700 tmpfs "${s.data}"`,
        s,
      );
      expect(r.code).toBe(75);
      expect(r.stderr).toContain(s.data);
      expect(r.stderr).toContain('free space');
    },
  );
});

describe('a first start cut short', () => {
  it.skipIf(!canMount)(
    'by a full disk exits 75, and once space returns the next start takes up its pending key and makes its store',
    async () => {
      const s = site();
      const script = [
        `mkdir -p "${s.data}" && mount -t tmpfs -o size=48k,mode=0700 tmpfs "${s.data}"`,
        `"$0" "$1" run --config "$2"; echo "first=$?"`,
        `ls "${s.data}"; echo "--"`,
        `mount -o remount,size=16m "${s.data}"`,
        // The daemon runs until stopped: stop it once it said ready (or after 60 s).
        `"$0" "$1" run --config "$2" > "${s.base}/second.log" 2>&1 & pid=$!`,
        `for i in $(seq 600); do grep -q "iq-hub ready" "${s.base}/second.log" && break; sleep 0.1; done`,
        `kill -TERM $pid; wait $pid; echo "second=$?"`,
        `ls "${s.data}"`,
      ].join('\n');
      const out = await new Promise<string>((resolve) => {
        const child = spawn('unshare', ['-m', 'sh', '-c', script, process.execPath, CLI, s.config], {
          env: { ...process.env, NOTIFY_SOCKET: '', WATCHDOG_USEC: '' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let text = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          text += d;
        });
        child.on('exit', () => resolve(text));
      });
      const [afterFirst = '', afterSecond = ''] = out.split('--\n');
      expect(afterFirst).toContain('first=75');
      // Its key waited as pending: no key stands beside a store that was never made.
      expect(afterFirst).toContain('storage-key.pending');
      expect(afterFirst.split('\n')).not.toContain('storage-key');
      expect(readFileSync(join(s.base, 'second.log'), 'utf8')).toContain('iq-hub ready');
      expect(afterSecond).toContain('second=0');
      expect(afterSecond.split('\n')).toContain('storage-key');
      expect(afterSecond).not.toContain('storage-key.pending');
    },
  );
});

describe('`iqhub reset`', () => {
  it('needs --yes, refuses while the daemon runs, moves the store and key aside, and the next start begins afresh', async () => {
    const s = site();
    const key = await ranOnce(s);

    const unconfirmed = await runCli(['reset', '--config', s.config]);
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.stderr).toMatch(/^iqhub: reset would move the store/);
    expect(unconfirmed.stderr).toContain('iqhub reset --yes');
    expect(existsSync(join(s.data, 'hub.db'))).toBe(true);

    const d = start(['run', '--config', s.config]);
    await d.waitForOutput('iq-hub ready');
    const whileRunning = await runCli(['reset', '--yes', '--config', s.config]);
    expect(whileRunning.code).toBe(1);
    expect(whileRunning.stderr).toContain('systemctl stop iq-hub');
    expect(existsSync(join(s.data, 'hub.db'))).toBe(true);
    d.child.kill('SIGTERM');
    expect((await d.exit).code).toBe(0);

    const r = await runCli(['reset', '--yes', '--config', s.config]);
    expect(r.code).toBe(0);
    const aside = readdirSync(s.data).find((n) => n.startsWith('reset-'));
    expect(aside).toBeDefined();
    const movedTo = join(s.data, aside ?? '');
    expect(readdirSync(movedTo).sort()).toEqual(['hub.db', 'storage-key', 'store-identity.json']);
    expect(readFileSync(join(movedTo, 'storage-key')).equals(key)).toBe(true);
    expect(r.stdout).toContain(`moved aside into ${movedTo}`);
    expect(r.stdout).toContain('every lock must be attached again');
    expectNoSecret(r.stdout + r.stderr, key);

    const fresh = start(['run', '--config', s.config]);
    await fresh.waitForOutput('iq-hub ready');
    fresh.child.kill('SIGTERM');
    expect((await fresh.exit).code).toBe(0);
    expect(readFileSync(join(s.data, 'storage-key')).equals(key)).toBe(false);
  });
});
