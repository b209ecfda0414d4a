import { isIP } from 'node:net';
import {
  checkServerIdentity,
  createSecureContext,
  type SecureContext,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import type { IClientOptions } from 'mqtt';
import { HubError } from '../base/errors.js';
import type { StatusPayload } from '../contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION, ID_PATTERN } from '../contract/mqtt-topics.js';
import { errorReason } from './mqtt-connection.js';

/**
 * How the hub reaches its broker, checked before the first attempt: an mqtts:// URL only, a hub id
 * that is a topic level, TLS material that loads, the pinned server name on every socket and the
 * MQTT session options with the last will. Every connection the client opens (reconnects and
 * credential switches alike) is built from these, so none can fall back to weaker settings.
 */

export interface BrokerEndpoint {
  host: string;
  port: number;
}

/** The MQTT settings every connection of one client shares. */
export interface SessionSettings {
  protocolVersion: 5 | 4;
  keepaliveSec: number;
  sessionExpirySec: number;
  connectTimeoutMs: number;
}

/** Refuses a hub id that could not be the `{hubId}` level of `ks/hubs/{hubId}/`. */
export function checkHubId(hubId: string): void {
  if (!new RegExp(ID_PATTERN).test(hubId)) {
    throw new HubError('uplink.bad-hub-id', `The hub id ${JSON.stringify(hubId)} cannot be an MQTT topic level.`, {
      hint: 'Use the CN of the hub certificate: 1-64 characters of A-Za-z0-9._:- (no /, + or #).',
    });
  }
}

/** The broker's host and port from `mqtts://host[:port]` (8883 by default); any other scheme is refused. */
export function brokerEndpoint(rawUrl: string): BrokerEndpoint {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new HubError('uplink.bad-url', `The broker URL ${JSON.stringify(rawUrl)} is not a URL.`, {
      hint: 'Write it as mqtts://host:8883.',
    });
  }
  if (url.protocol !== 'mqtts:') {
    throw new HubError(
      'uplink.insecure-url',
      `The broker URL uses ${url.protocol.replace(/:$/, '')}://; the hub connects over mutual TLS only (mqtts://).`,
      { hint: 'Write it as mqtts://host:8883. There is no plaintext (mqtt://, ws://) fallback, by design.' },
    );
  }
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? 8883 : Number(url.port) };
}

/** The material a connection presents: `ca` the only CA trusted, TLS ≥ 1.2. Throws HubError `uplink.tls-material`. */
export function tlsContext(ca: Buffer, cert: Buffer, key: Buffer): SecureContext {
  try {
    return createSecureContext({ ca, cert, key, minVersion: 'TLSv1.2' });
  } catch (e) {
    throw new HubError('uplink.tls-material', `The hub's certificate, key or CA cannot be used: ${errorReason(e)}.`, {
      hint: 'Check the uplink certificate, key and CA files (PEM; the key must belong to the certificate).',
    });
  }
}

/** A TLS socket to the broker whose certificate must name `serverName`, whatever host the URL gave. */
export function dialBroker(endpoint: BrokerEndpoint, serverName: string, context: SecureContext): TLSSocket {
  const socket = tlsConnect({
    host: endpoint.host,
    port: endpoint.port,
    secureContext: context,
    rejectUnauthorized: true,
    // SNI carries names only; an IP is still checked against the certificate's IP SANs.
    ...(isIP(serverName) === 0 ? { servername: serverName } : {}),
    checkServerIdentity: (_host, cert) => checkServerIdentity(serverName, cert),
  });
  socket.setNoDelay(true);
  socket.once('connect', () => socket.setNoDelay(true));
  return socket;
}

/**
 * mqtt.js options for one connection: a persistent session under the hub id, the retained
 * `status` offline as last will, and mqtt.js's own reconnect and resubscribe off (the client
 * does both itself, see UplinkClient).
 */
/** The broker's window of unacknowledged messages to the hub (MQTT 5 receiveMaximum). */
export const RECEIVE_MAXIMUM = 64;

const noLog = (): void => {};

export function sessionOptions(hubId: string, statusTopic: string, s: SessionSettings): IClientOptions {
  const offline: StatusPayload = { v: CONTRACT_VERSION, state: 'offline', reason: 'connection-lost' };
  return {
    clientId: hubId,
    protocolVersion: s.protocolVersion,
    clean: false,
    keepalive: s.keepaliveSec,
    reconnectPeriod: 0,
    connectTimeout: s.connectTimeoutMs,
    resubscribe: false,
    queueQoSZero: false,
    // No table of 65,536 pre-made 2-byte Buffers for packet ids and lengths (mqtt-packet's
    // default: ~6 MB of heap for the daemon's life); each packet makes its own two bytes.
    writeCache: false,
    // mqtt.js traces each packet through the \`debug\` module (~10 calls per packet, each building
    // its arguments); without DEBUG set those lines go nowhere, so the calls are not made at all.
    ...(process.env.DEBUG ? {} : { log: noLog }),
    // The keepalive's PINGREQ goes every keepalive period, busy or not, instead of the timer being
    // cleared and set again for every packet sent and acknowledged (three times per remote open):
    // one small packet per period under load; a dead connection is still found after 1.5 periods
    // without PINGRESP.
    reschedulePings: false,
    will: { topic: statusTopic, payload: Buffer.from(JSON.stringify(offline)), qos: 1, retain: true },
    // MQTT 5: at most this many unacknowledged messages from the broker at once (the hub
    // acknowledges each once it is recorded; src/app/inbound.ts bounds the work behind them).
    ...(s.protocolVersion === 5
      ? { properties: { sessionExpiryInterval: s.sessionExpirySec, receiveMaximum: RECEIVE_MAXIMUM } }
      : {}),
  };
}
