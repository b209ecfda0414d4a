import { X509Certificate } from 'node:crypto';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { type Clock, systemClock, type TimerHandle } from '../../src/base/clock.js';
import { type Random, systemRandom } from '../../src/base/random.js';
import {
  type CommandEnvelope,
  type CommandOp,
  sealSetupCode,
  signCommand,
  type UnsignedCommand,
} from '../../src/commands/otp.js';
import {
  type CertResponsePayload,
  type CloudEvent,
  type CmdResultPayload,
  CONTRACT_VERSION,
  type EnrollResponsePayload,
  type HealthPayload,
  ID_PATTERN,
  type LockStatePayload,
  provisioningTopics,
  type StatusPayload,
  type SyncAckPayload,
  type SyncPayload,
  type TopicMap,
  topics,
} from '../../src/contract/mqtt.js';
import { conforms, parseInbound } from '../../src/contract/mqtt-validate.js';
import { Secret } from '../../src/crypto/secret.js';
import type { Logger } from '../../src/log/logger.js';
import { type CaMaterial, CloudCa, CsrRefused, parseCsr, wrapForKey } from './ca.js';

/**
 * The reference cloud: the backend's side of the MQTT contract (src/contract/mqtt.ts), with its
 * own client certificate. It sends commands and syncs, and records what every hub publishes:
 * events (deduplicated by id, in first-arrival order), status, lock states, health, command
 * results and sync acknowledgements. Every message it receives is checked against the contract;
 * the ones that do not conform are counted in `invalid` (tests assert 0).
 *
 * Given a hub's OTP key (`setOtpKey`), it sends that hub OTP-signed command envelopes
 * (src/commands/otp.ts), with a per-hub counter; and for tests it can forge, alter, replay,
 * back-date, future-date, misaddress or delay them (`attack`, `sendEnvelope`).
 *
 * Given a CA key (`enableCertificates`), it is also the hubs' certificate authority: it enrolls
 * hubs that connect with a claim certificate (`ks/provisioning/{claimId}/request`: their own
 * certificate, the CA, and their OTP and PIN keys encrypted to the key of their CSR) and renews
 * hubs' certificates (`ks/hubs/{hubId}/cert/request`).
 *
 * It is what tests and `npm start` use, and a working example for anyone building a backend: see
 * sim/cloud/README.md.
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

export interface ReferenceCloudOptions {
  clock?: Clock;
  /** For request ids; seeded in tests. */
  random?: Random;
  log?: Logger;
}

/**
 * A command in the flat form (`{op, lockId, durationMs}`): its fields other than `op` and
 * `lockId` are its `args`. Signed into an envelope when the hub's OTP key is set; without one it
 * goes as it is with `v` and an `id` (the unauthenticated form of contract v1 before OTPs, which
 * a hub with OTP verification refuses).
 */
export type CommandRequest =
  | { op: 'ping' | 'listLocks' | 'syncNow' }
  | { op: 'getState' | 'lock' | 'detach'; lockId: string }
  | { op: 'open'; lockId: string; durationMs?: number }
  | { op: 'setMode'; lockId: string; mode: 'normal' | 'office' | 'locked' }
  | { op: 'attach'; lockId: string; setupCode: string };
/** A sync as the caller writes it: the cloud adds `v` and a fresh `id`. */
export type SyncRequest = Omit<SyncPayload, 'v' | 'id'>;

export interface RequestOptions {
  /** Reject when no answer arrived within this. Default 10,000. */
  timeoutMs?: number;
}

/**
 * A command as the caller writes it for a hub with an OTP key: the cloud adds `v`, a fresh
 * `cmdId`, `hubId`, the validity window and the next counter, and signs. For `attach`,
 * `args.setupCode` is given in clear and sent sealed (`sealSetupCode`, bound to the cmdId).
 */
export interface CommandSpec {
  op: CommandOp;
  lockId?: string;
  args?: Record<string, unknown>;
}

export interface OtpKeyOptions {
  /**
   * The counter of the first command (default 1), +1 per command after it. A cloud that starts
   * afresh for a hub that already accepted commands must start above the hub's last accepted one
   * (and within its look-ahead window).
   */
  counter?: number;
  /** How long a command stays valid after it is issued (`expiresAt - issuedAt`). Default 60,000. */
  ttlMs?: number;
}

/** What `envelope()` may set instead of the defaults (for tests of what a hub refuses). */
export interface EnvelopeOverrides {
  cmdId?: string;
  /** The `hubId` field (default: the hub it is sent to). */
  hubId?: string;
  /** Unix ms. Default: now. */
  issuedAt?: number;
  /** Unix ms. Default: issuedAt + ttlMs. */
  expiresAt?: number;
  /** Default: the hub's next counter (which then advances). A given counter does not advance it. */
  counter?: number;
}

export interface SendOptions extends RequestOptions {
  /** Hold the envelope this long before publishing it (a delayed command). Default 0. */
  delayMs?: number;
}

