import type { InboundHandler, InboundTopic, ResultSink } from '../../hal/uplink.js';
import { CloudSync, type SyncTarget } from '../access/cloud-sync.js';
import { SyncParts } from '../access/sync-parts.js';
import type { Clock } from '../base/clock.js';
import { type CommandTarget, RemoteCommands } from '../commands/remote-commands.js';
import type { CommandVerifier } from '../commands/verifier.js';
import type { RecentCommand } from '../contract/control-socket.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../contract/mqtt.js';
import type { Secret } from '../crypto/secret.js';
import { Inbox } from '../inbox/inbox.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';

/** How long a sync sent in parts may take to complete, unless configured (`uplink.syncPartsTimeoutSec`). */
const DEFAULT_SYNC_PARTS_TIMEOUT_MS = 600_000;

/**
 * Cloud messages being acted on at once, at most (commands on different locks run side by side).
 * Beyond it the hub takes nothing more in until one finishes: a flood waits at the broker instead
 * of in the hub's memory, and a stop has a bounded amount of work to finish.
 */
export const MAX_IN_FLIGHT = 64;

export interface InboundDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  target: CommandTarget;
  results: ResultSink;
  verifier: CommandVerifier;
  otpKey: Secret | undefined;
  sync?: SyncTarget;
  /** The largest answer the hub publishes (`uplink.maxMessageBytes`). Default DEFAULT_MAX_MESSAGE_BYTES. */
  maxMessageBytes?: number;
  /** How long a sync sent in parts may take to complete (`uplink.syncPartsTimeoutSec`). Default 600,000. */
  syncPartsTimeoutMs?: number;
  /**
   * Publish `sync/request` with the mirror's version (UplinkService.requestSync): for `syncNow`,
   * and by the hub itself when a delta does not fit its mirror (at most once per GAP_REQUEST_MS).
   */
  requestSync?: (requestId: string, reason: 'command' | 'gap') => Promise<{ version: number }>;
}

/** The hub asks for a sync on its own after a delta that did not fit at most this often. */
export const GAP_REQUEST_MS = 10_000;

/**
 * Where the uplink hands the cloud's messages: `cmd` to the remote commands, `sync` to the access
 * mirror's sync, both recorded in one inbox (an id is unique across the two). The uplink adapter
 * sees only the InboundHandler port; this is the one place that knows which service takes which
 * topic.
 */
export class Inbound implements InboundHandler {
  readonly #log: Logger;
  readonly #inbox: Inbox;
  readonly #commands: RemoteCommands;
  readonly #sync: CloudSync;
  readonly #verifier: CommandVerifier;
  /** Messages taken in and not yet answered; those waiting for a slot, in arrival order. */
  #active = 0;
  readonly #waiting: ((admitted: boolean) => void)[] = [];
  #closed = false;

  constructor(deps: InboundDeps) {
    this.#log = deps.log;
    this.#verifier = deps.verifier;
    const maxMessageBytes = deps.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#inbox = new Inbox({
      store: deps.store,
      clock: deps.clock,
      log: deps.log,
      results: deps.results,
      maxMessageBytes,
    });
    this.#commands = new RemoteCommands({
      inbox: this.#inbox,
      clock: deps.clock,
      log: deps.log,
      target: deps.target,
      verifier: deps.verifier,
      otpKey: deps.otpKey,
      maxMessageBytes,
      ...(deps.requestSync ? { requestSync: deps.requestSync } : {}),
    });
    const requestSync = deps.requestSync;
    let lastGapRequest = Number.NEGATIVE_INFINITY;
    let gaps = 0;
    const onGap = (syncId: string) => {
      const now = deps.clock.monotonic();
      if (!requestSync || now - lastGapRequest < GAP_REQUEST_MS) return;
      lastGapRequest = now;
      const requestId = `gap-${Math.floor(deps.clock.now())}-${++gaps}`;
      deps.log.info(
        { syncId, requestId },
        'a delta did not fit the mirror: asking the cloud for a sync (sync/request)',
      );
      requestSync(requestId, 'gap').catch((e: unknown) =>
        deps.log.warn(
          { err: e, requestId },
          'sync/request after a gap could not be sent; the cloud must send a snapshot',
        ),
      );
    };
    this.#sync = new CloudSync({
      inbox: this.#inbox,
      log: deps.log,
      ...(deps.sync ? { target: deps.sync } : {}),
      parts: new SyncParts({
        store: deps.store,
        clock: deps.clock,
        timeoutMs: deps.syncPartsTimeoutMs ?? DEFAULT_SYNC_PARTS_TIMEOUT_MS,
      }),
      clock: deps.clock,
      onGap,
    });
  }

  /** Use `key` for remote commands from now on: an OTP key the cloud delivered, stored sealed already. */
  replaceOtpKey(key: Secret): void {
    this.#verifier.replaceKey(key);
    this.#commands.replaceKey(key);
  }

  /** Messages being acted on now. */
  get inFlight(): number {
    return this.#inbox.inFlight;
  }

  /** The newest accepted commands, newest first (`iqhub commands`). */
  recent(limit: number): RecentCommand[] {
    return this.#inbox.recentCommands(limit);
  }

  idle(): Promise<void> {
    return this.#inbox.idle();
  }

  /** Answers what the last stop interrupted: commands `unknown_outcome`, syncs `sync.interrupted`. */
  async recover(): Promise<number> {
    const [commands, syncs] = await Promise.all([this.#commands.recover(), this.#sync.recover()]);
    return commands + syncs;
  }

  /**
   * Handle one message from the cloud. Resolves once it is answered; never rejects. With
   * MAX_IN_FLIGHT messages being handled, it waits (in arrival order) until one of them is done
   * before it takes this one in: `recorded` (the PUBACK) waits too, and the broker holds the rest.
   * After close() it takes nothing in: the message is left unacknowledged for the next session.
   */
  async handle(topic: InboundTopic, payload: Buffer, recorded: () => void = () => {}): Promise<void> {
    if (!(await this.#admit())) return;
    // One message per turn of the event loop: mqtt.js hands over a whole chunk of messages at
    // once, and each takes a durable commit; between two of them the hub's other I/O (the control
    // socket, the PUBACKs of its own publishes, a stop) gets its turn. setImmediate keeps them in
    // arrival order.
    await new Promise((resolve) => setImmediate(resolve));
    try {
      if (topic === 'cmd') await this.#commands.handle(payload, recorded);
      else await this.#sync.handle(payload, recorded);
    } catch (e) {
      this.#log.error({ err: e, topic }, 'inbound message could not be handled');
    } finally {
      this.#release();
      recorded();
    }
  }

  /** Take nothing more in (a stop): what waits to be taken in is dropped, unacknowledged. */
  close(): void {
    this.#closed = true;
    this.#sync.close();
    for (const admit of this.#waiting.splice(0)) admit(false);
  }

  /** A slot among MAX_IN_FLIGHT, taken at once when one is free (no await: arrival order holds). */
  #admit(): boolean | Promise<boolean> {
    if (this.#closed) return false;
    if (this.#active < MAX_IN_FLIGHT) {
      this.#active++;
      return true;
    }
    return new Promise<boolean>((admit) => this.#waiting.push(admit));
  }

  /** A slot freed: the longest-waiting message takes it over, else it is free. */
  #release(): void {
    const next = this.#waiting.shift();
    if (next) next(true);
    else this.#active--;
  }
}
