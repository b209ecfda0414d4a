import type { MqttClient } from 'mqtt';
import { type Clock, systemClock } from '../../src/base/clock.js';
import { type Random, systemRandom } from '../../src/base/random.js';
import type { CommandEnvelope } from '../../src/commands/otp.js';
import { DEFAULT_MAX_MESSAGE_BYTES, type TopicMap } from '../../src/contract/mqtt.js';
import type { SyncPayload } from '../../src/contract/mqtt-cloud-messages.js';
import type {
  CloudEvent,
  CmdResultPayload,
  HealthPayload,
  LockStatePayload,
  StatusPayload,
  SyncAckPayload,
  SyncRequestPayload,
} from '../../src/contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION, provisioningTopics, topics } from '../../src/contract/mqtt-topics.js';
import { splitSync } from '../../src/contract/sync-parts.js';
import type { Secret } from '../../src/crypto/secret.js';
import type { Logger } from '../../src/log/logger.js';
import { type Attack, buildAttack } from './attacks.js';
import { type CloudConnectOptions, openCloudClient, subscribeCloud } from './broker-session.js';
import {
  type CertificateAnswer,
  type CertificateOptions,
  CloudCertificates,
  type IssuedCertificate,
} from './certificates.js';
import { CloudFirmware } from './firmware.js';
import { type Answer, HubRecords, type InvalidMessage } from './hub-records.js';
import { classifyTopic, readPayload } from './inbound.js';
import { CloudOtpKeys, type OtpKeyOptions as OtpKeyDeliveryOptions } from './otp-keys.js';
import { CloudRecovery, type Revocation } from './recovery.js';
import {
  type CommandRequest,
  CommandSigner,
  type CommandSpec,
  type EnvelopeOverrides,
  type OtpKeyOptions,
  toSpec,
} from './signing.js';
import { Waits } from './waits.js';

export type { Attack, AttackKind } from './attacks.js';
export { CLOUD_SUBSCRIPTION, type CloudConnectOptions } from './broker-session.js';
export type { CertificateAnswer, CertificateOptions, IssuedCertificate } from './certificates.js';
export type { Answer, InvalidMessage, SequenceGap } from './hub-records.js';
export type { OtpKeyOptions as OtpKeyDeliveryOptions, OtpKeyRequestRecord } from './otp-keys.js';
export {
  type CommandRequest,
  type CommandSpec,
  DEFAULT_COMMAND_TTL_MS,
  type EnvelopeFields,
  type EnvelopeOverrides,
  type OtpKeyOptions,
  signEnvelope,
} from './signing.js';

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
 * sim/cloud/README.md. This class is its front: the session (broker-session.ts), reading what
 * arrives (inbound.ts), the records (hub-records.ts), signing (signing.ts), attacks (attacks.ts),
 * certificates (certificates.ts) and waiting for answers (waits.ts) each have their own module.
 */

export interface ReferenceCloudOptions {
  clock?: Clock;
  /** For request ids; seeded in tests. */
  random?: Random;
  log?: Logger;
  /**
   * Acknowledge every `events` message once its events are recorded (`events/ack` with all its
   * ids, those already had included). Default true; false plays a cloud of the older contract.
   */
  ackEvents?: boolean;
  /**
   * The largest message it publishes (the broker's limit; default 128 KiB): a larger sync goes in
   * parts (docs/mqtt-api.md, "Sync in parts").
   */
  maxMessageBytes?: number;
}

/** A sync as the caller writes it: the cloud adds `v` and a fresh `id`. */
export type SyncRequest = Omit<SyncPayload, 'v' | 'id'>;

export interface RequestOptions {
  /** Reject when no answer arrived within this. Default 10,000. */
  timeoutMs?: number;
}

export interface SendOptions extends RequestOptions {
  /** Hold the envelope this long before publishing it (a delayed command). Default 0. */
  delayMs?: number;
}

