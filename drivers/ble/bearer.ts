import type { Characteristic, Noble, Peripheral } from '@stoprocent/noble';
import {
  type Advertisement,
  BEARER_MIN_FRAME_SIZE,
  type Bearer,
  type BearerError,
  type BearerLink,
  type BearerState,
  type CloseReason,
  type ConnectOptions,
  disconnectedError,
  type Unsubscribe,
} from '../../hal/bearer.js';
import { WiredLink } from '../../hal/link-listeners.js';
import type { Clock, TimerHandle } from '../../src/base/clock.js';
import { describeError, HubError } from '../../src/base/errors.js';
import { Listeners } from '../../src/base/listeners.js';
import { err, OK, ok, type Result } from '../../src/base/result.js';
import type { Logger } from '../../src/log/logger.js';
import {
  ATT_HEADER_LEN,
  DEFAULT_MAX_FRAME_SIZE,
  decodeManufacturerData,
  FRAGMENT_HEADER_LEN,
  fragmentFrame,
  LOCK_FRAMES_UUID,
  LOCK_SERVICE_UUID,
  MAX_FRAGMENTS,
  MIN_ATT_MTU,
  Reassembler,
  type ReassemblyCounters,
  zeroReassemblyCounters,
} from './gatt-frames.js';

/** Where the BLE controller is: a UART (H4, e.g. a USB dongle or an nRF52 on /dev/ttyACM0), or a Linux HCI socket (hciN). */
export type BleTransport =
  | { readonly kind: 'uart'; readonly path: string; readonly baudRate?: number }
  | { readonly kind: 'hci'; readonly deviceId: number };

export interface BleBearerOptions {
  readonly transport: BleTransport;
  /** Concurrent links and connection attempts; beyond it connect() answers 'busy'. */
  readonly maxConnections: number;
  readonly clock: Clock;
  readonly log: Logger;
  /** The largest frame each link carries (>= BEARER_MIN_FRAME_SIZE); the lock must accept as much. Default 2048. */
  readonly maxFrameSize?: number;
  /** How long the adapter may take to reach poweredOn before it counts as unavailable, ms. Default 5000. */
  readonly readyTimeoutMs?: number;
  /** First wait before re-opening an unavailable adapter, ms; doubles up to recoverMaxMs. Default 500. */
  readonly recoverBaseMs?: number;
  readonly recoverMaxMs?: number;
  /** A frame whose fragments take longer than this to arrive is dropped, ms. Default 5000. */
  readonly reassemblyTimeoutMs?: number;
  /** How long one fragment write may take before the link is declared lost, ms. Default 5000. */
  readonly writeTimeoutMs?: number;
  /** Wait before scanning again after the controller stopped (noble stops it to connect), ms. Default 200. */
  readonly scanRestartMs?: number;
  /**
   * While ready, the driver asks the controller a harmless question (HCI Read Local Version) this
   * often, ms. Default 1000. A pulled UART is not always reported by the serial layer, and a hung
   * controller never is: the answer is the only proof the adapter is alive.
   */
  readonly livenessIntervalMs?: number;
  /** No answer to the liveness question within this → unavailable ("stopped answering"), ms. Default 3000. */
  readonly livenessTimeoutMs?: number;
}

export interface BleCounters {
  advertisements: number;
  /** Advertisements with the lock service but no valid lock manufacturer data: ignored. */
  malformedAdvertisements: number;
  connects: number;
  connectFailures: number;
  framesIn: number;
  framesOut: number;
  /** Times the adapter became unavailable and was re-opened. */
  adapterRecoveries: number;
  /** Liveness questions asked, and those left unanswered past livenessTimeoutMs (each makes the adapter unavailable). */
  livenessProbes: number;
  livenessFailures: number;
  /** Reassembly of frames from the locks: frames, and fragments rejected by reason. */
  reassembly: ReassemblyCounters;
}

export interface BleBearer extends Bearer {
  readonly kind: 'ble';
  counters(): BleCounters;
}

type NobleModule = typeof import('@stoprocent/noble');

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function positive(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isFinite(x) || x <= 0) {
    throw new HubError('ble-config', `BLE bearer: ${name} must be a positive number of milliseconds, got ${v}`);
  }
  return x;
}

