import { readFileSync } from 'node:fs';
import { type DevPkiPaths, readDevOtpKey } from '../../provisioning/dev-pki.js';
import type { HubConfig } from '../../src/config/schema.js';
import { type CloudConnectOptions, ReferenceCloud } from './cloud.js';

/**
 * The two halves of a development site's cloud line, written once for the demo, the benches and
 * the tests: the reference cloud connected with the dev PKI's cloud certificate, and the hub's
 * `uplink` section pointing at the same broker with the dev PKI's hub certificate. Both name the
 * broker `localhost`, the name the dev PKI's broker certificate carries.
 */

export interface ConnectReferenceCloudOptions {
  /** 5 or 4 (MQTT 3.1.1, e.g. for the embedded aedes broker); the cloud's default (5) when absent. */
  protocolVersion?: 5 | 4;
  /** The hub whose remote commands the cloud signs with the dev PKI's OTP key (the hub reads the same file). */
  otpHubId?: string;
}

/**
 * `ReferenceCloud.connect`'s options for `brokerUrl` with the dev PKI's cloud certificate (mutual
 * TLS), for a caller that holds the cloud before it connects (e.g. to close it in a `finally`).
 */
export function devCloudConnection(brokerUrl: string, pki: DevPkiPaths, protocolVersion?: 5 | 4): CloudConnectOptions {
  const pem = (p: string) => readFileSync(p);
  return {
    url: brokerUrl,
    ca: pem(pki.ca.cert),
    cert: pem(pki.cloud.cert),
    key: pem(pki.cloud.key),
    serverName: 'localhost',
    ...(protocolVersion === undefined ? {} : { protocolVersion }),
  };
}

/** The reference cloud connected to `brokerUrl` with the dev PKI's cloud certificate (devCloudConnection). */
export async function connectReferenceCloud(
  brokerUrl: string,
  pki: DevPkiPaths,
  o: ConnectReferenceCloudOptions = {},
): Promise<ReferenceCloud> {
  const cloud = new ReferenceCloud();
  await cloud.connect(devCloudConnection(brokerUrl, pki, o.protocolVersion));
  if (o.otpHubId !== undefined) cloud.setOtpKey(o.otpHubId, readDevOtpKey(pki.otpKey));
  return cloud;
}

/**
 * The hub's `uplink` config section (as a startDaemon override) for `brokerUrl` with the dev PKI's
 * hub certificate; `extra` sets the rest (MQTT version, reconnect timings, health interval), the
 * schema's defaults filling what it leaves out.
 */
export function devUplinkConfig(
  brokerUrl: string,
  pki: DevPkiPaths,
  extra: Partial<HubConfig['uplink']> = {},
): HubConfig['uplink'] {
  return {
    enabled: true,
    url: brokerUrl,
    caFile: pki.ca.cert,
    certFile: pki.hub.cert,
    keyFile: pki.hub.key,
    serverName: 'localhost',
    ...extra,
  } as HubConfig['uplink'];
}
