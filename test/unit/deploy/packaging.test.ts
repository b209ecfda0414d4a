import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Quick checks of the packaging scripts that `npm test` can afford (the package itself is checked
 * by lintian in .ci/run; the image and its behaviour by the VM boot test, test/vm/boot.test.ts,
 * with IQHUB_VM_TEST=1, which .ci/run runs unless IQHUB_CI_VM=0).
 */
const repo = (rel: string) => fileURLToPath(new URL(`../../../${rel}`, import.meta.url));

const SCRIPTS = [
  'packaging/build-deb.sh',
  'packaging/iqhub.sh',
  'packaging/build-image.sh',
  'packaging/image-customize.sh',
  'packaging/cross-arm64.sh',
  'packaging/debian/postinst',
  'packaging/debian/prerm',
  'packaging/debian/postrm',
  'test/vm/guest-checks.sh',
  'test/vm/metrics-check.sh',
];

describe('packaging scripts', () => {
  it.each(SCRIPTS)('%s parses (sh -n / bash -n) and is executable', (rel) => {
    const text = readFileSync(repo(rel), 'utf8');
    const shell = text.startsWith('#!/bin/sh') ? 'sh' : 'bash';
    const r = spawnSync(shell, ['-n', repo(rel)], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(statSync(repo(rel)).mode & 0o100).toBeTruthy();
  });

  it('maintainer scripts stop on errors and keep the data unless purged', () => {
    for (const s of ['postinst', 'prerm', 'postrm']) {
      expect(readFileSync(repo(`packaging/debian/${s}`), 'utf8')).toMatch(/^set -e$/m);
    }
    const postrm = readFileSync(repo('packaging/debian/postrm'), 'utf8');
    // The only deletion of the store or the key is inside the purge branch.
    const purge = /if \[ "\$1" = purge \]; then([\s\S]*?)\nfi/.exec(postrm)?.[1] ?? '';
    expect(purge).toContain('rm -rf /var/lib/iq-hub');
    expect(purge).toContain('rm -rf /etc/iq-hub');
    expect(postrm.replace(purge, '')).not.toMatch(/rm -rf/);
  });

  it('the package config is a conffile that starts the hub unprovisioned (uplink off)', () => {
    const build = readFileSync(repo('packaging/build-deb.sh'), 'utf8');
    expect(build).toContain('echo /etc/iq-hub/config.yaml >"$PKG/DEBIAN/conffiles"');
    expect(readFileSync(repo('packaging/config.yaml'), 'utf8')).toMatch(/^uplink:\n {2}enabled: false$/m);
  });

  it('every lintian override has a comment saying why', () => {
    const lines = readFileSync(repo('packaging/lintian-overrides'), 'utf8').split('\n');
    lines.forEach((l, i) => {
      if (!l.startsWith('iq-hub:')) return;
      let j = i - 1;
      while (j >= 0 && lines[j]?.startsWith('iq-hub:')) j--;
      expect(lines[j], `override on line ${i + 1} has no comment above its group`).toMatch(/^#/);
    });
  });
});

describe('the demo package (iq-hub-demo) and the production dependencies', () => {
  const pkg = JSON.parse(readFileSync(repo('package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const lock = JSON.parse(readFileSync(repo('package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; dependencies?: Record<string, string> }>;
  };
  const demoModules = (...roots: string[]) =>
    spawnSync(process.execPath, [repo('packaging/demo-modules.mjs'), ...roots], { cwd: repo(''), encoding: 'utf8' });

  it('aedes is a devDependency, and the lock file agrees (a production install leaves it out)', () => {
    expect(pkg.dependencies.aedes).toBeUndefined();
    expect(pkg.devDependencies.aedes).toBeDefined();
    expect(lock.packages['']?.dependencies?.aedes).toBeUndefined();
    expect(lock.packages['node_modules/aedes']?.dev).toBe(true);
  });

  it('demo-modules.mjs lists aedes and what only it loads: nothing a production dependency needs', () => {
    const r = demoModules('aedes');
    expect(r.status, r.stderr).toBe(0);
    const paths = r.stdout.trim().split('\n');
    expect(paths).toContain('node_modules/aedes');
    for (const p of paths) expect(lock.packages[p]?.dev, p).toBe(true);
    // aedes's dependencies that the hub needs too (mqtt-packet, with mqtt) stay in iq-hub.
    expect(paths).not.toContain('node_modules/mqtt-packet');
  });

  it('demo-modules.mjs refuses a production dependency (it would be in both packages) and an unknown one', () => {
    expect(demoModules('mqtt').stderr).toMatch(/mqtt is a production dependency/);
    expect(demoModules('no-such-package').stderr).toMatch(/is not in package-lock\.json/);
    expect(demoModules('mqtt').status).not.toBe(0);
  });

  it('iq-hub-demo depends on the same version of iq-hub and is architecture-independent', () => {
    const control = readFileSync(repo('packaging/debian/control-demo'), 'utf8');
    expect(control).toMatch(/^Package: iq-hub-demo$/m);
    expect(control).toMatch(/^Architecture: all$/m);
    expect(control).toMatch(/^Depends: iq-hub \(= @VERSION@\)$/m);
    const build = readFileSync(repo('packaging/build-deb.sh'), 'utf8');
    // The production tree: src without src/demo, and no sim.
    expect(build).toMatch(/for d in src hal drivers provisioning; do/);
    expect(build).toMatch(/for d in sim src\/demo; do/);
  });
});
