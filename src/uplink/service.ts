import type { AheadTicket, FirmwareUplink, InboundHandler, ResultSink } from '../../hal/uplink.js';
import type { UplinkFiles, UplinkIdentity } from '../../provisioning/uplink-files.js';
import type { Clock, TimerHandle } from '../base/clock.js';
import type { Component, ComponentStatus } from '../base/component.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import type { HubConfig } from '../config/schema.js';
import type { HealthPayload } from '../contract/mqtt-hub-messages.js';
import type { Secret } from '../crypto/secret.js';
import type { EventDelivery } from '../events/delivery.js';
import type { LockStates } from '../events/lock-states.js';
import type { Outbox } from '../events/outbox.js';
import type { Logger } from '../log/logger.js';
import type { Enrollment } from './enrollment.js';
import { UplinkClient } from './mqtt-client.js';
import { OtpKeyDelivery, type OtpKeyDeliveryDeps } from './otp-key-delivery.js';
import { Publisher } from './publisher.js';
import { Rotation, type RotationStatus } from './rotation.js';
import { explainUplinkError } from './tls-errors.js';

const withWhy = (why: string | undefined) => (why ? ` (${why})` : '');

export interface UplinkDeps {
  config: HubConfig['uplink'];
  /**
   * Loaded and checked at build time, so a bad certificate stops start-up with a clear message.
   * Undefined when the hub has no identity yet and enrolls first (`enrollment`).
   */
  files: UplinkFiles | undefined;
  outbox: Outbox;
  clock: Clock;
  random: Random;
  log: Logger;
  version: string;
  startedAt: () => number;
  /** The hub's OTP key (src/commands/otp-key.ts); undefined: every command is refused `no_otp_key`. */
  otpKey: Secret | undefined;
  /**
   * The services that answer `cmd` and `sync` (src/app/inbound.ts), made once the hub's identity
   * is known: at start, or after the enrollment. Their answers go out through `results`.
   */
  inbound: (identity: UplinkIdentity, otpKey: Secret | undefined, results: ResultSink) => InboundHandler;
  /** The `health` message as it stands now (src/app/health.ts). */
  health: () => HealthPayload;
  /** The end of a running lockout of remote commands (ISO 8601), for the status line. */
  lockedOutUntil?: () => string | null | undefined;
  /** Delivery confirmed by the cloud (`events/ack`); without it the broker's PUBACK removes events. */
  delivery?: EventDelivery;
  /** The locks' retained states, followed once the uplink starts and flushed before it stops. */
  lockStates?: LockStates;
  /**
   * No identity yet: enroll with the claim certificate first (src/uplink/enrollment.ts), in the
   * background (the hub runs meanwhile; events wait in the outbox), then `load()` the identity
   * and the OTP key it installed, and connect with them.
   */
  enrollment?: { enroll: Enrollment; load: () => { files: UplinkFiles; otpKey: Secret | undefined } };
  /**
   * Certificate rotation (src/uplink/rotation.ts), for the identity installed in `dataDir` (not
   * for certificate files named in the config, which their owner renews).
   */
  rotation?: { dataDir: string; atFraction: number };
  /**
   * OTP key delivery over the uplink (src/uplink/otp-key-delivery.ts): a request at every
   * connection, deliveries on `otp-key` stored sealed and handed to the verifier by `installed`.
   */
  otpKeyDelivery?: Pick<OtpKeyDeliveryDeps, 'store' | 'sealer' | 'lastCounter' | 'installed'>;
  /** Lock firmware announced by the cloud and fetched in chunks (src/firmware/fetch.ts); its progress goes out through the outbox. */
  firmware?: FirmwareUplink;
}

/**
 * The cloud uplink as one component, the MQTT adapter: the client and its session, the publisher
 * draining the outbox, enrollment and certificate rotation. Inbound `cmd` and `sync` messages go
 * to the services' handler; their answers come back through a ResultSink on the outbox. Health
 * is published as the app builds it.
 */
