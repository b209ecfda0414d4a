import type { Controller, Events } from 'zigbee-herdsman';
import type {
  Advertisement,
  Bearer,
  BearerError,
  BearerLink,
  BearerState,
  CloseReason,
  ConnectOptions,
  Unsubscribe,
} from '../../hal/bearer.js';
import type { Clock, TimerHandle } from '../../src/base/clock.js';
import { describeError, HubError } from '../../src/base/errors.js';
import { Listeners } from '../../src/base/listeners.js';
import type { Random } from '../../src/base/random.js';
import { err, OK, ok, type Result } from '../../src/base/result.js';
import type { Sealer } from '../../src/crypto/seal.js';
import type { Secret } from '../../src/crypto/secret.js';
import type { Logger } from '../../src/log/logger.js';
import { herdsmanLogger, scrub } from './herdsman-log.js';
import { parseInstallCodeText } from './install-code.js';
import { HubLink } from './link.js';
import {
  type DoorLockState,
  decodeZcl,
  LINK_CLUSTER_ID,
  LinkCommand,
  LOCK_ENDPOINT,
  LOCK_STATE_VALUES,
  MANUFACTURER_CODE,
  parseModelId,
  type RejectReason,
} from './link-cluster.js';
import {
  backupFrameCounter,
  type DataPaths,
  dataPaths,
  listBackups,
  loadOrCreateNetwork,
  type NetworkParameters,
  openBackup,
  prepareDirectories,
  removeClearBackup,
  type SealedBackup,
  sealHerdsmanBackup,
  stageBackupForHerdsman,
} from './network.js';

export interface ZigbeeBearerOptions {
  /** The coordinator: a serial device (/dev/ttyUSB0, /dev/serial/by-id/…) or tcp://host:port (a network adapter, the emulator). */
  readonly serialPath: string;
  /** Network parameters (sealed), sealed coordinator backups, herdsman's database. Created 0700. */
  readonly dataDir: string;
  /** Seals the network key and the backups under the hub's storage key. */
  readonly sealer: Sealer;
  /** Generates the network key, PAN id and extended PAN id (once per hub). */
  readonly random: Random;
  readonly clock: Clock;
  readonly log: Logger;
  /** The channel for a newly generated network, 11..26. Default 15 (clear of Wi-Fi 1/6/11 on most sites). */
  readonly channel?: number;
  readonly baudRate?: number;
  readonly rtscts?: boolean;
  /** Concurrent links (and connects); beyond it connect() answers 'busy'. Default 8. */
  readonly maxLinks?: number;
  /** Scheduled coordinator backups, ms. Default 6 h. */
  readonly backupIntervalMs?: number;
  /** Sealed backups kept. Default 5. */
  readonly backupsKept?: number;
  /** How far a restore moves the coordinator's NWK frame counter forward. Default 100000. */
  readonly frameCounterJump?: number;
  /** How often the adapter is asked a cheap question to find a hung one, ms. Default 10000. */
  readonly healthIntervalMs?: number;
  /** How long that question may take, ms. Default 5000. */
  readonly probeTimeoutMs?: number;
  /** First wait before re-opening an unavailable adapter, ms; doubles up to recoverMaxMs. Default 1000. */
  readonly recoverBaseMs?: number;
  readonly recoverMaxMs?: number;
  /** How long one link-cluster command may take to be confirmed by the radio, ms. Default 5000. */
  readonly sendTimeoutMs?: number;
}

export interface ZigbeeCounters {
  advertisements: number;
  /** genBasic modelIds that are not an iq lock's (ignored). */
  foreignModelIds: number;
  joinsAccepted: number;
  /** Devices that announced themselves outside a join window and were told to leave. */
  joinsRefused: number;
  connects: number;
  connectFailures: number;
  fragmentsIn: number;
  fragmentsOut: number;
  framesIn: number;
  framesOut: number;
  /** Link-cluster frames refused: bad ZCL header, wrong manufacturer code, unknown command, or a bad fragment. */
  rejected: Record<RejectReason | 'bad-zcl' | 'unknown-command', number>;
  /** Fragments for an address with no open link. */
  withoutLink: number;
  /** Unfinished frames replaced by a newer one. */
  abandonedFrames: number;
  doorLockReports: number;
  backups: number;
  adapterLosses: number;
  adapterRecoveries: number;
  /** Errors herdsman threw at us (caught; the message went to the log, scrubbed). */
  herdsmanErrors: number;
  /** Install codes registered with the coordinator. */
  installCodesAdded: number;
  /** Install codes refused: malformed (never sent), or refused by the adapter. */
  installCodesRefused: number;
}

export interface BackupInfo {
  readonly id: string;
  /** The coordinator's NWK frame counter at the time of the backup. */
  readonly frameCounter: number | undefined;
}

export interface RestoreInfo {
  /** What herdsman did: 'restored' the backup onto a blank adapter, 'resumed' a configured one, or formed a new network ('reset'). */
  readonly result: 'restored' | 'resumed' | 'reset';
  readonly backupId: string;
  /** The frame counter the restored coordinator continues from (backup + frameCounterJump; herdsman adds 2500 more). */
  readonly frameCounter: number;
}

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

