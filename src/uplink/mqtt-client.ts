import type { SecureContext } from 'node:tls';
import type { Clock } from '../base/clock.js';
import type { Random } from '../base/random.js';
import type { StatusPayload } from '../contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION, topics } from '../contract/mqtt-topics.js';
import type { Logger } from '../log/logger.js';
import {
  type BrokerEndpoint,
  brokerEndpoint,
  checkHubId,
  dialBroker,
  sessionOptions,
  tlsContext,
} from './broker-options.js';
import { type InboundListener, InboundTopics } from './inbound-topics.js';
import { BrokerConnection, type PublishResult, type SwitchResult } from './mqtt-connection.js';
import { ReconnectBackoff } from './reconnect-backoff.js';

export type { InboundTopicName } from './inbound-topics.js';
export type { PublishResult, SwitchResult } from './mqtt-connection.js';

export type UplinkState = 'connecting' | 'connected' | 'disconnected';

export interface UplinkStatus {
  state: UplinkState;
  /** The code of the last connection error (`ECONNREFUSED`, `ERR_TLS_CERT_ALTNAME_INVALID`, an MQTT reason code…). */
  lastError: string | number | null;
  /** Failed attempts since the last stable connection. */
  attempt: number;
  /** Wall-clock ms of the current connection's start; null when not connected. */
  connectedSince: number | null;
}

export interface UplinkClientOptions {
  /** `mqtts://host:port` (port 8883 by default). Nothing else: there is no plaintext fallback. */
  url: string;
  /** The CN of the hub's certificate: the MQTT client id and the topic base `ks/hubs/{hubId}/`. */
  hubId: string;
  /** PEM. The only CA trusted for the broker's certificate (the system store is not used). */
  ca: Buffer;
  /** PEM: the hub's client certificate and its private key. */
  cert: Buffer;
  key: Buffer;
  /** The name the broker's certificate must carry (SAN); pinned whatever host `url` names. */
  serverName: string;
  /** 5 (default) or 4 (MQTT 3.1.1). */
  protocolVersion?: 5 | 4;
  keepaliveSec?: number;
  /** MQTT 5: how long the broker keeps the hub's session (queued commands) while it is away. */
  sessionExpirySec?: number;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** A connection that lasted this long resets the backoff (a flapping one does not). */
  stableAfterMs?: number;
  connectTimeoutMs?: number;
  /** Bound on each step of `stop()` (offline status, clean disconnect). */
  stopTimeoutMs?: number;
  clock: Clock;
  random: Random;
  log: Logger;
  /** The package version, announced in `status`. */
  version: string;
  /** When the daemon started, wall-clock ms. */
  startedAt: number;
  /** No payload larger than this is handed to the broker (`uplink.maxMessageBytes`); default no limit. */
  maxMessageBytes?: number;
  /** A connection error in words (which file, which name: src/uplink/tls-errors.ts), logged with its code. */
  explain?: (code: string | number | null) => string | undefined;
}

const DEFAULTS = {
  protocolVersion: 5 as 5 | 4,
  keepaliveSec: 30,
  sessionExpirySec: 3600,
  reconnectBaseMs: 1000,
  reconnectMaxMs: 60_000,
  stableAfterMs: 10_000,
  connectTimeoutMs: 15_000,
  stopTimeoutMs: 2_000,
  maxMessageBytes: Number.POSITIVE_INFINITY,
  explain: (): string | undefined => undefined,
};

