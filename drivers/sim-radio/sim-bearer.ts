import type {
  Advertisement,
  Bearer,
  BearerError,
  BearerLink,
  BearerState,
  ConnectOptions,
  LinkQuality,
  Unsubscribe,
} from '../../hal/bearer.js';
import type { TimerHandle } from '../../src/base/clock.js';
import { Listeners } from '../../src/base/listeners.js';
import { err, ok, type Result } from '../../src/base/result.js';
import { type CloseReasons, Connection, type Medium } from './link.js';

/** What a simulated peripheral advertises; the radio adds its address, rssi and the time it was heard. */
export type AdvertisementData = Pick<Advertisement, 'deviceId' | 'attachMode'>;

/** A peripheral as a bearer can reach it. */
export interface Reachable {
  readonly address: string;
  /** False while out of range: known to the radio, but it answers nothing. */
  readonly inRange: boolean;
  readonly rssi: number;
  advertisement(): AdvertisementData | undefined;
  onConnect(link: BearerLink): void;
}

/** What a SimBearer needs from the radio it sits on. */
export interface Air {
  readonly medium: Medium;
  readonly advertiseIntervalMs: number;
  readonly maxFrameSize: number;
  /** Every registered peripheral, in registration order (what a scan walks through). */
  peripherals(): Iterable<Reachable>;
  lookup(address: string): Reachable | undefined;
  /** Lets the radio drop the connection later (forced disconnect, peripheral out of range). */
  track(connection: Connection): void;
}

export interface SimBearerOptions {
  /** This adapter's address, as peripherals see it. */
  readonly address: string;
  /** Concurrent links and connection attempts the adapter allows, as a BLE controller limits them. */
  readonly maxLinks?: number;
}

interface Attempt {
  readonly address: string;
  fail(error: BearerError): void;
}

/**
 * The hub's adapter on a SimRadio: the Bearer port over the in-memory medium. Obtained from
 * SimRadio.bearer(); several may share one radio (two hubs near the same lock).
 */
export class SimBearer implements Bearer {
  readonly kind = 'sim' as const;
  readonly address: string;
  readonly #air: Air;
  readonly #maxLinks: number;
  #state: BearerState = { status: 'stopped' };
  /** Set while the simulated adapter is unplugged: the reason it reports. */
  #unplugged: string | undefined;
  readonly #links = new Set<Connection>();
  readonly #attempts = new Set<Attempt>();
  readonly #stateListeners = new Listeners<BearerState>();
  readonly #adListeners = new Listeners<Advertisement>();
  #scanTimer: TimerHandle | undefined;

  constructor(air: Air, options: SimBearerOptions) {
    this.#air = air;
    this.address = options.address;
    this.#maxLinks = options.maxLinks ?? Number.POSITIVE_INFINITY;
  }

  async start(): Promise<void> {
    if (this.#state.status !== 'stopped') return;
    this.#setState({ status: 'starting' });
    this.#setState(
      this.#unplugged === undefined ? { status: 'ready' } : { status: 'unavailable', reason: this.#unplugged },
    );
    this.#armScan();
  }