/**
 * Hostile or stale commands, each built from a correctly signed one, for tests of the hub's
 * verifier. The hub must refuse each without acting:
 * - `forgedOtp`: an OTP of random digits (`otp_mismatch`);
 * - `alteredArgs` / `alteredLockId`: signed, then changed (`otp_mismatch`);
 * - `replay`: a sent envelope again, byte for byte (the stored answer or `replayed`; acts once);
 * - `replayNewId`: a sent envelope under a new cmdId with its old counter and OTP (`otp_mismatch`:
 *   the cmdId is covered by the OTP);
 * - `replayResigned`: a sent envelope under a new cmdId, correctly signed, with its old counter
 *   (`replayed`);
 * - `counterBackwards`: a correctly signed command whose counter is below the last one the hub
 *   accepted (default: one below; `replayed`);
 * - `expired`: issued 10 min ago, expired 5 min ago, correctly signed (`expired`);
 * - `futureDated`: issued 10 min from now, correctly signed (`not_yet_valid`);
 * - `otherHub`: addressed and signed to another hub id, sent to this hub (`wrong_hub`).
 */
export type Attack =
  | { kind: 'forgedOtp'; command: CommandSpec }
  | { kind: 'alteredArgs'; command: CommandSpec; args: Record<string, unknown> }
  | { kind: 'alteredLockId'; command: CommandSpec; lockId: string }
  | { kind: 'replay'; of: CommandEnvelope }
  | { kind: 'replayNewId'; of: CommandEnvelope }
  | { kind: 'replayResigned'; of: CommandEnvelope }
  | { kind: 'counterBackwards'; command: CommandSpec; counter?: number }
  | { kind: 'expired'; command: CommandSpec }
  | { kind: 'futureDated'; command: CommandSpec }
  | { kind: 'otherHub'; command: CommandSpec; hubId: string };

export type AttackKind = Attack['kind'];

/** The cloud as the hubs' certificate authority (`enableCertificates`). */
export interface CertificateOptions {
  /** The CA that signs hub certificates; hubs must already trust it (it is also the broker's, here). */
  ca: CaMaterial;
  /** Lifetime of every certificate issued, in seconds. Default 825 days. */
  validitySec?: number;
  /**
   * CNs of the claim certificates whose enrollment requests are answered (the broker's ACL lets
   * each publish only `ks/provisioning/{claimId}/request`). Default none: no enrollment.
   */
  claimIds?: string[];
  /**
   * May this hub id enroll with this claim? In production: the hub ids manufactured for it.
   * Default: any hub id that is not a claim id. A hub enrolls once; the same key again gets the
   * same certificate and secrets (a lost response), another key is refused `already_enrolled`.
   */
  allowEnrollment?: (hubId: string, claimId: string) => boolean;
  /** Answer `cert/request` (rotation). Default true. */
  renewals?: boolean;
}

/** A certificate the cloud issued. */
export interface IssuedCertificate {
  hubId: string;
  kind: 'enrollment' | 'renewal';
  requestId: string;
  /** SHA-256 of the DER certificate, colon-separated hex (as X509Certificate.fingerprint256). */
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the certificate's public key (SPKI DER), hex. */
  keyId: string;
  cert: string;
}

/** An enrollment or renewal request the cloud answered, and how. */
export interface CertificateAnswer {
  kind: 'enrollment' | 'renewal';
  /** The claim id of an enrollment, the hub of a renewal. */
  via: string;
  hubId: string;
  requestId: string;
  ok: boolean;
  code?: string;
}

interface Enrolled {
  keyId: string;
  cert: IssuedCertificate;
  otpKey: Buffer;
  pinKey: Buffer;
}

const PROVISIONING_TOPIC = /^ks\/provisioning\/([^/]+)\/request$/;
const SECRET_BYTES = 32;

export const DEFAULT_COMMAND_TTL_MS = 60_000;
const MINUTE = 60_000;

/** A message the cloud received that does not match the contract. */
export interface InvalidMessage {
  topic: string;
  reason: string;
}

/** An answer as received, in arrival order (including error answers with a null id). */
export interface Answer {
  topic: 'cmd/result' | 'sync/ack';
  payload: CmdResultPayload | SyncAckPayload;
}

interface HubRecord {
  events: CloudEvent[];
  eventIds: Set<string>;
  status: StatusPayload | undefined;
  statusHistory: StatusPayload[];
  locks: Map<string, LockStatePayload>;
  health: HealthPayload[];
  results: Map<string, CmdResultPayload>;
  acks: Map<string, SyncAckPayload>;
  answers: Answer[];
}

interface OtpState {
  key: Secret;
  next: number;
  ttlMs: number;
  /** Counters of the envelopes sent, by cmdId. */
  counters: Map<string, number>;
  /** The highest counter of a command the hub accepted (answered ok or unknown_outcome). */
  accepted: number;
}

interface Pending {
  kind: 'cmd/result' | 'sync/ack';
  resolve(p: CmdResultPayload | SyncAckPayload): void;
  reject(e: Error): void;
  timer: TimerHandle;
}

interface Waiter {
  check(): void;
  fail(e: Error): void;
}

const HUB_TOPIC = /^ks\/hubs\/([^/]+)\/(.+)$/;
const LOCK_STATE = /^locks\/([^/]+)\/state$/;
const hubIdPattern = new RegExp(ID_PATTERN);

