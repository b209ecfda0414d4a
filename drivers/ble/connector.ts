import type { Characteristic, Noble, Peripheral } from '@stoprocent/noble';
import { type BearerError, type BearerLink, disconnectedError } from '../../hal/bearer.js';
import type { Clock } from '../../src/base/clock.js';
import { describeError } from '../../src/base/errors.js';
import { err, ok, type Result } from '../../src/base/result.js';
import type { Adapter } from './adapter.js';
import type { BleCounters } from './bearer.js';
import { notFoundError, timeoutError, unavailableError } from './errors.js';
import { LOCK_FRAMES_UUID, LOCK_SERVICE_UUID } from './gatt-frames.js';
import type { Scanner } from './scanner.js';

/**
 * Connection attempts: a lock is usable only once connected, its frames characteristic found and
 * its notifications on, and all of that must happen within the caller's deadline or be undone, since
 * a half-made connection would linger in the controller. The attempts in progress are kept, so the
 * bearer can count them against its limit and end them when the adapter goes.
 */

/** Turns a connected peripheral, notifications on, into the link the caller gets. */
export type AdoptLink = (address: string, peripheral: Peripheral, characteristic: Characteristic) => BearerLink;

export interface ConnectorOptions {
  readonly adapter: Adapter;
  readonly scanner: Scanner;
  readonly clock: Clock;
  readonly counters: Pick<BleCounters, 'connects' | 'connectFailures'>;
  readonly adopt: AdoptLink;
}

interface Attempt {
  readonly address: string;
  fail(error: BearerError): void;
}

export class Connector {
  readonly #adapter: Adapter;
  readonly #scanner: Scanner;
  readonly #clock: Clock;
  readonly #counters: ConnectorOptions['counters'];
  readonly #adopt: AdoptLink;
  readonly #attempts = new Set<Attempt>();

  constructor(options: ConnectorOptions) {
    this.#adapter = options.adapter;
    this.#scanner = options.scanner;
    this.#clock = options.clock;
    this.#counters = options.counters;
    this.#adopt = options.adopt;
  }

  /** Attempts in progress. */
  get pending(): number {
    return this.#attempts.size;
  }

  isConnecting(address: string): boolean {
    return [...this.#attempts].some((a) => a.address === address);
  }

  failAll(error: BearerError): void {
    for (const attempt of [...this.#attempts]) attempt.fail(error);
  }

  /** Connects `target` (a valid address, admitted by the bearer) through `noble`, the adapter's current instance. */
  connect(noble: Noble, target: string, timeoutMs: number): Promise<Result<BearerLink, BearerError>> {
    const generation = this.#adapter.generation;
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
      this.#scanner.schedule();
      settle(r);
    };
    const attempt: Attempt = { address: target, fail: (e) => finish(err(e)) };
    this.#attempts.add(attempt);
    const deadline = this.#clock.setTimeout(() => {
      finish(err(this.#scanner.heard(target) ? timeoutError(target, timeoutMs) : notFoundError(target, timeoutMs)));
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
        if (done || generation !== this.#adapter.generation) return finish(err(timeoutError(target, timeoutMs)));
        if (peripheral.state !== 'connected') {
          return finish(err(disconnectedError(target, 'lost')));
        }
        const link = this.#adopt(target, peripheral, characteristic);
        this.#counters.connects++;
        finish(ok(link));
      } catch (e) {
        const why = describeError(e);
        const state = this.#adapter.state();
        finish(
          err(
            generation !== this.#adapter.generation
              ? unavailableError(state.status === 'unavailable' ? state.reason : 'the adapter was closed')
              : { code: 'radio-error', message: `connecting to ${target} failed: ${why}`, address: target },
          ),
        );
      }
    })();
    return outcome;
  }
}