export class UplinkService implements Component {
  readonly name = 'uplink';
  readonly #d: UplinkDeps;
  #client: UplinkClient | undefined;
  #publisher: Publisher | undefined;
  #inbound: InboundHandler | undefined;
  #identity: UplinkIdentity | undefined;
  /** The files the client connects with (their paths name what to fix when the broker refuses). */
  #files: UplinkFiles | undefined;
  #rotation: Rotation | undefined;
  /** The TLS certificate and key in use (the OTP key request is signed with them). */
  #tls: { cert: Buffer; key: Buffer } | undefined;
  #enrolling: Promise<void> | undefined;
  #health: TimerHandle | undefined;
  #unsubscribe: (() => void)[] = [];
  #stopping = false;

  constructor(deps: UplinkDeps) {
    this.#d = deps;
  }

  get identity(): UplinkIdentity | undefined {
    return this.#identity;
  }

  /** Certificate renewal: when it is due, the last problem, rotations done (undefined when off). */
  rotationStatus(): RotationStatus | undefined {
    return this.#rotation?.status();
  }

  /**
   * Publish `sync/request` (`syncNow`, or a gap the hub found): resolves once the broker has it,
   * rejects with `sync.request-not-sent` otherwise. `version` is the mirror's, read now.
   */
  async requestSync(requestId: string, reason: 'command' | 'gap', version: number): Promise<{ version: number }> {
    const client = this.#client;
    if (!client?.connected) {
      throw new HubError('sync.request-not-sent', 'the uplink is not connected: sync/request was not sent');
    }
    const r = await client.publish('sync/request', JSON.stringify({ v: 1, requestId, version, reason }));
    if (!r.ok) throw new HubError('sync.request-not-sent', `the broker did not take sync/request (${r.code})`);
    return { version };
  }

  /** Connected to the broker now. */
  get connected(): boolean {
    return this.#client?.state().state === 'connected';
  }

  /** Wake the publisher: something was queued (called after the transaction that queued it). */
  kick(): void {
    this.#publisher?.kick();
  }