export class ReferenceCloud {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger | undefined;
  readonly #hubs = new Map<string, HubRecord>();
  /** Several requests may wait for the same id (a replayed envelope): each answer resolves them all. */
  readonly #pending = new Map<string, Set<Pending>>();
  readonly #otp = new Map<string, OtpState>();
  readonly #sent = new Map<string, CommandEnvelope[]>();
  readonly #waiters = new Set<Waiter>();
  readonly #invalid: InvalidMessage[] = [];
  readonly #idPrefix: string;
  readonly #issued: IssuedCertificate[] = [];
  readonly #certAnswers: CertificateAnswer[] = [];
  readonly #enrolled = new Map<string, Enrolled>();
  #certificates: { ca: CloudCa; o: CertificateOptions; claims: Set<string> } | undefined;
  #client: MqttClient | undefined;
  #nextId = 1;
  #duplicates = 0;
  #repeatedAnswers = 0;
  #received = 0;

  constructor(opts: ReferenceCloudOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? systemRandom;
    this.#log = opts.log;
    // Request ids are unique per instance, so a new cloud never reuses an id a hub has answered.
    this.#idPrefix = `cloud-${Buffer.from(this.#random.bytes(6)).toString('hex')}`;
  }

  /** Connect with the cloud's certificate and subscribe to every hub's topics (QoS 1). */
  async connect(o: CloudConnectOptions): Promise<void> {
    if (this.#client) throw new Error('ReferenceCloud.connect: already connected; close() first');
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
      clientId: o.clientId ?? `reference-cloud-${Buffer.from(this.#random.bytes(4)).toString('hex')}`,
      clean,
      keepalive: o.keepaliveSec ?? 30,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      reconnectPeriod: o.reconnectPeriodMs ?? 500,
      resubscribe: true,
      ...(protocolVersion === 5 && !clean ? { properties: { sessionExpiryInterval: o.sessionExpirySec ?? 3600 } } : {}),
    };
    const client = connect(o.url, opts);
    this.#client = client;
    client.on('message', (topic, payload, packet) => this.#onMessage(topic, payload, packet.retain));
    client.on('connect', () => {
      // No Nagle: a command is one small write that must leave at once (the hub does the same).
      (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
      this.#notify();
    });
    client.on('error', (e) => this.#log?.warn({ err: e }, 'reference cloud: connection error'));

    try {
      await firstConnect(client, this.#clock, o.connectTimeoutMs ?? 10_000);
      const grants = await client.subscribeAsync(CLOUD_SUBSCRIPTION, {
        qos: 1,
        // MQTT 5: do not receive our own commands and syncs back.
        ...(protocolVersion === 5 ? { nl: true } : {}),
      });
      const refused = grants.find((g) => g.qos > 2);
      if (!grants.length || refused) {
        throw new Error(
          `the broker refused the subscription to ${CLOUD_SUBSCRIPTION} (code ${refused?.qos ?? 'none'})`,
        );
      }
    } catch (e) {
      this.#client = undefined;
      await client.endAsync(true).catch(() => undefined);
      throw new Error(`ReferenceCloud: cannot connect to ${o.url}: ${(e as Error).message}`, { cause: e });
    }
  }

  get connected(): boolean {
    return this.#client?.connected === true;
  }

  /**
   * Act as the hubs' certificate authority: enroll hubs with a claim certificate (subscribes to
   * `ks/provisioning/{claimId}/request` for each claim id) and renew hubs' certificates on
   * `cert/request`. An enrolled hub's OTP key is the one its commands are signed with from then on.
   * Call after `connect()`; calling again replaces the options.
   */
  async enableCertificates(o: CertificateOptions): Promise<void> {
    const client = this.#need();
    const claims = new Set(o.claimIds ?? []);
    for (const id of claims) {
      if (!hubIdPattern.test(id))
        throw new Error(`ReferenceCloud.enableCertificates: bad claim id ${JSON.stringify(id)}`);
    }
    this.#certificates = { ca: new CloudCa(o.ca, this.#random), o, claims };
    for (const id of claims) {
      const grants = await client.subscribeAsync(provisioningTopics.request(id), { qos: 1 });
      if (!grants.length || grants.some((g) => g.qos > 2)) {
        throw new Error(`the broker refused the subscription to ${provisioningTopics.request(id)}`);
      }
    }
  }

  /** Certificates issued (enrollments and renewals), of one hub or of all, in order. */
  certificates(hubId?: string): readonly IssuedCertificate[] {
    return hubId === undefined ? this.#issued : this.#issued.filter((c) => c.hubId === hubId);
  }

  /** Every enrollment and renewal request answered, in order (refusals with their code). */
  certificateAnswers(): readonly CertificateAnswer[] {
    return this.#certAnswers;
  }

  /** The OTP key the cloud gave a hub at enrollment (undefined if it did not enroll here). */
  enrolledOtpKey(hubId: string): Secret | undefined {
    const e = this.#enrolled.get(hubId);
    return e ? new Secret(Buffer.from(e.otpKey)) : undefined;
  }

  /** Hubs the cloud has heard from. */
  hubs(): string[] {
    return [...this.#hubs.keys()];
  }

  /** A hub's events, each id once, in the order they first arrived. */
  events(hubId: string): readonly CloudEvent[] {
    return this.#hubs.get(hubId)?.events ?? [];
  }

  /** Events received again with an id already seen (at-least-once delivery at work). */
  get duplicates(): number {
    return this.#duplicates;
  }

  /**
   * Events (of one hub, or of all) whose seq is not above an earlier one of the same lock and
   * epoch, in first-arrival order: per-lock order was broken (or one event got two ids).
   */
  orderViolations(hubId?: string): CloudEvent[] {
    const out: CloudEvent[] = [];
    for (const [id, hub] of this.#hubs) {
      if (hubId !== undefined && id !== hubId) continue;
      const highest = new Map<string, number>();
      for (const e of hub.events) {
        const key = `${e.lockId}\n${e.epoch}`;
        const before = highest.get(key);
        if (before !== undefined && e.seq <= before) out.push(e);
        else highest.set(key, e.seq);
      }
    }
    return out;
  }

  /** The hub's current (retained) status, if any. */
  status(hubId: string): StatusPayload | undefined {
    return this.#hubs.get(hubId)?.status;
  }

  /** Every status message received, in order. */
  statusHistory(hubId: string): readonly StatusPayload[] {
    return this.#hubs.get(hubId)?.statusHistory ?? [];
  }

  /** The latest (retained) state of each lock of a hub. */
  lockStates(hubId: string): ReadonlyMap<string, LockStatePayload> {
    return this.#hubs.get(hubId)?.locks ?? new Map();
  }

  lockState(hubId: string, lockId: string): LockStatePayload | undefined {
    return this.#hubs.get(hubId)?.locks.get(lockId);
  }

  /** Health messages, in order. */
  health(hubId: string): readonly HealthPayload[] {
    return this.#hubs.get(hubId)?.health ?? [];
  }

  /** Command results by id (the first one received for each id). */
  results(hubId: string): ReadonlyMap<string, CmdResultPayload> {
    return this.#hubs.get(hubId)?.results ?? new Map();
  }

  /** Sync acknowledgements by id (the first one received for each id). */
  syncAcks(hubId: string): ReadonlyMap<string, SyncAckPayload> {
    return this.#hubs.get(hubId)?.acks ?? new Map();
  }

  /** Every cmd/result and sync/ack in arrival order, including errors about unreadable messages (id null). */
  answers(hubId: string): readonly Answer[] {
    return this.#hubs.get(hubId)?.answers ?? [];
  }

  /** Answers received again for an id already answered (a redelivered command). */
  get repeatedAnswers(): number {
    return this.#repeatedAnswers;
  }

  /** Messages received that do not match the contract. */
  get invalid(): number {
    return this.#invalid.length;
  }

  get invalidMessages(): readonly InvalidMessage[] {
    return this.#invalid;
  }

  /** Messages received from hubs (valid or not). */
  get received(): number {
    return this.#received;
  }

  /**
   * Use `key` as the hub's OTP key: from now on `command()` sends that hub OTP-signed envelopes.
   * Setting it again replaces the key and, when `opts.counter` is given, the next counter.
   */
  setOtpKey(hubId: string, key: Secret, opts: OtpKeyOptions = {}): void {
    const counter = opts.counter ?? this.#otp.get(hubId)?.next ?? 1;
    if (!Number.isSafeInteger(counter) || counter < 1) {
      throw new Error(`ReferenceCloud.setOtpKey: the counter must be a positive safe integer, got ${counter}`);
    }
    const ttlMs = opts.ttlMs ?? DEFAULT_COMMAND_TTL_MS;
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new Error(`ReferenceCloud.setOtpKey: bad ttlMs ${ttlMs}`);
    const before = this.#otp.get(hubId);
    this.#otp.set(hubId, {
      key,
      next: counter,
      ttlMs,
      counters: before?.counters ?? new Map(),
      accepted: before?.accepted ?? 0,
    });
  }

  /** The counter the next signed command for the hub will carry (undefined without a key). */
  nextCounter(hubId: string): number | undefined {
    return this.#otp.get(hubId)?.next;
  }

  /** The highest counter of this cloud's commands the hub accepted (0 if none yet). */
  acceptedCounter(hubId: string): number {
    return this.#otp.get(hubId)?.accepted ?? 0;
  }

  /** The envelopes sent to a hub with `sendEnvelope` or a signed `command()`, in order. */
  sentEnvelopes(hubId: string): readonly CommandEnvelope[] {
    return this.#sent.get(hubId) ?? [];
  }

  /**
   * Send a command with a fresh id and wait for its result. The result is returned whether `ok`
   * or not; the promise rejects only when none arrives in time (or the cloud closes). The command
   * is not checked here, so a test can send one the hub must refuse and still get its answer.
   *
   * With the hub's OTP key set, the command goes as a signed envelope (`envelope()`); the caller
   * may write it as `{op, lockId, args}` or in the flat form (`{op, lockId, durationMs}`), whose
   * extra fields become `args`. Without a key it goes in the flat, unsigned form.
   */
  command(hubId: string, cmd: CommandSpec | CommandRequest, opts: SendOptions = {}): Promise<CmdResultPayload> {
    const spec = toSpec(cmd);
    if (this.#otp.has(hubId)) return this.sendEnvelope(hubId, this.envelope(hubId, spec), opts);
    const id = this.#newId();
    const { args, ...rest } = spec;
    const payload = { ...rest, ...args, v: CONTRACT_VERSION, id };
    return this.#request(hubId, 'cmd', id, payload, opts.timeoutMs) as Promise<CmdResultPayload>;
  }

  /**
   * Build and sign a command envelope for the hub, without sending it: a fresh cmdId, `issuedAt`
   * now, `expiresAt` now + ttl, the next counter. `overrides` set any of those instead (and are
   * signed as given).
   */
  envelope(hubId: string, cmd: CommandSpec | CommandRequest, overrides: EnvelopeOverrides = {}): CommandEnvelope {
    const otp = this.#needKey(hubId);
    const cmdId = overrides.cmdId ?? this.#newId();
    const issuedAt = overrides.issuedAt ?? this.#clock.now();
    const fields: EnvelopeFields = {
      cmdId,
      hubId: overrides.hubId ?? hubId,
      issuedAt,
      expiresAt: overrides.expiresAt ?? issuedAt + otp.ttlMs,
      counter: overrides.counter ?? otp.next++,
    };
    return signEnvelope(otp.key, toSpec(cmd), fields, this.#random);
  }

  /**
   * Build a hostile or stale envelope (see `Attack`) for the hub, without sending it; send it
   * with `sendEnvelope`.
   */
  attack(hubId: string, a: Attack): CommandEnvelope {
    const otp = this.#needKey(hubId);
    const now = this.#clock.now();
    switch (a.kind) {
      case 'forgedOtp': {
        const real = this.envelope(hubId, a.command);
        let forged = real.otp;
        while (forged === real.otp) forged = String(this.#random.int(100_000_000)).padStart(8, '0');
        return { ...real, otp: forged };
      }
      case 'alteredArgs': {
        const real = this.envelope(hubId, a.command);
        return { ...real, args: { ...real.args, ...a.args } };
      }
      case 'alteredLockId':
        return { ...this.envelope(hubId, a.command), lockId: a.lockId };
      case 'replay':
        return structuredClone(a.of);
      case 'replayNewId':
        return { ...structuredClone(a.of), cmdId: this.#newId() };
      case 'replayResigned': {
        const { otp: _otp, cmdId: _cmdId, issuedAt: _i, expiresAt: _e, ...rest } = a.of;
        const unsigned: UnsignedCommand = {
          ...structuredClone(rest),
          cmdId: this.#newId(),
          issuedAt: new Date(now).toISOString(),
          expiresAt: new Date(now + otp.ttlMs).toISOString(),
        };
        return signCommand(otp.key, unsigned);
      }
      case 'counterBackwards': {
        const counter = a.counter ?? otp.accepted - 1;
        if (counter < 1) {
          throw new Error(
            `ReferenceCloud.attack counterBackwards: hub ${hubId} has accepted no command with a counter above 1 yet; send one first or pass a counter`,
          );
        }
        return this.envelope(hubId, a.command, { counter });
      }
      case 'expired':
        return this.envelope(hubId, a.command, { issuedAt: now - 10 * MINUTE, expiresAt: now - 5 * MINUTE });
      case 'futureDated':
        return this.envelope(hubId, a.command, { issuedAt: now + 10 * MINUTE, expiresAt: now + 11 * MINUTE });
      case 'otherHub': {
        // Signed as the other hub's cloud would (with its key when this cloud has it).
        const other = this.#otp.get(a.hubId)?.key ?? otp.key;
        const { otp: _otp, ...unsigned } = this.envelope(hubId, a.command, { hubId: a.hubId });
        return signCommand(other, unsigned);
      }
    }
  }

  /**
   * Publish an envelope as it is (QoS 1), after `delayMs` if given, and wait for the result with
   * its cmdId. It is not checked: anything with a string `cmdId` goes.
   */
  async sendEnvelope(hubId: string, envelope: CommandEnvelope, opts: SendOptions = {}): Promise<CmdResultPayload> {
    const cmdId: unknown = (envelope as { cmdId?: unknown }).cmdId;
    if (typeof cmdId !== 'string' || cmdId.length === 0) {
      throw new Error('ReferenceCloud.sendEnvelope: the envelope has no cmdId to match its result by');
    }
    if (opts.delayMs !== undefined && opts.delayMs > 0) await this.#clock.sleep(opts.delayMs);
    let sent = this.#sent.get(hubId);
    if (!sent) {
      sent = [];
      this.#sent.set(hubId, sent);
    }
    sent.push(structuredClone(envelope));
    const otp = this.#otp.get(hubId);
    if (otp && typeof envelope.counter === 'number' && !otp.counters.has(cmdId))
      otp.counters.set(cmdId, envelope.counter);
    return this.#request(hubId, 'cmd', cmdId, envelope, opts.timeoutMs) as Promise<CmdResultPayload>;
  }

  /** Send a sync with a fresh id and wait for its acknowledgement. */
  sync(hubId: string, sync: SyncRequest, opts: RequestOptions = {}): Promise<SyncAckPayload> {
    const id = this.#newId();
    const payload = { ...sync, v: CONTRACT_VERSION, id };
    return this.#request(hubId, 'sync', id, payload, opts.timeoutMs) as Promise<SyncAckPayload>;
  }

  /** Publish raw bytes on a hub's cmd or sync topic (QoS 1): for tests of what a hub refuses. */
  async send(hubId: string, topic: 'cmd' | 'sync', payload: string | Buffer): Promise<void> {
    const client = this.#need();
    await client.publishAsync(topic === 'cmd' ? topics.cmd(hubId) : topics.sync(hubId), payload, { qos: 1 });
  }

  /**
   * Resolve once `predicate` holds (checked now and after every message received), or reject after
   * `timeoutMs` saying what was awaited.
   */
  waitFor(predicate: (cloud: ReferenceCloud) => boolean, timeoutMs: number, what = 'the condition'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const waiter: Waiter = {
        check: () => {
          let met: boolean;
          try {
            met = predicate(this);
          } catch (e) {
            waiter.fail(e as Error);
            return;
          }
          if (!met) return;
          this.#waiters.delete(waiter);
          this.#clock.clearTimeout(timer);
          resolve();
        },
        fail: (e) => {
          this.#waiters.delete(waiter);
          this.#clock.clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.add(waiter);
      timer = this.#clock.setTimeout(
        () => waiter.fail(new Error(`ReferenceCloud.waitFor: ${what} did not happen within ${timeoutMs} ms`)),
        timeoutMs,
      );
      waiter.check();
    });
  }

  /** Disconnect; pending requests and waits reject. The records stay readable. */
  async close(): Promise<void> {
    const closed = new Error('ReferenceCloud closed');
    for (const [key, set] of this.#pending) {
      this.#pending.delete(key);
      for (const p of set) {
        this.#clock.clearTimeout(p.timer);
        p.reject(closed);
      }
    }
    for (const w of [...this.#waiters]) w.fail(closed);
    const client = this.#client;
    this.#client = undefined;
    if (client) await client.endAsync(!client.connected);
  }

  // ----- internals ------------------------------------------------------------------------------

  #newId(): string {
    return `${this.#idPrefix}-${this.#nextId++}`;
  }

  #needKey(hubId: string): OtpState {
    const otp = this.#otp.get(hubId);
    if (!otp) throw new Error(`ReferenceCloud: no OTP key for hub ${hubId} (call setOtpKey() first)`);
    return otp;
  }

  #need(): MqttClient {
    if (!this.#client) throw new Error('ReferenceCloud: not connected (call connect() first)');
    return this.#client;
  }

  #request(
    hubId: string,
    topic: 'cmd' | 'sync',
    id: string,
    payload: object,
    timeoutMs = 10_000,
  ): Promise<CmdResultPayload | SyncAckPayload> {
    const client = this.#need();
    const kind = topic === 'cmd' ? 'cmd/result' : 'sync/ack';
    const key = pendingKey(hubId, kind, id);
    return new Promise((resolve, reject) => {
      const done = (e: Error) => {
        const set = this.#pending.get(key);
        if (!set?.has(entry)) return;
        set.delete(entry);
        if (set.size === 0) this.#pending.delete(key);
        this.#clock.clearTimeout(entry.timer);
        reject(e);
      };
      const entry: Pending = {
        kind,
        resolve,
        reject,
        timer: this.#clock.setTimeout(
          () => done(new Error(`ReferenceCloud: no ${kind} for ${topic} ${id} from ${hubId} within ${timeoutMs} ms`)),
          timeoutMs,
        ),
      };
      let set = this.#pending.get(key);
      if (!set) {
        set = new Set();
        this.#pending.set(key, set);
      }
      set.add(entry);
      const target = topic === 'cmd' ? topics.cmd(hubId) : topics.sync(hubId);
      client.publishAsync(target, JSON.stringify(payload), { qos: 1 }).catch((e: Error) => {
        done(new Error(`ReferenceCloud: publishing ${topic} ${id} to ${hubId} failed: ${e.message}`));
      });
    });
  }

  #hub(hubId: string): HubRecord {
    let h = this.#hubs.get(hubId);
    if (!h) {
      h = {
        events: [],
        eventIds: new Set(),
        status: undefined,
        statusHistory: [],
        locks: new Map(),
        health: [],
        results: new Map(),
        acks: new Map(),
        answers: [],
      };
      this.#hubs.set(hubId, h);
    }
    return h;
  }

  #onMessage(topic: string, payload: Buffer, retained: boolean): void {
    try {
      this.#record(topic, payload, retained);
    } catch (e) {
      this.#refuse(topic, `could not be recorded: ${(e as Error).message}`);
    }
    this.#notify();
  }

  #record(topic: string, payload: Buffer, retained: boolean): void {
    const claim = PROVISIONING_TOPIC.exec(topic)?.[1];
    if (claim !== undefined) {
      this.#received++;
      this.#enroll(claim, topic, payload);
      return;
    }
    const m = HUB_TOPIC.exec(topic);
    const hubId = m?.[1];
    const rest = m?.[2];
    if (hubId === undefined || rest === undefined || !hubIdPattern.test(hubId)) {
      this.#refuse(topic, 'not a hub topic (ks/hubs/{hubId}/...)');
      return;
    }
    // Our own commands and syncs, echoed back over MQTT 3.1.1 (which has no "no local").
    if (rest === 'cmd' || rest === 'sync' || rest === 'cert/response') return;
    this.#received++;

    const lock = LOCK_STATE.exec(rest);
    const kind: keyof TopicMap | undefined = lock
      ? 'locks/{lockId}/state'
      : (['status', 'cmd/result', 'sync/ack', 'events', 'health', 'cert/request'] as const).find((k) => k === rest);
    if (!kind) {
      this.#refuse(topic, 'not a topic of the contract');
      return;
    }
    const hub = this.#hub(hubId);

    // An empty retained payload clears a retained topic (a forgotten lock, a decommissioned hub).
    if (payload.length === 0 && (kind === 'status' || kind === 'locks/{lockId}/state')) {
      if (kind === 'status') hub.status = undefined;
      else hub.locks.delete(lock?.[1] ?? '');
      return;
    }

    let value: unknown;
    try {
      value = JSON.parse(payload.toString('utf8'));
    } catch {
      this.#refuse(topic, 'payload is not JSON');
      return;
    }
    if (!conforms(kind, value)) {
      const why = parseInbound(kind, payload);
      this.#refuse(topic, why.ok ? 'does not match the contract' : why.error.message);
      return;
    }

    switch (kind) {
      case 'status': {
        const s = value as StatusPayload;
        hub.status = s;
        if (!retained || hub.statusHistory.length === 0) hub.statusHistory.push(s);
        return;
      }
      case 'events':
        for (const e of (value as TopicMap['events']['payload']).events) {
          if (hub.eventIds.has(e.id)) {
            this.#duplicates++;
            continue;
          }
          hub.eventIds.add(e.id);
          hub.events.push(e);
        }
        return;
      case 'locks/{lockId}/state': {
        const s = value as LockStatePayload;
        if (s.lockId !== lock?.[1]) {
          this.#refuse(topic, `lockId ${s.lockId} does not match the topic`);
          return;
        }
        hub.locks.set(s.lockId, s);
        return;
      }
      case 'health':
        hub.health.push(value as HealthPayload);
        return;
      case 'cert/request':
        this.#renew(hubId, value as TopicMap['cert/request']['payload']);
        return;
      case 'cmd/result':
      case 'sync/ack': {
        const a = value as CmdResultPayload | SyncAckPayload;
        hub.answers.push({ topic: kind, payload: a });
        if (a.id === null) return;
        const byId: Map<string, CmdResultPayload | SyncAckPayload> = kind === 'cmd/result' ? hub.results : hub.acks;
        if (byId.has(a.id)) this.#repeatedAnswers++;
        else byId.set(a.id, a);
        if (kind === 'cmd/result') this.#noteAccepted(hubId, a as CmdResultPayload);
        const key = pendingKey(hubId, kind, a.id);
        const set = this.#pending.get(key);
        if (set) {
          this.#pending.delete(key);
          for (const p of set) {
            this.#clock.clearTimeout(p.timer);
            p.resolve(a);
          }
        }
        return;
      }
    }
  }

  /**
   * An enrollment request on `ks/provisioning/{claimId}/request`. The broker let only a holder of
   * that claim certificate publish it; the claim proves nothing about which hub it is, so the hub
   * id must be one the claim may enroll, and only once (per key).
   */
  #enroll(claimId: string, topic: string, payload: Buffer): void {
    const certs = this.#certificates;
    const parsed = parseInbound('provisioning/request', payload);
    if (!parsed.ok) {
      this.#refuse(topic, parsed.error.message);
      return;
    }
    const req = parsed.value;
    const answer = (r: Omit<EnrollResponsePayload, 'v' | 'requestId' | 'hubId'>) => {
      const body: EnrollResponsePayload = { v: CONTRACT_VERSION, requestId: req.requestId, hubId: req.hubId, ...r };
      this.#certAnswers.push({
        kind: 'enrollment',
        via: claimId,
        hubId: req.hubId,
        requestId: req.requestId,
        ok: r.ok,
        ...(r.error ? { code: r.error.code } : {}),
      });
      this.#client
        ?.publishAsync(provisioningTopics.response(claimId), JSON.stringify(body), { qos: 1 })
        .catch((e: Error) => this.#log?.warn({ err: e, claimId }, 'reference cloud: enrollment response not sent'));
    };
    const refuse = (code: string, message: string) => {
      this.#log?.warn({ claimId, hubId: req.hubId, code }, `reference cloud: enrollment refused: ${message}`);
      answer({ ok: false, error: { code, message } });
    };
    if (!certs?.claims.has(claimId)) {
      refuse('not_allowed', `claim ${claimId} is not accepted here`);
      return;
    }
    const allowed = certs.o.allowEnrollment
      ? certs.o.allowEnrollment(req.hubId, claimId)
      : !certs.claims.has(req.hubId);
    if (!allowed) {
      refuse('unknown_hub', `hub ${req.hubId} may not enroll with claim ${claimId}`);
      return;
    }
    try {
      const csr = parseCsr(req.csr);
      if (csr.cn !== req.hubId) throw new CsrRefused('cn_mismatch', `the CSR names ${csr.cn}, not ${req.hubId}`);
      let e = this.#enrolled.get(req.hubId);
      if (e && e.keyId !== csr.keyId) {
        throw new CsrRefused('already_enrolled', `hub ${req.hubId} is already enrolled with another key`);
      }
      // The same key again (a response that was lost): the same secrets, a fresh certificate.
      const issued = this.#issue(req.hubId, 'enrollment', req.requestId, csr);
      if (e) e.cert = issued;
      else {
        e = {
          keyId: csr.keyId,
          cert: issued,
          otpKey: Buffer.from(this.#random.bytes(SECRET_BYTES)),
          pinKey: Buffer.from(this.#random.bytes(SECRET_BYTES)),
        };
        this.#enrolled.set(req.hubId, e);
        // From now on this hub's commands are signed with the key it was given.
        this.setOtpKey(req.hubId, new Secret(Buffer.from(e.otpKey)));
      }
      answer({
        ok: true,
        cert: e.cert.cert,
        ca: certs.ca.certPem,
        secrets: { otpKey: wrapForKey(csr.publicKeyPem, e.otpKey), pinKey: wrapForKey(csr.publicKeyPem, e.pinKey) },
      });
    } catch (err) {
      if (err instanceof CsrRefused) refuse(err.code, err.message);
      else {
        this.#log?.error({ err, hubId: req.hubId }, 'reference cloud: enrollment failed');
        refuse('internal', 'the certificate could not be issued');
      }
    }
  }

  /** A renewal request on `ks/hubs/{hubId}/cert/request`: the broker let only hub `hubId` publish it. */
  #renew(hubId: string, req: TopicMap['cert/request']['payload']): void {
    const certs = this.#certificates;
    if (!certs || certs.o.renewals === false) return; // not this cloud's job: no answer
    let r: Omit<CertResponsePayload, 'v' | 'requestId'>;
    try {
      const csr = parseCsr(req.csr);
      if (csr.cn !== hubId) throw new CsrRefused('cn_mismatch', `the CSR names ${csr.cn}, not ${hubId}`);
      const issued = this.#issue(hubId, 'renewal', req.requestId, csr);
      const e = this.#enrolled.get(hubId);
      if (e) {
        e.keyId = csr.keyId;
        e.cert = issued;
      }
      r = { ok: true, cert: issued.cert };
    } catch (err) {
      const known = err instanceof CsrRefused;
      if (!known) this.#log?.error({ err, hubId }, 'reference cloud: renewal failed');
      r = {
        ok: false,
        error: known
          ? { code: err.code, message: err.message }
          : { code: 'internal', message: 'the certificate could not be issued' },
      };
    }
    this.#certAnswers.push({
      kind: 'renewal',
      via: hubId,
      hubId,
      requestId: req.requestId,
      ok: r.ok,
      ...(r.error ? { code: r.error.code } : {}),
    });
    const body: CertResponsePayload = { v: CONTRACT_VERSION, requestId: req.requestId, ...r };
    this.#client
      ?.publishAsync(topics.certResponse(hubId), JSON.stringify(body), { qos: 1 })
      .catch((e: Error) => this.#log?.warn({ err: e, hubId }, 'reference cloud: renewal response not sent'));
  }

  #issue(
    hubId: string,
    kind: IssuedCertificate['kind'],
    requestId: string,
    csr: ReturnType<typeof parseCsr>,
  ): IssuedCertificate {
    const certs = this.#certificates;
    if (!certs) throw new Error('ReferenceCloud: certificates are not enabled');
    const issued = certs.ca.issue(csr, {
      now: this.#clock.now(),
      ...(certs.o.validitySec === undefined ? {} : { validitySec: certs.o.validitySec }),
    });
    const record: IssuedCertificate = {
      hubId,
      kind,
      requestId,
      fingerprint: new X509Certificate(issued.certPem).fingerprint256,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      keyId: csr.keyId,
      cert: issued.certPem,
    };
    this.#issued.push(record);
    this.#log?.info({ hubId, kind, notAfter: issued.notAfter }, 'reference cloud: certificate issued');
    return record;
  }

  /** A command the hub accepted (its counter is now the hub's last accepted one, or below it). */
  #noteAccepted(hubId: string, r: CmdResultPayload): void {
    const otp = this.#otp.get(hubId);
    const counter = r.id === null ? undefined : otp?.counters.get(r.id);
    if (!otp || counter === undefined) return;
    if (r.ok || r.error?.code === 'unknown_outcome') otp.accepted = Math.max(otp.accepted, counter);
  }

  #refuse(topic: string, reason: string): void {
    this.#invalid.push({ topic, reason });
    this.#log?.warn({ topic, reason }, 'reference cloud: message does not match the contract');
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w.check();
  }
}

