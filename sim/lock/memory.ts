import type { Clock } from '../../src/base/clock.js';
import { HubError } from '../../src/base/errors.js';
import type { LockEvent, LockEventBody, LockState } from '../../src/contract/link-messages.js';
import { copyPersisted, factoryState, type LockPersisted, type LockStorage } from './storage.js';

/**
 * The lock's state in RAM over its flash, and the one way it changes: on a copy, saved, then made
 * current, so that a save that throws changes nothing and whatever the lock confirmed survives a
 * crash. It also counts the lock's lives (boots and crashes), so that a timer or a link callback
 * from a previous life can tell that it no longer applies.
 */

const MAX_SEQ = 0xffff_ffff;

export type Mutation = (draft: LockPersisted, emit: (body: LockEventBody) => void) => void;

export interface LockMemoryOptions {
  readonly deviceId: string;
  readonly storage: LockStorage;
  readonly clock: Clock;
  /** Unacknowledged events kept before the oldest is dropped. */
  readonly maxEvents: number;
  /** A new event, once it is saved: the lock pushes it to its hub. */
  onEvent(event: LockEvent): void;
}

export class LockMemory {
  readonly #o: LockMemoryOptions;
  /** The state in RAM, equal to the last save; undefined while the lock is off. */
  #p: LockPersisted | undefined;
  /** Bumped at every boot and crash, so that callbacks from a previous life do nothing. */
  #generation = 0;

  constructor(options: LockMemoryOptions) {
    this.#o = options;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Whether the lock is on, in the life that `generation` names. */
  alive(generation: number): boolean {
    return this.#p !== undefined && generation === this.#generation;
  }

  /** The state in RAM, undefined while off (for checks that must not throw). */
  peek(): LockPersisted | undefined {
    return this.#p;
  }

  /**
   * Power on: the flash (factory state if empty). Fail-secure: a bolt saved as unlocked outside
   * office mode is relocked, since the relock timer did not survive the power cut.
   */
  load(): void {
    let p = this.#o.storage.load() ?? factoryState();
    if (p.bolt === 'unlocked' && p.mode !== 'office') {
      p = { ...p, bolt: 'locked' };
      this.#o.storage.save(p);
    }
    this.#p = p;
    this.#generation++;
  }

  /** Power off: RAM is gone, and so is this life. */
  lose(): void {
    this.#generation++;
    this.#p = undefined;
  }

  running(): LockPersisted {
    if (!this.#p) {
      throw new HubError('sim-lock.off', `simulated lock ${this.#o.deviceId} is not running`, {
        hint: 'boot() it first',
      });
    }
    return this.#p;
  }

  /** Lock time, Unix ms: the clock plus the offset the hub set. */
  now(p: LockPersisted = this.running()): number {
    return Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.floor(this.#o.clock.now()) + p.clockOffsetMs));
  }

  lockState(): LockState {
    const p = this.running();
    return {
      bolt: p.bolt,
      mode: p.mode,
      doorOpen: p.doorOpen,
      batteryPercent: p.batteryPercent,
      lastSeq: p.nextSeq - 1,
      time: this.now(p),
    };
  }

  /**
   * The one way state changes: on a copy, saved, then made current, then new events pushed. If the
   * save throws, nothing changed.
   */
  change(mutate: Mutation): void {
    const draft = copyPersisted(this.running());
    const fresh: LockEvent[] = [];
    mutate(draft, (body) => {
      fresh.push(this.#append(draft, body));
    });
    this.#o.storage.save(draft);
    this.#p = draft;
    for (const event of fresh) this.#o.onEvent(event);
  }

  /** A physical act that logs one event (and may change state with it); returns the event. */
  physical(body: LockEventBody, mutate?: (draft: LockPersisted) => void): LockEvent {
    let event: LockEvent | undefined;
    this.change((d, emit) => {
      mutate?.(d);
      emit(body);
      event = d.events[d.events.length - 1];
    });
    if (!event) throw new HubError('sim-lock.internal', 'simulated lock: the event was not logged');
    return event;
  }

  /** A change the flash refused but the lock keeps anyway, in RAM only (what moved physically, a counter). */
  keepInRam(p: LockPersisted): void {
    this.#p = p;
  }

  #append(draft: LockPersisted, body: LockEventBody): LockEvent {
    if (draft.nextSeq > MAX_SEQ) {
      throw new HubError(
        'sim-lock.seq-exhausted',
        `simulated lock ${this.#o.deviceId}: event sequence numbers exhausted`,
      );
    }
    const event = { seq: draft.nextSeq, at: this.now(draft), ...body } as LockEvent;
    draft.nextSeq++;
    draft.events.push(event);
    while (draft.events.length > this.#o.maxEvents) {
      draft.events.shift();
      draft.droppedEvents++;
    }
    return event;
  }
}
