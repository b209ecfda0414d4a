import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevPki, createForeignCa, type DevPkiPaths } from '../../provisioning/dev-pki.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import type { DiagReport } from '../../src/contract/control-socket.js';
import { requireBuild, runCli, start } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { tempDir } from '../helpers/tmp.js';
import { signCsr } from '../unit/provisioning/sign.js';

requireBuild();

const HUB = 'hub-0001';
const DAY = 86_400_000;
const LOCAL_CHECKS = ['daemon', 'config', 'identity', 'certificate', 'clock', 'disk', 'store'];
const DAEMON_CHECKS = [
  'daemon',
  'config',
  'radios',
  'uplink',
  'certificate',
  'clock',
  'disk',
  'store',
  'outbox',
  'locks',
];

const brokers: Mosquitto[] = [];
afterEach(async () => {
  for (const b of brokers.splice(0)) await b.close();
});

/** A hub's site: a config (hub id from the config), a dev CA to sign its CSR, a place for files. */
function site(extra = ''): { base: string; config: string; dataDir: string; pki: DevPkiPaths } {
  const base = tempDir();
  const config = join(base, 'config.yaml');
  writeFileSync(config, `dataDir: ${base}/data\nrunDir: ${base}/run\nprovisioning:\n  hubId: ${HUB}\n${extra}`);
  const pki = createDevPki({ dir: join(base, 'pki'), hubId: 'dev-hub', days: 30 });
  return { base, config, dataDir: join(base, 'data'), pki };
}

/** Every file of the identity directory: name, mode and bytes. */
function snapshot(dataDir: string) {
  const dir = identityPaths(dataDir).dir;
  return readdirSync(dir)
    .sort()
    .map((f) => ({ f, mode: statSync(join(dir, f)).mode & 0o777, bytes: readFileSync(join(dir, f)).toString('hex') }));
}

/** Everything the CLI printed, to check that no part of the key is in it. */
const printed: string[] = [];
async function cli(args: string[]) {
  const r = await runCli(args);
  printed.push(r.stdout, r.stderr);
  return r;
}