  async stop(): Promise<void> {
    if (this.#state.status === 'stopped') return;
    this.#disarmScan();
    this.#setState({ status: 'stopped' });
    this.#dropAll(stoppedError(), { central: 'stopped', peripheral: 'remote' });
  }

  state(): BearerState {
    return this.#state;
  }

  onStateChange(listener: (state: BearerState) => void): Unsubscribe {
    return this.#stateListeners.add(listener);
  }

  onAdvertisement(listener: (advertisement: Advertisement) => void): Unsubscribe {
    const unsubscribe = this.#adListeners.add(listener);
    this.#armScan();
    return unsubscribe;
  }

  connect(address: string, options: ConnectOptions): Promise<Result<BearerLink, BearerError>> {
    const refusal = this.#refusal(address);
    if (refusal) return Promise.resolve(err(refusal));
    const { clock } = this.#air.medium;
    return new Promise((resolve) => {
      let established: TimerHandle | undefined;
      const finish = (result: Result<BearerLink, BearerError>) => {
        if (!this.#attempts.delete(attempt)) return;
        clock.clearTimeout(deadline);
        clock.clearTimeout(established);
        resolve(result);
      };
      const attempt: Attempt = { address, fail: (error) => finish(err(error)) };
      this.#attempts.add(attempt);
      const deadline = clock.setTimeout(() => {
        const known = this.#air.lookup(address) !== undefined;
        finish(err(known ? timeoutError(address, options.timeoutMs) : notFoundError(address, options.timeoutMs)));
      }, options.timeoutMs);
      if (this.#air.lookup(address)?.inRange) {
        // A connection takes a round trip; one that cannot complete is left to the deadline.
        established = clock.setTimeout(() => {
          const peer = this.#air.lookup(address);
          if (peer?.inRange) finish(ok(this.#establish(peer)));
        }, 2 * this.#air.medium.faults().latencyMs);
      }
    });
  }

  /** Simulates the adapter going away: links drop, connects fail, no advertisements, until plug(). */
  unplug(reason = 'the simulated adapter was unplugged'): void {
    this.#unplugged = reason;
    if (this.#state.status === 'stopped') return;
    this.#disarmScan();
    this.#setState({ status: 'unavailable', reason });
    this.#dropAll(unavailableError(reason), { central: 'adapter-unavailable', peripheral: 'lost' });
  }

  /** The adapter is back: a started bearer is ready again. */
  plug(): void {
    this.#unplugged = undefined;
    if (this.#state.status !== 'unavailable') return;
    this.#setState({ status: 'ready' });
    this.#armScan();
  }

  #refusal(address: string): BearerError | undefined {
    const status = this.#state.status;
    if (status === 'stopped' || status === 'starting') return stoppedError();
    if (this.#state.status === 'unavailable') return unavailableError(this.#state.reason);
    const linked = [...this.#links].some((c) => c.peripheralAddress === address);
    const connecting = [...this.#attempts].some((a) => a.address === address);
    if (linked || connecting) {
      return { code: 'busy', message: `already connected or connecting to ${address}; close that link first`, address };
    }
    if (this.#links.size + this.#attempts.size >= this.#maxLinks) {
      return {
        code: 'busy',
        message: `the adapter's limit of ${this.#maxLinks} connections is reached; close a link or try again later`,
        address,
        limit: this.#maxLinks,
      };
    }
    return undefined;
  }

  #establish(peer: Reachable): BearerLink {
    const quality = (): LinkQuality => ({ rssi: peer.rssi });
    const connection = new Connection(this.#air.medium, {
      centralAddress: this.address,
      peripheralAddress: peer.address,
      maxFrameSize: this.#air.maxFrameSize,
      quality,
    });
    this.#links.add(connection);
    connection.whenClosed(() => this.#links.delete(connection));
    this.#air.track(connection);
    peer.onConnect(connection.peripheral);
    return connection.central;
  }

  #dropAll(error: BearerError, reasons: CloseReasons): void {
    for (const attempt of [...this.#attempts]) attempt.fail(error);
    for (const connection of [...this.#links]) connection.close(reasons);
  }

  #setState(state: BearerState): void {
    this.#state = state;
    this.#stateListeners.emit(state);
  }

  #armScan(): void {
    if (this.#scanTimer || this.#state.status !== 'ready' || this.#adListeners.size === 0) return;
    this.#scanTimer = this.#air.medium.clock.setTimeout(() => {
      this.#scanTimer = undefined;
      this.#scan();
      this.#armScan();
    }, this.#air.advertiseIntervalMs);
  }

  #disarmScan(): void {
    this.#air.medium.clock.clearTimeout(this.#scanTimer);
    this.#scanTimer = undefined;
  }

  #scan(): void {
    const seenAt = this.#air.medium.clock.now();
    for (const peer of this.#air.peripherals()) {
      if (!peer.inRange) continue;
      const data = peer.advertisement();
      if (!data) continue;
      const advertisement: Advertisement = {
        deviceId: data.deviceId,
        attachMode: data.attachMode,
        address: peer.address,
        rssi: peer.rssi,
        seenAt,
      };
      this.#adListeners.emit(advertisement);
    }
  }
}

function stoppedError(): BearerError {
  return { code: 'stopped', message: 'the simulated bearer is not started; start() it first' };
}

function unavailableError(reason: string): BearerError {
  return { code: 'adapter-unavailable', message: `the radio adapter is unavailable: ${reason}`, reason };
}

function timeoutError(address: string, timeoutMs: number): BearerError {
  return {
    code: 'timeout',
    message: `${address} did not answer within ${timeoutMs} ms; check that the lock is powered and in range`,
    address,
    timeoutMs,
  };
}

function notFoundError(address: string, timeoutMs: number): BearerError {
  return {
    code: 'not-found',
    message: `nothing answering to ${address} was heard within ${timeoutMs} ms; check the address and that the lock is powered`,
    address,
  };
}
