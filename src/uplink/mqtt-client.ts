import { isIP } from 'node:net';
import {
  checkServerIdentity,
  createSecureContext,
  type SecureContext,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import { type IClientOptions, MqttClient } from 'mqtt';
import type { Clock, TimerHandle } from '../base/clock.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { CONTRACT_VERSION, ID_PATTERN, type StatusPayload, topics } from '../contract/mqtt.js';
import type { Logger } from '../log/logger.js';

/** The topics the cloud sends on, relative to `ks/hubs/{hubId}/`. */
export type InboundTopicName = 'cmd' | 'sync' | 'cert/response';

/** The outcome of `switchCredentials`. */
export type SwitchResult = { ok: true } | { ok: false; code: string | number };

export type PublishResult = { ok: true } | { ok: false; permanent: boolean; code: string | number };

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
};

/**
 * MQTT 5 PUBACK reason codes ≥ 0x80 that say "not now" rather than "never": server busy, server
 * shutting down, packet identifier in use, message rate too high, quota exceeded. Every other
 * code ≥ 0x80 (0x87 not authorized, 0x90 topic name invalid, 0x99 payload format invalid…) is
 * permanent for that message.
 */
const TRANSIENT_REASONS: ReadonlySet<number> = new Set([0x89, 0x8b, 0x91, 0x96, 0x97]);

interface Connection {
  mc: MqttClient;
  /** Settles every publish still waiting for its PUBACK. */
  pending: Set<(r: PublishResult) => void>;
  closed: boolean;
  onClosed: Set<() => void>;
  /** Monotonic ms of the CONNACK (for the backoff reset); wall ms for status. */
  connectedAt: number | null;
  connectedWall: number | null;
  lastError: string | number | null;
  socket: TLSSocket | undefined;
  /** The TLS material this connection presents. */
  context: SecureContext;
  /** Set while this is a `switchCredentials` attempt not yet accepted by the broker. */
  candidate: ((r: SwitchResult) => void) | undefined;
}

function errorCode(e: unknown): string | number {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' || typeof code === 'number') return code;
  return 'error';
}

/** A short, secret-free reason for logs (TLS and MQTT errors never carry key material; bounded anyway). */
function errorReason(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).slice(0, 200);
}

