import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hubIdOfCertificate } from '../../provisioning/hub-id.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import { loadIdentity } from '../../provisioning/identity-load.js';
import type { Clock, TimerHandle } from '../base/clock.js';
import type { Component, ComponentStatus } from '../base/component.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { type CommandSecurityEvent, CommandVerifier, type VerifierStats } from '../commands/verifier.js';
import type { HubConfig } from '../config/schema.js';
import { CONTRACT_VERSION, HEALTH_MAX_LOCK_IDS, type HealthPayload, type LockStatePayload } from '../contract/mqtt.js';
import { readPrivateFile } from '../crypto/private-file.js';
import type { Secret } from '../crypto/secret.js';
import type { Outbox } from '../events/outbox.js';
import type { LinkManager, LockChange } from '../link/manager.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import type { Enrollment } from './enrollment.js';
import { type CommandTarget, Inbound, type RecentCommand, type SyncTarget } from './inbound.js';
import { UplinkClient } from './mqtt-client.js';
import { Publisher } from './publisher.js';
import { Rotation, type RotationStatus } from './rotation.js';

export type UplinkFiles = ReturnType<typeof loadUplinkFiles>;

export interface UplinkDeps {
  config: HubConfig['uplink'];
  /**
   * Loaded and checked at build time, so a bad certificate stops start-up with a clear message.
   * Undefined when the hub has no identity yet and enrolls first (`enrollment`).
   */
  files: UplinkFiles | undefined;
  store: Store;
  outbox: Outbox;
  link: LinkManager | undefined;
  /** The bound locks' offline lists, for `health` (absent: the hub keeps none). */
  offlineLists?: () => { lockId: string; upToDate: boolean }[];
  clock: Clock;
  random: Random;
  log: Logger;
  version: string;
  startedAt: () => number;
  /** Radio adapters and their state, for `health`. */
  radios: () => HealthPayload['radios'];
  /** Lockout, skew and counter window of remote commands. */
  commands: HubConfig['commands'];
  /** The hub's OTP key (src/commands/otp-key.ts); undefined: every command is refused `no_otp_key`. */
  otpKey: Secret | undefined;
  /** Told of a command lockout (already recorded in security_events and logged). */
  onSecurityEvent?: (e: CommandSecurityEvent) => void;
  /** The access mirror that `sync` feeds; without it a sync is answered `sync.unavailable`. */
  sync?: SyncTarget;
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
}

export interface UplinkIdentity {
  hubId: string;
  notBefore: string;
  notAfter: string;
  fingerprint: string;
}

/**
 * Read and check the uplink's certificate files: the CA, the hub certificate (its CN is the hub
 * id) and the private key (mode 0600, and it must belong to the certificate). With none of the
 * three files configured, the identity installed in `<dataDir>/identity` is used (same checks).
 * Every problem is a HubError naming the file and the fix; key material never appears in a message.
 */
