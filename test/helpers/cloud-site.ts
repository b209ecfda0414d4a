import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DevPkiPaths, readDevOtpKey } from '../../provisioning/dev-pki.js';
import { ReferenceCloud } from '../../sim/cloud/cloud.js';

const pem = (p: string) => readFileSync(p);

/** The reference cloud on `brokerUrl` with the dev PKI's cloud certificate, signing commands for `hubId`. */
export async function connectCloud(brokerUrl: string, pki: DevPkiPaths, hubId: string): Promise<ReferenceCloud> {
  const cloud = new ReferenceCloud();
  await cloud.connect({
    url: brokerUrl,
    ca: pem(pki.ca.cert),
    cert: pem(pki.cloud.cert),
    key: pem(pki.cloud.key),
    serverName: 'localhost',
  });
  // Commands go OTP-signed with the hub's key (the hub reads the same otp.key).
  cloud.setOtpKey(hubId, readDevOtpKey(pki.otpKey));
  return cloud;
}

export interface SiteConfig {
  base: string;
  brokerUrl: string;
  pki: DevPkiPaths;
  locks: number;
  seed: string;
  reconnectBaseMs?: number;
  /** Extra lines under `commands:` (indented by the caller's two spaces). */
  commands?: string[];
}

/**
 * Write `<base>/config.yaml` for a daemon hosting a simulated site whose uplink uses the dev PKI's
 * hub certificate and OTP key against `brokerUrl`; returns its path.
 */
export function writeSiteConfig(o: SiteConfig): string {
  const path = join(o.base, 'config.yaml');
  writeFileSync(
    path,
    [
      `dataDir: ${o.base}/data`,
      `runDir: ${o.base}/run`,
      'simulation:',
      '  enabled: true',
      `  locks: ${o.locks}`,
      `  seed: ${o.seed}`,
      'uplink:',
      '  enabled: true',
      `  url: ${o.brokerUrl}`,
      `  caFile: ${o.pki.ca.cert}`,
      `  certFile: ${o.pki.hub.cert}`,
      `  keyFile: ${o.pki.hub.key}`,
      '  serverName: localhost',
      `  reconnectBaseMs: ${o.reconnectBaseMs ?? 200}`,
      '  reconnectMaxMs: 1000',
      'commands:',
      `  otpKeyFile: ${o.pki.otpKey}`,
      ...(o.commands ?? []),
      '',
    ].join('\n'),
  );
  return path;
}
