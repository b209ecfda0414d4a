import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDevPki } from '../../provisioning/dev-pki.js';
import { CloudRecovery } from '../../sim/cloud/recovery.js';
import { VirtualClock } from '../../src/base/clock.js';
import { SeededRandom } from '../../src/base/random.js';
import { openStoreWithKey } from '../../src/crypto/store-identity.js';
import { PairingStore } from '../../src/link/pairing.js';
import { requireBuild, runCli, start } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

const LOCKS = ['SIM-0001', 'SIM-0002'];

function hub(hubId: string, recoveryPublicKey: string, extra = ''): { base: string; config: string; data: string } {
  const base = tempDir();
  const data = join(base, 'data');
  mkdirSync(data, { mode: 0o700 });
  const config = join(base, 'config.yaml');
  writeFileSync(
    config,
    `dataDir: ${data}\nrunDir: ${base}/run\n${extra || `provisioning:\n  hubId: ${hubId}\n`}` +
      `backup:\n  recoveryPublicKey: ${recoveryPublicKey}\n` +
      'simulation:\n  enabled: true\n  locks: 2\n  seed: replacement-test\n',
  );
  return { base, config, data };
}

const outputs: string[] = [];

async function cli(config: string, args: string[], stdin?: string, expectCode = 0) {
  const r = await runCli([...args, '--config', config, '--json'], {}, stdin);
  outputs.push(r.stdout, r.stderr);
  if (r.code !== expectCode) throw new Error(`iqhub ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return (expectCode === 0 ? JSON.parse(r.stdout || 'null') : r.stderr) as never;
}

async function control(base: string, method: string, params: Record<string, unknown>) {
  const { callDaemon } = await import('../../src/control-socket/socket-client.js');
  return callDaemon(join(base, 'run', 'control.sock'), method, params, 30_000);
}

const flash = (data: string, id: string) =>
  JSON.parse(readFileSync(join(data, 'sim', `${id}.json`), 'utf8')) as { boundHub: string | null };

describe('hub replacement', () => {
  it("a hub's backup restored on a second data directory with another storage key, with the cloud's approval: every simulated lock reconnects without an attach, and no secret is printed or logged", {
    timeout: 240_000,
  }, async () => {
    const cloud = new CloudRecovery(new VirtualClock(Date.now()), new SeededRandom('replacement-cloud'));
    const recoveryKey = await cloud.enable();
    const a = hub('hub-old', recoveryKey);
    let d = start(['run', '--config', a.config]);
    await d.waitForOutput('iq-hub ready');
    const stickers = readFileSync(join(a.data, 'sim', 'stickers.txt'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ') as [string, string]);
    for (const [id, code] of stickers) {
      await control(a.base, 'sim.card', { deviceId: id });
      expect(((await cli(a.config, ['attach', '--device-id', id], `${code}\n`)) as { state: string }).state).toBe(
        'bound',
      );
    }
    const taken = (await cli(a.config, ['hub-backup'])) as { path: string; locks: number; hubId: string };
    expect(taken).toMatchObject({ locks: 2, hubId: 'hub-old' });
    // A restore is refused while a daemon runs on the data directory.
    expect(await cli(a.config, ['hub-restore', taken.path], undefined, 1)).toMatch(/the daemon is running/);
    d.child.kill('SIGTERM');
    expect((await d.exit).code).toBe(0);
    const logsA = d.stdout() + d.stderr();
    const boundTo = LOCKS.map((id) => flash(a.data, id).boundHub);
    expect(boundTo.every((h) => h !== null)).toBe(true);

    // The replacement: another data directory, its own storage key; the same locks on the doors.
    // Its identity: a certificate (CN = hub-new) from the hubs' CA, which signs its restore request.
    const pki = createDevPki({ dir: join(tempDir(), 'pki'), hubId: 'hub-new' });
    cloud.requireHubIdentity(readFileSync(pki.ca.cert));
    const b = hub('hub-new', recoveryKey, `uplink:\n  certFile: ${pki.hub.cert}\n  keyFile: ${pki.hub.key}\n`);
    cpSync(join(a.data, 'sim'), join(b.data, 'sim'), { recursive: true });
    const request = (await cli(b.config, ['hub-restore', taken.path])) as { approved: boolean; requestPath: string };
    expect(request.approved).toBe(false);
    expect(JSON.parse(readFileSync(request.requestPath, 'utf8')).identity?.signature).toBeDefined();
    // Without an approval there is nothing to restore with; a made-up one is refused.
    const fake = join(b.base, 'fake-approval.json');
    writeFileSync(fake, JSON.stringify({ format: 'iq-hub-restore-approval', v: 1 }));
    expect(await cli(b.config, ['hub-restore', taken.path, '--approval', fake], undefined, 1)).toMatch(/approval/);

    const { approvalText } = await cloud.approve(readFileSync(request.requestPath, 'utf8'));
    const approval = join(b.base, 'approval.json');
    writeFileSync(approval, approvalText);
    const restored = (await cli(b.config, ['hub-restore', taken.path, '--approval', approval])) as {
      locks: number;
      newHubId: string;
      storageKeyFingerprint: string;
    };
    expect(restored).toMatchObject({ locks: 2, newHubId: 'hub-new' });
    const keyA = readFileSync(join(a.data, 'storage-key'));
    const keyB = readFileSync(join(b.data, 'storage-key'));
    expect(keyB.equals(keyA)).toBe(false);

    d = start(['run', '--config', b.config]);
    await d.waitForOutput('iq-hub ready');
    for (const id of LOCKS) {
      // A handshake with the lock now: it proves the lock accepts the moved link key, no attach.
      const checked = (await cli(b.config, ['lock', id, '--check'])) as { state: string; lockState: { bolt: string } };
      expect(checked.state).toBe('bound');
      expect(checked.lockState.bolt).toBeDefined();
      await cli(b.config, ['open', id, '--duration', '1']);
    }
    expect(LOCKS.map((id) => flash(b.data, id).boundHub)).toEqual(boundTo);
    d.child.kill('SIGTERM');
    expect((await d.exit).code).toBe(0);
    const logsB = d.stdout() + d.stderr();

    // No secret in any CLI output or daemon log: the storage keys, the link key, the setup codes.
    const opened = openStoreWithKey({
      dataDir: b.data,
      keyFile: null,
      credentialsDirectory: undefined,
      random: new SeededRandom('x'),
    });
    const link = new PairingStore(opened.store).hubIdentity(opened.sealer, new SeededRandom('y'), 0);
    opened.store.close();
    const secrets = [keyA, keyB, Buffer.from(link.secretKey)].flatMap((k) => [
      k.toString('hex'),
      k.toString('base64'),
      k.toString('base64url'),
    ]);
    const everything = [...outputs, logsA, logsB].join('\n');
    for (const s of secrets) expect(everything).not.toContain(s);
    for (const [, code] of stickers) expect(everything).not.toContain(code);
    // Nor the new hub's identity key, which signed the request.
    const keyLines = readFileSync(pki.hub.key, 'utf8')
      .split('\n')
      .filter((l) => l.length === 64);
    expect(keyLines.length).toBeGreaterThan(5);
    for (const line of keyLines) expect(everything).not.toContain(line);
  });
});