function expectKeyNeverPrinted(dataDir: string): void {
  const lines = readFileSync(identityPaths(dataDir).key, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'));
  const all = printed.join('\n');
  expect(all).not.toContain('PRIVATE KEY');
  for (const l of lines) expect(all).not.toContain(l);
}

/** `iqhub provision install` of `cert`, with the dev CA unless `ca` is given. */
const install = (s: { config: string; pki: DevPkiPaths }, cert: string, ca = s.pki.ca.cert) =>
  cli(['provision', 'install', '--config', s.config, '--cert', cert, '--ca', ca]);

/** init, csr, sign with the dev CA, install: the installer's flow. */
async function provisioned(extra = '') {
  const s = site(extra);
  const init = await cli(['provision', 'init', '--config', s.config]);
  expect(init.code, init.stderr).toBe(0);
  const csrFile = join(s.base, 'hub.csr');
  const csr = await cli(['provision', 'csr', '--config', s.config, '--out', csrFile]);
  expect(csr.code, csr.stderr).toBe(0);
  const certFile = join(s.base, 'hub.crt');
  writeFileSync(certFile, signCsr(readFileSync(csrFile, 'utf8'), s.pki.ca));
  const installed = await install(s, certFile);
  expect(installed.code, installed.stderr).toBe(0);
  return { ...s, csrFile, certFile };
}

describe('iqhub provision', () => {
  it('init makes the key and CSR, csr prints it, install checks and installs; the key is never printed', async () => {
    const s = site();
    const init = await cli(['provision', 'init', '--config', s.config]);
    expect(init.code, init.stderr).toBe(0);
    const paths = identityPaths(s.dataDir);
    expect(init.stdout).toContain(HUB);
    expect(init.stdout).toContain(paths.csr);
    expect(statSync(paths.key).mode & 0o777).toBe(0o600);

    const again = await cli(['provision', 'init', '--config', s.config, '--hub-id', 'hub-0002']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already has a private key');
    expect(again.stderr).toContain('--force');

    const csr = await cli(['provision', 'csr', '--config', s.config]);
    expect(csr.code, csr.stderr).toBe(0);
    expect(csr.stdout).toBe(readFileSync(paths.csr, 'utf8'));
    expect(csr.stdout).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/);

    const certFile = join(s.base, 'signed.crt');
    writeFileSync(certFile, signCsr(csr.stdout, s.pki.ca));
    const installed = await install(s, certFile);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toContain(`installed the certificate of ${HUB}`);
    expect(installed.stdout).toContain('next restart');
    expect(readFileSync(paths.cert, 'utf8')).toBe(new X509Certificate(readFileSync(certFile)).toString());
    expectKeyNeverPrinted(s.dataDir);
  });

  it('install refuses every bad certificate with a clear message, exit 1, and the installed identity unchanged', async () => {
    const s = await provisioned();
    const csrPem = readFileSync(s.csrFile, 'utf8');
    const foreign = createForeignCa(join(s.base, 'foreign'));
    const now = Date.now();
    const write = (name: string, text: string) => {
      const f = join(s.base, name);
      writeFileSync(f, text);
      return f;
    };
    const good = readFileSync(s.certFile, 'utf8');
    // Another hub's key: a CSR made in a scratch data directory.
    const other = site();
    await cli(['provision', 'init', '--config', other.config]);
    const otherCsr = readFileSync(identityPaths(other.dataDir).csr, 'utf8');
    const cases: { cert: string; ca?: string; message: RegExp }[] = [
      { cert: write('wrong-key.crt', signCsr(otherCsr, s.pki.ca)), message: /was not issued for this hub's key/ },
      { cert: write('wrong-ca.crt', signCsr(csrPem, foreign.ca)), message: /was not signed by the CA in/ },
      { cert: s.certFile, ca: foreign.ca.cert, message: /was not signed by the CA in .*foreign-ca\.crt/ },
      {
        cert: write(
          'expired.crt',
          signCsr(csrPem, s.pki.ca, { notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) }),
        ),
        message: /expired\.crt expired on/,
      },
      {
        cert: write(
          'future.crt',
          signCsr(csrPem, s.pki.ca, { notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY) }),
        ),
        message: /is valid only from/,
      },
      { cert: write('cn.crt', signCsr(csrPem, s.pki.ca, { cn: 'hub-0099' })), message: /is for CN="hub-0099"/ },
      { cert: write('truncated.crt', good.slice(0, 700)), message: /truncated\.crt is truncated/ },
      { cert: write('garbage.crt', 'not a certificate at all\n'), message: /holds no PEM certificate/ },
      { cert: join(s.base, 'missing.crt'), message: /cannot read the certificate .*missing\.crt: ENOENT/ },
    ];
    const before = snapshot(s.dataDir);
    for (const c of cases) {
      const r = await install(s, c.cert, c.ca);
      expect(r.code, `${c.cert}: ${r.stdout}`).toBe(1);
      expect(r.stderr).toMatch(c.message);
      expect(r.stderr).toContain('→'); // what to do
      expect(snapshot(s.dataDir), c.cert).toEqual(before);
    }
    expectKeyNeverPrinted(s.dataDir);
  });

  it('iqhub cert shows the installed certificate, and warns when it nears its end', async () => {
    const s = await provisioned();
    const r = await cli(['cert', '--config', s.config, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    const x = new X509Certificate(readFileSync(s.certFile));
    expect(info).toMatchObject({
      hubId: HUB,
      fingerprint: x.fingerprint256,
      path: identityPaths(s.dataDir).cert,
      warning: null,
    });
    expect(info.daysLeft).toBe(89);
    expect(info.issuer).toMatch(/^iq-hub development CA/);
    const human = await cli(['cert', '--config', s.config]);
    expect(human.stdout).toMatch(/hub id \(CN\)\s+hub-0001/);
    expect(human.stdout).not.toContain('warning');

    const short = join(s.base, 'short.crt');
    const csrPem = readFileSync(s.csrFile, 'utf8');
    writeFileSync(short, signCsr(csrPem, s.pki.ca, { notAfter: new Date(Date.now() + 10 * DAY) }));
    const again = await install(s, short);
    expect(again.code, again.stderr).toBe(0);
    const warned = await cli(['cert', '--config', s.config]);
    expect(warned.stdout).toMatch(/warning: expires in 9 days/);
    expect(JSON.parse((await cli(['cert', '--config', s.config, '--json'])).stdout).warning).toMatch(/expires in 9/);
    expectKeyNeverPrinted(s.dataDir);
  });

  it('iqhub cert without an identity says how to make one', async () => {
    const s = site();
    const r = await cli(['cert', '--config', s.config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no hub certificate is installed');
    expect(r.stderr).toContain('iqhub provision init');
  });
});

describe('iqhub diag', () => {
  it('without the daemon: the local checks and a failing daemon check, exit 1', async () => {
    const s = await provisioned();
    const r = await cli(['diag', '--config', s.config, '--json']);
    expect(r.code, r.stderr).toBe(1);
    const report = JSON.parse(r.stdout) as DiagReport;
    expect(report.source).toBe('local');
    expect(report.verdict).toBe('fail');
    expect(report.checks.map((c) => c.name)).toEqual(LOCAL_CHECKS);
    for (const c of report.checks) {
      expect(['ok', 'warn', 'fail']).toContain(c.verdict);
      expect(typeof c.detail).toBe('string');
      if (c.verdict !== 'ok') expect(c.action).toBeTruthy();
    }
    const by = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    expect(by.daemon).toMatchObject({ verdict: 'fail' });
    expect(by.daemon?.action).toContain('systemctl start iq-hub');
    expect(by.identity?.verdict).toBe('ok');
    expect(by.certificate?.verdict).toBe('ok');
    expect(by.certificate?.detail).toContain(`CN=${HUB}`);
    expect(by.clock?.verdict).toBe('ok');
    expect(by.store?.verdict).toBe('warn'); // never started: no database yet

    const human = await cli(['diag', '--config', s.config]);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/FAIL\s+daemon\s+not running/);
    expect(human.stdout).toContain('→ start it');
    expectKeyNeverPrinted(s.dataDir);
  });

  it('with the daemon running: every check computed by the daemon', async () => {
    const s = await provisioned('simulation:\n  enabled: true\n  locks: 2\n');
    const d = start(['run', '--config', s.config]);
    await d.waitForOutput('iq-hub ready');
    const r = await cli(['diag', '--config', s.config, '--json']);
    expect(r.code, r.stderr).toBe(0); // warnings only (the uplink is disabled)
    const report = JSON.parse(r.stdout) as DiagReport;
    expect(report.source).toBe('daemon');
    expect(report.checks.map((c) => c.name)).toEqual(DAEMON_CHECKS);
    const by = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    expect(by.daemon?.verdict).toBe('ok');
    expect(by.radios).toMatchObject({ verdict: 'ok', detail: 'sim: ready' });
    expect(by.uplink?.verdict).toBe('warn');
    expect(by.uplink?.detail).toContain('disabled');
    expect(by.certificate?.verdict).toBe('ok');
    expect(by.certificate?.detail).toContain(`CN=${HUB}`);
    expect(by.store?.detail).toContain('quick_check ok');
    expect(by.disk?.verdict).not.toBe('fail');
    expect(by.locks?.verdict).toBe('ok');
    expect(by.outbox?.verdict).toBe('ok');
    const human = await cli(['diag', '--config', s.config]);
    expect(human.stdout).toMatch(/OK\s+store\s+quick_check ok/);
    expect(human.stdout).toContain('checked by the running daemon');
    d.child.kill('SIGTERM');
    expect((await d.exit).code).toBe(0);
    expectKeyNeverPrinted(s.dataDir);
  });

  it('an enabled uplink without an installed identity stops the daemon at start, saying what to do', async () => {
    const s = site('uplink:\n  enabled: true\n  url: mqtts://localhost:8883\n');
    const d = start(['run', '--config', s.config]);
    const { code } = await d.exit;
    expect(code).not.toBe(0);
    expect(d.stderr()).toContain('no hub certificate is installed');
    expect(d.stderr()).toContain('iqhub provision init');
    expect(existsSync(identityPaths(s.dataDir).key)).toBe(false);
  });

  const mosquitto = requireMosquitto();
  it.skipIf(!mosquitto)(
    `the uplink connects to a real broker with the installed identity, and diag says so${mosquitto ? '' : ` — SKIPPED: ${MOSQUITTO_MISSING}`}`,
    async () => {
      const s = site();
      const broker = await startMosquitto({ pkiDir: s.pki.dir });
      if (!broker) throw new Error('mosquitto vanished');
      brokers.push(broker);
      writeFileSync(
        s.config,
        `${readFileSync(s.config, 'utf8')}uplink:\n  enabled: true\n  url: ${broker.url}\n  serverName: localhost\n`,
      );
      expect((await cli(['provision', 'init', '--config', s.config])).code).toBe(0);
      const certFile = join(s.base, 'hub.crt');
      writeFileSync(certFile, signCsr(readFileSync(identityPaths(s.dataDir).csr, 'utf8'), s.pki.ca));
      const installed = await install(s, certFile);
      expect(installed.code, installed.stderr).toBe(0);

      const d = start(['run', '--config', s.config]);
      await d.waitForOutput('iq-hub ready');
      let report: DiagReport | undefined;
      const end = Date.now() + 15_000;
      while (Date.now() < end) {
        report = JSON.parse((await cli(['diag', '--config', s.config, '--json'])).stdout) as DiagReport;
        if (report.checks.find((c) => c.name === 'uplink')?.verdict === 'ok') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const by = Object.fromEntries((report?.checks ?? []).map((c) => [c.name, c]));
      expect(by.uplink?.verdict, `${JSON.stringify(by.uplink)}\n${broker.log()}`).toBe('ok');
      expect(by.uplink?.detail).toContain(`${HUB} connected`);
      expect(by.certificate?.detail).toContain(identityPaths(s.dataDir).cert);
      d.child.kill('SIGTERM');
      expect((await d.exit).code).toBe(0);
      expectKeyNeverPrinted(s.dataDir);
    },
  );
});