/** Validates the options; every refusal names the option and what it accepts. */
function checkOptions(o: BleBearerOptions): Required<Omit<BleBearerOptions, 'transport' | 'clock' | 'log'>> {
  const t = o.transport as BleTransport | undefined;
  if (t?.kind === 'uart') {
    if (typeof t.path !== 'string' || t.path.length === 0) {
      throw new HubError('ble-config', 'BLE bearer: transport.path must name the serial port (e.g. /dev/ttyACM0)');
    }
    if (t.baudRate !== undefined && (!Number.isInteger(t.baudRate) || t.baudRate <= 0)) {
      throw new HubError('ble-config', `BLE bearer: transport.baudRate must be a positive integer, got ${t.baudRate}`);
    }
  } else if (t?.kind === 'hci') {
    if (!Number.isInteger(t.deviceId) || t.deviceId < 0) {
      throw new HubError(
        'ble-config',
        `BLE bearer: transport.deviceId must be an HCI index >= 0 (0 for hci0), got ${t.deviceId}`,
      );
    }
  } else {
    throw new HubError('ble-config', "BLE bearer: transport must be {kind: 'uart', path} or {kind: 'hci', deviceId}");
  }
  if (!Number.isInteger(o.maxConnections) || o.maxConnections < 1) {
    throw new HubError('ble-config', `BLE bearer: maxConnections must be an integer >= 1, got ${o.maxConnections}`);
  }
  const maxFrameSize = o.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  // The smallest MTU must still carry the largest frame in MAX_FRAGMENTS fragments.
  const ceiling = MAX_FRAGMENTS * (MIN_ATT_MTU - ATT_HEADER_LEN - FRAGMENT_HEADER_LEN);
  if (!Number.isInteger(maxFrameSize) || maxFrameSize < BEARER_MIN_FRAME_SIZE || maxFrameSize > ceiling) {
    throw new HubError(
      'ble-config',
      `BLE bearer: maxFrameSize must be an integer ${BEARER_MIN_FRAME_SIZE}…${ceiling}, got ${o.maxFrameSize}`,
    );
  }
  const recoverBaseMs = positive('recoverBaseMs', o.recoverBaseMs, 500);
  const recoverMaxMs = positive('recoverMaxMs', o.recoverMaxMs, 10_000);
  if (recoverMaxMs < recoverBaseMs) {
    throw new HubError(
      'ble-config',
      `BLE bearer: recoverMaxMs (${recoverMaxMs}) must be >= recoverBaseMs (${recoverBaseMs})`,
    );
  }
  const livenessTimeoutMs = positive('livenessTimeoutMs', o.livenessTimeoutMs, 3_000);
  // A controller answers an HCI command in milliseconds; under 100 ms a busy event loop alone would trip it.
  if (livenessTimeoutMs < 100) {
    throw new HubError(
      'ble-config',
      `BLE bearer: livenessTimeoutMs must be >= 100 ms (a loaded host would read as a dead adapter), got ${livenessTimeoutMs}`,
    );
  }
  return {
    maxConnections: o.maxConnections,
    maxFrameSize,
    readyTimeoutMs: positive('readyTimeoutMs', o.readyTimeoutMs, 5_000),
    recoverBaseMs,
    recoverMaxMs,
    reassemblyTimeoutMs: positive('reassemblyTimeoutMs', o.reassemblyTimeoutMs, 5_000),
    writeTimeoutMs: positive('writeTimeoutMs', o.writeTimeoutMs, 5_000),
    scanRestartMs: positive('scanRestartMs', o.scanRestartMs, 200),
    livenessIntervalMs: positive('livenessIntervalMs', o.livenessIntervalMs, 1_000),
    livenessTimeoutMs,
  };
}

/**
 * The Bearer port over BLE, through real noble (HCI over a UART or a Linux HCI socket). noble is
 * imported when the bearer starts, so a hub without BLE never loads it. Throws HubError for bad
 * options; everything after that is a state or a typed error.
 */
export function createBleBearer(options: BleBearerOptions): BleBearer {
  return new NobleBearer(options, checkOptions(options));
}

interface Attempt {
  readonly address: string;
  fail(error: BearerError): void;
}

interface Link {
  readonly address: string;
  readonly end: WiredLink;
  readonly peripheral: Peripheral;
  /** Set when this end asked for the disconnection, so the close reads 'local'. */
  closing: boolean;
}

