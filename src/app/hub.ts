import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Bearer } from '../../hal/bearer.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import { readInstalledCertificate } from '../../provisioning/identity-load.js';
import { loadCloudKey } from '../access/cloud-key.js';
import { offlineListRows, registerAccessMethods } from '../access/control.js';
import { AccessDecider } from '../access/decide.js';
import { AccessMirror } from '../access/mirror.js';
import { OfflineLists } from '../access/offline.js';
import { checkTimeZone } from '../access/schedule.js';
import type { Clock } from '../base/clock.js';
import type { Component, ComponentStatus } from '../base/component.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { type CertSummary, type DiagReport, daemonDiag } from '../cli/diag.js';
import { loadOtpKey } from '../commands/otp-key.js';
import type { HubConfig } from '../config/schema.js';
import { type HubStatus, SOCKET_NAME } from '../contract/control-socket.js';
import { ControlServer } from '../control-socket/socket-server.js';
import { Sealer } from '../crypto/seal.js';
import { loadStorageKey, type StorageKeySource } from '../crypto/storage-key.js';
import { Outbox } from '../events/outbox.js';
import { registerLinkMethods } from '../link/control.js';
import { LinkManager, type LinkOptions } from '../link/manager.js';
import { PairingStore } from '../link/pairing.js';
import type { Logger } from '../log/logger.js';
import { Store } from '../store/store.js';
import { registerCommandMethods } from '../uplink/control.js';
import { enrollmentFor } from '../uplink/enrollment.js';
import { loadUplinkFiles, UplinkService } from '../uplink/service.js';
import { buildRadios, type RadioDrivers, type Radios } from './radios.js';
import { VERSION } from './version.js';

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

/**
 * The composition root: config → storage key → store → services → (later) bearers and uplink →
 * control socket. Nothing else constructs these parts, so the wiring is visible in one place.
 */
export class Hub {
  readonly deps: HubDeps;
  readonly store: Store;
  readonly sealer: Sealer;
  readonly storageKey: Omit<StorageKeySource, 'key'>;
  readonly control: ControlServer;
  readonly link: LinkManager | undefined;
  readonly uplink: UplinkService | undefined;
  readonly outbox: Outbox | undefined;
  /** Who may open which door, as the cloud last synced it. */
  readonly mirror: AccessMirror;
  /** Answers the locks' access requests from the mirror. */
  readonly access: AccessDecider;
  /** Keeps each bound lock's offline list in step with the mirror (with a radio only). */
  readonly offline: OfflineLists | undefined;
  /** The radios the locks are reached over (simulated, BLE, ZigBee), if any. */
  readonly radios: Radios | undefined;
  readonly #components: Component[] = [];
  readonly #started: Component[] = [];
  #startedAt = 0;
  #startedMono = 0;
  /** The uplink's certificate as loaded at start (for diag). */
  #certificate: CertSummary | undefined;