type HerdsmanModule = typeof import('zigbee-herdsman');
type HerdsmanDevice = ReturnType<Controller['getDevices']>[number];

const IEEE = /^0x[0-9a-f]{16}$/;
const INTERVIEW_RETRIES = 3;
const INTERVIEW_RETRY_MS = 5_000;
const LINK_CLUSTER_NAME = 'iqhubLink';

function positive(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isFinite(x) || x <= 0) {
    throw new HubError('zigbee-config', `ZigBee bearer: ${name} must be a positive number, got ${v}`);
  }
  return x;
}

interface Settings {
  channel: number;
  maxLinks: number;
  backupIntervalMs: number;
  backupsKept: number;
  frameCounterJump: number;
  healthIntervalMs: number;
  probeTimeoutMs: number;
  recoverBaseMs: number;
  recoverMaxMs: number;
  sendTimeoutMs: number;
}

/** Validates the options; every refusal names the option and what it accepts. */
function checkOptions(o: ZigbeeBearerOptions): Settings {
  if (
    typeof o.serialPath !== 'string' ||
    !(o.serialPath.startsWith('/') || /^tcp:\/\/[^/:]+:\d+$/.test(o.serialPath))
  ) {
    throw new HubError(
      'zigbee-config',
      `ZigBee bearer: serialPath must be a device path (/dev/ttyUSB0) or tcp://host:port, got ${JSON.stringify(o.serialPath)}`,
    );
  }
  if (typeof o.dataDir !== 'string' || o.dataDir.length === 0) {
    throw new HubError('zigbee-config', 'ZigBee bearer: dataDir must name a directory for the network and backups');
  }
  if (!o.sealer || !o.random || !o.clock || !o.log) {
    throw new HubError('zigbee-config', 'ZigBee bearer: sealer, random, clock and log are required');
  }
  const channel = o.channel ?? 15;
  if (!Number.isInteger(channel) || channel < 11 || channel > 26) {
    throw new HubError('zigbee-config', `ZigBee bearer: channel must be an integer 11..26, got ${o.channel}`);
  }
  const maxLinks = o.maxLinks ?? 8;
  if (!Number.isInteger(maxLinks) || maxLinks < 1) {
    throw new HubError('zigbee-config', `ZigBee bearer: maxLinks must be an integer >= 1, got ${o.maxLinks}`);
  }
  const backupsKept = o.backupsKept ?? 5;
  if (!Number.isInteger(backupsKept) || backupsKept < 1) {
    throw new HubError('zigbee-config', `ZigBee bearer: backupsKept must be an integer >= 1, got ${o.backupsKept}`);
  }
  const frameCounterJump = o.frameCounterJump ?? 100_000;
  if (!Number.isInteger(frameCounterJump) || frameCounterJump < 2_500) {
    throw new HubError(
      'zigbee-config',
      `ZigBee bearer: frameCounterJump must be an integer >= 2500, got ${o.frameCounterJump}`,
    );
  }
  const recoverBaseMs = positive('recoverBaseMs', o.recoverBaseMs, 1_000);
  const recoverMaxMs = positive('recoverMaxMs', o.recoverMaxMs, 30_000);
  if (recoverMaxMs < recoverBaseMs) {
    throw new HubError(
      'zigbee-config',
      `ZigBee bearer: recoverMaxMs (${recoverMaxMs}) must be >= recoverBaseMs (${recoverBaseMs})`,
    );
  }
  return {
    channel,
    maxLinks,
    backupIntervalMs: positive('backupIntervalMs', o.backupIntervalMs, 6 * 3_600_000),
    backupsKept,
    frameCounterJump,
    healthIntervalMs: positive('healthIntervalMs', o.healthIntervalMs, 10_000),
    probeTimeoutMs: positive('probeTimeoutMs', o.probeTimeoutMs, 5_000),
    recoverBaseMs,
    recoverMaxMs,
    sendTimeoutMs: positive('sendTimeoutMs', o.sendTimeoutMs, 5_000),
  };
}

/**
 * The Bearer port over ZigBee through real zigbee-herdsman (Z-Stack coordinator, adapter
 * 'zstack'). herdsman is imported when the bearer starts, so a hub without ZigBee never loads it.
 * Throws HubError for bad options; everything after that is a state or a typed error.
 */
export function createZigbeeBearer(options: ZigbeeBearerOptions): ZigbeeBearer {
  return new HerdsmanBearer(options, checkOptions(options));
}

interface LinkEntry {
  readonly link: HubLink;
  /** Resolves when the lock acknowledges the open. */
  acked?: () => void;
}

