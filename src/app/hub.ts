import { join } from 'node:path';
import type { Bearer } from '../../hal/bearer.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import { readInstalledCertificate } from '../../provisioning/identity-load.js';
import { loadUplinkFiles, type UplinkFiles } from '../../provisioning/uplink-files.js';
import { AccessDecider } from '../access/decide.js';
import { AccessMirror } from '../access/mirror.js';
import type { OfflineLists } from '../access/offline.js';
import { offlineListRows } from '../access/offline-rows.js';
import type { PinKeyDelivery } from '../access/pin-key-delivery.js';
import { PinKeyRing } from '../access/pin-keys.js';
import { checkTimeZone } from '../access/schedule.js';
import type { Clock } from '../base/clock.js';
import type { Component, ComponentStatus } from '../base/component.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { VERSION } from '../base/version.js';
import { loadOtpKey } from '../commands/otp-key.js';
import type { HubConfig } from '../config/schema.js';
import {
  type CertSummary,
  type CommandsView,
  type DiagReport,
  type HubStatus,
  SOCKET_NAME,
  type VerifierStats,
} from '../contract/control-socket.js';
import type { HealthPayload } from '../contract/mqtt-hub-messages.js';
import { ControlServer } from '../control-socket/socket-server.js';
import type { Sealer } from '../crypto/seal.js';
import type { Secret } from '../crypto/secret.js';
import type { StorageKeySource } from '../crypto/storage-key.js';
import { checkStoreHubId, openStoreWithKey } from '../crypto/store-identity.js';
import type { EventDelivery } from '../events/delivery.js';
import { LockStates } from '../events/lock-states.js';
import { Outbox } from '../events/outbox.js';
import { FirmwareFetch } from '../firmware/fetch.js';
import type { FirmwareRelay } from '../firmware/relay.js';
import type { LinkManager, LinkOptions } from '../link/manager.js';
import type { Logger } from '../log/logger.js';
import type { MetricsHooks } from '../metrics/source.js';
import type { Store } from '../store/store.js';
import { enrollmentFor } from '../uplink/enrollment.js';
import { type UplinkDeps, UplinkService } from '../uplink/service.js';
import { loadCloudKey } from './cloud-key-file.js';
import {
  registerAccessMethods,
  registerCommandMethods,
  registerLinkMethods,
  registerRadioMethods,
} from './control-methods.js';
import { daemonDiag } from './daemon-diag.js';
import { DiskWatch } from './disk-watch.js';
import { newDelivery } from './event-delivery.js';
import { buildFirmware, registerFirmwareMethods } from './firmware-wiring.js';
import { buildHealth, healthCheck, pinKeyFacts } from './health.js';
import { registerHubBackupMethod } from './hub-backup-method.js';
import { buildLink } from './link-wiring.js';
import { buildRadios, type RadioDrivers, type Radios } from './radios.js';
import { buildRemote, type RemoteParts } from './remote-wiring.js';

export interface HubDeps {
  config: HubConfig;
  /** The simulated radio (demo, tests); real radios come from `drivers` and the config. */
  bearer?: Bearer;
  /** The drivers of the radios the config enables (loadDrivers: imported before the hub is built). */
  drivers?: RadioDrivers;
  /** Components started before everything else and stopped after (the simulated site). */
  before?: Component[];
  /** Timing of the lock link (tests shorten it; defaults suit real radios). */
  linkOptions?: Partial<LinkOptions>;
  configSource: string | null;
  clock: Clock;
  random: Random;
  log: Logger;
  env: NodeJS.ProcessEnv;
}

/** The remote commands' parts, made once the uplink knows the hub's identity. */
/**
 * The composition root: config → storage key → store → services → bearers and uplink → control
 * socket. Nothing else constructs these parts, so the wiring is visible in one place; the
 * control-socket methods are registered here from the services' functions.
 */