  private constructor(deps: HubDeps, store: Store, sealer: Sealer, storageKey: Omit<StorageKeySource, 'key'>) {
    this.deps = deps;
    this.store = store;
    this.sealer = sealer;
    this.storageKey = storageKey;
    this.control = new ControlServer(join(deps.config.runDir, SOCKET_NAME), deps.log.child({ component: 'control' }));
    this.control.register('status', { params: { properties: {} }, handler: () => this.status() });
    this.control.register('diag', { params: { properties: {} }, handler: () => this.diag() });
    this.mirror = new AccessMirror({ store, clock: deps.clock });
    const accessConfig = deps.config.access;
    try {
      checkTimeZone(accessConfig.timeZone);
    } catch {
      throw new HubError(
        'access.time-zone',
        `access.timeZone: ${accessConfig.timeZone} is not a known IANA time zone`,
        {
          hint: 'set the site zone, e.g. Europe/Madrid or America/New_York (UTC if the site has no daylight saving)',
        },
      );
    }
    this.access = new AccessDecider({
      mirror: this.mirror,
      clock: deps.clock,
      timeZone: accessConfig.timeZone,
      cloudPublicKey: accessConfig.cloudKeyFile ? loadCloudKey(accessConfig.cloudKeyFile) : undefined,
      log: deps.log.child({ component: 'access' }),
      throttle: { wrongCodeLimit: accessConfig.wrongPinLimit, disableMs: accessConfig.pinDisableSec * 1000 },
    });
    this.#components.push(...(deps.before ?? []));
    // No identity yet and a claim certificate configured: the uplink enrolls first (in the background).
    const enrollment = enrollmentFor({ ...deps, store, sealer, log: deps.log.child({ component: 'enrollment' }) });
    const files =
      deps.config.uplink.enabled && !enrollment ? loadUplinkFiles(deps.config.uplink, deps.config.dataDir) : undefined;
    if (files) {
      this.#certificate = {
        hubId: files.identity.hubId,
        notBefore: files.identity.notBefore,
        notAfter: files.identity.notAfter,
        fingerprint: files.identity.fingerprint,
        source: deps.config.uplink.certFile ?? identityPaths(deps.config.dataDir).cert,
      };
    }
    // Remote commands arrive over the uplink only; the OTP key is sealed under the hub id.
    const otpKey = files
      ? loadOtpKey({
          config: deps.config.commands,
          hubId: files.identity.hubId,
          store,
          sealer,
          clock: deps.clock,
          log: deps.log.child({ component: 'commands' }),
        })
      : undefined;
    if (!deps.config.uplink.enabled && deps.config.commands.otpKeyFile !== null) {
      deps.log.warn(
        { file: deps.config.commands.otpKeyFile },
        'commands.otpKeyFile is set but the uplink is disabled: remote commands cannot arrive, the key is not used',
      );
    }
    if (files || enrollment) {
      const outbox = new Outbox(store, {
        clock: deps.clock,
        log: deps.log.child({ component: 'outbox' }),
        maxBytes: deps.config.uplink.outboxMaxMB * 1024 * 1024,
      });
      this.outbox = outbox;
    }
    this.radios = buildRadios(deps.config, deps.drivers ?? {}, {
      ...(deps.bearer ? { sim: deps.bearer } : {}),
      sealer,
      random: deps.random,
      clock: deps.clock,
      log: deps.log,
    });
    if (this.radios) {
      const outbox = this.outbox;
      this.link = new LinkManager({
        pairing: new PairingStore(store),
        bearer: this.radios.bearer,
        sealer,
        clock: deps.clock,
        random: deps.random,
        log: deps.log.child({ component: 'link' }),
        options: deps.linkOptions ?? {},
        accessHandler: (lockId, credential) => {
          const d = this.access.verifyAccess(lockId, credential);
          return { grant: d.grant, reason: d.reason, credentialId: d.credentialId };
        },
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
      this.#components.push(this.link);
      registerLinkMethods(this.control, this.link);
      const link = this.link;
      const offline = new OfflineLists({
        mirror: this.mirror,
        clock: deps.clock,
        timeZone: accessConfig.timeZone,
        log: deps.log.child({ component: 'offline-lists' }),
        options: { horizonDays: accessConfig.offlineHorizonDays, defaultCapacity: accessConfig.offlineCapacity },
        link: {
          boundLocks: () =>
            link
              .list()
              .filter((l) => l.state === 'bound')
              .map((l) => l.lockId),
          setOffline: (lockId, change) => link.setOffline(lockId, change),
        },
      });
      // A lock that (re)connects gets its list checked: after a hub restart the hub asks what it
      // holds, and sends the list only if it differs.
      const connected = new Set<string>();
      link.onLockChange((change) => {
        const { lockId, summary } = change;
        if (!summary) offline.lockGone(lockId);
        if (!summary?.connected || summary.state !== 'bound') {
          connected.delete(lockId);
        } else if (!connected.has(lockId)) {
          connected.add(lockId);
          offline.lockReady(lockId);
        }
      });
      this.offline = offline;
      this.#components.push(offline);
    }
    registerAccessMethods(this.control, this.offline);
    if ((files || enrollment) && this.outbox) {
      const members = this.radios?.members ?? [];
      const { config } = deps;
      const mirror = this.mirror;
      this.uplink = new UplinkService({
        ...(this.offline ? { offlineLists: () => offlineListRows(this.offline) } : {}),
        config: config.uplink,
        files,
        sync: {
          apply: async (p) => {
            const applied = mirror.apply(p);
            // Committed: the locks' offline lists follow (deltas, within a second on a healthy site).
            this.offline?.changed();
            return { version: applied.version };
          },
        },
        ...(enrollment
          ? {
              enrollment: {
                enroll: enrollment,
                load: () => {
                  const enrolled = loadUplinkFiles(config.uplink, config.dataDir);
                  const key = loadOtpKey({
                    config: config.commands,
                    hubId: enrolled.identity.hubId,
                    store,
                    sealer,
                    clock: deps.clock,
                    log: deps.log.child({ component: 'commands' }),
                  });
                  return { files: enrolled, otpKey: key };
                },
              },
            }
          : {}),
        // The installed identity renews itself; certificate files named in the config do not.
        ...(config.uplink.certFile === null
          ? { rotation: { dataDir: config.dataDir, atFraction: config.provisioning.rotateAtFraction } }
          : {}),
        store,
        outbox: this.outbox,
        link: this.link,
        clock: deps.clock,
        random: deps.random,
        log: deps.log.child({ component: 'uplink' }),
        version: VERSION,
        startedAt: () => this.#startedAt,
        commands: deps.config.commands,
        otpKey,
        radios: () =>
          members.map((bearer) => {
            const st = bearer.state();
            return {
              kind: bearer.kind,
              state: st.status,
              ...(st.status === 'unavailable' ? { detail: st.reason } : {}),
            };
          }),
      });
      this.#components.push(this.uplink);
    }
    registerCommandMethods(this.control, this.uplink);
    this.#registerRadioMethods();
    this.#components.push(controlComponent(this.control));
  }

  /** Open everything that must be sound before the daemon may run; throws a HubError if not. */
  static build(deps: HubDeps): Hub {
    const { config, random, log } = deps;
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const source = loadStorageKey({
      dataDir: config.dataDir,
      keyFile: config.secrets.storageKeyFile,
      credentialsDirectory: deps.env.CREDENTIALS_DIRECTORY,
      random,
    });
    if (source.origin === 'key-file-created') log.warn({ path: source.path }, 'created a new storage key file');
    const store = Store.open(config.dataDir);
    if (store.info.appliedNow.length > 0) {
      log.info({ applied: store.info.appliedNow, schemaVersion: store.info.schemaVersion }, 'store migrated');
    }
    const sealer = new Sealer(source.key, random);
    try {
      return new Hub(deps, store, sealer, { origin: source.origin, path: source.path });
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
      uptimeSec: Math.round((this.deps.clock.monotonic() - this.#startedMono) / 1000),
      configSource: this.deps.configSource,
      dataDir: this.deps.config.dataDir,
      storageKey: this.storageKey,
      store: { ...this.store.health(), path: this.store.info.path },
      components: [...this.#components.map((c) => c.status()), ...this.#radioStatus()],
    };
  }

  /** `iqhub backup` / `iqhub restore`: the ZigBee coordinator's sealed backups. */
  #registerRadioMethods(): void {
    const zigbee = () => {
      const z = this.radios?.zigbee;
      if (!z) {
        throw new HubError('radio.no-zigbee', 'this hub has no ZigBee radio', {
          hint: 'set radios.zigbee.enabled and radios.zigbee.port in the config (docs/zigbee.md)',
        });
      }
      return z;
    };
    this.control.register('zigbee.backup', {
      params: { properties: {} },
      handler: async () => ({ ...(await zigbee().backup()), kept: zigbee().backups() }),
    });
    this.control.register('zigbee.backups', { params: { properties: {} }, handler: () => zigbee().backups() });
    this.control.register('zigbee.restore', {
      params: { properties: { backupId: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' } } },
      handler: (p) => zigbee().restore(p.backupId === undefined ? {} : { backupId: p.backupId as string }),
    });
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

  /** `iqhub diag`: every check, with a verdict and what to do. */
  diag(): DiagReport {
    return daemonDiag({
      config: this.deps.config,
      configSource: this.deps.configSource,
      now: this.deps.clock.now(),
      uptimeSec: Math.round((this.deps.clock.monotonic() - this.#startedMono) / 1000),
      version: VERSION,
      store: this.store,
      bearers: [...(this.radios?.members ?? [])],
      link: this.link,
      uplink: this.uplink,
      outbox: this.outbox,
      certificate: this.#currentCertificate(),
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
