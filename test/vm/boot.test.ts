/**
 * The amd64 hub image booted under qemu-system-x86_64 (TCG; IQHUB_VM_ACCEL=kvm where a guest boots
 * under KVM), checked from the inside: the test adds test/vm/guest-checks.sh to a copy of the
 * image as a systemd service (the production image has none), with a dev PKI made here and a
 * mosquitto here, reached from the guest through QEMU's user network (10.0.2.2 is the host's
 * loopback). The copy also carries the package iq-hub-demo, which the guest installs after
 * checking that the production image has no demo: the demo then runs inside the VM against the
 * mosquitto here (`iqhub demo --broker`), with identities of its own (demo-hub, demo-cloud). The guest prints `VMTEST PASS|FAIL|PENDING <check> <detail>` lines on its serial
 * console, which QEMU writes to a file; each check below asserts its line.
 *
 * Runs only with IQHUB_VM_TEST=1 (.ci/run sets it): it needs root, mmdebstrap, qemu and about
 * 10-15 minutes on a quiet machine. Builds what is missing (`npm run package`, `npm run image -- --arch amd64`);
 * `rm -rf build/` to rebuild from scratch. docs/installing.md, "The boot test".
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevPki, type DevPkiPaths, issueClientCert } from '../../provisioning/dev-pki.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { connectCloud } from '../helpers/cloud-site.js';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto.js';

const ENABLED = process.env.IQHUB_VM_TEST === '1';
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const HUB_ID = 'hub-vm-0001';
/** The demo's hub and cloud inside the VM, at the broker here (certificates of the same CA). */
const DEMO_HUB_ID = 'demo-hub';
const DEMO_CLOUD_ID = 'demo-cloud';
/**
 * The guest's run, boot to power-off: about 7-10 minutes under TCG on a quiet 2-core machine; 38
 * minutes (2281 s) in the last run here, with six other helpers' builds and tests on those 2
 * cores (load 16-24). A cap, not an expectation (IQHUB_VM_TIMEOUT_MIN overrides it); in CI a hang
 * ends here, well before .ci/run's 90 minutes on a quiet runner.
 */
const RUN_TIMEOUT_MS = Number(process.env.IQHUB_VM_TIMEOUT_MIN ?? 60) * 60_000;
/**
 * The journal priorities (`journalctl -p err` shows the error, not the info lines) need the
 * daemon's syslog priority prefixes under JOURNAL_STREAM, and the metrics check needs the metrics
 * endpoint: both are other parts of issue 18, merged now. Set one to false to have the guest report
 * its failure as PENDING (not FAIL) and not assert it.
 */
const JOURNAL_PRIORITIES_MERGED = true;
const METRICS_MERGED = true;

interface Result {
  verdict: 'PASS' | 'FAIL' | 'PENDING';
  detail: string;
}

const results = new Map<string, Result>();
const metrics = new Map<string, string>();
let serial = '';
let qemu: ChildProcess | undefined;
let broker: Mosquitto | undefined;
let cloud: ReferenceCloud | undefined;
let work = '';
let onlineAtCloud = false;
/** The broker here saw the demo's hub (inside the VM) connect. */
let demoAtHostBroker = false;
let elapsedS = 0;