class HerdsmanBearer implements ZigbeeBearer {
  readonly kind = 'zigbee' as const;
  readonly #o: ZigbeeBearerOptions;
  readonly #s: Settings;
  readonly #paths: DataPaths;
  readonly #log: Logger;
  readonly #clock: Clock;
  #state: BearerState = { status: 'stopped' };
  readonly #stateListeners = new Listeners<BearerState>();
  readonly #adListeners = new Listeners<Advertisement>();
  readonly #links = new Map<string, LinkEntry>();
  readonly #lockStates = new Map<string, DoorLockState>();
  readonly #counters: ZigbeeCounters = zeroCounters();
  #herdsman: HerdsmanModule | undefined;
  #controller: Controller | undefined;
  #network: NetworkParameters | undefined;
  /** Bumped whenever a controller is torn down, so late events of an old one are ignored. */
  #generation = 0;
  #running = false;
  #recovering = false;
  #recoverDelay: number;
  #recoverTimer: TimerHandle | undefined;
  #healthTimer: TimerHandle | undefined;
  #backupTimer: TimerHandle | undefined;
  #joinTimer: TimerHandle | undefined;
  readonly #interviewTimers = new Set<TimerHandle>();
  /** Install codes herdsman is handling right now (scrubbed from its log lines like the network key). */
  readonly #transientSecrets = new Set<Uint8Array>();
  #joinUntil = 0;
  #probing = false;
  #frameIdSeed: number;
  /** Serialises start, stop, recovery and restore: one controller lifecycle step at a time. */
  #lifecycle: Promise<unknown> = Promise.resolve();

  constructor(options: ZigbeeBearerOptions, settings: Settings) {
    this.#o = options;
    this.#s = settings;
    this.#paths = dataPaths(options.dataDir);
    this.#log = options.log;
    this.#clock = options.clock;
    this.#recoverDelay = settings.recoverBaseMs;
    this.#frameIdSeed = options.random.int(256);
  }

  // ---- Bearer --------------------------------------------------------------------------------