class NobleBearer implements BleBearer {
  readonly kind = 'ble' as const;
  readonly #options: BleBearerOptions;
  readonly #cfg: ReturnType<typeof checkOptions>;
  readonly #clock: Clock;
  readonly #log: Logger;
  #state: BearerState = { status: 'stopped' };
  readonly #stateListeners = new Listeners<BearerState>();
  readonly #adListeners = new Listeners<Advertisement>();
  readonly #links = new Map<string, Link>();
  readonly #attempts = new Set<Attempt>();
  /** Addresses heard advertising the lock service (for 'not-found' versus 'timeout'), with their latest rssi. */
  readonly #heard = new Map<string, number | undefined>();
  readonly #counters: Omit<BleCounters, 'reassembly'> = {
    advertisements: 0,
    malformedAdvertisements: 0,
    connects: 0,
    connectFailures: 0,
    framesIn: 0,
    framesOut: 0,
    adapterRecoveries: 0,
    livenessProbes: 0,
    livenessFailures: 0,
  };
  readonly #reassembly = zeroReassemblyCounters();
  #module: NobleModule | undefined;
  #noble: Noble | undefined;
  /** Bumped whenever the noble instance is replaced or the bearer stops: callbacks from an older one do nothing. */
  #generation = 0;
  #readyTimer: TimerHandle | undefined;
  #recoverTimer: TimerHandle | undefined;
  #scanTimer: TimerHandle | undefined;
  /** Next liveness question, and the deadline of the one outstanding. */
  #probeTimer: TimerHandle | undefined;
  #probeDeadline: TimerHandle | undefined;
  /** Detaches the watchdog from the HCI layer of the current noble instance. */
  #probeOff: (() => void) | undefined;
  #backoffMs: number;

  constructor(options: BleBearerOptions, cfg: ReturnType<typeof checkOptions>) {
    this.#options = options;
    this.#cfg = cfg;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#backoffMs = cfg.recoverBaseMs;
  }

  counters(): BleCounters {
    return { ...this.#counters, reassembly: { ...this.#reassembly } };
  }

  async start(): Promise<void> {
    if (this.#state.status !== 'stopped') return;
    this.#setState({ status: 'starting' });
    this.#backoffMs = this.#cfg.recoverBaseMs;
    await this.#open();
  }

  async stop(): Promise<void> {
    if (this.#state.status === 'stopped') return;
    this.#generation++;
    this.#clearTimers();
    this.#setState({ status: 'stopped' });
    this.#dropAll(stoppedError(), 'stopped');
    this.#dispose(this.#noble);
    this.#noble = undefined;
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
    const target = address.toLowerCase();
    const refusal = this.#refusal(target);
    if (refusal) return err(refusal);
    const noble = this.#noble;
    if (!noble) return err(unavailableError('the adapter is not open'));
    const generation = this.#generation;
    const timeoutMs = options.timeoutMs;

    let settle!: (r: Result<BearerLink, BearerError>) => void;
    const outcome = new Promise<Result<BearerLink, BearerError>>((resolve) => {
      settle = resolve;
    });
    let done = false;
    let connected: Peripheral | undefined;
    const finish = (r: Result<BearerLink, BearerError>) => {
      if (done) return;
      done = true;
      this.#attempts.delete(attempt);
      this.#clock.clearTimeout(deadline);
      if (!r.ok) {
        this.#counters.connectFailures++;
        // A half-made connection must not linger in the controller.
        if (connected) void connected.disconnectAsync().catch(() => undefined);
        else {
          try {
            noble.cancelConnect(target);
          } catch {}
        }
      }
      this.#scheduleScan();
      settle(r);
    };
    const attempt: Attempt = { address: target, fail: (e) => finish(err(e)) };
    this.#attempts.add(attempt);
    const deadline = this.#clock.setTimeout(() => {
      finish(err(this.#heard.has(target) ? timeoutError(target, timeoutMs) : notFoundError(target, timeoutMs)));
    }, timeoutMs);

    void (async () => {
      try {
        const peripheral = await noble.connectAsync(target);
        if (!peripheral) throw new Error('noble connected to a peripheral it does not know');
        connected = peripheral;
        if (done) return finish(err(timeoutError(target, timeoutMs)));
        const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync(
          [LOCK_SERVICE_UUID],
          [LOCK_FRAMES_UUID],
        );
        const characteristic = characteristics.find((c) => c.uuid === LOCK_FRAMES_UUID);
        if (!characteristic) {
          return finish(
            err({
              code: 'radio-error',
              message: `${target} has no lock frames characteristic (${LOCK_FRAMES_UUID}); is it a lock of this make?`,
              address: target,
            }),
          );
        }
        await characteristic.subscribeAsync();
        if (done || generation !== this.#generation) return finish(err(timeoutError(target, timeoutMs)));
        if (peripheral.state !== 'connected') {
          return finish(err(disconnectedError(target, 'lost')));
        }
        const end = this.#adopt(target, peripheral, characteristic);
        this.#counters.connects++;
        finish(ok(end));
      } catch (e) {
        const why = describeError(e);
        finish(
          err(
            generation !== this.#generation
              ? unavailableError(this.#state.status === 'unavailable' ? this.#state.reason : 'the adapter was closed')
              : { code: 'radio-error', message: `connecting to ${target} failed: ${why}`, address: target },
          ),
        );
      }
    })();
    return outcome;
  }

  // ── links ────────────────────────────────────────────────────────────────────────────────────

  #adopt(address: string, peripheral: Peripheral, characteristic: Characteristic): WiredLink {
    const mtu = Math.max(MIN_ATT_MTU, peripheral.mtu ?? MIN_ATT_MTU);
    const reassembler = new Reassembler({
      maxFrameSize: this.#cfg.maxFrameSize,
      timeoutMs: this.#cfg.reassemblyTimeoutMs,
      now: () => this.#clock.monotonic(),
      counters: this.#reassembly,
    });
    let frameId = 0;
    let queue: Promise<unknown> = Promise.resolve();
    const link: Link = {
      address,
      peripheral,
      closing: false,
      end: new WiredLink(address, this.#cfg.maxFrameSize, {
        send: (frame) => {
          const sent = queue.then(() => this.#send(link, characteristic, frame, frameId++ & 0xff, mtu));
          queue = sent;
          return sent;
        },
        close: async () => {
          if (!link.end.isOpen()) return;
          link.closing = true;
          await withTimeout(
            peripheral.disconnectAsync().catch(() => undefined),
            this.#cfg.writeTimeoutMs,
            this.#clock,
          );
          this.#closeLink(link, 'local');
        },
        quality: () => {
          // noble reports 127 ("unknown") for a peer it connected to before hearing it.
          const rssi = validRssi(peripheral.rssi) ?? this.#heard.get(address);
          return rssi === undefined ? {} : { rssi };
        },
      }),
    };
    const onData = (data: Buffer) => {
      const frame = reassembler.push(data);
      if (!frame) return;
      this.#counters.framesIn++;
      link.end.receive(frame);
    };
    characteristic.on('data', onData);
    peripheral.once('disconnect', (reason: number | string) => {
      characteristic.removeListener('data', onData);
      this.#closeLink(link, link.closing ? 'local' : closeReason(reason));
    });
    this.#links.set(address, link);
    return link.end;
  }

  async #send(
    link: Link,
    characteristic: Characteristic,
    frame: Uint8Array,
    frameId: number,
    mtu: number,
  ): Promise<Result<void, BearerError>> {
    if (!link.end.isOpen()) return err(disconnectedError(link.address, link.end.closedBy() ?? 'lost'));
    if (frame.length > this.#cfg.maxFrameSize) {
      return err({
        code: 'frame-too-large',
        message: `frame of ${frame.length} bytes to ${link.address} exceeds the link's limit of ${this.#cfg.maxFrameSize} bytes`,
        size: frame.length,
        maxFrameSize: this.#cfg.maxFrameSize,
      });
    }
    for (const fragment of fragmentFrame(frame, frameId, mtu)) {
      // Write Request, not Command: the response paces the writes and says the lock took each one.
      const written = await withTimeout(
        characteristic.writeAsync(fragment, false).then(
          () => 'ok' as const,
          (e: unknown) => describeError(e),
        ),
        this.#cfg.writeTimeoutMs,
        this.#clock,
      );
      if (!link.end.isOpen()) return err(disconnectedError(link.address, link.end.closedBy() ?? 'lost'));
      if (written === undefined) {
        // A write that never completes leaves noble's GATT queue stuck: only a new connection helps.
        this.#log.warn({ address: link.address }, 'BLE write timed out; dropping the link');
        void link.peripheral.disconnectAsync().catch(() => undefined);
        this.#closeLink(link, 'lost');
        return err(disconnectedError(link.address, 'lost'));
      }
      if (written !== 'ok') {
        return err({
          code: 'radio-error',
          message: `writing to ${link.address} failed: ${written}`,
          address: link.address,
        });
      }
    }
    this.#counters.framesOut++;
    return OK;
  }

  #closeLink(link: Link, reason: CloseReason): void {
    if (this.#links.get(link.address) === link) this.#links.delete(link.address);
    link.end.closed(reason);
  }

  #refusal(address: string): BearerError | undefined {
    const s = this.#state;
    if (s.status === 'stopped' || s.status === 'starting') return stoppedError();
    if (s.status === 'unavailable') return unavailableError(s.reason);
    if (!MAC.test(address)) {
      return { code: 'not-found', message: `${address} is not a BLE address (aa:bb:cc:dd:ee:ff)`, address };
    }
    const connecting = [...this.#attempts].some((a) => a.address === address);
    if (this.#links.has(address) || connecting) {
      return { code: 'busy', message: `already connected or connecting to ${address}; close that link first`, address };
    }
    if (this.#links.size + this.#attempts.size >= this.#cfg.maxConnections) {
      return {
        code: 'busy',
        message: `the BLE adapter's limit of ${this.#cfg.maxConnections} connections is reached; close a link or try again later`,
        address,
      };
    }
    return undefined;
  }

  #dropAll(error: BearerError, reason: CloseReason): void {
    for (const attempt of [...this.#attempts]) attempt.fail(error);
    for (const link of [...this.#links.values()]) this.#closeLink(link, reason);
  }

  // ── adapter ──────────────────────────────────────────────────────────────────────────────────

  async #open(): Promise<void> {
    const generation = ++this.#generation;
    let noble: Noble;
    try {
      this.#module ??= await import('@stoprocent/noble');
      if (generation !== this.#generation) return;
      const mod = this.#module as NobleModule & { default?: { withBindings?: NobleModule['withBindings'] } };
      const withBindings = mod.withBindings ?? mod.default?.withBindings;
      const t = this.#options.transport;
      noble =
        t.kind === 'uart'
          ? withBindings('hci', {
              hciDriver: 'uart',
              bindParams: { uart: { port: t.path, baudRate: t.baudRate ?? 1_000_000 } },
            })
          : withBindings('hci', { deviceId: t.deviceId });
    } catch (e) {
      this.#unavailable(generation, `the BLE library could not be loaded: ${describeError(e)}`);
      return;
    }
    this.#noble = noble;
    noble.on('stateChange', (s: string) => this.#onAdapterState(generation, s));
    noble.on('discover', (p: Peripheral) => {
      if (generation === this.#generation) this.#onDiscover(p);
    });
    noble.on('scanStop', () => {
      if (generation === this.#generation) this.#scheduleScan();
    });
    // noble reports its own troubles as warnings on the console; keep them in our log instead.
    noble.removeAllListeners('warning');
    noble.on('warning', (message: string) => this.#log.debug({ message }, 'noble warning'));
    this.#readyTimer = this.#clock.setTimeout(() => {
      this.#readyTimer = undefined;
      this.#unavailable(
        generation,
        `the BLE adapter (${this.#where()}) did not power on within ${this.#cfg.readyTimeoutMs} ms`,
      );
    }, this.#cfg.readyTimeoutMs);
  }

  #where(): string {
    const t = this.#options.transport;
    return t.kind === 'uart' ? `UART ${t.path}` : `hci${t.deviceId}`;
  }

  #onAdapterState(generation: number, s: string): void {
    if (generation !== this.#generation) return;
    if (s === 'poweredOn') {
      this.#clock.clearTimeout(this.#readyTimer);
      this.#readyTimer = undefined;
      this.#backoffMs = this.#cfg.recoverBaseMs;
      this.#log.info({ adapter: this.#where() }, 'BLE adapter ready');
      this.#setState({ status: 'ready' });
      this.#scheduleScan(0);
      this.#startWatchdog(generation);
      return;
    }
    // noble says poweredOff while its UART waits for the answer to HCI Reset: only the ready timeout
    // decides that an adapter that never came up is unavailable.
    if (s === 'unknown' || s === 'resetting' || (s === 'poweredOff' && this.#state.status !== 'ready')) return;
    const why: Record<string, string> = {
      poweredOff: 'the adapter is powered off or was unplugged',
      unsupported: 'the adapter is missing or does not support Bluetooth LE',
      unauthorized:
        'no permission to use the adapter (CAP_NET_ADMIN/CAP_NET_RAW for an HCI socket, the dialout group for a UART)',
    };
    this.#unavailable(generation, `${this.#where()}: ${why[s] ?? `adapter state ${s}`}`);
  }

  /** The adapter went away or never came: report it, drop everything, re-open with backoff. */
  #unavailable(generation: number, reason: string): void {
    if (generation !== this.#generation || this.#state.status === 'stopped') return;
    this.#generation++;
    this.#clearTimers();
    const wasUsable = this.#state.status === 'ready';
    if (!(this.#state.status === 'unavailable' && this.#state.reason === reason)) {
      this.#log.warn({ adapter: this.#where(), retryInMs: this.#backoffMs }, `BLE adapter unavailable: ${reason}`);
      this.#setState({ status: 'unavailable', reason });
    }
    this.#dropAll(unavailableError(reason), 'adapter-unavailable');
    const old = this.#noble;
    this.#noble = undefined;
    // Later, not now: noble's serial layer is still inside its close handler and would undo a stop made from here.
    setTimeout(() => this.#dispose(old), 0);
    if (wasUsable) this.#counters.adapterRecoveries++;
    const wait = this.#backoffMs;
    this.#backoffMs = Math.min(this.#cfg.recoverMaxMs, this.#backoffMs * 2);
    this.#recoverTimer = this.#clock.setTimeout(() => {
      this.#recoverTimer = undefined;
      void this.#open();
    }, wait);
  }

  #dispose(noble: Noble | undefined): void {
    if (!noble) return;
    noble.removeAllListeners('stateChange');
    noble.removeAllListeners('discover');
    noble.removeAllListeners('scanStop');
    try {
      noble.stop();
    } catch (e) {
      this.#log.debug({ err: describeError(e) }, 'noble stop failed');
    }
  }

  #clearTimers(): void {
    for (const t of [this.#readyTimer, this.#recoverTimer, this.#scanTimer, this.#probeTimer, this.#probeDeadline]) {
      this.#clock.clearTimeout(t);
    }
    this.#readyTimer = this.#recoverTimer = this.#scanTimer = this.#probeTimer = this.#probeDeadline = undefined;
    this.#probeOff?.();
    this.#probeOff = undefined;
  }

  // ── liveness ─────────────────────────────────────────────────────────────────────────────────

  /**
   * The watchdog: one HCI Read Local Version at a time, the next one livenessIntervalMs after the
   * answer. Read Local Version changes nothing in the controller, and noble (once powered on) only
   * re-emits its answer. No answer within livenessTimeoutMs means the adapter is gone or hung,
   * whatever the serial layer says: the existing recovery (drop links, re-open with backoff) follows.
   */
  #startWatchdog(generation: number): void {
    const noble = this.#noble;
    const hci = noble ? hciOf(noble) : undefined;
    if (!hci) {
      this.#log.warn(
        { adapter: this.#where() },
        "BLE liveness watchdog off: this noble has no HCI layer the driver knows (noble's internals changed?); a hung adapter will not be detected — check the noble version against docs/ble.md",
      );
      return;
    }
    this.#probeOff?.();
    this.#clock.clearTimeout(this.#probeDeadline);
    this.#probeDeadline = undefined;
    const onAnswer = () => {
      if (generation !== this.#generation || !this.#probeDeadline) return;
      this.#clock.clearTimeout(this.#probeDeadline);
      this.#probeDeadline = undefined;
      this.#scheduleProbe(generation, hci, this.#cfg.livenessIntervalMs);
    };
    hci.on('readLocalVersion', onAnswer);
    this.#probeOff = () => hci.removeListener('readLocalVersion', onAnswer);
    this.#scheduleProbe(generation, hci, this.#cfg.livenessIntervalMs);
  }

  #scheduleProbe(generation: number, hci: HciLayer, delayMs: number): void {
    this.#clock.clearTimeout(this.#probeTimer);
    this.#probeTimer = this.#clock.setTimeout(() => {
      this.#probeTimer = undefined;
      if (generation !== this.#generation || this.#state.status !== 'ready') return;
      this.#counters.livenessProbes++;
      const timeoutMs = this.#cfg.livenessTimeoutMs;
      this.#probeDeadline = this.#clock.setTimeout(() => {
        this.#probeDeadline = undefined;
        if (generation !== this.#generation) return;
        this.#counters.livenessFailures++;
        this.#unavailable(
          generation,
          `${this.#where()}: the adapter stopped answering (no answer to an HCI command within ${timeoutMs} ms)`,
        );
      }, timeoutMs);
      try {
        hci.readLocalVersion();
      } catch (e) {
        // A write that throws is no answer either: the deadline decides.
        this.#log.debug({ err: describeError(e) }, 'BLE liveness question not sent');
      }
    }, delayMs);
  }

  /** Scanning runs whenever the adapter is ready; noble stops it to connect, so it is restarted. */
  #scheduleScan(delayMs = this.#cfg.scanRestartMs): void {
    if (this.#scanTimer || this.#state.status !== 'ready') return;
    const generation = this.#generation;
    this.#scanTimer = this.#clock.setTimeout(() => {
      this.#scanTimer = undefined;
      const noble = this.#noble;
      if (generation !== this.#generation || !noble || this.#state.status !== 'ready') return;
      noble.startScanningAsync([LOCK_SERVICE_UUID], true).catch((e: unknown) => {
        this.#log.debug({ err: describeError(e) }, 'BLE scan start failed');
      });
    }, delayMs);
  }

  #onDiscover(p: Peripheral): void {
    const data = decodeManufacturerData(p.advertisement?.manufacturerData);
    if (typeof data === 'string') {
      this.#counters.malformedAdvertisements++;
      return;
    }
    const address = String(p.address).toLowerCase();
    if (!MAC.test(address)) {
      this.#counters.malformedAdvertisements++;
      return;
    }
    this.#counters.advertisements++;
    const rssi = validRssi(p.rssi);
    this.#heard.set(address, rssi);
    const advertisement: Advertisement = {
      deviceId: data.deviceId,
      attachMode: data.attachMode,
      address,
      ...(rssi === undefined ? {} : { rssi }),
      seenAt: this.#clock.now(),
    };
    this.#adListeners.emit(advertisement);
  }

  #setState(state: BearerState): void {
    this.#state = state;
    this.#stateListeners.emit(state);
  }
}

