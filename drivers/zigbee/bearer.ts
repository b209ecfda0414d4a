import { createRequire } from 'node:module';
import type { Controller, Events } from 'zigbee-herdsman';
import type {
  Advertisement,
  Bearer,
  BearerError,
  BearerLink,
  BearerState,
  ConnectOptions,
  Unsubscribe,
} from '../../hal/bearer.js';
import type { Clock, TimerHandle } from '../../src/base/clock.js';
import { deferHerdsmanExtras } from '../../src/base/deferred-modules.js';
import { describeError, HubError } from '../../src/base/errors.js';
import type { Result } from '../../src/base/result.js';
import type { Secret } from '../../src/crypto/secret.js';
import type { Logger } from '../../src/log/logger.js';
import { Advertisements } from './advertisements.js';
import { type BackupInfo, Backups, type RestoreInfo } from './backups.js';
import { Coordinator, type HerdsmanModule } from './coordinator.js';
import type { ZigbeeCounters } from './counters.js';
import { DoorLockStates } from './door-lock-state.js';
import { HealthProbe } from './health-probe.js';
import {
  createController,
  stopController,
  stopOwnBackups,
  takeLinkFrames,
  type ZclPayloadLike,
} from './herdsman-controller.js';
import { herdsmanLogger } from './herdsman-log.js';
import { registerInstallCode } from './install-code-registration.js';
import { InterviewRetry } from './interview.js';
import { JoinWindow } from './join-window.js';
import { unpiFrameClass, useLeanUnpi } from './lean-unpi.js';
import { useLeanWaitresses } from './lean-waitress.js';
import { type DoorLockState, LINK_CLUSTER_ID } from './link-cluster.js';
import { LINK_CLUSTER_NAME } from './link-commands.js';
import { Links } from './links.js';
import { type DataPaths, dataPaths, loadOrCreateNetwork, prepareDirectories, type SealedBackup } from './network.js';
import { checkOptions, type Settings, type ZigbeeBearerOptions } from './options.js';

export type { BackupInfo, RestoreInfo } from './backups.js';
export type { ZigbeeCounters } from './counters.js';
export type { ZigbeeBearerOptions } from './options.js';

export interface ZigbeeBearer extends Bearer {
  readonly kind: 'zigbee';
  openJoinWindow(durationMs: number): Promise<void>;
  closeJoinWindow(): Promise<void>;
  joinWindowOpen(): boolean;
  /**
   * Registers a lock's install code with the coordinator (trust center), before the join window
   * of its attach: a lock that has one joins only with its code. The text is what the installer
   * typed or scanned (herdsman's formats, docs/zigbee.md). Throws HubError 'attach.install-code'
   * when it is malformed, its CRC does not match, the adapter is not ready or refuses it; neither
   * the message nor any log line contains the code.
   */
  addInstallCode(installCode: Secret): Promise<void>;
  /** Takes a coordinator backup now and keeps it sealed. Rejects (HubError) when the adapter is not ready. */
  backup(): Promise<BackupInfo>;
  /** Restarts the coordinator from a sealed backup (the newest by default), frame counter moved forward. */
  restore(options?: { readonly backupId?: string }): Promise<RestoreInfo>;
  backups(): string[];
  /** The last Door Lock lockState each lock reported (informational: the sealed link is authoritative). */
  lockState(address: string): DoorLockState | undefined;
  /** PAN id, extended PAN id and channel of the hub's network (never the key), once known. */
  network(): { panId: number; extendedPanId: string; channel: number } | undefined;
  counters(): ZigbeeCounters;
}

/**
 * The Bearer port over ZigBee through real zigbee-herdsman (Z-Stack coordinator, adapter
 * 'zstack'). herdsman is imported when the bearer starts, so a hub without ZigBee never loads it.
 * Throws HubError for bad options; everything after that is a state or a typed error.
 */
export function createZigbeeBearer(options: ZigbeeBearerOptions): ZigbeeBearer {
  return new HerdsmanBearer(options, checkOptions(options));
}