  async start(): Promise<void> {
    const d = this.#d;
    if (d.files) {
      this.#begin(d.files, d.otpKey);
      return;
    }
    const e = d.enrollment;
    if (!e) {
      throw new HubError('uplink.no-identity', 'the uplink has no certificate and no claim certificate to enroll with');
    }
    // Enrollment runs in the background: the hub is up meanwhile, and connects once enrolled.
    this.#enrolling = e.enroll.run().then(
      () => {
        if (this.#stopping) return;
        try {
          const loaded = e.load();
          this.#begin(loaded.files, loaded.otpKey);
        } catch (err) {
          d.log.error({ err }, 'enrolled, but the installed identity or OTP key cannot be used: the uplink stays down');
        }
      },
      (err: unknown) => {
        if (!this.#stopping) d.log.error({ err }, 'enrollment failed: the uplink stays down');
      },
    );
  }

  #begin(files: UplinkFiles, otpKey: Secret | undefined): void {
    const d = this.#d;
    this.#files = files;
    this.#identity = files.identity;
    const daysLeft = Math.floor((Date.parse(files.identity.notAfter) - d.clock.now()) / 86_400_000);
    if (daysLeft < 0)
      d.log.error({ notAfter: files.identity.notAfter }, 'the hub certificate has expired: the broker will refuse it');
    else if (daysLeft < 30)
      d.log.warn({ notAfter: files.identity.notAfter, daysLeft }, 'the hub certificate expires soon');
    const url = d.config.url ?? '';
    const client = new UplinkClient({
      url,
      hubId: files.identity.hubId,
      ca: files.ca,
      cert: files.cert,
      key: files.key,
      serverName: d.config.serverName ?? new URL(url).hostname,
      protocolVersion: d.config.mqttVersion === '3.1.1' ? 4 : 5,
      keepaliveSec: d.config.keepaliveSec,
      sessionExpirySec: d.config.sessionExpirySec,
      reconnectBaseMs: d.config.reconnectBaseMs,
      reconnectMaxMs: d.config.reconnectMaxMs,
      clock: d.clock,
      random: d.random,
      log: d.log,
      version: d.version,
      startedAt: d.startedAt(),
      maxMessageBytes: d.config.maxMessageBytes,
      explain: (code) => this.#explain(code),
    });
    const publisher = new Publisher({
      outbox: d.outbox,
      client,
      clock: d.clock,
      log: d.log,
      inflight: d.config.inflight,
      batchSize: d.config.batchSize,
      ...(d.delivery ? { delivery: d.delivery } : {}),
      // An `events` message never exceeds the message limit (the outbox sizes a batch by its bytes).
      batchBytes: d.config.maxMessageBytes,
    });
    const results: ResultSink = {
      enqueueMessage: (topic, payload, ahead?: AheadTicket, text?: string) => {
        const id = d.outbox.enqueueMessage(topic, payload, text === undefined ? {} : { checkedText: text });
        if (ahead) publisher.adopt(ahead, id);
        else publisher.kick();
      },
      publishAhead: (topic, text) => publisher.publishAhead(topic, text),
      publishNow: (topic, payload) => void client.publish(topic, JSON.stringify(payload)),
    };
    const inbound = d.inbound(files.identity, otpKey, results);
    d.firmware?.attach((topic, payload) => {
      d.outbox.enqueueMessage(topic, payload);
      publisher.kick();
    });
    this.#client = client;
    this.#publisher = publisher;
    this.#inbound = inbound;
    // Commands interrupted by the last stop are answered unknown_outcome (never repeated) before
    // any new one can arrive; reading their locks' state back may take a while, so start-up does
    // not wait for it (a redelivery of one of them waits for its answer).
    void inbound.recover().then(
      (n) => {
        if (n > 0) d.log.warn({ commands: n }, 'commands interrupted by the last stop were answered unknown_outcome');
      },
      (e: unknown) => d.log.error({ err: e }, 'interrupted commands could not be answered'),
    );
    this.#tls = { cert: files.cert, key: files.key };
    const rotation = d.rotation ? this.#newRotation(d.rotation, files, client) : undefined;
    const otpKeys = d.otpKeyDelivery
      ? new OtpKeyDelivery({
          ...d.otpKeyDelivery,
          hubId: files.identity.hubId,
          identity: () => this.#tls ?? { cert: files.cert, key: files.key },
          clock: d.clock,
          random: d.random,
          log: d.log,
          publish: (topic, payload) => client.publish(topic, JSON.stringify(payload)),
        })
      : undefined;
    this.#rotation = rotation;
    this.#unsubscribe.push(
      client.onMessage((topic, payload) => {
        // Not a command: it only removes acknowledged events from the outbox (never throws).
        if (topic === 'events/ack') {
          if (d.delivery) d.delivery.acknowledge(payload);
          return;
        }
        // Firmware fetches are in memory and idempotent by announce id and offset (never throws).
        if (topic === 'firmware/announce' || topic === 'firmware/chunk') {
          d.firmware?.handle(topic, payload);
          return;
        }
        // Installed (or refused) and answered before its PUBACK: a delivery lost in a stop comes again.
        if (topic === 'otp-key') {
          if (otpKeys) return otpKeys.handle(payload);
          d.log.info('an otp-key delivery arrived, but this hub takes none; ignored');
          return;
        }
        // The PUBACK waits until the services have recorded the message, not until it is answered.
        if (topic !== 'cert/response')
          return new Promise<void>((recorded) => void inbound.handle(topic, payload, recorded));
        if (rotation) rotation.handle(payload);
        else d.log.info('a cert/response arrived, but this hub does not renew its certificate itself; ignored');
      }),
    );
    if (rotation) this.#unsubscribe.push(client.on('connected', () => rotation.connected()));
    if (otpKeys) this.#unsubscribe.push(client.on('connected', () => otpKeys.connected()));
    if (d.lockStates) this.#unsubscribe.push(d.lockStates.follow());
    publisher.start();
    d.delivery?.start();
    client.start();
    rotation?.start();
    this.#scheduleHealth();
    d.log.info(
      {
        hubId: files.identity.hubId,
        url,
        notAfter: files.identity.notAfter,
        renewAt: rotation?.status().renewAt ?? null,
      },
      'uplink starting',
    );
  }

  #newRotation(o: NonNullable<UplinkDeps['rotation']>, files: UplinkFiles, client: UplinkClient): Rotation {
    const d = this.#d;
    return new Rotation(
      {
        dataDir: o.dataDir,
        hubId: files.identity.hubId,
        atFraction: o.atFraction,
        clock: d.clock,
        random: d.random,
        log: d.log,
        publish: (payload) => client.publish('cert/request', JSON.stringify(payload)),
        switchTo: (cert, key) => client.switchCredentials(cert, key),
        connected: () => client.connected,
        onRotated: (id) => {
          this.#tls = { cert: id.cert, key: id.key };
          this.#identity = {
            hubId: id.hubId,
            notBefore: id.notBefore,
            notAfter: id.notAfter,
            fingerprint: id.fingerprint,
          };
        },
      },
      {
        notBefore: files.identity.notBefore,
        notAfter: files.identity.notAfter,
        fingerprint: files.identity.fingerprint,
      },
    );
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#d.enrollment?.enroll.stop();
    await this.#enrolling;
    this.#rotation?.stop();
    this.#d.clock.clearTimeout(this.#health);
    for (const u of this.#unsubscribe.splice(0)) u();
    // What is taken in is finished; what waits is left unacknowledged for the next session.
    this.#inbound?.close();
    await this.#inbound?.idle();
    this.#d.lockStates?.flush();
    this.#d.delivery?.stop();
    await this.#publisher?.stop();
    await this.#client?.stop();
  }

  status(): ComponentStatus {
    const s = this.#client?.state();
    const depth = this.#d.outbox.depth();
    const enrolling = this.#d.enrollment && !this.#client ? this.#d.enrollment.enroll.status() : undefined;
    const link = enrolling
      ? `enrolling with claim ${this.#d.enrollment?.enroll.claimId} (${enrolling.state}, attempt ${enrolling.attempts}${enrolling.lastError ? `, last error ${enrolling.lastError}` : ''})`
      : s && s.state !== 'connected' && s.lastError !== null
        ? `${s.state}, last error ${s.lastError}${withWhy(this.#explain(s.lastError))}`
        : (s?.state ?? 'stopped');
    const cert = this.#identity ? `; certificate until ${this.#identity.notAfter}` : '';
    const lockedOut = this.#d.lockedOutUntil?.();
    const commands = lockedOut ? `; remote commands locked out until ${lockedOut}` : '';
    const delivery = this.#d.delivery?.describe();
    const undelivered = delivery && delivery.state !== 'ok' ? `; ${delivery.detail}; ${delivery.check ?? ''}` : '';
    const detail = `${this.#identity?.hubId ?? '?'} ${link}; outbox ${depth.events} events, ${depth.messages} messages${cert}${commands}${undelivered}`;
    const connected = s?.state === 'connected';
    return {
      name: this.name,
      state: connected && !undelivered ? 'running' : s || enrolling ? 'degraded' : 'stopped',
      detail,
    };
  }

  /** A connection error in words, naming the files in use (undefined before they are known, or for an unknown code). */
  #explain(code: string | number | null): string | undefined {
    const files = this.#files;
    if (!files) return undefined;
    const url = this.#d.config.url ?? '';
    let serverName = this.#d.config.serverName ?? '';
    try {
      serverName ||= new URL(url).hostname;
    } catch {}
    return explainUplinkError(code, { url, serverName, paths: files.paths });
  }

  /** Health now, besides the periodic one (a lockout began: the cloud should hear of it at once). */
  publishHealthNow(): void {
    this.#d.clock.setTimeout(() => this.#publishHealth(), 0);
  }

  /** Health, best effort (QoS 1, not queued: a stale one has no value). */
  #publishHealth(): void {
    const client = this.#client;
    if (client?.connected && !this.#stopping) void client.publish('health', JSON.stringify(this.#d.health()));
  }

  #scheduleHealth(): void {
    const tick = () => {
      this.#publishHealth();
      this.#health = this.#d.clock.setTimeout(tick, this.#d.config.healthIntervalSec * 1000);
    };
    this.#health = this.#d.clock.setTimeout(tick, 1000);
  }
}