/**
 * The part of noble's HCI layer (`noble._bindings._hci`, noble 2.8 hci-socket bindings) the
 * watchdog uses. Not public API: looked up and checked at run time, absent → watchdog off with a warning.
 */
interface HciLayer {
  readLocalVersion(): void;
  on(event: 'readLocalVersion', listener: () => void): unknown;
  removeListener(event: 'readLocalVersion', listener: () => void): unknown;
}

function hciOf(noble: Noble): HciLayer | undefined {
  const hci = (noble as unknown as { _bindings?: { _hci?: Partial<HciLayer> | null } })._bindings?._hci;
  if (
    hci &&
    typeof hci.readLocalVersion === 'function' &&
    typeof hci.on === 'function' &&
    typeof hci.removeListener === 'function'
  ) {
    return hci as HciLayer;
  }
  return undefined;
}

/** HCI reports 127 when it does not know the signal strength. */
function validRssi(rssi: unknown): number | undefined {
  return typeof rssi === 'number' && Number.isFinite(rssi) && rssi >= -127 && rssi < 127 ? rssi : undefined;
}

/** HCI disconnection reasons as the port names them. */
function closeReason(reason: number | string): CloseReason {
  if (reason === 0x13 || reason === 0x15 || reason === 0x14) return 'remote';
  if (reason === 0x16) return 'local';
  if (reason === 0x03 || reason === 'cleanup') return 'adapter-unavailable';
  return 'lost';
}

function withTimeout<T>(work: Promise<T>, ms: number, clock: Clock): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = clock.setTimeout(() => resolve(undefined), ms);
    void work.then((v) => {
      clock.clearTimeout(timer);
      resolve(v);
    });
  });
}

function stoppedError(): BearerError {
  return { code: 'stopped', message: 'the BLE bearer is not started; start() it first' };
}

function unavailableError(reason: string): BearerError {
  return { code: 'adapter-unavailable', message: `the BLE adapter is unavailable: ${reason}`, reason };
}

function timeoutError(address: string, timeoutMs: number): BearerError {
  return {
    code: 'timeout',
    message: `${address} was heard but did not connect within ${timeoutMs} ms; check that the lock is powered and in range`,
    address,
    timeoutMs,
  };
}

function notFoundError(address: string, timeoutMs: number): BearerError {
  return {
    code: 'not-found',
    message: `nothing answering to ${address} was heard or connected within ${timeoutMs} ms; check the address and that the lock is powered`,
    address,
  };
}
