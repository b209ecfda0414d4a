import type { SecureContext, TLSSocket } from 'node:tls';
import '../base/deferred-mqtt-extras.js';
import { type IClientOptions, MqttClient } from 'mqtt';
import type { Logger } from '../log/logger.js';

/**
 * One connection attempt to the broker: one mqtt.js client over one TLS socket, never reused.
 * It owns what must not outlive it (the publishes waiting for a PUBACK, whoever waits for its end)
 * so UplinkClient can drop a connection at any moment and know that all of it is settled.
 */

/** The outcome of `switchCredentials`. */
export type SwitchResult = { ok: true } | { ok: false; code: string | number };

export type PublishResult = { ok: true } | { ok: false; permanent: boolean; code: string | number };

/**
 * MQTT 5 PUBACK reason codes ≥ 0x80 that say "not now" rather than "never": server busy, server
 * shutting down, packet identifier in use, message rate too high, quota exceeded. Every other
 * code ≥ 0x80 (0x87 not authorized, 0x90 topic name invalid, 0x99 payload format invalid…) is
 * permanent for that message.
 */
const TRANSIENT_REASONS: ReadonlySet<number> = new Set([0x89, 0x8b, 0x91, 0x96, 0x97]);

/** What handleMessage calls back with so that mqtt.js sends no PUBACK of its own (see open()). */
const ACKNOWLEDGED_LATER = new Error('acknowledged once recorded');

export function errorCode(e: unknown): string | number {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' || typeof code === 'number') return code;
  return 'error';
}

/** A short, secret-free reason for logs (TLS and MQTT errors never carry key material; bounded anyway). */
export function errorReason(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).slice(0, 200);
}

function classify(e: unknown): PublishResult {
  const code = errorCode(e);
  if (typeof code === 'number') return { ok: false, permanent: code >= 0x80 && !TRANSIENT_REASONS.has(code), code };
  return { ok: false, permanent: false, code };
}

/** What the owner hears from a connection; 'error' and 'disconnect' are recorded in `lastError` instead. */
export interface ConnectionEvents {
  connect(sessionPresent: boolean): void;
  close(): void;
  /**
   * An inbound message. Its QoS 1 PUBACK goes only once the returned promise resolves — when the
   * hub has recorded (or answered) it: a message the hub never got to is not acknowledged, and the
   * broker delivers it again to the next session.
   */
  message(topic: string, payload: Buffer): Promise<void>;
}

export class BrokerConnection {
  /** The TLS material this connection presents. */
  readonly context: SecureContext;
  /** Set while this is a `switchCredentials` attempt not yet accepted by the broker. */
  candidate: ((r: SwitchResult) => void) | undefined;
  /** Monotonic ms of the CONNACK (for the backoff reset); wall ms for status. */
  connectedAt: number | null = null;
  connectedWall: number | null = null;
  lastError: string | number | null = null;
  readonly #log: Logger;
  #mc: MqttClient | undefined;
  #closed = false;
  /** Settles every publish still waiting for its PUBACK. */
  readonly #pending = new Set<(r: PublishResult) => void>();
  readonly #onClosed = new Set<() => void>();
  /** Inbound QoS 1 messages not acknowledged yet, in the order they arrived. */
  readonly #unacknowledged: { messageId: number; recorded: boolean }[] = [];