export class Hub {
  readonly deps: HubDeps;
  readonly store: Store;
  readonly sealer: Sealer;
  readonly storageKey: Omit<StorageKeySource, 'key'> & { fingerprint: string };
  readonly control: ControlServer;
  readonly link: LinkManager | undefined;
  readonly uplink: UplinkService | undefined;
  readonly outbox: Outbox | undefined;
  /** Events confirmed by the cloud's `events/ack` (with an uplink). */
  delivery: EventDelivery | undefined;
  /** Who may open which door, as the cloud last synced it. */
  readonly mirror: AccessMirror;
  /** Answers the locks' access requests from the mirror. */
  readonly access: AccessDecider;
  /** Keeps each bound lock's offline list in step with the mirror (with a radio only). */
  readonly offline: OfflineLists | undefined;
  /** The site PIN keys the cloud sent (current, and the previous one during an overlap). */
  readonly pinKeys: PinKeyRing;
  /** Delivers them to every bound lock over the sealed link (with a radio only). */
  readonly pinKeyDelivery: PinKeyDelivery | undefined;
  /** The radios the locks are reached over (simulated, BLE, ZigBee), if any. */
  readonly radios: Radios | undefined;
  /** Filled by the metrics endpoint when it runs (src/metrics); empty otherwise. */
  readonly metricsHooks: MetricsHooks = {};
  /** Lock firmware updates (with a radio only). */
  readonly firmware: FirmwareRelay | undefined;
  readonly #components: Component[] = [];
  readonly #started: Component[] = [];
  #startedAt = 0;
  #startedMono = 0;
  /** The uplink's certificate as loaded at start (for diag). */
  #certificate: CertSummary | undefined;
  #remote: RemoteParts | undefined;