/** A relative topic the hub may publish to: levels of printable ASCII, no wildcards, none empty. */
function validRelativeTopic(t: string): boolean {
  return t.length <= 256 && /^[\x21-\x7e]+$/.test(t) && !/[+#]/.test(t) && t.split('/').every((l) => l !== '');
}

/**
 * The hub's MQTT connection to the cloud broker, over mutual TLS only: the CA and the server name
 * are pinned, TLS ≥ 1.2, the client certificate is the hub's identity. `clean: false` with a
 * session expiry (MQTT 5), QoS 1 everywhere, the last will `status` offline.
 *
 * mqtt.js's own reconnect and its in-memory offline queue are not used: each connection is a
 * fresh MqttClient, and when it ends every publish still waiting for a PUBACK resolves as a
 * transient failure. What must survive is in the SQLite outbox and is published again from
 * there (the Publisher). Reconnection is exponential backoff with full jitter, forever.
 */
export class UplinkClient {
  readonly hubId: string;
  readonly #o: Required<Omit<UplinkClientOptions, 'ca' | 'cert' | 'key' | 'url'>>;
  readonly #endpoint: BrokerEndpoint;
  readonly #ca: Buffer;
  /** The TLS material of every new connection (replaced by a successful `switchCredentials`). */
  #context: SecureContext;
  readonly #topics: { status: string; base: string };
  readonly #inbound: InboundTopics;
  readonly #listeners = { connected: new Set<() => void>(), disconnected: new Set<() => void>() };
  readonly #backoff: ReconnectBackoff;
  #conn: BrokerConnection | undefined;
  #state: UplinkState = 'disconnected';
  #lastError: string | number | null = null;
  /** A `switchCredentials` connection waiting for its CONNACK. */
  #candidate: BrokerConnection | undefined;
  #started = false;
  #stopped = false;

  constructor(opts: UplinkClientOptions) {
    const { url, ca, cert, key, ...rest } = opts;
    this.#o = { ...DEFAULTS, ...rest };
    const { hubId } = opts;
    checkHubId(hubId);
    this.hubId = hubId;
    this.#endpoint = brokerEndpoint(url);
    this.#ca = Buffer.from(ca);
    this.#context = tlsContext(ca, cert, key);
    this.#topics = { status: topics.status(hubId), base: `ks/hubs/${hubId}/` };
    this.#inbound = new InboundTopics(hubId, this.#o.log);
    this.#backoff = new ReconnectBackoff(this.#o);
  }

  /** Start connecting (and keep reconnecting until `stop()`). */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#connect();
  }

  state(): UplinkStatus {
    const c = this.#conn;
    return {
      state: this.#state,
      lastError: this.#lastError,
      attempt: this.#backoff.attempt,
      connectedSince: this.#state === 'connected' ? (c?.connectedWall ?? null) : null,
    };
  }

  get connected(): boolean {
    return this.#state === 'connected';
  }

  /** 'connected': subscribed and `status` online sent, on every (re)connect. 'disconnected': a connection ended. */
  on(event: 'connected' | 'disconnected', listener: () => void): () => void {
    this.#listeners[event].add(listener);
    return () => this.#listeners[event].delete(listener);
  }

  /** Inbound messages on the hub's own `cmd`, `sync` and `cert/response` topics (anything else is dropped). */
  onMessage(listener: InboundListener): () => void {
    return this.#inbound.add(listener);
  }

  /**
   * Publish at QoS 1 on `ks/hubs/{hubId}/{topic}`. Resolves when the broker acknowledged it
   * (`ok`), refused it (`permanent: true`: an MQTT 5 PUBACK reason ≥ 0x80 such as 0x87 not
   * authorized), or when it could not be delivered now (`permanent: false`: not connected, or the
   * connection ended before the PUBACK). Nothing is queued here for later.
   */
  publish(topic: string, payload: string | Buffer, opts: { retain?: boolean } = {}): Promise<PublishResult> {
    if (!validRelativeTopic(topic)) return Promise.resolve({ ok: false, permanent: true, code: 'topic.invalid' });
    const bytes = Buffer.byteLength(payload);
    const limit = this.#o.maxMessageBytes;
    if (bytes > limit) {
      // The last guard: answers and pages are sized before they get here (Inbox, listLocks, event
      // batches); a broker would drop it, or close the connection, without telling the cloud.
      this.#o.log.error({ topic, bytes, limit }, 'uplink: message larger than uplink.maxMessageBytes not published');
      return Promise.resolve({ ok: false, permanent: true, code: 'message.too-large' });
    }
    const c = this.#conn;
    // Live is enough: the messages a persistent session kept arrive right after the CONNACK, before
    // the hub says it is online, and their answers (refusals among them) must go out too.
    if (!c || c.closed || !c.live) {
      return Promise.resolve({ ok: false, permanent: false, code: 'not-connected' });
    }
    return c.publish(this.#topics.base + topic, payload, opts.retain ?? false);
  }

  /**
   * Use a new certificate and key (rotation), without a gap: a second connection with the same
   * client id presents them while the current one stays up. When the broker accepts it, it ends
   * the current one itself (session takeover: the persistent session — subscriptions, queued
   * and unacknowledged QoS 1 messages — carries over) and the new connection becomes this
   * client's, with the new material for every later reconnect; publishes that were waiting on
   * the old one resolve as transient failures and are published again from the outbox. When the
   * broker refuses it (TLS alert, CONNACK error, timeout), nothing changes: the current connection
   * and the old material stay. Only while connected; one switch at a time.
   */
  switchCredentials(cert: Buffer, key: Buffer): Promise<SwitchResult> {
    if (this.#stopped || !this.#started) return Promise.resolve({ ok: false, code: 'stopped' });
    if (this.#candidate) return Promise.resolve({ ok: false, code: 'busy' });
    const current = this.#conn;
    if (!current || current.closed || this.#state !== 'connected') {
      return Promise.resolve({ ok: false, code: 'not-connected' });
    }
    let context: SecureContext;
    try {
      context = tlsContext(this.#ca, cert, key);
    } catch {
      return Promise.resolve({ ok: false, code: 'tls-material' });
    }
    return new Promise<SwitchResult>((resolve) => {
      const conn = this.#open(context, resolve);
      if (conn && !conn.closed) this.#candidate = conn;
    });
  }

  /** Say `status` offline (shutdown) if connected, disconnect cleanly (no last will), stop reconnecting. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#backoff.cancel();
    const candidate = this.#candidate;
    if (candidate && !candidate.closed) {
      candidate.abort();
      this.#closed(candidate);
    }
    const c = this.#conn;
    if (c && !c.closed) {
      // Past the CONNACK (even if `status` online is still on its way): say offline, then DISCONNECT.
      const live = c.live;
      if (live) {
        const offline: StatusPayload = {
          v: CONTRACT_VERSION,
          state: 'offline',
          reason: 'shutdown',
          at: new Date(this.#o.clock.now()).toISOString(),
        };
        const r = await this.#within(c.publish(this.#topics.status, JSON.stringify(offline), true));
        if (!r?.ok) this.#o.log.warn({ code: r ? r.code : 'timeout' }, 'uplink: offline status not acknowledged');
      }
      const ended = c.ended();
      // A clean DISCONNECT (no last will) once the publishes in flight are answered, within a bound.
      if (live && !c.closed) {
        c.disconnect();
        await this.#within(ended);
      }
      if (!c.closed) {
        c.abort();
        await this.#within(ended);
      }
      this.#closed(c);
    }
    this.#state = 'disconnected';
    this.#o.log.info('uplink: stopped');
  }

  // ----- connection life cycle -------------------------------------------------------------

  #connect(): void {
    if (this.#stopped) return;
    // A switch under way decides what comes next (its connection, or a reconnect when it fails).
    if (this.#candidate) return;
    this.#state = 'connecting';
    this.#conn = this.#open(this.#context, undefined);
  }

  /**
   * A new connection attempt presenting `context`. With `candidate` it is a switch: it becomes
   * the client's connection only once the broker accepted it.
   */
  #open(context: SecureContext, candidate: ((r: SwitchResult) => void) | undefined): BrokerConnection {
    const options = sessionOptions(this.hubId, this.#topics.status, this.#o);
    const conn = new BrokerConnection(context, candidate, this.#o.log);
    if (!candidate) this.#conn = conn;
    const started = conn.open(options, (ctx) => dialBroker(this.#endpoint, this.#o.serverName, ctx), {
      connect: (sessionPresent) => {
        if (conn.candidate) this.#promote(conn);
        void this.#connected(conn, sessionPresent);
      },
      close: () => this.#closed(conn),
      message: (topic, payload) => this.#inbound.deliver(topic, payload),
    });
    if (!started) this.#closed(conn);
    return conn;
  }

  /**
   * A switch's connection was accepted: the broker has ended the previous one (same client id),
   * so end it here too (its waiting publishes resolve as transient failures) and carry on with
   * the new connection and its material.
   */
  #promote(conn: BrokerConnection): void {
    const settle = conn.candidate;
    conn.candidate = undefined;
    if (this.#candidate === conn) this.#candidate = undefined;
    if (this.#stopped) {
      conn.abort();
      settle?.({ ok: false, code: 'stopped' });
      return;
    }
    const previous = this.#conn;
    this.#backoff.cancel();
    this.#conn = conn;
    this.#context = conn.context;
    if (previous && !previous.closed) {
      previous.lastError = 'switched';
      this.#closed(previous);
    }
    this.#o.log.info('uplink: new certificate accepted by the broker; switched connections');
    settle?.({ ok: true });
  }

  async #connected(conn: BrokerConnection, sessionPresent: boolean): Promise<void> {
    if (conn !== this.#conn || conn.closed) return;
    conn.connectedAt = this.#o.clock.monotonic();
    conn.connectedWall = this.#o.clock.now();
    const subscribed = await conn.subscribe(this.#inbound.topics);
    if (conn.closed) return;
    if (subscribed !== null) {
      this.#o.log.error(
        { problem: subscribed },
        'uplink: subscribing to cmd, sync and cert/response failed; commands will not arrive',
      );
    }
    const online: StatusPayload = {
      v: CONTRACT_VERSION,
      state: 'online',
      version: this.#o.version,
      startedAt: new Date(this.#o.startedAt).toISOString(),
      at: new Date(this.#o.clock.now()).toISOString(),
    };
    const r = await conn.publish(this.#topics.status, JSON.stringify(online), true);
    if (conn.closed || conn !== this.#conn || this.#stopped) return;
    if (!r.ok) this.#o.log.error({ code: r.code }, 'uplink: the online status was not accepted');
    this.#state = 'connected';
    this.#lastError = null;
    this.#o.log.info(
      {
        broker: `${this.#endpoint.host}:${this.#endpoint.port}`,
        protocolVersion: this.#o.protocolVersion,
        sessionPresent,
      },
      'uplink: connected',
    );
    this.#emit('connected');
  }

  /** The end of a connection (or of an attempt): settle what waited on it, then schedule the next. */
  #closed(conn: BrokerConnection): void {
    if (!conn.markClosed(this.#stopped ? 'stopped' : 'connection-lost')) return;
    if (conn.candidate) {
      // A switch the broker refused: the current connection and material stay.
      const settle = conn.candidate;
      conn.candidate = undefined;
      if (this.#candidate === conn) this.#candidate = undefined;
      this.#o.log.warn({ code: conn.lastError ?? 'closed' }, 'uplink: the new certificate was not accepted');
      settle({ ok: false, code: conn.lastError ?? 'closed' });
      // The old connection may have ended meanwhile, its reconnect deferred to this outcome.
      if (!this.#stopped && !this.#conn && !this.#backoff.scheduled) this.#backoff.schedule(() => this.#connect(), 0);
      return;
    }
    if (conn !== this.#conn) return;
    this.#conn = undefined;
    const wasConnected = this.#state === 'connected';
    if (conn.lastError !== null) this.#lastError = conn.lastError;
    else if (wasConnected || this.#lastError === null) this.#lastError = 'closed';
    this.#state = 'disconnected';
    if (this.#stopped) return;
    const o = this.#o;
    if (this.#candidate) {
      // A switch is under way: most likely the broker ended this connection because the new one
      // took over the session. The switch's outcome decides what comes next (see #closed above).
      o.log.info({ code: this.#lastError }, 'uplink: the current connection ended during a certificate switch');
      if (wasConnected) this.#emit('disconnected');
      return;
    }
    const delay = this.#backoff.nextDelay(conn.connectedAt);
    o.log.warn(
      { code: this.#lastError, why: o.explain(this.#lastError), attempt: this.#backoff.attempt, retryInMs: delay },
      wasConnected ? 'uplink: connection lost; reconnecting' : 'uplink: cannot connect to the broker; retrying',
    );
    if (wasConnected) this.#emit('disconnected');
    this.#backoff.schedule(() => this.#connect(), delay);
  }

  #emit(event: 'connected' | 'disconnected'): void {
    for (const l of [...this.#listeners[event]]) {
      try {
        l();
      } catch (e) {
        this.#o.log.error({ err: e, event }, 'uplink: listener failed');
      }
    }
  }

  /** `p`, or undefined after `stopTimeoutMs`. */
  #within<T>(p: Promise<T>): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve) => {
      const t = this.#o.clock.setTimeout(() => resolve(undefined), this.#o.stopTimeoutMs);
      p.then((v) => {
        this.#o.clock.clearTimeout(t);
        resolve(v);
      });
    });
  }
}