  constructor(context: SecureContext, candidate: ((r: SwitchResult) => void) | undefined, log: Logger) {
    this.context = context;
    this.candidate = candidate;
    this.#log = log;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Past the CONNACK and not yet ended, as mqtt.js sees it. */
  get live(): boolean {
    return this.#mc?.connected ?? false;
  }

  /**
   * Starts the attempt over a socket from `dial`. False, with `lastError` set, when mqtt.js refused
   * to start: the owner then ends this connection like any other that failed.
   */
  open(options: IClientOptions, dial: (context: SecureContext) => TLSSocket, on: ConnectionEvents): boolean {
    let mc: MqttClient;
    try {
      mc = new MqttClient(() => dial(this.context), options);
    } catch (e) {
      this.lastError = errorCode(e);
      return false;
    }
    this.#mc = mc;
    // An 'error' without a listener would throw: every error is recorded, and the 'close' that
    // follows decides what happens next.
    mc.on('error', (e) => {
      this.lastError = errorCode(e);
      this.#log.debug({ code: this.lastError, reason: errorReason(e) }, 'uplink: connection error');
    });
    mc.on('disconnect', (packet) => {
      this.lastError = `disconnect:${packet.reasonCode ?? 0}`;
    });
    mc.on('close', () => on.close());
    mc.on('connect', (connack) => on.connect(connack.sessionPresent));
    // mqtt.js sends a QoS 1 PUBACK as soon as handleMessage calls back without an error, and
    // reads nothing else until it does. Calling back with one lets it read on at once (the PUBACKs
    // of the hub's own publishes, PINGRESP) without acknowledging: the PUBACK goes later, once the
    // hub has recorded the message (#acknowledge). Until then the broker holds back what exceeds its
    // window of unacknowledged messages (MQTT 5 receiveMaximum; max_inflight_messages), and what
    // the hub never recorded it delivers again to the next session.
    const sendPacket = (mc as unknown as { _sendPacket?: (packet: object) => void })._sendPacket;
    if (typeof sendPacket !== 'function') {
      throw new Error('mqtt.js has no _sendPacket: the acknowledgement after recording needs it (see package.json)');
    }
    mc.handleMessage = (packet, callback) => {
      if (packet.qos === 2) return callback();
      const waiting = packet.qos === 1 && packet.messageId !== undefined ? this.#await(packet.messageId) : undefined;
      callback(ACKNOWLEDGED_LATER);
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      on.message(packet.topic, payload).then(
        () => waiting && this.#acknowledge(waiting, (puback) => sendPacket.call(mc, puback)),
        () => waiting && this.#acknowledge(waiting, (puback) => sendPacket.call(mc, puback)),
      );
    };
    return true;
  }

  #await(messageId: number): { messageId: number; recorded: boolean } {
    const entry = { messageId, recorded: false };
    this.#unacknowledged.push(entry);
    return entry;
  }

  /**
   * `entry` is recorded: send the PUBACKs now due, in the order the messages came (MQTT
   * 4.6.0-2), so one recorded early waits for those before it. Nothing on a connection that ended:
   * the broker delivers those messages again, and the inbox answers them from its record.
   */
  #acknowledge(entry: { messageId: number; recorded: boolean }, send: (puback: object) => void): void {
    entry.recorded = true;
    while (this.#unacknowledged[0]?.recorded) {
      const head = this.#unacknowledged.shift();
      if (head && !this.#closed && this.live) send({ cmd: 'puback', messageId: head.messageId });
    }
  }

  /** QoS 1; resolves with the PUBACK's verdict, or as a transient failure when the connection ends first. */
  publish(topic: string, payload: string | Buffer, retain: boolean): Promise<PublishResult> {
    return new Promise<PublishResult>((resolve) => {
      let done = false;
      const settle = (r: PublishResult) => {
        if (done) return;
        done = true;
        this.#pending.delete(settle);
        resolve(r);
      };
      if (this.#closed) return settle({ ok: false, permanent: false, code: 'connection-lost' });
      this.#pending.add(settle);
      try {
        this.#mc?.publish(topic, payload, { qos: 1, retain }, (err) => settle(err ? classify(err) : { ok: true }));
      } catch (e) {
        settle(classify(e));
      }
    });
  }

  /**
   * Subscribes at QoS 1: null when every topic was granted, else the problem; undefined when the
   * connection ended first.
   */
  subscribe(topics: string[]): Promise<string | null | undefined> {
    return this.#untilClosed(
      new Promise<string | null>((resolve) => {
        this.#mc?.subscribe(topics, { qos: 1 }, (err, granted) => {
          if (err) return resolve(String(errorCode(err)));
          const refused = (granted ?? []).filter((g) => g.qos > 2).map((g) => g.topic);
          resolve(refused.length > 0 ? `refused: ${refused.join(', ')}` : null);
        });
      }),
    );
  }

  /** Resolves once this connection has ended (at once if it has). */
  ended(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.#closed) resolve();
      else this.#onClosed.add(resolve);
    });
  }

  /** A clean DISCONNECT (no last will) once the publishes in flight are answered. */
  disconnect(): void {
    this.#mc?.end(false, {}, () => {});
  }

  /** Drops the socket at once; the broker publishes the last will. */
  abort(): void {
    this.#mc?.end(true);
  }

  /**
   * Marks the end: every publish still waiting resolves as a transient failure with `code`,
   * whoever waits for the end wakes, the socket goes. False when it had already ended.
   */
  markClosed(code: 'stopped' | 'connection-lost'): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    for (const settle of [...this.#pending]) settle({ ok: false, permanent: false, code });
    for (const f of [...this.#onClosed]) f();
    try {
      this.#mc?.end(true);
    } catch {}
    return true;
  }

  #untilClosed<T>(p: Promise<T>): Promise<T | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve) => {
      const onClose = () => resolve(undefined);
      this.#onClosed.add(onClose);
      p.then((v) => {
        this.#onClosed.delete(onClose);
        resolve(v);
      });
    });
  }
}