  start(): Promise<void> {
    return this.#serial(async () => {
      if (this.#running) return;
      this.#running = true;
      this.#setState({ status: 'starting' });
      await this.#bringUp();
    });
  }

  stop(): Promise<void> {
    return this.#serial(async () => {
      if (!this.#running) return;
      this.#running = false;
      this.#clock.clearTimeout(this.#recoverTimer);
      this.#clock.clearTimeout(this.#joinTimer);
      this.#joinUntil = 0;
      this.#closeLinks('stopped');
      await this.#tearDown(true);
      this.#setState({ status: 'stopped' });
    });
  }

  state(): BearerState {
    return this.#state;
  }

  onStateChange(listener: (state: BearerState) => void): Unsubscribe {
    return this.#stateListeners.add(listener);
  }

  onAdvertisement(listener: (advertisement: Advertisement) => void): Unsubscribe {
    return this.#adListeners.add(listener);
  }

  async connect(address: string, options: ConnectOptions): Promise<Result<BearerLink, BearerError>> {
    const unavailable = this.#unavailable();
    if (unavailable) return err(unavailable);
    const controller = this.#controller!;
    if (!IEEE.test(address)) {
      return err({
        code: 'not-found',
        message: `ZigBee: ${address} is not an IEEE address (0x + 16 hex digits)`,
        address,
      });
    }
    const device = controller.getDeviceByIeeeAddr(address);
    if (device?.interviewState !== 'SUCCESSFUL' || !device.getEndpoint(LOCK_ENDPOINT)) {
      return err({ code: 'not-found', message: `ZigBee: no interviewed lock ${address} on this network`, address });
    }
    if (this.#links.has(address)) {
      return err({ code: 'busy', message: `ZigBee: already connected or connecting to ${address}`, address });
    }
    if (this.#links.size >= this.#s.maxLinks) {
      return err({ code: 'busy', message: `ZigBee: ${this.#s.maxLinks} links open, the limit`, address });
    }
    this.#addLinkCluster(device);
    const generation = this.#generation;
    const link = new HubLink(
      address,
      {
        sendFragment: (fragment) => this.#command(generation, device, LinkCommand.fragment, fragment),
        sendClose: async () => {
          await this.#command(generation, device, LinkCommand.close, new Uint8Array(0));
        },
        released: () => {
          if (this.#links.get(address)?.link === link) this.#links.delete(address);
        },
        sentFrame: () => {
          this.#counters.framesOut++;
        },
      },
      this.#frameIdSeed++,
    );
    const entry: LinkEntry = { link };
    this.#links.set(address, entry);
    const acked = new Promise<boolean>((resolve) => {
      entry.acked = () => resolve(true);
      const timer = this.#clock.setTimeout(() => resolve(false), options.timeoutMs);
      link.onClose(() => {
        this.#clock.clearTimeout(timer);
        resolve(false);
      });
    });
    const sent = await this.#command(generation, device, LinkCommand.open, new Uint8Array(0));
    if (!sent.ok) {
      link.closed('lost');
      this.#counters.connectFailures++;
      return sent.error.code === 'radio-error'
        ? err({ code: 'not-found', message: `ZigBee: ${address} did not answer (${sent.error.message})`, address })
        : sent;
    }
    if (!(await acked) || !link.isOpen()) {
      const wasOpen = link.isOpen();
      link.closed('local');
      this.#counters.connectFailures++;
      if (!wasOpen && this.#state.status !== 'ready') return err(this.#unavailable() ?? this.#stoppedError());
      return err({
        code: 'timeout',
        message: `ZigBee: ${address} did not open a link within ${options.timeoutMs} ms`,
        address,
        timeoutMs: options.timeoutMs,
      });
    }
    this.#counters.connects++;
    return ok(link);
  }

  // ---- ZigBee extras -------------------------------------------------------------------------

  async openJoinWindow(durationMs: number): Promise<void> {
    if (!(durationMs > 0)) return;
    const controller = this.#controller;
    if (!controller || this.#state.status !== 'ready') {
      this.#log.warn({ state: this.#state }, 'ZigBee: join window not opened, the adapter is not ready');
      return;
    }
    const seconds = Math.min(254, Math.ceil(durationMs / 1000));
    this.#joinUntil = this.#clock.monotonic() + durationMs;
    this.#clock.clearTimeout(this.#joinTimer);
    this.#joinTimer = this.#clock.setTimeout(() => {
      this.#joinUntil = 0;
      void this.#closeJoin();
    }, durationMs);
    try {
      await controller.permitJoin(seconds);
      this.#log.info({ durationMs }, 'ZigBee: join window open');
    } catch (e) {
      this.#herdsmanError('opening the join window', e);
    }
  }

  /** Ends a join window early (the attach it was opened for is over). */
  async closeJoinWindow(): Promise<void> {
    if (this.#joinUntil === 0) return;
    this.#joinUntil = 0;
    this.#clock.clearTimeout(this.#joinTimer);
    await this.#closeJoin();
    this.#log.info('ZigBee: join window closed');
  }

  joinWindowOpen(): boolean {
    return this.#clock.monotonic() < this.#joinUntil;
  }

  async addInstallCode(installCode: Secret): Promise<void> {
    const refuse = (reason: string, hint: string): HubError => {
      this.#counters.installCodesRefused++;
      this.#log.warn({ reason }, 'ZigBee: install code refused');
      return new HubError('attach.install-code', `the install code is not valid: ${reason}`, { hint });
    };
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(installCode.reveal());
    } catch {
      throw refuse('it is not text (invalid UTF-8)', 'enter the code as printed on the lock or its QR label');
    }
    const parsed = parseInstallCodeText(text);
    if (!parsed.ok) throw refuse(parsed.reason, 'enter the code as printed on the lock or its QR label');
    const { ieee, code } = parsed.value;
    const controller = this.#controller;
    if (!controller || this.#state.status !== 'ready') {
      code.fill(0);
      this.#counters.installCodesRefused++;
      throw new HubError(
        'attach.install-code',
        `the install code for ${ieee} was not registered: the ZigBee adapter is not ready (${this.#reason()})`,
        { hint: 'retry once the ZigBee bearer is ready' },
      );
    }
    // herdsman's errors and log lines may spell the code (its refused-request error quotes the MT
    // payload): scrub it as a secret for as long as herdsman handles it.
    this.#transientSecrets.add(code);
    try {
      await this.#bounded(controller.addInstallCode(text.trim()), 10_000, 'registering the install code');
    } catch (e) {
      throw refuse(
        `the adapter refused it (${adapterReason(e)})`,
        'check the code against the lock label; a Z-Stack 3 coordinator takes 16-byte codes (36 hex digits with the CRC)',
      );
    } finally {
      this.#transientSecrets.delete(code);
      code.fill(0);
    }
    this.#counters.installCodesAdded++;
    this.#log.info({ ieee }, 'ZigBee: install code registered');
  }

  async backup(): Promise<BackupInfo> {
    const controller = this.#controller;
    if (!controller || this.#state.status !== 'ready') {
      throw new HubError('zigbee-unavailable', 'ZigBee: cannot back up the coordinator, the adapter is not ready', {
        hint: 'retry once the bearer state is ready',
      });
    }
    return await this.#backupNow(controller);
  }

  restore(options: { readonly backupId?: string } = {}): Promise<RestoreInfo> {
    return this.#serial(async () => {
      const all = listBackups(this.#paths);
      const chosen = options.backupId ? all.find((b) => b.id === options.backupId) : all.at(-1);
      if (!chosen) {
        throw new HubError('zigbee-backup', `ZigBee: no sealed coordinator backup ${options.backupId ?? ''}`.trim(), {
          hint: `backups present: ${all.map((b) => b.id).join(', ') || 'none'}`,
        });
      }
      this.#closeLinks('adapter-unavailable');
      await this.#tearDown(true);
      this.#running = true;
      this.#setState({ status: 'starting' });
      const outcome = await this.#bringUp(chosen);
      if (!outcome)
        throw new HubError('zigbee-unavailable', `ZigBee: restore did not start the adapter: ${this.#reason()}`);
      return outcome;
    });
  }

  backups(): string[] {
    return listBackups(this.#paths).map((b) => b.id);
  }

  lockState(address: string): DoorLockState | undefined {
    return this.#lockStates.get(address);
  }

  network(): { panId: number; extendedPanId: string; channel: number } | undefined {
    const n = this.#network;
    return n && { panId: n.panId, extendedPanId: Buffer.from(n.extendedPanId).toString('hex'), channel: n.channel };
  }

  counters(): ZigbeeCounters {
    let abandoned = this.#counters.abandonedFrames;
    for (const { link } of this.#links.values()) abandoned += link.abandonedFrames;
    return { ...this.#counters, rejected: { ...this.#counters.rejected }, abandonedFrames: abandoned };
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
    try {
      prepareDirectories(this.#paths);
      const { params, created } = loadOrCreateNetwork(this.#paths, this.#o.sealer, this.#o.random, this.#s.channel);
      this.#network = params;
      if (created) this.#log.info({ network: this.network() }, 'ZigBee: generated the hub network (key sealed)');
      const staged = backup ?? listBackups(this.#paths).at(-1);
      let frameCounter = 0;
      if (staged) {
        frameCounter = stageBackupForHerdsman(
          this.#paths,
          openBackup(staged, this.#o.sealer),
          this.#s.frameCounterJump,
        );
      } else {
        removeClearBackup(this.#paths);
      }
      this.#herdsman ??= await import('zigbee-herdsman');
      this.#herdsman.setLogger(herdsmanLogger(this.#log, () => this.#secrets()));
      const controller = new this.#herdsman.Controller({
        network: {
          panID: params.panId,
          extendedPanID: Array.from(params.extendedPanId),
          channelList: [params.channel],
          networkKey: Array.from(params.networkKey),
        },
        serialPort: {
          path: this.#o.serialPath,
          adapter: 'zstack',
          ...(this.#o.baudRate ? { baudRate: this.#o.baudRate } : {}),
          ...(this.#o.rtscts !== undefined ? { rtscts: this.#o.rtscts } : {}),
        },
        databasePath: this.#paths.databasePath,
        databaseBackupPath: this.#paths.databaseBackupPath,
        backupPath: this.#paths.herdsmanBackupPath,
        adapter: { disableLED: false },
        acceptJoiningDeviceHandler: (ieee) => Promise.resolve(this.#acceptJoin(ieee)),
      });
      const generation = ++this.#generation;
      this.#controller = controller;
      this.#wire(controller, generation);
      let result: RestoreInfo['result'];
      try {
        result = await controller.start();
      } catch (e) {
        await this.#tearDown(false);
        throw e;
      }
      // herdsman's own daily backup would leave its clear coordinator_backup.json on disk until our
      // next one: ours (sealed at once) replace it.
      clearInterval((controller as unknown as { backupTimer?: NodeJS.Timeout }).backupTimer);
      await controller.permitJoin(0);
      const taken = await this.#backupNow(controller);
      this.#recoverDelay = this.#s.recoverBaseMs;
      this.#recovering = false;
      this.#setState({ status: 'ready' });
      this.#scheduleHealth(generation);
      this.#scheduleBackup(generation);
      this.#log.info({ result, network: this.network() }, 'ZigBee: coordinator ready');
      for (const device of controller.getDevices()) this.#announceDevice(device);
      return { result, backupId: staged?.id ?? taken.id, frameCounter };
    } catch (e) {
      removeClearBackup(this.#paths);
      const reason = `the ZigBee adapter at ${this.#o.serialPath} did not start: ${this.#clean(describeError(e))}`;
      this.#counters.herdsmanErrors++;
      this.#setState({ status: 'unavailable', reason });
      this.#log.warn({ reason }, 'ZigBee: adapter unavailable');
      this.#scheduleRecovery();
      return undefined;
    }
  }

  #wire(controller: Controller, generation: number): void {
    const live = () => generation === this.#generation;
    controller.on('message', (m) => {
      if (live()) this.#onMessage(m);
    });
    controller.on('deviceInterview', (e) => {
      if (!live()) return;
      if (e.status === 'successful') this.#announceDevice(e.device);
      if (e.status === 'failed') this.#retryInterview(e.device, generation);
    });
    controller.on('deviceJoined', () => {
      if (live()) this.#counters.joinsAccepted++;
    });
    controller.on('deviceLeave', (e) => {
      if (live()) this.#links.get(e.ieeeAddr)?.link.closed('lost');
    });
    controller.on('adapterDisconnected', () => {
      if (live()) this.#lost('the adapter disconnected (unplugged, or its connection dropped)');
    });
  }

  /**
   * Stops the controller. Graceful: herdsman closes joining and takes its last backup (sealed
   * here). Forced (a hung adapter): the port is closed first and herdsman is told the adapter is
   * gone, as its own disconnect path does, so stop() does not wait out its request timeouts.
   */
  async #tearDown(graceful: boolean): Promise<void> {
    const controller = this.#controller;
    this.#controller = undefined;
    this.#generation++;
    this.#clock.clearTimeout(this.#healthTimer);
    this.#clock.clearTimeout(this.#backupTimer);
    for (const timer of this.#interviewTimers) this.#clock.clearTimeout(timer);
    this.#interviewTimers.clear();
    if (!controller) return;
    const internals = controller as unknown as {
      adapter?: { stop(): Promise<void>; deviceAnnounceRouteDiscoveryDebouncers?: Map<number, { clear?: () => void }> };
      adapterDisconnected: boolean;
    };
    // herdsman's zstack adapter keeps a 60 s debounce timer per announced end device and its stop()
    // leaves them running: the process would linger a minute after the hub stopped. (Private; checked.)
    const clearDebouncers = () => {
      for (const d of internals.adapter?.deviceAnnounceRouteDiscoveryDebouncers?.values() ?? []) d.clear?.();
    };
    clearDebouncers();
    if (!graceful && !controller.isAdapterDisconnected()) {
      try {
        await internals.adapter?.stop();
      } catch (e) {
        this.#herdsmanError('closing a hung adapter', e);
      }
      internals.adapterDisconnected = true;
    }
    try {
      await this.#bounded(controller.stop(), 20_000, 'stopping herdsman');
    } catch (e) {
      this.#herdsmanError('stopping herdsman', e);
      // herdsman's stop() gives up before closing the port when its final backup fails.
      try {
        await internals.adapter?.stop();
      } catch {}
    }
    clearDebouncers();
    try {
      sealHerdsmanBackup(this.#paths, this.#o.sealer, this.#clock.now(), this.#s.backupsKept);
    } catch (e) {
      this.#log.error({ err: e }, 'ZigBee: could not seal the final coordinator backup');
    } finally {
      removeClearBackup(this.#paths);
    }
  }

  /** The adapter went away or hung: unavailable with the reason, links dropped, recovery scheduled. */
  #lost(reason: string): void {
    if (!this.#running || this.#recovering) return;
    this.#recovering = true;
    this.#counters.adapterLosses++;
    this.#setState({ status: 'unavailable', reason });
    this.#log.warn({ reason }, 'ZigBee: adapter lost');
    this.#closeLinks('adapter-unavailable');
    void this.#serial(async () => {
      await this.#tearDown(false);
      // A start that was finishing when the loss came may have said ready meanwhile.
      this.#setState({ status: 'unavailable', reason });
      this.#scheduleRecovery();
    });
  }

  #scheduleRecovery(): void {
    if (!this.#running) return;
    this.#recovering = true;
    const delay = this.#recoverDelay;
    this.#recoverDelay = Math.min(this.#s.recoverMaxMs, this.#recoverDelay * 2);
    this.#clock.clearTimeout(this.#recoverTimer);
    this.#recoverTimer = this.#clock.setTimeout(() => {
      void this.#serial(async () => {
        if (!this.#running || this.#controller) return;
        this.#setState({ status: 'starting' });
        const up = await this.#bringUp();
        if (up) this.#counters.adapterRecoveries++;
      });
    }, delay);
  }

  #scheduleHealth(generation: number): void {
    this.#healthTimer = this.#clock.setTimeout(() => {
      if (generation !== this.#generation) return;
      void this.#probe(generation).finally(() => {
        if (generation === this.#generation) this.#scheduleHealth(generation);
      });
    }, this.#s.healthIntervalMs);
  }

  /** Asks the coordinator for its own node descriptor: cheap, and only a live firmware answers. */
  async #probe(generation: number): Promise<void> {
    const controller = this.#controller;
    if (!controller || this.#probing) return;
    this.#probing = true;
    try {
      const { Zdo } = this.#herdsman!;
      const coordinator = controller.getDevicesByType('Coordinator')[0];
      await this.#bounded(
        controller.sendRaw({
          profileId: Zdo.ZDO_PROFILE_ID,
          ieeeAddress: coordinator?.ieeeAddr ?? '0x0000000000000000',
          networkAddress: 0,
          clusterKey: Zdo.ClusterId.NODE_DESCRIPTOR_REQUEST,
          zdoParams: [0],
        }),
        this.#s.probeTimeoutMs,
        'the health probe',
      );
    } catch (e) {
      if (generation === this.#generation) {
        this.#lost(`the adapter stopped answering (${this.#clean(describeError(e))})`);
      }
    } finally {
      this.#probing = false;
    }
  }

  #scheduleBackup(generation: number): void {
    this.#backupTimer = this.#clock.setTimeout(() => {
      const controller = this.#controller;
      if (generation !== this.#generation || !controller) return;
      void this.#backupNow(controller)
        .catch((e) => this.#herdsmanError('the scheduled backup', e))
        .finally(() => {
          if (generation === this.#generation) this.#scheduleBackup(generation);
        });
    }, this.#s.backupIntervalMs);
  }

  async #backupNow(controller: Controller): Promise<BackupInfo> {
    try {
      await this.#bounded(controller.backup(), 60_000, 'the coordinator backup');
      const sealed = sealHerdsmanBackup(this.#paths, this.#o.sealer, this.#clock.now(), this.#s.backupsKept);
      if (!sealed) throw new HubError('zigbee-backup', 'ZigBee: herdsman wrote no coordinator backup');
      this.#counters.backups++;
      const frameCounter = backupFrameCounter(openBackup(sealed, this.#o.sealer));
      this.#log.info({ backup: sealed.id, frameCounter }, 'ZigBee: coordinator backup sealed');
      return { id: sealed.id, frameCounter };
    } catch (e) {
      removeClearBackup(this.#paths);
      throw e instanceof HubError
        ? e
        : new HubError('zigbee-backup', `ZigBee: coordinator backup failed: ${this.#clean(describeError(e))}`);
    }
  }

  // ---- joins, advertisements, frames ---------------------------------------------------------

  /** Admission policy: newcomers only inside a join window; locks already on the network may rejoin. */
  #acceptJoin(ieee: string): boolean {
    const known = this.#controller?.getDeviceByIeeeAddr(ieee);
    if (this.joinWindowOpen() || (known && known.interviewState === 'SUCCESSFUL')) return true;
    this.#counters.joinsRefused++;
    this.#log.warn({ ieee }, 'ZigBee: refused a device that joined outside a join window');
    return false;
  }

  async #closeJoin(): Promise<void> {
    try {
      await this.#controller?.permitJoin(0);
    } catch (e) {
      this.#herdsmanError('closing the join window', e);
    }
  }

  /**
   * herdsman interviews a device once, when it joins; a lock whose interview failed (a lost
   * frame) would stay unusable until it rejoins. Ask again a few times, spaced out.
   */
  #retryInterview(device: HerdsmanDevice, generation: number, attempt = 1): void {
    if (attempt > INTERVIEW_RETRIES) {
      this.#log.warn({ ieee: device.ieeeAddr }, 'ZigBee: interview failed; the lock is usable once it rejoins');
      return;
    }
    const timer = this.#clock.setTimeout(() => {
      this.#interviewTimers.delete(timer);
      if (generation !== this.#generation || device.interviewState === 'SUCCESSFUL') return;
      device.interview().then(
        () => this.#announceDevice(device),
        () => this.#retryInterview(device, generation, attempt + 1),
      );
    }, INTERVIEW_RETRY_MS * attempt);
    this.#interviewTimers.add(timer);
  }

  #announceDevice(device: HerdsmanDevice): void {
    if (device.type === 'Coordinator') return;
    if (device.interviewState === 'SUCCESSFUL') this.#addLinkCluster(device);
    this.#advertise(device.ieeeAddr, device.modelID);
  }

  #advertise(address: string, modelId: unknown): void {
    const parsed = parseModelId(modelId);
    if (!parsed) {
      if (modelId !== undefined) this.#counters.foreignModelIds++;
      return;
    }
    this.#counters.advertisements++;
    const ad: Advertisement = { ...parsed, address, seenAt: this.#clock.now() };
    this.#adListeners.emit(ad);
  }

  #onMessage(m: Events.MessagePayload): void {
    const address = m.device.ieeeAddr;
    const data = m.data as Record<string, unknown>;
    if (m.cluster === 'genBasic' && (m.type === 'attributeReport' || m.type === 'readResponse')) {
      // Until its interview succeeded a device cannot be connected to: it is not announced yet.
      if ('modelId' in data && m.device.interviewState === 'SUCCESSFUL') this.#advertise(address, data.modelId);
      return;
    }
    if (m.cluster === 'closuresDoorLock' && (m.type === 'attributeReport' || m.type === 'readResponse')) {
      if (typeof data.lockState === 'number') {
        this.#counters.doorLockReports++;
        this.#lockStates.set(address, LOCK_STATE_VALUES[data.lockState] ?? 'undefined');
      }
      return;
    }
    if (m.cluster === LINK_CLUSTER_NAME || m.cluster === LINK_CLUSTER_ID) {
      this.#onLinkFrame(address, m.meta.rawData, m.linkquality);
    }
  }

  #onLinkFrame(address: string, raw: Uint8Array, lqi: number): void {
    const frame = decodeZcl(raw);
    if (!frame?.clusterSpecific || !frame.serverToClient || frame.manufacturerCode !== MANUFACTURER_CODE) {
      this.#counters.rejected['bad-zcl']++;
      return;
    }
    const entry = this.#links.get(address);
    switch (frame.command) {
      case LinkCommand.openAck:
        entry?.acked?.();
        return;
      case LinkCommand.close:
        entry?.link.closed('remote');
        return;
      case LinkCommand.fragment: {
        this.#counters.fragmentsIn++;
        if (!entry?.link.isOpen()) {
          this.#counters.withoutLink++;
          return;
        }
        const result = entry.link.receiveFragment(frame.payload, lqi);
        if (result.kind === 'rejected') this.#counters.rejected[result.reason]++;
        else if (result.kind === 'frame') this.#counters.framesIn++;
        return;
      }
      default:
        this.#counters.rejected['unknown-command']++;
    }
  }

  /** One link-cluster command to a lock, confirmed by the radio (no ZCL response is expected). */
  async #command(
    generation: number,
    device: HerdsmanDevice,
    command: number,
    payload: Uint8Array,
  ): Promise<Result<void, BearerError>> {
    const unavailable = this.#unavailable();
    if (unavailable) return err(unavailable);
    if (generation !== this.#generation) {
      return err({
        code: 'disconnected',
        message: 'ZigBee: the adapter restarted since this link opened',
        address: device.ieeeAddr,
        reason: 'adapter-unavailable',
      });
    }
    const endpoint = device.getEndpoint(LOCK_ENDPOINT);
    if (!endpoint)
      return err({
        code: 'not-found',
        message: `ZigBee: ${device.ieeeAddr} has no endpoint 1`,
        address: device.ieeeAddr,
      });
    const name = COMMAND_NAMES[command]!;
    try {
      await this.#bounded(
        endpoint.command(
          LINK_CLUSTER_ID,
          command,
          command === LinkCommand.fragment ? { data: Buffer.from(payload) } : {},
          {
            manufacturerCode: MANUFACTURER_CODE,
            disableDefaultResponse: true,
            disableResponse: true,
            disableRecovery: true,
            timeout: this.#s.sendTimeoutMs,
            sendPolicy: 'immediate',
          },
        ),
        this.#s.sendTimeoutMs + 2_000,
        `the ${name} command`,
      );
      if (command === LinkCommand.fragment) this.#counters.fragmentsOut++;
      return OK;
    } catch (e) {
      return err({
        code: 'radio-error',
        message: `ZigBee: ${name} to ${device.ieeeAddr} failed: ${this.#clean(describeError(e))}`,
        address: device.ieeeAddr,
      });
    }
  }

  #addLinkCluster(device: HerdsmanDevice): void {
    if (device.customClusters[LINK_CLUSTER_NAME]) return;
    const BUFFER = this.#herdsman!.Zcl.BuffaloZclDataType.BUFFER;
    const commands = {
      fragment: { ID: LinkCommand.fragment, name: 'fragment', parameters: [{ name: 'data', type: BUFFER }] },
      open: { ID: LinkCommand.open, name: 'open', parameters: [] },
      openAck: { ID: LinkCommand.openAck, name: 'openAck', parameters: [] },
      close: { ID: LinkCommand.close, name: 'close', parameters: [] },
    };
    device.addCustomCluster(LINK_CLUSTER_NAME, {
      ID: LINK_CLUSTER_ID,
      name: LINK_CLUSTER_NAME,
      manufacturerCode: MANUFACTURER_CODE,
      attributes: {},
      commands,
      commandsResponse: commands,
    });
  }

  // ---- helpers -------------------------------------------------------------------------------

  #closeLinks(reason: CloseReason): void {
    for (const { link } of [...this.#links.values()]) link.closed(reason);
    this.#links.clear();
  }

  #unavailable(): BearerError | undefined {
    if (!this.#running) return this.#stoppedError();
    if (this.#state.status !== 'ready' || !this.#controller) {
      return {
        code: 'adapter-unavailable',
        message: `ZigBee adapter unavailable: ${this.#reason()}`,
        reason: this.#reason(),
      };
    }
    return undefined;
  }

  #stoppedError(): BearerError {
    return { code: 'stopped', message: 'the ZigBee bearer is stopped; start() it first' };
  }

  #reason(): string {
    return this.#state.status === 'unavailable' ? this.#state.reason : this.#state.status;
  }

  #setState(state: BearerState): void {
    const same =
      state.status === this.#state.status &&
      (state.status !== 'unavailable' || (this.#state.status === 'unavailable' && state.reason === this.#state.reason));
    if (same) return;
    this.#state = state;
    this.#stateListeners.emit(state);
  }

  #secrets(): Uint8Array[] {
    return [...(this.#network ? [this.#network.networkKey] : []), ...this.#transientSecrets];
  }

  #clean(message: string): string {
    return scrub(message, this.#secrets());
  }

  #herdsmanError(what: string, e: unknown): void {
    this.#counters.herdsmanErrors++;
    this.#log.warn({ error: this.#clean(describeError(e)) }, `ZigBee: ${what} failed`);
  }

  /** Awaits a herdsman promise at most `ms`; its late rejection is swallowed (already reported). */
  #bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    promise.catch(() => {});
    return new Promise<T>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      promise.then(
        (v) => {
          this.#clock.clearTimeout(timer);
          resolve(v);
        },
        (e) => {
          this.#clock.clearTimeout(timer);
          reject(e);
        },
      );
    });
  }
}