export class ReferenceCloud {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger | undefined;
  readonly #idPrefix: string;
  readonly #records: HubRecords;
  readonly #waits: Waits;
  readonly #signer: CommandSigner;
  readonly #certs: CloudCertificates;
  /** Lock firmware: announce an image to a hub, serve its chunks, read its progress (sim/cloud/firmware.ts). */
  readonly firmware: CloudFirmware;
  readonly #maxMessageBytes: number;
  /** OTP key delivery to identified hubs (otp-keys.ts); `enableOtpKeys` turns it on. */
  readonly otpKeys: CloudOtpKeys;
  readonly #syncRequests = new Map<string, SyncRequestPayload[]>();
  readonly #syncRequestListeners = new Set<(hubId: string, r: SyncRequestPayload) => void>();
  /** Hub replacement: the recovery key, restore approvals and the hubs they revoked (recovery.ts). */
  readonly recovery: CloudRecovery;
  #client: MqttClient | undefined;
  #nextId = 1;
  #ackEvents: boolean;
  #eventAcksSent = 0;

  constructor(opts: ReferenceCloudOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? systemRandom;
    this.#log = opts.log;
    this.#ackEvents = opts.ackEvents ?? true;
    this.#maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    // Request ids are unique per instance, so a new cloud never reuses an id a hub has answered.
    this.#idPrefix = `cloud-${Buffer.from(this.#random.bytes(6)).toString('hex')}`;
    this.#records = new HubRecords(this.#log);
    this.#waits = new Waits(this.#clock);
    this.#signer = new CommandSigner(this.#clock, this.#random, () => this.#newId());
    this.recovery = new CloudRecovery(this.#clock, this.#random);
    this.#certs = new CloudCertificates({
      clock: this.#clock,
      random: this.#random,
      log: this.#log,
      publish: (topic, body) => this.#client?.publishAsync(topic, JSON.stringify(body), { qos: 1 }),
      refuse: (topic, reason) => this.#records.refuse(topic, reason),
      enrolled: (hubId, otpKey) => this.setOtpKey(hubId, otpKey),
    });
    this.otpKeys = new CloudOtpKeys({
      random: this.#random,
      log: this.#log,
      now: () => this.#clock.now(),
      publish: (hubId, body) => this.#client?.publishAsync(topics.otpKey(hubId), JSON.stringify(body), { qos: 1 }),
      // Commands go on from above the last counter the hub accepted, whatever this cloud counted.
      installed: (hubId, key, lastCounter) =>
        this.setOtpKey(hubId, key, { counter: Math.max(this.nextCounter(hubId) ?? 1, lastCounter + 1) }),
      signingKey: (hubId) => this.#signer.state(hubId)?.key,
    });
    this.firmware = new CloudFirmware({
      publish: (topic, body) => this.#client?.publishAsync(topic, JSON.stringify(body), { qos: 1 }),
      maxMessageBytes: this.#maxMessageBytes,
    });
  }

  /**
   * Deliver OTP keys to hubs that ask on `otp-key/request` (their certificate chained to `o.ca`):
   * sealed to each hub's delivery key; from the hub's ack on, its commands are signed with it.
   */
  enableOtpKeys(o: OtpKeyDeliveryOptions): void {
    this.otpKeys.enable(o);
  }

  /** Rotate a hub's OTP key: a new key, the next generation, sealed to its delivery key; resolves with the hub's ack. */
  async rotateOtpKey(hubId: string, timeoutMs = 10_000): Promise<TopicMap['otp-key/ack']['payload']> {
    const d = await this.otpKeys.deliver(hubId);
    await this.waitFor(
      (c) => c.otpKeys.acks(hubId).has(d.deliveryId),
      timeoutMs,
      `the ack of OTP key delivery ${d.deliveryId}`,
    );
    return this.otpKeys.acks(hubId).get(d.deliveryId) as TopicMap['otp-key/ack']['payload'];
  }

  /** Every `sync/request` a hub sent, in order. */
  syncRequests(hubId: string): readonly SyncRequestPayload[] {
    return this.#syncRequests.get(hubId) ?? [];
  }

  /** Be told of each `sync/request` (SiteAdmin.serve answers them); returns the way to stop. */
  onSyncRequest(listener: (hubId: string, r: SyncRequestPayload) => void): () => void {
    this.#syncRequestListeners.add(listener);
    return () => this.#syncRequestListeners.delete(listener);
  }

  /** Connect with the cloud's certificate and subscribe to every hub's topics (QoS 1). */
  async connect(o: CloudConnectOptions): Promise<void> {
    if (this.#client) throw new Error('ReferenceCloud.connect: already connected; close() first');
    const client = openCloudClient(o, this.#random, {
      message: (topic, payload, retained) => this.#onMessage(topic, payload, retained),
      connected: () => this.#waits.notify(),
      error: (e) => this.#log?.warn({ err: e }, 'reference cloud: connection error'),
    });
    this.#client = client;
    try {
      await subscribeCloud(client, o, this.#clock);
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
    for (const id of this.#certs.enable(o)) {
      const grants = await client.subscribeAsync(provisioningTopics.request(id), { qos: 1 });
      if (!grants.length || grants.some((g) => g.qos > 2)) {
        throw new Error(`the broker refused the subscription to ${provisioningTopics.request(id)}`);
      }
    }
  }

  /** Certificates issued (enrollments and renewals), of one hub or of all, in order. */
  certificates(hubId?: string): readonly IssuedCertificate[] {
    return this.#certs.issued(hubId);
  }

  /** Every enrollment and renewal request answered, in order (refusals with their code). */
  certificateAnswers(): readonly CertificateAnswer[] {
    return this.#certs.answers();
  }

  /** The OTP key the cloud gave a hub at enrollment (undefined if it did not enroll here). */
  enrolledOtpKey(hubId: string): Secret | undefined {
    return this.#certs.enrolledOtpKey(hubId);
  }

  // ── what hubs published ────────────────────────────────────────────────────────────────────────

  /** Hubs the cloud has heard from. */
  hubs(): string[] {
    return this.#records.hubs();
  }

  /** A hub's events, each id once, in the order they first arrived. */
  events(hubId: string): readonly CloudEvent[] {
    return this.#records.events(hubId);
  }

  /** Acknowledge events from now on (true), or stop (false: an older cloud). */
  setAckEvents(on: boolean): void {
    this.#ackEvents = on;
  }

  /** `events/ack` messages sent to hubs. */
  get eventAcksSent(): number {
    return this.#eventAcksSent;
  }

  /** Events received again with an id already seen (at-least-once delivery at work). */
  get duplicates(): number {
    return this.#records.duplicates;
  }

  /**
   * Events (of one hub, or of all) that arrived after a later one of the same lock and epoch
   * (first-arrival order; duplicates are not counted). Expected empty only when no copy was lost:
   * the hub publishes each lock's events in seq order, but a copy the broker lost (no subscriber
   * yet after a broker restart, say) comes again only with the resend, after later ones
   * (docs/mqtt-api.md, "Event order"). What the contract promises is checked by `sequenceGaps`.
   */
  orderViolations(hubId?: string): CloudEvent[] {
    return this.#records.orderViolations(hubId);
  }

  /**
   * Holes in each lock's sequence as stored here (ordered by seq, as a cloud must): seqs between
   * two received ones of the same lock and epoch that have not arrived. Empty once everything the
   * hub published is in (seq is gap-free within an epoch); a hole left means a lost event.
   */
  sequenceGaps(hubId?: string): ReturnType<HubRecords['sequenceGaps']> {
    return this.#records.sequenceGaps(hubId);
  }

  /** The hub's current (retained) status, if any. */
  status(hubId: string): StatusPayload | undefined {
    return this.#records.status(hubId);
  }

  /** Every status message received, in order. */
  statusHistory(hubId: string): readonly StatusPayload[] {
    return this.#records.statusHistory(hubId);
  }

  /** The latest (retained) state of each lock of a hub. */
  lockStates(hubId: string): ReadonlyMap<string, LockStatePayload> {
    return this.#records.lockStates(hubId);
  }

  lockState(hubId: string, lockId: string): LockStatePayload | undefined {
    return this.#records.lockStates(hubId).get(lockId);
  }

  /** Health messages, in order. */
  health(hubId: string): readonly HealthPayload[] {
    return this.#records.health(hubId);
  }

  /** Command results by id (the first one received for each id). */
  results(hubId: string): ReadonlyMap<string, CmdResultPayload> {
    return this.#records.results(hubId);
  }

  /** Sync acknowledgements by id (the first one received for each id). */
  syncAcks(hubId: string): ReadonlyMap<string, SyncAckPayload> {
    return this.#records.syncAcks(hubId);
  }

  /** Every cmd/result and sync/ack in arrival order, including errors about unreadable messages (id null). */
  answers(hubId: string): readonly Answer[] {
    return this.#records.answers(hubId);
  }

  /** Answers received again for an id already answered (a redelivered command). */
  get repeatedAnswers(): number {
    return this.#records.repeatedAnswers;
  }

  /** Messages received that do not match the contract. */
  get invalid(): number {
    return this.#records.invalidMessages.length;
  }

  get invalidMessages(): readonly InvalidMessage[] {
    return this.#records.invalidMessages;
  }

  /** Messages received from hubs (valid or not). */
  get received(): number {
    return this.#records.received;
  }

  // ── commands and syncs ─────────────────────────────────────────────────────────────────────────

  /**
   * Use `key` as the hub's OTP key: from now on `command()` sends that hub OTP-signed envelopes.
   * Setting it again replaces the key and, when `opts.counter` is given, the next counter.
   */
  setOtpKey(hubId: string, key: Secret, opts: OtpKeyOptions = {}): void {
    this.#signer.setKey(hubId, key, opts);
  }

  /** The counter the next signed command for the hub will carry (undefined without a key). */
  nextCounter(hubId: string): number | undefined {
    return this.#signer.state(hubId)?.next;
  }

  /**
   * Sign the next commands from the highest counter the hub accepted + 1, as a cloud does after a
   * run of commands the hub refused unused (a backlog that expired): see docs/mqtt-api.md, Commands.
   */
  resumeCounter(hubId: string): number {
    return this.#signer.resumeCounter(hubId);
  }

  /**
   * Approve a hub replacement (the new hub's restore request, as text): the old hub is revoked (its
   * messages are refused from now on) and its OTP key moves to the new hub, signing from above the
   * highest counter the old hub accepted. Returns the approval for `iqhub hub-restore --approval`.
   */
  async approveRestore(requestText: string): Promise<{ approvalText: string; revocation: Revocation }> {
    const r = await this.recovery.approve(requestText);
    const old = this.#signer.state(r.revocation.hubId);
    if (old && !this.#signer.has(r.revocation.replacedBy)) {
      this.#signer.setKey(r.revocation.replacedBy, old.key, { counter: Math.max(old.next, old.accepted + 1) });
    }
    return r;
  }

  /** The highest counter of this cloud's commands the hub accepted (0 if none yet). */
  acceptedCounter(hubId: string): number {
    return this.#signer.state(hubId)?.accepted ?? 0;
  }

  /** The envelopes sent to a hub with `sendEnvelope` or a signed `command()`, in order. */
  sentEnvelopes(hubId: string): readonly CommandEnvelope[] {
    return this.#signer.sent(hubId);
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
    if (this.#signer.has(hubId)) return this.sendEnvelope(hubId, this.envelope(hubId, spec), opts);
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
    return this.#signer.envelope(hubId, cmd, overrides);
  }

  /**
   * Build a hostile or stale envelope (see `Attack`) for the hub, without sending it; send it
   * with `sendEnvelope`.
   */
  attack(hubId: string, a: Attack): CommandEnvelope {
    return buildAttack(hubId, a, {
      signer: this.#signer,
      random: this.#random,
      now: () => this.#clock.now(),
      newId: () => this.#newId(),
    });
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
    this.#signer.noteSent(hubId, cmdId, envelope);
    return this.#request(hubId, 'cmd', cmdId, envelope, opts.timeoutMs) as Promise<CmdResultPayload>;
  }

  /**
   * Send a sync with a fresh id and wait for its acknowledgement. A sync larger than the message
   * limit goes in parts (ids `{id}.p{index}`), one after another, each waiting for its answer; the
   * answer returned is the last part's (the applied result, with `part.sync` = the sync's id), or
   * the first refusal. `timeoutMs` applies to each message.
   */
  async sync(hubId: string, sync: SyncRequest, opts: RequestOptions = {}): Promise<SyncAckPayload> {
    const id = this.#newId();
    const payload: SyncPayload = { ...sync, v: CONTRACT_VERSION as 1, id };
    const messages = splitSync(payload, this.#maxMessageBytes, (i) => `${id}.p${i}`);
    let answer: SyncAckPayload | undefined;
    for (const m of messages) {
      answer = (await this.#request(hubId, 'sync', m.id, m, opts.timeoutMs)) as SyncAckPayload;
      if (!answer.ok) break;
    }
    return answer as SyncAckPayload;
  }

  /**
   * Every lock of a hub, page after page (`listLocks` with `args.after`, docs/mqtt-api.md): the
   * hub answers as many as fit one message and the id to continue after. Needs the hub's OTP key.
   */
  async listAllLocks(hubId: string, opts: SendOptions & { limit?: number } = {}): Promise<Record<string, unknown>[]> {
    const locks: Record<string, unknown>[] = [];
    let after: string | null = null;
    do {
      const args: Record<string, unknown> = {
        ...(after !== null ? { after } : {}),
        ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
      };
      const r = await this.command(hubId, { op: 'listLocks', args }, opts);
      if (!r.ok) throw new Error(`ReferenceCloud.listAllLocks: ${r.error?.code}: ${r.error?.message}`);
      const page = r.result as { locks: Record<string, unknown>[]; next: string | null };
      locks.push(...page.locks);
      after = page.next;
    } while (after !== null);
    return locks;
  }

  /**
   * Publish raw bytes on a hub's cmd or sync topic (QoS 1): for tests of what a hub refuses.
   * `retain`: the broker keeps it and hands it to the hub at every subscribe (an empty payload
   * clears it).
   */
  async send(
    hubId: string,
    topic: 'cmd' | 'sync' | 'otp-key',
    payload: string | Buffer,
    o: { retain?: boolean } = {},
  ): Promise<void> {
    const client = this.#need();
    const to = topic === 'cmd' ? topics.cmd(hubId) : topic === 'sync' ? topics.sync(hubId) : topics.otpKey(hubId);
    await client.publishAsync(to, payload, {
      qos: 1,
      retain: o.retain ?? false,
    });
  }

  /**
   * Resolve once the hub has said `online` on its status topic after the first `since` status
   * messages (take `statusHistory(hubId).length` before starting or reconnecting it).
   */
  waitForOnline(hubId: string, since: number, timeoutMs: number, what = `${hubId} online`): Promise<void> {
    return this.waitFor(
      (c) =>
        c
          .statusHistory(hubId)
          .slice(since)
          .some((s) => s.state === 'online'),
      timeoutMs,
      what,
    );
  }

  /** `send` each payload, at most 200 in flight at once (a backlog or a flood for tests). */
  async sendAll(hubId: string, topic: 'cmd' | 'sync', payloads: readonly (string | Buffer)[]): Promise<void> {
    for (let i = 0; i < payloads.length; i += 200) {
      await Promise.all(payloads.slice(i, i + 200).map((p) => this.send(hubId, topic, p)));
    }
  }

  /**
   * Resolve once `predicate` holds (checked now and after every message received), or reject after
   * `timeoutMs` saying what was awaited.
   */
  waitFor(predicate: (cloud: ReferenceCloud) => boolean, timeoutMs: number, what = 'the condition'): Promise<void> {
    return this.#waits.until(
      () => predicate(this),
      timeoutMs,
      () => new Error(`ReferenceCloud.waitFor: ${what} did not happen within ${timeoutMs} ms`),
    );
  }

  /** Disconnect; pending requests and waits reject. The records stay readable. */
  async close(): Promise<void> {
    this.#waits.failAll(new Error('ReferenceCloud closed'));
    const client = this.#client;
    this.#client = undefined;
    if (client) await client.endAsync(!client.connected);
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────────

  #newId(): string {
    return `${this.#idPrefix}-${this.#nextId++}`;
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
    const wait = this.#waits.answer(
      hubId,
      kind,
      id,
      timeoutMs,
      () => new Error(`ReferenceCloud: no ${kind} for ${topic} ${id} from ${hubId} within ${timeoutMs} ms`),
    );
    const target = topic === 'cmd' ? topics.cmd(hubId) : topics.sync(hubId);
    client.publishAsync(target, JSON.stringify(payload), { qos: 1 }).catch((e: Error) => {
      wait.fail(new Error(`ReferenceCloud: publishing ${topic} ${id} to ${hubId} failed: ${e.message}`));
    });
    return wait.answer;
  }

  /**
   * The contract's rule for a cloud: acknowledge an event once it is stored — here, once it is in
   * the records (a duplicate is acknowledged again: the hub still holds it until it hears so).
   */
  #ackStored(hubId: string, batch: TopicMap['events']['payload']): void {
    const client = this.#client;
    if (!this.#ackEvents || !client) return;
    const ack: TopicMap['events/ack']['payload'] = { v: 1, ids: batch.events.map((e) => e.id) };
    this.#eventAcksSent++;
    client.publishAsync(topics.eventsAck(hubId), JSON.stringify(ack), { qos: 1 }).catch((e: Error) => {
      // Not acknowledged: the hub sends the events again, and they are acknowledged then.
      this.#log?.warn({ err: e, hubId }, 'reference cloud: events/ack could not be published');
    });
  }

  #onMessage(topic: string, payload: Buffer, retained: boolean): void {
    try {
      this.#route(topic, payload, retained);
    } catch (e) {
      this.#records.refuse(topic, `could not be recorded: ${(e as Error).message}`);
    }
    this.#waits.notify();
  }

  #route(topic: string, payload: Buffer, retained: boolean): void {
    const t = classifyTopic(topic);
    switch (t.kind) {
      case 'echo':
        return;
      case 'foreign':
        this.#records.refuse(topic, t.reason);
        return;
      case 'provisioning':
        this.#records.countReceived();
        this.#certs.enroll(t.claimId, topic, payload);
        return;
      case 'unknown':
        this.#records.countReceived();
        this.#records.refuse(topic, t.reason);
        return;
    }
    this.#records.countReceived();
    const { hubId, lockId } = t;
    const revoked = this.recovery.isRevoked(hubId);
    if (revoked) {
      this.#records.refuse(topic, `hub ${hubId} is revoked: replaced by ${revoked.replacedBy}`);
      return;
    }
    this.#records.open(hubId);
    if (payload.length === 0 && (t.topic === 'status' || t.topic === 'locks/{lockId}/state')) {
      this.#records.clearRetained(hubId, lockId);
      return;
    }
    const read = readPayload(t.topic, payload);
    if (!read.ok) {
      this.#records.refuse(topic, read.reason);
      return;
    }
    const value = read.value;
    switch (t.topic) {
      case 'status':
        this.#records.recordStatus(hubId, value as StatusPayload, retained);
        return;
      case 'events':
        this.#records.recordEvents(hubId, (value as TopicMap['events']['payload']).events);
        this.#ackStored(hubId, value as TopicMap['events']['payload']);
        return;
      case 'locks/{lockId}/state': {
        const s = value as LockStatePayload;
        if (s.lockId !== lockId) this.#records.refuse(topic, `lockId ${s.lockId} does not match the topic`);
        else this.#records.recordLockState(hubId, s);
        return;
      }
      case 'health':
        this.#records.recordHealth(hubId, value as HealthPayload);
        return;
      case 'cert/request':
        this.#certs.renew(hubId, value as TopicMap['cert/request']['payload']);
        return;
      case 'firmware/request':
        this.firmware.serve(hubId, value as TopicMap['firmware/request']['payload']);
        return;
      case 'firmware/progress':
        this.firmware.record(hubId, value as TopicMap['firmware/progress']['payload']);
        return;
      case 'otp-key/request':
        this.otpKeys.request(hubId, value as TopicMap['otp-key/request']['payload']);
        return;
      case 'otp-key/ack':
        this.otpKeys.ack(hubId, value as TopicMap['otp-key/ack']['payload']);
        return;
      case 'sync/request': {
        const r = value as SyncRequestPayload;
        this.#syncRequests.set(hubId, [...this.syncRequests(hubId), r]);
        for (const l of this.#syncRequestListeners) l(hubId, r);
        return;
      }
      case 'cmd/result':
      case 'sync/ack': {
        const a = value as CmdResultPayload | SyncAckPayload;
        this.#records.recordAnswer(hubId, t.topic, a);
        if (a.id === null) return;
        if (t.topic === 'cmd/result') this.#signer.noteResult(hubId, a as CmdResultPayload);
        this.#waits.settle(hubId, t.topic, a.id, a);
        return;
      }
    }
  }
}