function classify(e: unknown): PublishResult {
  const code = errorCode(e);
  if (typeof code === 'number') return { ok: false, permanent: code >= 0x80 && !TRANSIENT_REASONS.has(code), code };
  return { ok: false, permanent: false, code };
}

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
  readonly #host: string;
  readonly #port: number;
  readonly #ca: Buffer;
  /** The TLS material of every new connection (replaced by a successful `switchCredentials`). */
  #context: SecureContext;
  readonly #topics: { status: string; cmd: string; sync: string; certResponse: string; base: string };
  readonly #messageListeners = new Set<(topic: InboundTopicName, payload: Buffer) => void | Promise<void>>();
  readonly #listeners = { connected: new Set<() => void>(), disconnected: new Set<() => void>() };
  #conn: Connection | undefined;
  #state: UplinkState = 'disconnected';
  #lastError: string | number | null = null;
  #attempt = 0;
  #timer: TimerHandle | undefined;
  /** A `switchCredentials` connection waiting for its CONNACK. */
  #candidate: Connection | undefined;
  #started = false;
  #stopped = false;

  constructor(opts: UplinkClientOptions) {
    const { url: rawUrl, ca, cert, key, ...rest } = opts;
    this.#o = { ...DEFAULTS, ...rest };
    const { hubId } = opts;
    if (!new RegExp(ID_PATTERN).test(hubId)) {
      throw new HubError('uplink.bad-hub-id', `The hub id ${JSON.stringify(hubId)} cannot be an MQTT topic level.`, {
        hint: 'Use the CN of the hub certificate: 1-64 characters of A-Za-z0-9._:- (no /, + or #).',
      });
    }
    this.hubId = hubId;
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
    this.#host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.#port = url.port === '' ? 8883 : Number(url.port);
    this.#ca = Buffer.from(ca);
    try {
      this.#context = createSecureContext({ ca, cert, key, minVersion: 'TLSv1.2' });
    } catch (e) {
      throw new HubError('uplink.tls-material', `The hub's certificate, key or CA cannot be used: ${errorReason(e)}.`, {
        hint: 'Check the uplink certificate, key and CA files (PEM; the key must belong to the certificate).',
      });
    }
    this.#topics = {
      status: topics.status(hubId),
      cmd: topics.cmd(hubId),
      sync: topics.sync(hubId),
      certResponse: topics.certResponse(hubId),
      base: `ks/hubs/${hubId}/`,
    };
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
      attempt: this.#attempt,
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
  onMessage(listener: (topic: InboundTopicName, payload: Buffer) => void | Promise<void>): () => void {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  /**
   * Publish at QoS 1 on `ks/hubs/{hubId}/{topic}`. Resolves when the broker acknowledged it
   * (`ok`), refused it (`permanent: true`: an MQTT 5 PUBACK reason ≥ 0x80 such as 0x87 not
   * authorized), or when it could not be delivered now (`permanent: false`: not connected, or the
   * connection ended before the PUBACK). Nothing is queued here for later.
   */
  publish(topic: string, payload: string | Buffer, opts: { retain?: boolean } = {}): Promise<PublishResult> {
    if (!validRelativeTopic(topic)) return Promise.resolve({ ok: false, permanent: true, code: 'topic.invalid' });
    const c = this.#conn;
    if (!c || c.closed || this.#state !== 'connected') {
      return Promise.resolve({ ok: false, permanent: false, code: 'not-connected' });
    }
    return this.#publishOn(c, this.#topics.base + topic, payload, opts.retain ?? false);
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
      context = createSecureContext({ ca: this.#ca, cert, key, minVersion: 'TLSv1.2' });
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
    this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const candidate = this.#candidate;
    if (candidate && !candidate.closed) {
      candidate.mc.end(true);
      this.#closed(candidate);
    }
    const c = this.#conn;
    if (c && !c.closed) {
      // Past the CONNACK (even if `status` online is still on its way): say offline, then DISCONNECT.
      const live = c.mc.connected;
      if (live) {
        const offline: StatusPayload = {
          v: CONTRACT_VERSION,
          state: 'offline',
          reason: 'shutdown',
          at: new Date(this.#o.clock.now()).toISOString(),
        };
        const r = await this.#within(this.#publishOn(c, this.#topics.status, JSON.stringify(offline), true));
        if (!r?.ok) this.#o.log.warn({ code: r ? r.code : 'timeout' }, 'uplink: offline status not acknowledged');
      }
      const ended = new Promise<void>((resolve) => {
        if (c.closed) resolve();
        else c.onClosed.add(resolve);
      });
      // A clean DISCONNECT (no last will) once the publishes in flight are answered, within a bound.
      if (live && !c.closed) {
        c.mc.end(false, {}, () => {});
        await this.#within(ended);
      }
      if (!c.closed) {
        c.mc.end(true);
        await this.#within(ended);
      }
      this.#closed(c);
    }
    this.#state = 'disconnected';
    this.#o.log.info('uplink: stopped');
  }

  // ----- connection life cycle -------------------------------------------------------------

  #connect(): void {
    this.#timer = undefined;
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
  #open(context: SecureContext, candidate: ((r: SwitchResult) => void) | undefined): Connection {
    const o = this.#o;
    const offline: StatusPayload = { v: CONTRACT_VERSION, state: 'offline', reason: 'connection-lost' };
    const options: IClientOptions = {
      clientId: this.hubId,
      protocolVersion: o.protocolVersion,
      clean: false,
      keepalive: o.keepaliveSec,
      reconnectPeriod: 0,
      connectTimeout: o.connectTimeoutMs,
      resubscribe: false,
      queueQoSZero: false,
      will: { topic: this.#topics.status, payload: Buffer.from(JSON.stringify(offline)), qos: 1, retain: true },
      ...(o.protocolVersion === 5 ? { properties: { sessionExpiryInterval: o.sessionExpirySec } } : {}),
    };
    const conn: Connection = {
      mc: undefined as unknown as MqttClient,
      pending: new Set(),
      closed: false,
      onClosed: new Set(),
      connectedAt: null,
      connectedWall: null,
      lastError: null,
      socket: undefined,
      context,
      candidate,
    };
    if (!candidate) this.#conn = conn;
    try {
      conn.mc = new MqttClient(() => this.#openSocket(conn), options);
    } catch (e) {
      conn.lastError = errorCode(e);
      this.#closed(conn);
      return conn;
    }
    // An 'error' without a listener would throw: every error is recorded, and the 'close' that
    // follows decides what happens next.
    conn.mc.on('error', (e) => {
      conn.lastError = errorCode(e);
      this.#o.log.debug({ code: conn.lastError, reason: errorReason(e) }, 'uplink: connection error');
    });
    conn.mc.on('disconnect', (packet) => {
      conn.lastError = `disconnect:${packet.reasonCode ?? 0}`;
    });
    conn.mc.on('close', () => this.#closed(conn));
    conn.mc.on('connect', (connack) => {
      if (conn.candidate) this.#promote(conn);
      void this.#connected(conn, connack.sessionPresent);
    });
    conn.mc.on('message', (topic, payload) => this.#inbound(topic, payload));
    return conn;
  }

  /**
   * A switch's connection was accepted: the broker has ended the previous one (same client id),
   * so end it here too (its waiting publishes resolve as transient failures) and carry on with
   * the new connection and its material.
   */
  #promote(conn: Connection): void {
    const settle = conn.candidate;
    conn.candidate = undefined;
    if (this.#candidate === conn) this.#candidate = undefined;
    if (this.#stopped) {
      conn.mc.end(true);
      settle?.({ ok: false, code: 'stopped' });
      return;
    }
    const previous = this.#conn;
    this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#conn = conn;
    this.#context = conn.context;
    if (previous && !previous.closed) {
      previous.lastError = 'switched';
      this.#closed(previous);
    }
    this.#o.log.info('uplink: new certificate accepted by the broker; switched connections');
    settle?.({ ok: true });
  }

  #openSocket(conn: Connection): TLSSocket {
    const pinned = this.#o.serverName;
    const socket = tlsConnect({
      host: this.#host,
      port: this.#port,
      secureContext: conn.context,
      rejectUnauthorized: true,
      // SNI carries names only; an IP is still checked against the certificate's IP SANs.
      ...(isIP(pinned) === 0 ? { servername: pinned } : {}),
      checkServerIdentity: (_host, cert) => checkServerIdentity(pinned, cert),
    });
    socket.setNoDelay(true);
    socket.once('connect', () => socket.setNoDelay(true));
    conn.socket = socket;
    return socket;
  }

  async #connected(conn: Connection, sessionPresent: boolean): Promise<void> {
    if (conn !== this.#conn || conn.closed) return;
    conn.connectedAt = this.#o.clock.monotonic();
    conn.connectedWall = this.#o.clock.now();
    const subscribed = await this.#untilClosed(
      conn,
      new Promise<string | null>((resolve) => {
        const wanted = [this.#topics.cmd, this.#topics.sync, this.#topics.certResponse];
        conn.mc.subscribe(wanted, { qos: 1 }, (err, granted) => {
          if (err) return resolve(String(errorCode(err)));
          const refused = (granted ?? []).filter((g) => g.qos > 2).map((g) => g.topic);
          resolve(refused.length > 0 ? `refused: ${refused.join(', ')}` : null);
        });
      }),
    );
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
    const r = await this.#publishOn(conn, this.#topics.status, JSON.stringify(online), true);
    if (conn.closed || conn !== this.#conn || this.#stopped) return;
    if (!r.ok) this.#o.log.error({ code: r.code }, 'uplink: the online status was not accepted');
    this.#state = 'connected';
    this.#lastError = null;
    this.#o.log.info(
      { broker: `${this.#host}:${this.#port}`, protocolVersion: this.#o.protocolVersion, sessionPresent },
      'uplink: connected',
    );
    this.#emit('connected');
  }

  /** The end of a connection (or of an attempt): settle what waited on it, then schedule the next. */
  #closed(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
    for (const settle of [...conn.pending]) {
      settle({ ok: false, permanent: false, code: this.#stopped ? 'stopped' : 'connection-lost' });
    }
    for (const f of [...conn.onClosed]) f();
    try {
      conn.mc?.end(true);
    } catch {}
    if (conn.candidate) {
      // A switch the broker refused: the current connection and material stay.
      const settle = conn.candidate;
      conn.candidate = undefined;
      if (this.#candidate === conn) this.#candidate = undefined;
      this.#o.log.warn({ code: conn.lastError ?? 'closed' }, 'uplink: the new certificate was not accepted');
      settle({ ok: false, code: conn.lastError ?? 'closed' });
      // The old connection may have ended meanwhile, its reconnect deferred to this outcome.
      if (!this.#stopped && !this.#conn && this.#timer === undefined) {
        this.#timer = this.#o.clock.setTimeout(() => this.#connect(), 0);
      }
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
    if (conn.connectedAt !== null && o.clock.monotonic() - conn.connectedAt >= o.stableAfterMs) this.#attempt = 0;
    const ceiling = Math.min(o.reconnectMaxMs, o.reconnectBaseMs * 2 ** Math.min(this.#attempt, 30));
    const delay = Math.floor(o.random.float() * ceiling);
    this.#attempt++;
    o.log.warn(
      { code: this.#lastError, attempt: this.#attempt, retryInMs: delay },
      wasConnected ? 'uplink: connection lost; reconnecting' : 'uplink: cannot connect to the broker; retrying',
    );
    if (wasConnected) this.#emit('disconnected');
    this.#timer = o.clock.setTimeout(() => this.#connect(), delay);
  }

  #publishOn(conn: Connection, topic: string, payload: string | Buffer, retain: boolean): Promise<PublishResult> {
    return new Promise<PublishResult>((resolve) => {
      let done = false;
      const settle = (r: PublishResult) => {
        if (done) return;
        done = true;
        conn.pending.delete(settle);
        resolve(r);
      };
      if (conn.closed) return settle({ ok: false, permanent: false, code: 'connection-lost' });
      conn.pending.add(settle);
      try {
        conn.mc.publish(topic, payload, { qos: 1, retain }, (err) => settle(err ? classify(err) : { ok: true }));
      } catch (e) {
        settle(classify(e));
      }
    });
  }

  #inbound(topic: string, payload: Buffer): void {
    const name: InboundTopicName | undefined =
      topic === this.#topics.cmd
        ? 'cmd'
        : topic === this.#topics.sync
          ? 'sync'
          : topic === this.#topics.certResponse
            ? 'cert/response'
            : undefined;
    if (!name) {
      this.#o.log.debug({ topic: topic.slice(0, 200) }, 'uplink: message on an unexpected topic dropped');
      return;
    }
    for (const l of [...this.#messageListeners]) {
      try {
        const r = l(name, payload);
        if (r && typeof r.then === 'function') {
          r.then(undefined, (e: unknown) =>
            this.#o.log.error({ err: e, topic: name }, 'uplink: inbound handler failed'),
          );
        }
      } catch (e) {
        this.#o.log.error({ err: e, topic: name }, 'uplink: inbound handler failed');
      }
    }
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

  #untilClosed<T>(conn: Connection, p: Promise<T>): Promise<T | undefined> {
    if (conn.closed) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve) => {
      const onClose = () => resolve(undefined);
      conn.onClosed.add(onClose);
      p.then((v) => {
        conn.onClosed.delete(onClose);
        resolve(v);
      });
    });
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
