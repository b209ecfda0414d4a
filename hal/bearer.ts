import type { Unsubscribe } from '../src/base/listeners.js';

/** The port's subscriptions return the base's Unsubscribe. */
export type { Unsubscribe };

import type { Result } from '../src/base/result.js';
import type { Secret } from '../src/crypto/secret.js';

/**
 * The Bearer port: how the hub reaches one lock over some radio, whatever the radio. Implemented by
 * drivers/sim-radio (in memory), drivers/ble (one GATT characteristic, write + notify, fragmented to the MTU)
 * and drivers/zigbee (a manufacturer-specific ZCL cluster).
 *
 * What a bearer promises: frames arrive whole (a driver that fragments also reassembles), and every
 * failure is a typed value. What it does not promise: delivery, order, uniqueness, or who sent a
 * frame. Frames may be lost, duplicated or reordered and a link may drop at any moment; anyone in
 * radio range can advertise or send anything. The sealed link above (src/link/) numbers,
 * authenticates and retries, so nothing here is trusted for security.
 */

/**
 * Which radio; lets the pairing store remember how to reach a lock again. `multi`: several radios
 * as one (hal/composite.ts), whose addresses name the radio (`ble/…`, `zigbee/…`).
 */
export type BearerKind = 'sim' | 'ble' | 'zigbee' | 'multi';

/**
 * The adapter's condition. An absent or hung adapter is a state, not an exception: the driver
 * recovers by itself and health reporting shows the reason meanwhile.
 */
export type BearerState =
  | { readonly status: 'stopped' }
  | { readonly status: 'starting' }
  | { readonly status: 'ready' }
  | { readonly status: 'unavailable'; readonly reason: string };

/** A lock heard on the radio: a BLE advertisement, or a ZigBee device announce / report. */
export interface Advertisement {
  /** The factory device id the lock announces: matched against the pairing store and the id given for attach. */
  readonly deviceId: string;
  /** Where to connect(): a BLE address, a ZigBee IEEE address. Meaningful only to the bearer that reported it. */
  readonly address: string;
  /**
   * The lock says it is in attach mode (a physical act on the lock). A hint for finding the lock to
   * attach: the lock enforces attach mode itself, the hub never relies on this flag for security.
   */
  readonly attachMode: boolean;
  /** Signal strength in dBm when the radio reports it, for diagnostics and choosing among duplicates. */
  readonly rssi?: number;
  /** When it was heard, wall-clock ms (Clock.now), for "last seen". */
  readonly seenAt: number;
}

/** Why a link closed, as seen from the end that is told. */
export type CloseReason =
  /** This end called close(). */
  | 'local'
  /** The other end closed deliberately. */
  | 'remote'
  /** The radio lost the peer: out of range, supervision timeout, a peer that vanished. */
  | 'lost'
  /** The bearer was stopped. */
  | 'stopped'
  /** The adapter went away (unplugged, hung); the driver will recover it and the hub reconnects. */
  | 'adapter-unavailable';

/**
 * What can go wrong on a bearer, each with the facts a caller needs to decide (retry, back off,
 * give up) and a message a person can act on.
 */
export type BearerError =
  /** Nothing answering to this address was heard before the deadline. */
  | { readonly code: 'not-found'; readonly message: string; readonly address: string }
  /** The peer is known but the connection did not complete in time. */
  | { readonly code: 'timeout'; readonly message: string; readonly address: string; readonly timeoutMs: number }
  /** The link is closed; a new connect() is needed. */
  | { readonly code: 'disconnected'; readonly message: string; readonly address: string; readonly reason: CloseReason }
  /** The adapter is absent or hung; retry once state() is ready again. */
  | { readonly code: 'adapter-unavailable'; readonly message: string; readonly reason: string }
  /** The frame exceeds the link's maxFrameSize; the link is still open, the frame was not sent. */
  | { readonly code: 'frame-too-large'; readonly message: string; readonly size: number; readonly maxFrameSize: number }
  /**
   * Already connected or connecting to this address, or (with `limit`, the number of links the
   * radio is configured for) all the radio's links are open.
   */
  | { readonly code: 'busy'; readonly message: string; readonly address: string; readonly limit?: number }
  /** The bearer is not started (or is stopping); start() it first. */
  | { readonly code: 'stopped'; readonly message: string }
  /** The radio refused one operation (a GATT error, a ZigBee delivery failure); the link may still be up. */
  | { readonly code: 'radio-error'; readonly message: string; readonly address: string };

export type BearerErrorCode = BearerError['code'];

