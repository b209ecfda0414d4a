import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevPki, type DevPkiPaths } from '../../provisioning/dev-pki.js';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { connectReferenceCloud } from '../../sim/cloud/connect.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { type Proc, start } from './daemon.js';
import { type Mosquitto, startMosquitto } from './mosquitto.js';

/**
 * The reference cloud on `brokerUrl` with the dev PKI's cloud certificate; with `hubId`, it signs
 * that hub's commands with the dev PKI's OTP key (without, the hub gets its key at enrollment).
 */
export function connectCloud(brokerUrl: string, pki: DevPkiPaths, hubId?: string): Promise<ReferenceCloud> {
  // Commands go OTP-signed with the hub's key (the hub reads the same otp.key).
  return connectReferenceCloud(brokerUrl, pki, hubId === undefined ? {} : { otpHubId: hubId });
}

/**
 * A site's surroundings in a new temporary directory `iqhub-NAME-*`: a dev PKI for `hubId`, a
 * mosquitto with mutual TLS on it (`broker`: its options besides the PKI) and the reference cloud
 * connected to it. `closeSite` takes it down.
 */
export async function openSite(
  name: string,
  hubId: string,
  broker: Omit<Parameters<typeof startMosquitto>[0], 'pkiDir'> = {},
): Promise<{ base: string; pki: DevPkiPaths; broker: Mosquitto; cloud: ReferenceCloud }> {
  const base = mkdtempSync(join(tmpdir(), `iqhub-${name}-`));
  const pki = createDevPki({ dir: join(base, 'pki'), hubId });
  const b = await startMosquitto({ pkiDir: join(base, 'pki'), ...broker });
  if (!b) throw new Error('mosquitto did not start');
  return { base, pki, broker: b, cloud: await connectCloud(b.url, pki, hubId) };
}

export interface SiteConfig {
  base: string;
  brokerUrl: string;
  pki: DevPkiPaths;
  /** Simulated locks (0 with `seed` undefined: no simulation at all, as on a real hub). */
  locks: number;
  seed?: string;
  reconnectBaseMs?: number;
  /** 'files': the dev PKI's hub certificate (default); 'installed': the identity in <dataDir>/identity. */
  identity?: 'files' | 'installed';
  /** The dev PKI's OTP key in `commands.otpKeyFile` (default true). */
  otp?: boolean;
  /** Extra lines under `uplink:` / `commands:` (indented by the caller's two spaces). */
  uplink?: string[];
  commands?: string[];
  /** Extra top-level sections, e.g. `provisioning:` with its lines. */
  extra?: string[];
  /** Extra lines under `simulation:` (indented by the caller's two spaces), e.g. `  latencyMs: 20`. */
  simulation?: string[];
}

/**
 * Write `<base>/config.yaml` for a daemon hosting a simulated site (none without `seed`) whose
 * uplink uses the dev PKI's hub certificate and OTP key against `brokerUrl`; returns its path.
 */
export function writeSiteConfig(o: SiteConfig): string {
  const path = join(o.base, 'config.yaml');
  writeFileSync(
    path,
    [
      `dataDir: ${o.base}/data`,
      `runDir: ${o.base}/run`,
      ...(o.seed === undefined
        ? []
        : ['simulation:', '  enabled: true', `  locks: ${o.locks}`, `  seed: ${o.seed}`, ...(o.simulation ?? [])]),
      'uplink:',
      '  enabled: true',
      `  url: ${o.brokerUrl}`,
      ...(o.identity === 'installed'
        ? []
        : [`  caFile: ${o.pki.ca.cert}`, `  certFile: ${o.pki.hub.cert}`, `  keyFile: ${o.pki.hub.key}`]),
      '  serverName: localhost',
      `  reconnectBaseMs: ${o.reconnectBaseMs ?? 200}`,
      '  reconnectMaxMs: 1000',
      ...(o.uplink ?? []),
      ...(o.otp === false ? [] : ['commands:', `  otpKeyFile: ${o.pki.otpKey}`, ...(o.commands ?? [])]),
      ...(o.extra ?? []),
      '',
    ].join('\n'),
  );
  return path;
}

/** Start `iqhub run --config` and wait until the cloud sees the hub come online (again). */
export async function startHubOnline(
  cloud: ReferenceCloud,
  hubId: string,
  config: string,
  timeoutMs = 15_000,
): Promise<Proc> {
  const seen = cloud.statusHistory(hubId).length;
  const d = start(['run', '--config', config]);
  await d.waitForOutput('iq-hub ready');
  await cloud.waitForOnline(hubId, seen, timeoutMs, `${hubId} online at the cloud`);
  return d;
}

/**
 * Attach every lock of the running daemon's simulated site (config from `writeSiteConfig`), as an
 * installer with the stickers would: the maintenance card, then `locks.attach` with the setup
 * code, through the control socket. Returns the device ids in sticker order.
 */
export async function attachSiteLocks(base: string): Promise<string[]> {
  const stickers = readFileSync(join(base, 'data', 'sim', 'stickers.txt'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' ') as [string, string]);
  const socket = join(base, 'run', 'control.sock');
  for (const [deviceId, setupCode] of stickers) {
    await callDaemon(socket, 'sim.card', { deviceId }, 30_000);
    await callDaemon(socket, 'locks.attach', { deviceId, setupCode }, 30_000);
  }
  return stickers.map(([deviceId]) => deviceId);
}

/**
 * What a test of a daemon against a broker and the reference cloud set up, torn down: the daemon
 * killed (and waited for), the cloud and the broker closed, the test's directory removed.
 */
export async function closeSite(s: {
  daemon?: Proc | undefined;
  cloud?: ReferenceCloud | undefined;
  broker?: { close(): Promise<unknown> } | undefined;
  base?: string | undefined;
}): Promise<void> {
  if (s.daemon) {
    s.daemon.child.kill('SIGKILL');
    await s.daemon.exit;
  }
  await s.cloud?.close();
  await s.broker?.close();
  if (s.base) rmSync(s.base, { recursive: true, force: true });
}
