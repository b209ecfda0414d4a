import type { Bearer } from '../../hal/bearer.js';
import type { Clock } from '../base/clock.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import type { Sealer } from '../crypto/seal.js';
import type { Logger } from '../log/logger.js';
import type { ClientOptions } from './lock-client.js';
import type { LinkOptions } from './manager.js';
import type { KeyPair } from './noise.js';
import type { LockRecord, PairingStore } from './pairing.js';
import type { HandshakeTiming } from './session.js';

/**
 * What every part of the link manager shares: the pairing store, the radio, time, randomness, the
 * log and the options, with the look-ups they all make the same way. The manager builds one, so a
 * part's constructor names only the other parts it works with.
 */
export class LinkContext {
  readonly pairing: PairingStore;
  readonly bearer: Bearer;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly opts: LinkOptions;
  #identity: KeyPair | undefined;

  constructor(deps: {
    pairing: PairingStore;
    bearer: Bearer;
    clock: Clock;
    random: Random;
    log: Logger;
    opts: LinkOptions;
  }) {
    this.pairing = deps.pairing;
    this.bearer = deps.bearer;
    this.clock = deps.clock;
    this.random = deps.random;
    this.log = deps.log;
    this.opts = deps.opts;
  }

  /** Loads the hub's identity from the pairing store (made on first start). */
  loadIdentity(sealer: Sealer): void {
    this.#identity = this.pairing.hubIdentity(sealer, this.random, this.now());
  }

  /** The hub's static key pair; there is none before the manager has started. */
  hub(): KeyPair {
    if (!this.#identity) throw new HubError('link.not-started', 'the link manager is not started');
    return this.#identity;
  }

  /** Whole milliseconds: the store's time columns are integers (a virtual clock may give fractions). */
  now(): number {
    return Math.floor(this.clock.now());
  }

  record(lockId: string): LockRecord {
    const r = this.pairing.get(lockId);
    if (!r) {
      throw new HubError('lock.unknown', `no lock ${lockId} is attached to this hub`, { hint: 'see iqhub locks' });
    }
    return r;
  }

  timing(): HandshakeTiming {
    return {
      clock: this.clock,
      random: this.random,
      stepTimeoutMs: this.opts.stepTimeoutMs,
      attempts: this.opts.attempts,
    };
  }

  clientOptions(): ClientOptions {
    return {
      clock: this.clock,
      retryMs: this.opts.retryMs,
      attempts: this.opts.requestAttempts,
      ackDelayMs: this.opts.ackDelayMs,
    };
  }
}