  private constructor(
    deps: HubDeps,
    store: Store,
    sealer: Sealer,
    storageKey: Omit<StorageKeySource, 'key'> & { fingerprint: string },
  ) {
    this.deps = deps;
    this.store = store;
    this.sealer = sealer;
    this.storageKey = storageKey;
    const { config, clock, log } = deps;
    this.control = new ControlServer(join(config.runDir, SOCKET_NAME), log.child({ component: 'control' }));
    this.control.register('status', { params: { properties: {} }, handler: () => this.status() });
    this.control.register('diag', { params: { properties: {} }, handler: () => this.diag() });
    this.control.register('health.check', {
      params: { properties: {} },
      handler: () => healthCheck(this.status(), this.health()),
    });
    this.mirror = new AccessMirror({ store, clock });
    this.pinKeys = new PinKeyRing({ store, sealer, clock });
    this.access = buildDecider(config.access, this.mirror, clock, log, this.pinKeys);
    this.#components.push(...(deps.before ?? []));
    // First, so a disk full from the start is said before anything else runs into it.
    this.#components.push(
      new DiskWatch({
        space: store.space,
        clock,
        log: log.child({ component: 'disk' }),
        // The cloud hears of a full disk (and of space again) at once, besides the periodic health.
        changed: () => this.uplink?.publishHealthNow(),
      }),
    );
    // No identity yet and a claim certificate configured: the uplink enrolls first (in the background).
    const enrollment = enrollmentFor({ ...deps, store, sealer, log: log.child({ component: 'enrollment' }) });
    const files = config.uplink.enabled && !enrollment ? loadUplinkFiles(config.uplink, config.dataDir) : undefined;
    if (files) {
      this.#certificate = { ...files.identity, source: config.uplink.certFile ?? identityPaths(config.dataDir).cert };
      // The store belongs to one hub: a data directory moved to another hub is refused.
      checkStoreHubId(store, files.identity.hubId);
    }
    // Remote commands arrive over the uplink only; the OTP key is sealed under the hub id.
    const otpKey = files ? this.#loadOtpKey(files.identity.hubId) : undefined;
    if (!config.uplink.enabled && config.commands.otpKeyFile !== null) {
      log.warn(
        { file: config.commands.otpKeyFile },
        'commands.otpKeyFile is set but the uplink is disabled: remote commands cannot arrive, the key is not used',
      );
    }
    if (files || enrollment) {
      this.outbox = new Outbox(store, {
        clock,
        log: log.child({ component: 'outbox' }),
        maxBytes: config.uplink.outboxMaxMB * 1024 * 1024,
      });
    }
    this.radios = buildRadios(config, deps.drivers ?? {}, {
      ...(deps.bearer ? { sim: deps.bearer } : {}),
      sealer,
      random: deps.random,
      clock,
      log,
    });
    if (this.radios) {
      const outbox = this.outbox;
      const built = buildLink({
        ...deps,
        store,
        sealer,
        bearer: this.radios.bearer,
        mirror: this.mirror,
        pinKeys: this.pinKeys,
        access: this.access,
        metrics: this.metricsHooks,
        // Events enter the outbox in the transaction that stores them, before the lock is acknowledged.
        ...(outbox
          ? {
              eventSink: (fresh) => {
                outbox.enqueueEvents(fresh);
                // At once, not later: the publisher's drain starts on a microtask (after this
                // transaction) and, from now, nothing is published ahead of these events.
                this.uplink?.kick();
              },
            }
          : {}),
      });
      this.link = built.link;
      this.offline = built.offline;
      this.pinKeyDelivery = built.pinKeys;
      this.#components.push(built.link, built.pinKeys, built.offline);
      registerLinkMethods(this.control, built.link);
      this.firmware = buildFirmware({ config: config.firmware, store, link: built.link, clock, log });
      this.#components.push(this.firmware);
      registerFirmwareMethods(this.control, this.firmware, { clock, maxImageBytes: config.firmware.maxImageBytes });
    }
    registerAccessMethods(this.control, this.offline, this.pinKeyDelivery);
    if ((files || enrollment) && this.outbox) {
      this.uplink = this.#buildUplink(files, otpKey, enrollment, this.outbox);
      this.#components.push(this.uplink);
    }
    registerCommandMethods(this.control, this.uplink ? { commands: (limit) => this.#commandsView(limit) } : undefined);
    registerRadioMethods(this.control, () => this.radios?.zigbee);
    registerHubBackupMethod(this.control, { ...deps, store, sealer, zigbee: () => this.radios?.zigbee });
    this.#components.push(controlComponent(this.control));
  }

  /** Open everything that must be sound before the daemon may run; throws a HubError if not. */
  static build(deps: HubDeps): Hub {
    const { config, random, log } = deps;
    const { store, sealer, source, fingerprint, identity } = openStoreWithKey({
      dataDir: config.dataDir,
      keyFile: config.secrets.storageKeyFile,
      credentialsDirectory: deps.env.CREDENTIALS_DIRECTORY,
      random,
      store: { reserveBytes: config.store.reserveMB * 1024 * 1024, now: () => deps.clock.now() },
    });
    if (source.origin === 'key-file-created') log.warn({ path: source.path }, 'created a new storage key file');
    if (store.info.appliedNow.length > 0) {
      log.info({ applied: store.info.appliedNow, schemaVersion: store.info.schemaVersion }, 'store migrated');
    }
    if (identity !== 'matched') {
      log.info({ store: store.info.path, keyFingerprint: fingerprint, identity }, 'store stamped with its storage key');
    }
    try {
      return new Hub(deps, store, sealer, { origin: source.origin, path: source.path, fingerprint });
    } catch (e) {
      // A bad uplink certificate or OTP key file: release the store (and its exclusive lock).
      store.close();
      throw e;
    }
  }

  async start(): Promise<void> {
    this.#startedAt = this.deps.clock.now();
    this.#startedMono = this.deps.clock.monotonic();
    this.store.journal('hub.start', { version: VERSION }, this.#startedAt);
    for (const c of this.#components) {
      this.deps.log.debug({ component: c.name }, 'starting');
      await c.start();
      this.#started.push(c);
    }
  }

  /** Stop in reverse order; every component gets its turn even if one fails. Closes the store last. */
  async stop(): Promise<void> {
    let firstError: unknown;
    for (const c of this.#started.splice(0).reverse()) {
      try {
        await c.stop();
      } catch (e) {
        this.deps.log.error({ err: e, component: c.name }, 'component failed to stop cleanly');
        firstError ??= e;
      }
    }
    if (!this.store.closed) {
      this.store.journal('hub.stop', {}, this.deps.clock.now());
      this.store.close();
    }
    if (firstError) throw firstError;
  }

  status(): HubStatus {
    return {
      version: VERSION,
      pid: process.pid,
      startedAt: new Date(this.#startedAt).toISOString(),
      uptimeSec: this.#uptimeSec(),
      configSource: this.deps.configSource,
      dataDir: this.deps.config.dataDir,
      storageKey: this.storageKey,
      store: { ...this.store.health(), path: this.store.info.path },
      components: [...this.#components.map((c) => c.status()), ...this.#radioStatus()],
    };
  }

  /** `iqhub diag`: every check, with a verdict and what to do. */
  diag(): DiagReport {
    return daemonDiag({
      config: this.deps.config,
      configSource: this.deps.configSource,
      now: this.deps.clock.now(),
      uptimeSec: this.#uptimeSec(),
      version: VERSION,
      store: this.store,
      bearers: [...(this.radios?.members ?? [])],
      link: this.link,
      uplink: this.uplink,
      commandStats: this.commandStats(),
      delivery: this.delivery,
      outbox: this.outbox,
      certificate: this.#currentCertificate(),
    });
  }

  /** The `health` message as it stands now (published by the uplink); undefined on a hub without one. */
  health(): HealthPayload | undefined {
    return this.outbox && this.#health(this.outbox);
  }

  #health(outbox: Outbox): HealthPayload {
    const members = this.radios?.members ?? [];
    const offline = this.offline;
    return buildHealth({
      clock: this.deps.clock,
      startedAt: () => this.#startedAt,
      outbox,
      link: this.link,
      radios: () =>
        members.map((bearer) => {
          const st = bearer.state();
          return { kind: bearer.kind, state: st.status, ...(st.status === 'unavailable' ? { detail: st.reason } : {}) };
        }),
      certificateNotAfter: () => this.uplink?.identity?.notAfter ?? null,
      ...(offline ? { offlineLists: () => offlineListRows(offline) } : {}),
      ...(this.pinKeyDelivery ? { pinKeys: pinKeyFacts(this.pinKeyDelivery) } : {}),
      commandStats: () => this.commandStats(),
      delivery: () => this.delivery?.health(),
      disk: () => this.store.space.state(),
    });
  }

  /** The verifier's counts since start-up and a running lockout; undefined until the uplink is up. */
  commandStats(): VerifierStats | undefined {
    return this.#remote?.verifier.stats();
  }

  #commandsView(limit: number): CommandsView | undefined {
    const remote = this.#remote;
    return remote && { stats: remote.verifier.stats(), recent: remote.inbound.recent(limit) };
  }

  #uptimeSec(): number {
    return Math.round((this.deps.clock.monotonic() - this.#startedMono) / 1000);
  }

  #loadOtpKey(hubId: string): Secret | undefined {
    const { config, clock, log } = this.deps;
    return loadOtpKey({
      config: config.commands,
      hubId,
      store: this.store,
      sealer: this.sealer,
      clock,
      log: log.child({ component: 'commands' }),
    });
  }

  #buildUplink(
    files: UplinkFiles | undefined,
    otpKey: Secret | undefined,
    enrollment: ReturnType<typeof enrollmentFor>,
    outbox: Outbox,
  ): UplinkService {
    const { config, clock, log } = this.deps;
    const link = this.link;
    const mirror = this.mirror;
    const store = this.store;
    let uplink: UplinkService | undefined;
    const lockStates = link
      ? new LockStates({
          link,
          outbox,
          store,
          clock,
          log: log.child({ component: 'uplink' }),
          kick: () => uplink?.kick(),
        })
      : undefined;
    const delivery = newDelivery({ config: config.uplink, store, outbox, clock, log, uplink: () => uplink });
    this.delivery = delivery;
    uplink = new UplinkService({
      delivery,
      config: config.uplink,
      files,
      outbox,
      clock,
      random: this.deps.random,
      log: log.child({ component: 'uplink' }),
      version: VERSION,
      startedAt: () => this.#startedAt,
      otpKey,
      inbound: (identity, key, results) => {
        const wiring = { config, store, clock, log, link, mirror, pinKeys: this.pinKeys, uplink: () => uplink };
        // Committed: the locks' PIN keys and offline lists follow.
        this.#remote = buildRemote({ ...wiring, synced: () => this.offline?.changed() }, identity, key, results);
        return this.#remote.inbound;
      },
      health: () => this.#health(outbox),
      lockedOutUntil: () => this.commandStats()?.lockedOutUntil,
      ...(lockStates ? { lockStates } : {}),
      ...(enrollment
        ? {
            enrollment: {
              enroll: enrollment,
              load: () => {
                const enrolled = loadUplinkFiles(config.uplink, config.dataDir);
                return { files: enrolled, otpKey: this.#loadOtpKey(enrolled.identity.hubId) };
              },
            },
          }
        : {}),
      otpKeyDelivery: otpKeyHooks(store, this.sealer, () => this.#remote),
      ...(this.firmware
        ? {
            firmware: new FirmwareFetch({
              relay: this.firmware,
              clock,
              log: log.child({ component: 'firmware' }),
              maxMessageBytes: config.uplink.maxMessageBytes,
              maxImageBytes: config.firmware.maxImageBytes,
            }),
          }
        : {}),
      // The installed identity renews itself; certificate files named in the config do not.
      ...(config.uplink.certFile === null
        ? { rotation: { dataDir: config.dataDir, atFraction: config.provisioning.rotateAtFraction } }
        : {}),
    });
    return uplink;
  }

  /** Each radio as a line of `iqhub status`: a missing adapter is `degraded` with its reason. */
  #radioStatus(): ComponentStatus[] {
    return (this.radios?.members ?? []).map((b) => {
      const st = b.state();
      const state: ComponentStatus['state'] =
        st.status === 'ready' ? 'running' : st.status === 'unavailable' ? 'degraded' : st.status;
      return { name: `radio.${b.kind}`, state, ...(st.status === 'unavailable' ? { detail: st.reason } : {}) };
    });
  }

  /** The certificate the uplink uses now: after an enrollment or a rotation, the newly installed one. */
  #currentCertificate(): CertSummary | undefined {
    const inUse = this.uplink?.identity;
    if (!inUse || inUse.fingerprint === this.#certificate?.fingerprint) return this.#certificate;
    const installed = readInstalledCertificate(this.deps.config.dataDir, this.deps.clock.now());
    if (installed?.fingerprint !== inUse.fingerprint) return this.#certificate;
    return {
      hubId: installed.hubId,
      notBefore: installed.notBefore,
      notAfter: installed.notAfter,
      fingerprint: installed.fingerprint,
      source: installed.path,
    };
  }
}

/** OTP key delivery over the uplink, wired to the remote commands: their counter, and the key they verify with. */
function otpKeyHooks(
  store: Store,
  sealer: Sealer,
  remote: () => RemoteParts | undefined,
): NonNullable<UplinkDeps['otpKeyDelivery']> {
  return {
    store,
    sealer,
    lastCounter: () => remote()?.verifier.lastCounter() ?? 0,
    installed: (key) => remote()?.inbound.replaceOtpKey(key),
  };
}

/** The access decider over the mirror, with the site's time zone checked first. */
function buildDecider(
  o: HubConfig['access'],
  mirror: AccessMirror,
  clock: Clock,
  log: Logger,
  pinKeys: PinKeyRing,
): AccessDecider {
  try {
    checkTimeZone(o.timeZone);
  } catch {
    throw new HubError('access.time-zone', `access.timeZone: ${o.timeZone} is not a known IANA time zone`, {
      hint: 'set the site zone, e.g. Europe/Madrid or America/New_York (UTC if the site has no daylight saving)',
    });
  }
  return new AccessDecider({
    mirror,
    clock,
    timeZone: o.timeZone,
    cloudPublicKey: o.cloudKeyFile ? loadCloudKey(o.cloudKeyFile) : undefined,
    log: log.child({ component: 'access' }),
    throttle: { wrongCodeLimit: o.wrongPinLimit, disableMs: o.pinDisableSec * 1000 },
    pinOverlap: (at) => pinKeys.inOverlap(at),
  });
}

function controlComponent(server: ControlServer): Component {
  let state: ComponentStatus['state'] = 'stopped';
  return {
    name: 'control',
    async start() {
      state = 'starting';
      await server.start();
      state = 'running';
    },
    async stop() {
      state = 'stopping';
      await server.stop();
      state = 'stopped';
    },
    status: () => ({ name: 'control', state, detail: server.path }),
  };
}