/**
 * The bearer runs the coordinator's lifecycle (start, stop, restore, recovery from a lost
 * adapter, one step at a time) and composes the parts that each do one job around it.
 */
class HerdsmanBearer implements ZigbeeBearer {
  readonly kind = 'zigbee' as const;
  readonly #o: ZigbeeBearerOptions;
  readonly #s: Settings;
  readonly #paths: DataPaths;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #c: Coordinator;
  readonly #links: Links;
  readonly #ads: Advertisements;
  readonly #joins: JoinWindow;
  readonly #backups: Backups;
  readonly #health: HealthProbe;
  readonly #interviews: InterviewRetry;
  readonly #doorLocks: DoorLockStates;
  #recovering = false;
  #recoverDelay: number;
  #recoverTimer: TimerHandle | undefined;
  /** Serialises start, stop, recovery and restore: one controller lifecycle step at a time. */
  #lifecycle: Promise<unknown> = Promise.resolve();

  constructor(options: ZigbeeBearerOptions, settings: Settings) {
    this.#o = options;
    this.#s = settings;
    this.#paths = dataPaths(options.dataDir);
    this.#log = options.log;
    this.#clock = options.clock;
    this.#recoverDelay = settings.recoverBaseMs;
    const c = new Coordinator(options.clock, options.log);
    this.#c = c;
    this.#links = new Links(c, settings.maxLinks, settings.sendTimeoutMs, options.random.int(256));
    this.#ads = new Advertisements(c);
    this.#joins = new JoinWindow(c);
    this.#backups = new Backups(c, this.#paths, options.sealer, settings);
    this.#health = new HealthProbe(c, settings.healthIntervalMs, settings.probeTimeoutMs, (reason) =>
      this.#lost(reason),
    );
    this.#interviews = new InterviewRetry(c, (device) => this.#ads.announce(device));
    this.#doorLocks = new DoorLockStates(c.counters);
  }

  // ---- Bearer --------------------------------------------------------------------------------

  start(): Promise<void> {
    return this.#serial(async () => {
      if (this.#c.running) return;
      this.#c.running = true;
      this.#c.setState({ status: 'starting' });
      await this.#bringUp();
    });
  }

  stop(): Promise<void> {
    return this.#serial(async () => {
      if (!this.#c.running) return;
      this.#c.running = false;
      this.#clock.clearTimeout(this.#recoverTimer);
      this.#joins.reset();
      this.#links.closeAll('stopped');
      await this.#tearDown(true);
      this.#c.setState({ status: 'stopped' });
    });
  }

  state(): BearerState {
    return this.#c.state();
  }

  onStateChange(listener: (state: BearerState) => void): Unsubscribe {
    return this.#c.onStateChange(listener);
  }

  onAdvertisement(listener: (advertisement: Advertisement) => void): Unsubscribe {
    return this.#ads.on(listener);
  }

  connect(address: string, options: ConnectOptions): Promise<Result<BearerLink, BearerError>> {
    return this.#links.connect(address, options);
  }

  // ---- ZigBee extras -------------------------------------------------------------------------

  openJoinWindow(durationMs: number): Promise<void> {
    return this.#joins.open(durationMs);
  }

  closeJoinWindow(): Promise<void> {
    return this.#joins.close();
  }

  joinWindowOpen(): boolean {
    return this.#joins.isOpen();
  }

  addInstallCode(installCode: Secret): Promise<void> {
    return registerInstallCode(this.#c, installCode);
  }

  backup(): Promise<BackupInfo> {
    return this.#backups.backup();
  }

  restore(options: { readonly backupId?: string } = {}): Promise<RestoreInfo> {
    return this.#serial(async () => {
      const chosen = this.#backups.choose(options.backupId);
      this.#links.closeAll('adapter-unavailable');
      await this.#tearDown(true);
      this.#c.running = true;
      this.#c.setState({ status: 'starting' });
      const outcome = await this.#bringUp(chosen);
      if (!outcome)
        throw new HubError('zigbee.unavailable', `ZigBee: restore did not start the adapter: ${this.#c.reason()}`);
      return outcome;
    });
  }

  backups(): string[] {
    return this.#backups.ids();
  }

  lockState(address: string): DoorLockState | undefined {
    return this.#doorLocks.get(address);
  }

  network(): { panId: number; extendedPanId: string; channel: number } | undefined {
    const n = this.#c.network;
    return n && { panId: n.panId, extendedPanId: Buffer.from(n.extendedPanId).toString('hex'), channel: n.channel };
  }

  counters(): ZigbeeCounters {
    const counters = this.#c.counters;
    const abandoned = counters.abandonedFrames + this.#links.abandonedFrames();
    return { ...counters, rejected: { ...counters.rejected }, abandonedFrames: abandoned };
  }

  // ---- controller lifecycle ------------------------------------------------------------------

  #serial<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#lifecycle.then(step);
    this.#lifecycle = run.catch(() => {});
    return run;
  }

  /**
   * Opens the adapter and starts herdsman; on failure the state says why and recovery is
   * scheduled. Returns what the start did, or undefined when it failed.
   */
  async #bringUp(backup?: SealedBackup): Promise<RestoreInfo | undefined> {
    const c = this.#c;
    try {
      prepareDirectories(this.#paths);
      const { params, created } = loadOrCreateNetwork(this.#paths, this.#o.sealer, this.#o.random, this.#s.channel);
      c.network = params;
      if (created) this.#log.info({ network: this.network() }, 'ZigBee: generated the hub network (key sealed)');
      const { staged, frameCounter } = this.#backups.stage(backup);
      if (!c.herdsman) deferHerdsmanExtras();
      // require, not import(): node's import of a CommonJS module reads each of its exports, and
      // herdsman's index exports the OTA helper that deferHerdsmanExtras leaves for its first use.
      c.herdsman ??= createRequire(import.meta.url)('zigbee-herdsman') as HerdsmanModule;
      c.herdsman.setLogger(herdsmanLogger(this.#log, () => c.secrets()));
      const controller = createController(c.herdsman, this.#o, this.#paths, params, (ieee) => this.#joins.accept(ieee));
      const generation = c.use(controller);
      const live = () => generation === c.generation;
      this.#wire(controller, generation);
      let result: RestoreInfo['result'];
      try {
        result = await controller.start();
      } catch (e) {
        await this.#tearDown(false);
        throw e;
      }
      stopOwnBackups(controller);
      const takesFrames = takeLinkFrames(
        controller,
        LINK_CLUSTER_ID,
        (p) => live() && this.#takeLinkFrame(controller, p),
      );
      const lean = useLeanUnpi(controller, unpiFrameClass());
      const leanWaits = useLeanWaitresses(controller);
      if (!takesFrames || !lean || !leanWaits)
        this.#log.warn(
          { takesFrames, lean, leanWaits },
          'ZigBee: herdsman not as expected; its own (slower) paths are used for link frames',
        );
      await controller.permitJoin(0);
      // Sealed only when the network changed or the schedule is due, not on every start.
      const taken = await this.#backups.atStart(controller, result);
      this.#recoverDelay = this.#s.recoverBaseMs;
      this.#recovering = false;
      c.setState({ status: 'ready' });
      this.#health.schedule(generation);
      this.#backups.schedule(generation);
      this.#log.info({ result, network: this.network() }, 'ZigBee: coordinator ready');
      for (const device of controller.getDevices()) this.#ads.announce(device);
      return { result, backupId: staged?.id ?? taken?.id ?? '', frameCounter };
    } catch (e) {
      this.#backups.removeClear();
      const reason = `the ZigBee adapter at ${this.#o.serialPath} did not start: ${c.clean(describeError(e))}`;
      c.counters.herdsmanErrors++;
      c.setState({ status: 'unavailable', reason });
      this.#log.warn({ reason }, 'ZigBee: adapter unavailable');
      this.#scheduleRecovery();
      return undefined;
    }
  }

  #wire(controller: Controller, generation: number): void {
    const live = () => generation === this.#c.generation;
    controller.on('message', (m) => {
      if (live()) this.#onMessage(m);
    });
    controller.on('deviceInterview', (e) => {
      if (!live()) return;
      if (e.status === 'successful') this.#ads.announce(e.device);
      if (e.status === 'failed') this.#interviews.retry(e.device, generation);
    });
    controller.on('deviceJoined', () => {
      if (!live()) return;
      this.#c.counters.joinsAccepted++;
      this.#backups.changed(generation);
    });
    controller.on('deviceLeave', (e) => {
      if (!live()) return;
      this.#links.left(e.ieeeAddr);
      this.#backups.changed(generation);
    });
    controller.on('adapterDisconnected', () => {
      if (live()) this.#lost('the adapter disconnected (unplugged, or its connection dropped)');
    });
  }

  /** Routes what a lock sent to the part that handles its cluster. */
  #onMessage(m: Events.MessagePayload): void {
    const report = m.type === 'attributeReport' || m.type === 'readResponse';
    const data = m.data as Record<string, unknown>;
    if (m.cluster === 'genBasic' && report) this.#ads.report(m.device, data);
    else if (m.cluster === 'closuresDoorLock' && report) this.#doorLocks.report(m.device.ieeeAddr, data);
    else if (m.cluster === LINK_CLUSTER_NAME || m.cluster === LINK_CLUSTER_ID) {
      this.#links.receive(m.device.ieeeAddr, m.meta.rawData, m.linkquality);
    }
  }

  /**
   * A link-cluster frame straight from herdsman's adapter (takeLinkFrames): from a lock herdsman
   * knows, its bytes go to the links as #onMessage would pass them, with the device's last-seen
   * time and link quality kept as herdsman's controller keeps them; anything else stays herdsman's.
   */
  #takeLinkFrame(controller: Controller, payload: ZclPayloadLike): boolean {
    if (typeof payload.address !== 'number') return false;
    const device = controller.getDeviceByNetworkAddress(payload.address);
    if (!device) return false;
    device.updateLastSeen();
    device.linkquality = payload.linkquality;
    // herdsman sends what it queued for a sleepy device when the device is heard from (none is queued for a lock).
    if (device.endpoints.some((e) => e.hasPendingRequests())) device.implicitCheckin();
    this.#links.receive(device.ieeeAddr, payload.data, payload.linkquality);
    return true;
  }

  /** Stops the controller (graceful or forced, see stopController) and seals its last backup. */
  async #tearDown(graceful: boolean): Promise<void> {
    const controller = this.#c.release();
    this.#health.cancel();
    this.#backups.cancel();
    this.#interviews.cancel();
    if (!controller) return;
    await stopController(this.#c, controller, graceful);
    this.#backups.sealFinal();
  }

  /** The adapter went away or hung: unavailable with the reason, links dropped, recovery scheduled. */
  #lost(reason: string): void {
    if (!this.#c.running || this.#recovering) return;
    this.#recovering = true;
    this.#c.counters.adapterLosses++;
    this.#c.setState({ status: 'unavailable', reason });
    this.#log.warn({ reason }, 'ZigBee: adapter lost');
    this.#links.closeAll('adapter-unavailable');
    void this.#serial(async () => {
      await this.#tearDown(false);
      // A start that was finishing when the loss came may have said ready meanwhile.
      this.#c.setState({ status: 'unavailable', reason });
      this.#scheduleRecovery();
    });
  }

  #scheduleRecovery(): void {
    if (!this.#c.running) return;
    this.#recovering = true;
    const delay = this.#recoverDelay;
    this.#recoverDelay = Math.min(this.#s.recoverMaxMs, this.#recoverDelay * 2);
    this.#clock.clearTimeout(this.#recoverTimer);
    this.#recoverTimer = this.#clock.setTimeout(() => {
      void this.#serial(async () => {
        if (!this.#c.running || this.#c.controller) return;
        this.#c.setState({ status: 'starting' });
        const up = await this.#bringUp();
        if (up) this.#c.counters.adapterRecoveries++;
      });
    }, delay);
  }
}
