import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireBuild, runCli, start } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

function site(extra: string): { base: string; config: string } {
  const base = tempDir();
  const config = join(base, 'config.yaml');
  writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\n${extra}`);
  return { base, config };
}

describe('radios in the config', () => {
  it('a radio enabled without its adapter path is refused at start, exit 78, naming the key', async () => {
    const zigbee = site('radios:\n  zigbee:\n    enabled: true\n');
    const z = await runCli(['run', '--config', zigbee.config]);
    expect(z.code).toBe(78);
    expect(z.stderr).toContain('radios.zigbee.port is required when radios.zigbee.enabled is true');
    const ble = site('radios:\n  ble:\n    enabled: true\n    transport: uart\n');
    const b = await runCli(['run', '--config', ble.config]);
    expect(b.code).toBe(78);
    expect(b.stderr).toContain('radios.ble.uartPath is required when radios.ble.transport is uart');
    const bad = site('radios:\n  zigbee:\n    enabled: true\n    port: "http://x"\n');
    const p = await runCli(['run', '--config', bad.config]);
    expect(p.code).toBe(78);
    expect(p.stderr).toContain('radios.zigbee.port');
  });

  it('a configured BLE adapter that is missing is reported in status, and the simulated radio keeps serving', async () => {
    const { config } = site(
      `simulation:\n  enabled: true\n  locks: 1\nradios:\n  ble:\n    enabled: true\n    transport: uart\n    uartPath: /nonexistent/ttyBLE0\n`,
    );
    const d = start(['run', '--config', config]);
    try {
      await d.waitForOutput('iq-hub ready');
      let status = { stdout: '', stderr: '', code: 0 as number | null };
      for (let i = 0; i < 50; i++) {
        status = await runCli(['status', '--config', config]);
        if (/radio\.ble\s+degraded/.test(status.stdout)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(status.stdout, status.stderr).toMatch(/radio\.ble\s+degraded/);
      expect(status.stdout).toContain('/nonexistent/ttyBLE0');
      expect(status.stdout).toMatch(/radio\.sim\s+running/);
      const locks = await runCli(['locks', '--config', config]);
      expect(locks.code, locks.stderr).toBe(0);
    } finally {
      d.child.kill('SIGTERM');
      await d.exit;
    }
  });

  it('iqhub attach --install-code-file: an unusable file is refused without its content reaching the output', async () => {
    const { base, config } = site('');
    const file = join(base, 'install-code.txt');
    writeFileSync(file, 'C0DE5\n', { mode: 0o600 });
    const r = await runCli(
      ['attach', '--device-id', 'ZB-0001', '--install-code-file', file, '--config', config],
      {},
      'AAAA-BBBB-CCCC\n',
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`the install code file ${file} does not hold an install code`);
    expect(r.stdout + r.stderr).not.toContain('C0DE5');
    const missing = await runCli([
      'attach',
      '--device-id',
      'ZB-0001',
      '--install-code-file',
      join(base, 'nope'),
      '--config',
      config,
    ]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('cannot read the install code file');
  });
});
