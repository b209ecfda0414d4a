import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Clock } from '../../src/base/clock.js';
import type { Random } from '../../src/base/random.js';

/**
 * The reference cloud's MQTT session with the broker, kept apart from what the cloud does with the
 * messages: mutual TLS with the cloud's own certificate, a persistent session so that the broker
 * keeps QoS 1 messages while the cloud is away, and the one subscription that covers every hub.
 */

/** Everything under every hub's base: `ks/hubs/{hubId}/...`. */
export const CLOUD_SUBSCRIPTION = 'ks/hubs/+/#';

export interface CloudConnectOptions {
  /** `mqtts://host:port`. */
  url: string;
  /** PEM: the CA the broker's certificate must chain to (the only one trusted). */
  ca: string | Buffer;
  /** PEM: the cloud's client certificate and key. */
  cert: string | Buffer;
  key: string | Buffer;
  /** The name the broker's certificate must carry, whatever host `url` names. */
  serverName: string;
  /** 5 (default) or 4 (MQTT 3.1.1). */
  protocolVersion?: 5 | 4;
  /** Default: `reference-cloud-` and random hex, fixed for this instance (its session survives reconnects). */
  clientId?: string;
  /**
   * Default false: a persistent session, so the broker keeps QoS 1 messages for the cloud while it
   * reconnects (and across broker restarts when the broker persists sessions).
   */
  clean?: boolean;
  /** MQTT 5: how long the broker keeps the session while the cloud is away. Default 3600. */
  sessionExpirySec?: number;
  /** The first connection must be up within this. Default 10,000. */
  connectTimeoutMs?: number;
  /** Wait between reconnect attempts after the first connection. Default 500. */
  reconnectPeriodMs?: number;
  keepaliveSec?: number;
}

export interface SessionEvents {
  message(topic: string, payload: Buffer, retained: boolean): void;
  /** Every CONNACK, the first and each reconnect. */
  connected(): void;
  error(e: Error): void;
}

/** A client that starts connecting at once; `subscribeCloud` waits until it is usable. */
export function openCloudClient(o: CloudConnectOptions, random: Random, on: SessionEvents): MqttClient {
  const protocolVersion = o.protocolVersion ?? 5;
  const clean = o.clean ?? false;
  const opts: IClientOptions & { minVersion: 'TLSv1.2' } = {
    ca: o.ca,
    cert: o.cert,
    key: o.key,
    servername: o.serverName,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    protocolVersion,
    clientId: o.clientId ?? `reference-cloud-${Buffer.from(random.bytes(4)).toString('hex')}`,
    clean,
    keepalive: o.keepaliveSec ?? 30,
    connectTimeout: o.connectTimeoutMs ?? 10_000,
    reconnectPeriod: o.reconnectPeriodMs ?? 500,
    resubscribe: true,
    ...(protocolVersion === 5 && !clean ? { properties: { sessionExpiryInterval: o.sessionExpirySec ?? 3600 } } : {}),
  };
  const client = connect(o.url, opts);
  client.on('message', (topic, payload, packet) => on.message(topic, payload, packet.retain));
  client.on('connect', () => {
    // No Nagle: a command is one small write that must leave at once (the hub does the same).
    (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    on.connected();
  });
  client.on('error', (e) => on.error(e));
  return client;
}

/** Wait for the first CONNACK, then subscribe to every hub's topics at QoS 1; throws when either fails. */
export async function subscribeCloud(client: MqttClient, o: CloudConnectOptions, clock: Clock): Promise<void> {
  await firstConnect(client, clock, o.connectTimeoutMs ?? 10_000);
  const grants = await client.subscribeAsync(CLOUD_SUBSCRIPTION, {
    qos: 1,
    // MQTT 5: do not receive our own commands and syncs back.
    ...((o.protocolVersion ?? 5) === 5 ? { nl: true } : {}),
  });
  const refused = grants.find((g) => g.qos > 2);
  if (!grants.length || refused) {
    throw new Error(`the broker refused the subscription to ${CLOUD_SUBSCRIPTION} (code ${refused?.qos ?? 'none'})`);
  }
}

/** Resolve on the first CONNACK; reject on an error, a close or a timeout before it. */
function firstConnect(client: MqttClient, clock: Clock, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      clock.clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
    };
    const onConnect = () => {
      cleanup();
      resolve();
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onClose = () => onError(new Error('the connection closed before the broker accepted it'));
    const timer = clock.setTimeout(() => onError(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}