/**
 * Why herdsman failed to register an install code, without the code: only Z-Stack's status name
 * (herdsman's error quotes the whole request, code included) or a timeout.
 */
function adapterReason(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  // herdsman: "--> 'SREQ: … {payload}' failed with status '(0x02: INVALID_PARAMETER)' (expected …)".
  const status = /failed with status '\((0x[0-9a-f]{2}): ([A-Z_]{1,40})\)'/.exec(message);
  if (status) return `status ${status[2]} ${status[1]}`;
  if (/took longer than/.test(message)) return 'no answer within 10 s';
  if (/ZStack 1\.2|ZStack12/i.test(message)) return 'a Z-Stack 1.2 coordinator has no install codes';
  return 'the request failed';
}

const COMMAND_NAMES: Record<number, string> = {
  [LinkCommand.fragment]: 'fragment',
  [LinkCommand.open]: 'open',
  [LinkCommand.openAck]: 'openAck',
  [LinkCommand.close]: 'close',
};

function zeroCounters(): ZigbeeCounters {
  return {
    advertisements: 0,
    foreignModelIds: 0,
    joinsAccepted: 0,
    joinsRefused: 0,
    connects: 0,
    connectFailures: 0,
    fragmentsIn: 0,
    fragmentsOut: 0,
    framesIn: 0,
    framesOut: 0,
    rejected: {
      'short-fragment': 0,
      'bad-count': 0,
      'bad-index': 0,
      'count-mismatch': 0,
      'bad-fragment-size': 0,
      'duplicate-fragment': 0,
      'bad-zcl': 0,
      'unknown-command': 0,
    },
    withoutLink: 0,
    abandonedFrames: 0,
    doorLockReports: 0,
    backups: 0,
    adapterLosses: 0,
    adapterRecoveries: 0,
    herdsmanErrors: 0,
    installCodesAdded: 0,
    installCodesRefused: 0,
  };
}