/**
 * The `disconnected` error of a send on a closed link, one wording for every radio that has no
 * more to say than who and why (the BLE driver, the simulated links, the HCI emulator's lock side).
 */
export function disconnectedError(address: string, reason: CloseReason): BearerError {
  return {
    code: 'disconnected',
    message: `the link to ${address} is closed (${reason}); connect again`,
    address,
    reason,
  };
}

/** Signal quality of a link, as the radio reports it: BLE gives rssi (dBm), ZigBee gives lqi (0..255) and often rssi. */
export interface LinkQuality {
  readonly rssi?: number;
  readonly lqi?: number;
}

export interface ConnectOptions {
  /** How long to look for and connect to the peer: every attempt ends, even against a silent radio. */
  readonly timeoutMs: number;
}

/**
 * Every bearer accepts frames of at least this many bytes, so the link layer can size its handshake
 * and records without asking: one whole link message (2048 bytes, src/contract/link-messages.ts — a phone's
 * digital-key presentation takes ~700) plus the sealed frame's header and tag (25), rounded up.
 * Drivers whose radio carries less (ZigBee ZCL payloads, a small BLE MTU) fragment and reassemble
 * below the port.
 */
export const BEARER_MIN_FRAME_SIZE = 2080;

/** One connection to one peer: the hub's end of it, or (in the simulator) the lock's. */
export interface BearerLink {
  /** The peer's address (for the hub, the lock's), so logs and the pairing store can name the other end. */
  readonly address: string;
  /** The largest frame send() accepts, at least BEARER_MIN_FRAME_SIZE: the link layer sizes its frames to it. */
  readonly maxFrameSize: number;
  /**
   * Hands one frame to the radio. Resolves once the radio took it, not when the peer got it: delivery
   * is the link layer's business. Never rejects; failures are values.
   */
  send(frame: Uint8Array): Promise<Result<void, BearerError>>;
  /**
   * Whole frames from the peer. Frames that arrive before the first listener are kept and given to
   * it, so a peer that speaks first is not lost to a race with the subscription.
   */
  onFrame(listener: (frame: Uint8Array) => void): Unsubscribe;
  /**
   * Called once when the link closes, whichever side or cause. A listener added after the close is
   * still called (soon, with the reason), so no caller can miss it.
   */
  onClose(listener: (reason: CloseReason) => void): Unsubscribe;
  /** Ends the link; the peer is told ('remote'). Idempotent, never rejects. */
  close(): Promise<void>;
  /** Whether send() can still succeed; saves a caller from sending just to find out. */
  isOpen(): boolean;
  /** The latest signal quality, for `iqhub lock <id>` and health. */
  linkQuality(): LinkQuality;
}

/** One radio adapter: discovers locks and opens links to them. */
export interface Bearer {
  /** Which radio, for the pairing store and for logs. */
  readonly kind: BearerKind;
  /** Opens the adapter and starts listening. Resolves even if the adapter is missing: see state(). */
  start(): Promise<void>;
  /** Closes every link (reason 'stopped') and releases the adapter. Idempotent. */
  stop(): Promise<void>;
  /** The current condition, for health and `iqhub status`. */
  state(): BearerState;
  /** Every change of state(), so the hub can reconnect its locks when the adapter comes back. */
  onStateChange(listener: (state: BearerState) => void): Unsubscribe;
  /** Locks heard, repeatedly while they advertise (attach finds locks in attach mode; reconnects find bound ones). */
  onAdvertisement(listener: (advertisement: Advertisement) => void): Unsubscribe;
  /** Connects to the lock at an advertised address, or says why not within timeoutMs. Never rejects. */
  connect(address: string, options: ConnectOptions): Promise<Result<BearerLink, BearerError>>;
  /**
   * Radios that admit new devices to a network (ZigBee permit-join) open admission only for the
   * attach window, for durationMs, and refuse newcomers outside it; others omit it. Never rejects:
   * an adapter that cannot open the window leaves it closed (and says so in its log and state).
   */
  openJoinWindow?(durationMs: number): Promise<void>;
  /** Closes a join window before its time (the attach it was opened for has ended). Never rejects. */
  closeJoinWindow?(): Promise<void>;
  /**
   * Registers a device's install code before its attach (ZigBee: the trust center derives the
   * device's link key from it, so only the device with that code can join). Throws HubError
   * `attach.install-code` (whose message never contains the code) when it is malformed or the
   * adapter refuses it. Radios without install codes omit it.
   */
  addInstallCode?(installCode: Secret): Promise<void>;
}