/** The fields of one envelope that are not the command itself; times in Unix ms. */
export interface EnvelopeFields {
  cmdId: string;
  hubId: string;
  issuedAt: number;
  expiresAt: number;
  counter: number;
}

/**
 * Sign `spec` as a command envelope under the hub's OTP key, as a cloud does. An attach's
 * `args.setupCode` is given in clear and sent sealed to the cmdId (`sealSetupCode`), unless
 * `sealSetup` is false (a test sending a clear setup code, as a careless or hostile cloud would).
 */
export function signEnvelope(
  otpKey: Secret,
  spec: CommandSpec,
  f: EnvelopeFields,
  random: Random,
  sealSetup = true,
): CommandEnvelope {
  const args = { ...spec.args };
  if (sealSetup && spec.op === 'attach' && typeof args.setupCode === 'string') {
    args.setupCode = sealSetupCode(otpKey, f.cmdId, args.setupCode, random);
  }
  const unsigned: UnsignedCommand = {
    v: CONTRACT_VERSION,
    cmdId: f.cmdId,
    hubId: f.hubId,
    ...(spec.lockId === undefined ? {} : { lockId: spec.lockId }),
    op: spec.op,
    args,
    issuedAt: new Date(f.issuedAt).toISOString(),
    expiresAt: new Date(f.expiresAt).toISOString(),
    counter: f.counter,
  };
  return signCommand(otpKey, unsigned);
}

/** `{op, lockId, args}` from either that form or the flat one (`{op, lockId, durationMs}`). */
function toSpec(cmd: CommandSpec | CommandRequest): CommandSpec {
  const { op, lockId, args, ...flat } = cmd as { op: CommandOp; lockId?: string; args?: Record<string, unknown> };
  return {
    op,
    ...(lockId === undefined ? {} : { lockId }),
    args: { ...flat, ...args },
  };
}

function pendingKey(hubId: string, kind: string, id: string): string {
  return `${hubId}\n${kind}\n${id}`;
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