function sh(cmd: string, args: string[], timeoutMs: number): void {
  const r = spawnSync(cmd, args, { cwd: REPO, stdio: 'inherit', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (status ${r.status}, ${r.error ?? ''})`);
}

/**
 * The test's overlay: the check service, its script, the blocker, the site's config and PKI, the
 * two packages (iq-hub for the remove/reinstall check, iq-hub-demo to install), the demo's PKI.
 */
function writeOverlay(dir: string, debs: { hub: string; demo: string }, pki: DevPkiPaths, brokerPort: number): void {
  const t = join(dir, 'usr/lib/iq-hub-vmtest');
  mkdirSync(join(t, 'pki'), { recursive: true });
  copyFileSync(debs.hub, join(t, 'iq-hub.deb'));
  copyFileSync(debs.demo, join(t, 'iq-hub-demo.deb'));
  mkdirSync(join(t, 'demo-pki'));
  for (const [from, to] of [
    ['ca.crt', 'ca.crt'],
    ['demo-hub.crt', 'hub.crt'],
    ['demo-hub.key', 'hub.key'],
    ['demo-cloud.crt', 'cloud.crt'],
    ['demo-cloud.key', 'cloud.key'],
  ] as const) {
    copyFileSync(join(pki.dir, from), join(t, 'demo-pki', to));
  }
  writeFileSync(join(t, 'demo-broker-url'), `mqtts://10.0.2.2:${brokerPort}\n`);
  copyFileSync(join(REPO, 'test/vm/guest-checks.sh'), join(t, 'guest-checks.sh'));
  chmodSync(join(t, 'guest-checks.sh'), 0o755);
  copyFileSync(join(REPO, 'test/vm/metrics-check.sh'), join(t, 'metrics-check.sh'));
  chmodSync(join(t, 'metrics-check.sh'), 0o755);
  copyFileSync(join(REPO, 'test/vm/blocker.mjs'), join(t, 'blocker.mjs'));
  const pending = [...(JOURNAL_PRIORITIES_MERGED ? [] : ['journal-priority']), ...(METRICS_MERGED ? [] : ['metrics'])];
  writeFileSync(join(t, 'pending'), pending.map((p) => `${p}\n`).join(''));
  copyFileSync(pki.ca.cert, join(t, 'pki/ca.crt'));
  copyFileSync(pki.hub.cert, join(t, 'pki/hub.crt'));
  copyFileSync(pki.hub.key, join(t, 'pki/hub.key'));
  copyFileSync(pki.otpKey, join(t, 'pki/otp.key'));
  writeFileSync(
    join(t, 'config.yaml'),
    [
      'dataDir: /var/lib/iq-hub',
      'runDir: /run/iq-hub',
      'simulation:',
      '  enabled: true',
      '  locks: 1',
      '  seed: vm',
      'uplink:',
      '  enabled: true',
      `  url: mqtts://10.0.2.2:${brokerPort}`,
      '  caFile: /etc/iq-hub/pki/ca.crt',
      '  certFile: /etc/iq-hub/pki/hub.crt',
      '  keyFile: /etc/iq-hub/pki/hub.key',
      '  serverName: localhost',
      'commands:',
      `  otpKeyFile: /etc/iq-hub/pki/otp.key`,
      '',
    ].join('\n'),
  );
  const units = join(dir, 'etc/systemd/system');
  mkdirSync(join(units, 'multi-user.target.wants'), { recursive: true });
  writeFileSync(
    join(units, 'iq-hub-vmtest.service'),
    [
      '[Unit]',
      'Description=iq-hub VM boot test checks (test image only)',
      'After=iq-hub.service multi-user.target',
      '',
      '[Service]',
      'Type=simple',
      'ExecStart=/usr/lib/iq-hub-vmtest/guest-checks.sh',
      'StandardOutput=journal',
      '',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n'),
  );
  symlinkSync('../iq-hub-vmtest.service', join(units, 'multi-user.target.wants/iq-hub-vmtest.service'));
}

/**
 * Asked for (IQHUB_VM_TEST=1), the test runs or fails saying what is missing: root, and the tools
 * `.ci/run` installs. Never a silent skip.
 */
function requireVmTools(): void {
  const has = (t: string) =>
    spawnSync('sh', ['-c', `command -v ${t}`]).status === 0 || existsSync(`/usr/sbin/${t}`) || existsSync(`/sbin/${t}`);
  const missing = ['qemu-system-x86_64', 'mmdebstrap', 'mke2fs', 'mosquitto', 'dpkg-deb'].filter((t) => !has(t));
  const problems = [
    ...(process.getuid?.() === 0 ? [] : ['it needs root (mmdebstrap --mode=root)']),
    ...(missing.length
      ? [
          `missing: ${missing.join(', ')} (apt-get install mmdebstrap qemu-system-x86 qemu-utils e2fsprogs mosquitto, as .ci/run does)`,
        ]
      : []),
  ];
  if (problems.length) throw new Error(`IQHUB_VM_TEST=1, but the VM boot test cannot run: ${problems.join('; ')}`);
}

function parseSerial(): void {
  for (const m of serial.matchAll(/VMTEST (PASS|FAIL|PENDING) (\S+) ?([^\r\n]*)/g)) {
    results.set(m[2] as string, { verdict: m[1] as Result['verdict'], detail: m[3] ?? '' });
  }
  for (const m of serial.matchAll(/VMTEST METRIC (\S+) (\S+)/g)) metrics.set(m[1] as string, m[2] as string);
}

function expectPass(name: string): void {
  const r = results.get(name);
  expect(
    r,
    `no result for ${name}: the guest did not get there; serial log tail:\n${serial.slice(-3000)}`,
  ).toBeDefined();
  expect(r?.verdict, `${name}: ${r?.detail}`).toBe('PASS');
}

describe.runIf(ENABLED)('the hub image under QEMU (IQHUB_VM_TEST=1)', () => {
  beforeAll(
    async () => {
      requireVmTools();
      const t0 = Date.now();
      const version = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version as string;
      const debs = {
        hub: join(REPO, `build/iq-hub_${version}_amd64.deb`),
        demo: join(REPO, `build/iq-hub-demo_${version}_all.deb`),
      };
      if (!existsSync(debs.hub) || !existsSync(debs.demo)) sh('bash', ['packaging/build-deb.sh'], 30 * 60_000);

      work = mkdtempSync(join(tmpdir(), 'iqhub-vm-'));
      const pki = createDevPki({ dir: join(work, 'pki'), hubId: HUB_ID });
      issueClientCert({ dir: pki.dir, cn: DEMO_HUB_ID, fileName: 'demo-hub' });
      issueClientCert({ dir: pki.dir, cn: DEMO_CLOUD_ID, fileName: 'demo-cloud' });
      broker = await startMosquitto({ pkiDir: pki.dir, cloudIds: ['cloud', DEMO_CLOUD_ID] });
      if (!broker) throw new Error('mosquitto did not start');
      cloud = await connectCloud(broker.url, pki, HUB_ID);

      const overlay = join(work, 'overlay');
      writeOverlay(overlay, debs, pki, broker.port);
      const out = join(REPO, 'build/image-amd64');
      sh(
        'bash',
        ['packaging/build-image.sh', '--arch', 'amd64', '--reuse-rootfs', '--overlay', overlay, '--name', 'vmtest'],
        25 * 60_000,
      );
      const image = join(out, 'vmtest.ext4');

      const accel = process.env.IQHUB_VM_ACCEL ?? 'tcg';
      const serialFile = join(work, 'serial.log');
      writeFileSync(serialFile, '');
      const bootT0 = Date.now();
      qemu = spawn(
        'qemu-system-x86_64',
        [
          ...['-accel', accel, '-m', '1536', '-smp', '2', '-display', 'none', '-no-reboot'],
          ...['-serial', `file:${serialFile}`, '-monitor', 'none'],
          ...['-drive', `file=${image},format=raw,if=virtio`],
          ...['-nic', 'user,model=virtio-net-pci'],
          ...['-kernel', join(out, 'vmlinuz'), '-initrd', join(out, 'initrd.img')],
          ...['-append', 'console=ttyS0 root=/dev/vda rw quiet loglevel=3 systemd.show_status=0'],
        ],
        { stdio: ['ignore', 'inherit', 'inherit'] },
      );
      const exited = new Promise<void>((r) => qemu?.on('exit', () => r()));
      let done = false;
      void exited.then(() => {
        done = true;
      });
      // Once the VM's hub is seen online, the cloud here goes: the demo inside the VM brings its
      // own (every cloud hears every hub's topics, and would acknowledge the demo hub's events too).
      const online = cloud.waitForOnline(HUB_ID, 0, RUN_TIMEOUT_MS, `${HUB_ID} online at the cloud on the host`).then(
        async () => {
          onlineAtCloud = true;
          await cloud?.close();
          cloud = undefined;
        },
        () => undefined,
      );
      const deadline = Date.now() + RUN_TIMEOUT_MS;
      while (!done && Date.now() < deadline) {
        serial = readFileSync(serialFile, 'utf8');
        // mosquitto logs each client's identity (`u'<CN>'`); its log here keeps only the last 16 KiB.
        if (/u'demo-hub'/.test(broker.log())) demoAtHostBroker = true;
        if (serial.includes('VMTEST DONE')) break;
        await new Promise((r) => setTimeout(r, 2000));
      }
      if (!done) await Promise.race([exited, new Promise((r) => setTimeout(r, 60_000))]);
      if (!done) qemu.kill('SIGKILL');
      serial = readFileSync(serialFile, 'utf8');
      void online;
      parseSerial();
      elapsedS = Math.round((Date.now() - t0) / 1000);
      const bootS = Math.round((Date.now() - bootT0) / 1000);
      // The figures the issue asks for, in the test output.
      console.log(
        `vm boot test: ${bootS} s in the VM, ${elapsedS} s in all; boot to READY ${metrics.get('boot_to_ready_s')} s; ` +
          `image ${basename(image)}`,
      );
      for (const [k, v] of results) console.log(`  ${v.verdict.padEnd(7)} ${k}: ${v.detail}`);
    },
    RUN_TIMEOUT_MS + 30 * 60_000,
  );

  afterAll(async () => {
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL');
    await cloud?.close();
    await broker?.close();
    if (work) {
      writeFileSync(join(REPO, 'build/vmtest-serial.log'), serial);
      rmSync(work, { recursive: true, force: true });
    }
    rmSync(join(REPO, 'build/image-amd64/vmtest.ext4'), { force: true });
  });

  it('boots, and the guest runs every check to the end', () => {
    expect(serial, serial.slice(-3000)).toContain('VMTEST DONE');
  });

  it('first boot makes the storage key (credential) and the unit reaches READY under its real sandbox', () => {
    expectPass('ready');
    expectPass('credential');
    expectPass('sandbox');
    expectPass('machine-id');
    expect(Number(metrics.get('boot_to_ready_s'))).toBeGreaterThan(0);
  });

  it('the image: NTP on, journal persistent, no SSH server', () => {
    expectPass('image-services');
  });

  it('provisioned with the dev PKI, the hub connects to the broker on the host and the cloud sees it', () => {
    expectPass('provision');
    expect(onlineAtCloud).toBe(true);
  });

  it('systemctl kill -s SIGKILL: restarted, and the attached lock and its events are all still there', () => {
    expectPass('sigkill');
  });

  it('a blocked event loop trips the watchdog and systemd restarts the daemon', () => {
    expectPass('watchdog');
  });

  it('a permanent fault (exit 78) is not restarted, and a good config brings it back', () => {
    expectPass('exit78');
    expectPass('restored');
  });

  it('a member of the group iqhub runs iqhub status; a non-member is refused', () => {
    expectPass('group');
  });

  it('systemd-analyze security in the running system rates the unit 2.0 or lower', () => {
    expectPass('security');
  });

  it('the production image has no demo (no sim/, src/demo/ or aedes); iqhub demo says to install iq-hub-demo', () => {
    expectPass('demo-absent');
  });

  it('simulation.enabled without iq-hub-demo: exit 78 naming the package; the test image then installs it', () => {
    expectPass('simulation-needs-demo');
  });

  it('the packaged demo scenario passes inside the VM against the broker on the host (iqhub demo --broker)', () => {
    expectPass('demo');
    expect(demoAtHostBroker, `mosquitto here never saw ${DEMO_HUB_ID}: ${broker?.log().slice(-1500)}`).toBe(true);
  });

  it('the package: removing it keeps the store, the key and the config; reinstalling finds them; purging deletes them', () => {
    expectPass('deb-remove');
    expectPass('deb-purge');
  });

  it.runIf(JOURNAL_PRIORITIES_MERGED)('journalctl -p err shows the provoked error and no info lines', () => {
    expectPass('journal-priority');
  });

  it.runIf(METRICS_MERGED)('the metrics endpoint answers inside the VM with every listed series', () => {
    expectPass('metrics');
  });
});
