import type { InboundHandler, InboundTopic, ResultSink } from '../../hal/uplink.js';
import { CloudSync, type SyncTarget } from '../access/cloud-sync.js';
import type { Clock } from '../base/clock.js';
import { type CommandTarget, RemoteCommands } from '../commands/remote-commands.js';
import type { CommandVerifier } from '../commands/verifier.js';
import type { RecentCommand } from '../contract/control-socket.js';
import type { Secret } from '../crypto/secret.js';
import { Inbox } from '../inbox/inbox.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';

export interface InboundDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  target: CommandTarget;
  results: ResultSink;
  verifier: CommandVerifier;
  otpKey: Secret | undefined;
  sync?: SyncTarget;
}

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

  constructor(deps: InboundDeps) {
    this.#log = deps.log;
    this.#inbox = new Inbox({ store: deps.store, clock: deps.clock, log: deps.log, results: deps.results });
    this.#commands = new RemoteCommands({
      inbox: this.#inbox,
      clock: deps.clock,
      log: deps.log,
      target: deps.target,
      verifier: deps.verifier,
      otpKey: deps.otpKey,
    });
    this.#sync = new CloudSync({ inbox: this.#inbox, log: deps.log, ...(deps.sync ? { target: deps.sync } : {}) });
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

  /** Handle one message from the cloud. Resolves once it is answered; never rejects. */
  async handle(topic: InboundTopic, payload: Buffer): Promise<void> {
    try {
      if (topic === 'cmd') await this.#commands.handle(payload);
      else await this.#sync.handle(payload);
    } catch (e) {
      this.#log.error({ err: e, topic }, 'inbound message could not be handled');
    }
  }
}