export function loadUplinkFiles(
  config: HubConfig['uplink'],
  dataDir: string,
): {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  identity: UplinkIdentity;
} {
  const { caFile, certFile, keyFile } = config;
  if (caFile === null && certFile === null && keyFile === null) {
    const installed = loadIdentity(dataDir);
    if (!installed) {
      throw new HubError(
        'uplink.no-identity',
        `the uplink is enabled but no hub certificate is installed in ${identityPaths(dataDir).dir}`,
        {
          hint: 'run `iqhub provision init`, have the CSR signed and `iqhub provision install --cert FILE --ca FILE` (or enroll with a claim certificate); or set uplink.caFile, uplink.certFile and uplink.keyFile',
        },
      );
    }
    const { ca, cert, key, hubId, notBefore, notAfter, fingerprint } = installed;
    return { ca, cert, key, identity: { hubId, notBefore, notAfter, fingerprint } };
  }
  if (!caFile || !certFile || !keyFile) {
    throw new HubError(
      'config.uplink',
      'uplink.caFile, uplink.certFile and uplink.keyFile are set together or not at all (null: the installed identity)',
      { hint: 'set all three, or none of them to use the identity installed with `iqhub provision`' },
    );
  }
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new HubError(
        'uplink.files',
        `cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
        {
          hint: 'check uplink.* in the config and the file permissions (iqhub pki dev makes a development set)',
        },
      );
    }
  };
  const ca = read(caFile, 'CA certificate');
  const cert = read(certFile, 'hub certificate');
  const key = readPrivateFile(keyFile, {
    codePrefix: 'uplink.key',
    what: 'uplink private key',
    checkMode: true,
    maxBytes: 16384,
  });
  if (!key) throw new HubError('uplink.key.missing', `the uplink private key ${keyFile} does not exist`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
    new X509Certificate(ca);
  } catch {
    throw new HubError('uplink.files', `${certFile} or ${caFile} is not a PEM certificate`);
  }
  let matches = false;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new HubError('uplink.key.invalid', `the uplink private key ${keyFile} is not a PEM private key`);
  }
  if (!matches) {
    throw new HubError(
      'uplink.key.mismatch',
      `the private key ${keyFile} does not belong to the certificate ${certFile}`,
      {
        hint: 'install the key that was generated with this certificate, or issue a new certificate',
      },
    );
  }
  const cn = hubIdOfCertificate(x509, 'uplink');
  return {
    ca,
    cert,
    key,
    identity: {
      hubId: cn,
      notBefore: new Date(x509.validFrom).toISOString(),
      notAfter: new Date(x509.validTo).toISOString(),
      fingerprint: x509.fingerprint256,
    },
  };
}

const noRadio = () => Promise.reject(new HubError('lock.unknown', 'this hub has no radio configured'));
const noLocks: CommandTarget = {
  list: () => [],
  lockState: noRadio,
  open: noRadio,
  lockNow: noRadio,
  setMode: noRadio,
  attach: noRadio,
  detach: noRadio,
};

/**
 * The cloud uplink as one component: the MQTT client, the publisher draining the outbox, the
 * inbound command handler, retained lock states and the periodic health message.
 */
export class UplinkService implements Component {
  readonly name = 'uplink';
  readonly #d: UplinkDeps;
  #client: UplinkClient | undefined;
  #publisher: Publisher | undefined;
  #inbound: Inbound | undefined;
  #verifier: CommandVerifier | undefined;
  #identity: UplinkIdentity | undefined;
  #rotation: Rotation | undefined;
  #enrolling: Promise<void> | undefined;
  #health: TimerHandle | undefined;
  #unsubscribe: (() => void)[] = [];
  #stopping = false;
  /** Retained lock states not yet queued, newest per lock (see #lockChanged). */
  readonly #pendingStates = new Map<string, LockStatePayload>();
  #statesFlush: NodeJS.Immediate | undefined;

  constructor(deps: UplinkDeps) {
    this.#d = deps;
  }

  get identity(): UplinkIdentity | undefined {
    return this.#identity;
  }

  /**
   * Remote commands for `iqhub commands`: accepted and refused (by code) since start-up, the
   * lockout, and the newest accepted commands with their outcome. Undefined until the uplink is
   * up (a hub still enrolling has no verifier yet).
   */
  commands(limit: number): { stats: VerifierStats; recent: RecentCommand[] } | undefined {
    const stats = this.commandStats();
    const inbound = this.#inbound;
    if (!stats || !inbound) return undefined;
    return { stats, recent: inbound.recent(limit) };
  }

  /** The verifier's counts since start-up and a running lockout (`iqhub diag`, health); undefined until the uplink is up. */
  commandStats(): VerifierStats | undefined {
    return this.#verifier?.stats();
  }

  /** Certificate renewal: when it is due, the last problem, rotations done (undefined when off). */
  rotationStatus(): RotationStatus | undefined {
    return this.#rotation?.status();
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
    });
    const publisher = new Publisher({
      outbox: d.outbox,
      client,
      clock: d.clock,
      log: d.log,
      inflight: d.config.inflight,
      batchSize: d.config.batchSize,
    });
    const link = d.link;
    const verifier = new CommandVerifier({
      hubId: files.identity.hubId,
      otpKey,
      config: d.commands,
      store: d.store,
      clock: d.clock,
      log: d.log.child({ component: 'commands' }),
      knownLock: (lockId) => link?.pairing.get(lockId) !== undefined,
      onSecurityEvent: (e) => {
        d.onSecurityEvent?.(e);
        this.#publishHealthNow();
      },
    });
    const inbound = new Inbound({
      store: d.store,
      clock: d.clock,
      log: d.log,
      target: link ?? noLocks,
      verifier,
      otpKey,
      ...(d.sync ? { sync: d.sync } : {}),
      results: {
        enqueueMessage: (topic, payload, ahead) => {
          const id = d.outbox.enqueueMessage(topic, payload);
          if (ahead) publisher.adopt(ahead, id);
          else publisher.kick();
        },
        publishAhead: (topic, text) => publisher.publishAhead(topic, text),
        publishNow: (topic, payload) => void client.publish(topic, JSON.stringify(payload)),
      },
    });
    this.#client = client;
    this.#publisher = publisher;
    this.#inbound = inbound;
    this.#verifier = verifier;
    // Commands interrupted by the last stop are answered unknown_outcome (never repeated) before
    // any new one can arrive; reading their locks' state back may take a while, so start-up does
    // not wait for it (a redelivery of one of them waits for its answer).
    void inbound.recover().then(
      (n) => {
        if (n > 0) d.log.warn({ commands: n }, 'commands interrupted by the last stop were answered unknown_outcome');
      },
      (e: unknown) => d.log.error({ err: e }, 'interrupted commands could not be answered'),
    );
    const rotation = d.rotation ? this.#newRotation(d.rotation, files, client) : undefined;
    this.#rotation = rotation;
    this.#unsubscribe.push(
      client.onMessage((topic, payload) => {
        if (topic !== 'cert/response') return inbound.handle(topic, payload);
        if (rotation) rotation.handle(payload);
        else d.log.info('a cert/response arrived, but this hub does not renew its certificate itself; ignored');
      }),
    );
    if (rotation) this.#unsubscribe.push(client.on('connected', () => rotation.connected()));
    if (link) this.#unsubscribe.push(link.onLockChange((c) => this.#lockChanged(c)));
    publisher.start();
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
    await this.#inbound?.idle();
    this.#flushStates();
    await this.#publisher?.stop();
    await this.#client?.stop();
  }

  status(): ComponentStatus {
    const s = this.#client?.state();
    const depth = this.#d.outbox.depth();
    const enrolling = this.#d.enrollment && !this.#client ? this.#d.enrollment.enroll.status() : undefined;
    const link = enrolling
      ? `enrolling with claim ${this.#d.enrollment?.enroll.claimId} (${enrolling.state}, attempt ${enrolling.attempts}${enrolling.lastError ? `, last error ${enrolling.lastError}` : ''})`
      : (s?.state ?? 'stopped');
    const cert = this.#identity ? `; certificate until ${this.#identity.notAfter}` : '';
    const lockedOut = this.commandStats()?.lockedOutUntil;
    const commands = lockedOut ? `; remote commands locked out until ${lockedOut}` : '';
    const detail = `${this.#identity?.hubId ?? '?'} ${link}; outbox ${depth.events} events, ${depth.messages} messages${cert}${commands}`;
    return {
      name: this.name,
      state: s?.state === 'connected' ? 'running' : s || enrolling ? 'degraded' : 'stopped',
      detail,
    };
  }

  health(): HealthPayload {
    const d = this.#d;
    const locks = d.link?.list() ?? [];
    const notAfter = this.#identity?.notAfter ?? null;
    const depth = d.outbox.depth();
    const commands = this.commandStats();
    return {
      v: CONTRACT_VERSION,
      at: new Date(d.clock.now()).toISOString(),
      uptimeSec: Math.max(0, Math.floor((d.clock.now() - d.startedAt()) / 1000)),
      outbox: {
        depth: depth.events + depth.messages,
        oldestAgeSec: d.outbox.oldestAgeSec(),
        dropped: d.outbox.dropped(),
      },
      radios: d.radios(),
      locks: {
        total: locks.length,
        connected: locks.filter((l) => l.connected).length,
        quarantined: locks.filter((l) => l.state === 'quarantined').length,
      },
      certificate: {
        notAfter,
        daysLeft: notAfter === null ? null : Math.floor((Date.parse(notAfter) - d.clock.now()) / 86_400_000),
      },
      ...(d.offlineLists ? { offlineLists: offlineSummary(d.offlineLists()) } : {}),
      ...(commands ? { commands: commandSummary(commands) } : {}),
    };
  }

  /** Health now, besides the periodic one (a lockout began: the cloud should hear of it at once). */
  #publishHealthNow(): void {
    this.#d.clock.setTimeout(() => this.#publishHealth(), 0);
  }

  /** Health, best effort (QoS 1, not queued: a stale one has no value). */
  #publishHealth(): void {
    const client = this.#client;
    if (client?.connected && !this.#stopping) void client.publish('health', JSON.stringify(this.health()));
  }

  #scheduleHealth(): void {
    const tick = () => {
      this.#publishHealth();
      this.#health = this.#d.clock.setTimeout(tick, this.#d.config.healthIntervalSec * 1000);
    };
    this.#health = this.#d.clock.setTimeout(tick, 1000);
  }

  /**
   * A lock's state changed: its retained `locks/{lockId}/state` message is queued (durable) on
   * the next turn of the event loop, not at once. A remote open changes the state twice in a few
   * hundred microseconds (the lock's answer, then the state read that collects its event): both
   * become one row in one commit, and that commit no longer sits between the lock's answer and
   * the command's result. Only the newest state of a lock matters (retained, older rows are
   * replaced), and it is in the outbox before it is published. Its commit does not wait for the
   * disk (Store.lazyTransaction; the next durable commit — the lock's event, a result — flushes
   * it): a crash of the process does not undo it, and a power cut that does loses only a state
   * the hub reads again from every lock on each connection, never a result or an event.
   */
  #lockChanged(c: LockChange): void {
    const s = c.summary;
    const payload: LockStatePayload = {
      v: CONTRACT_VERSION,
      lockId: c.lockId,
      pairing: s ? s.state : 'detached',
      connected: s?.connected ?? false,
      at: new Date(this.#d.clock.now()).toISOString(),
      ...(c.state
        ? {
            bolt: c.state.bolt,
            mode: c.state.mode,
            doorOpen: c.state.doorOpen,
            batteryPercent: c.state.batteryPercent,
            lastSeq: c.state.lastSeq,
          }
        : {}),
    };
    this.#pendingStates.set(c.lockId, payload);
    this.#statesFlush ??= setImmediate(() => this.#flushStates());
  }

  /** Queue the pending lock states in one transaction (older queued ones of each lock replaced), then publish. */
  #flushStates(): void {
    if (this.#statesFlush) clearImmediate(this.#statesFlush);
    this.#statesFlush = undefined;
    if (this.#pendingStates.size === 0) return;
    const states = [...this.#pendingStates.values()];
    this.#pendingStates.clear();
    try {
      this.#d.store.lazyTransaction(() => {
        for (const p of states) {
          this.#d.outbox.enqueueMessage(`locks/${p.lockId}/state`, p, { retain: true, replace: true });
        }
      });
    } catch (e) {
      // The store is closing or failing: the next connection to each lock reports its state again.
      this.#d.log.error({ err: e, locks: states.map((p) => p.lockId) }, 'lock states could not be queued');
      return;
    }
    this.kick();
  }
}

/** `health.offlineLists`: counts, and the first lock ids not up to date (ids are in order). */
export function offlineSummary(
  locks: { lockId: string; upToDate: boolean }[],
): NonNullable<HealthPayload['offlineLists']> {
  const behind = locks
    .filter((l) => !l.upToDate)
    .map((l) => l.lockId)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { locks: locks.length, notUpToDate: behind.length, lockIds: behind.slice(0, HEALTH_MAX_LOCK_IDS) };
}

/** `health.commands`: the verifier's counts (refused codes with a count only). */
export function commandSummary(s: VerifierStats): NonNullable<HealthPayload['commands']> {
  const refused: Record<string, number> = {};
  for (const [code, n] of Object.entries(s.refused)) if (n) refused[code] = n;
  return { accepted: s.accepted, refused, lockouts: s.lockouts, lockedOutUntil: s.lockedOutUntil };
}
