import type { Clock, TimerHandle } from '../base/clock.js';
import { maxInboundBytes } from '../contract/mqtt.js';
import {
  isSyncPart,
  type SyncMessage,
  type SyncPartPayload,
  type SyncPayload,
} from '../contract/mqtt-cloud-messages.js';
import type { SyncAckPayload } from '../contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION } from '../contract/mqtt-topics.js';
import { checkUtf8, parseInbound, salvageId } from '../contract/mqtt-validate.js';
import { failure, idReused, storedAnswer } from '../inbox/answers.js';
import type { Inbox } from '../inbox/inbox.js';
import type { Logger } from '../log/logger.js';
import type { PartSet, SyncParts } from './sync-parts.js';

/** The access mirror: applies a snapshot or delta and returns its version after. */
export interface SyncTarget {
  apply(p: SyncPayload): Promise<{ version: number }>;
}

export interface CloudSyncDeps {
  inbox: Inbox;
  log: Logger;
  /** Without it a sync is answered `sync.unavailable`. */
  target?: SyncTarget;
  /** Where the parts of a sync sent in parts wait for the rest; without it a part is answered `sync.unavailable`. */
  parts?: SyncParts;
  /** For the expiry of an incomplete set of parts. */
  clock?: Pick<Clock, 'setTimeout' | 'clearTimeout' | 'now'>;
  /**
   * A delta did not fit the mirror (`sync.base-mismatch`: a sync was lost on the way): told after
   * the refusal is answered, so the hub can ask for a sync itself (`sync/request`, reason `gap`).
   */
  onGap?: (syncId: string) => void;
}

/**
 * The cloud's syncs on their way into the access mirror: checked against the contract, recorded
 * by id in the inbox before they are applied (a redelivery gets the stored answer; one
 * interrupted by a stop is answered `sync.interrupted`, never applied twice), applied one at a
 * time in arrival order, and acknowledged on `sync/ack` with the mirror's version.
 */
export class CloudSync {
  readonly #inbox: Inbox;
  readonly #log: Logger;
  readonly #target: SyncTarget | undefined;
  readonly #parts: SyncParts | undefined;
  readonly #clock: CloudSyncDeps['clock'];
  readonly #onGap: CloudSyncDeps['onGap'];
  #expiry: TimerHandle | undefined;
  #closed = false;

  constructor(deps: CloudSyncDeps) {
    this.#inbox = deps.inbox;
    this.#log = deps.log;
    this.#target = deps.target;
    this.#parts = deps.parts;
    this.#clock = deps.clock;
    this.#onGap = deps.onGap;
  }

  /** Stop the expiry timer (a stop); the parts held stay in the store for the next start. */
  close(): void {
    this.#closed = true;
    this.#clock?.clearTimeout(this.#expiry);
    this.#expiry = undefined;
  }

  /** Handle one sync; resolves once it is answered. `recorded`: see RemoteCommands.handle. */
  async handle(payload: Buffer, recorded: () => void = () => {}): Promise<void> {
    const topic = 'sync';
    const inbox = this.#inbox;
    const parsed = checkUtf8(payload, maxInboundBytes(topic)) ?? parseInbound(topic, payload);
    if (!parsed.ok) {
      inbox.refuse(topic, salvageId(payload, 'id', maxInboundBytes(topic)), parsed.error);
      return;
    }
    const msg = parsed.value;
    const id = msg.id;

    const running = inbox.running(id);
    if (running) {
      if (running.topic !== topic) {
        inbox.refuse(topic, id, idReused(id, running.topic));
        return;
      }
      this.#log.debug({ topic, id }, 'inbound message redelivered while in progress');
      recorded();
      await inbox.resendWhenDone(topic, id, running);
      return;
    }

    const row = inbox.row(id);
    if (row) {
      if (row.topic !== topic) {
        inbox.refuse(topic, id, idReused(id, row.topic));
        return;
      }
      const stored = row.state === 'done' ? storedAnswer(row.result) : undefined;
      if (stored) {
        this.#log.info({ topic, id }, 'inbound message redelivered: sending the stored answer again');
        inbox.resend(topic, stored);
        return;
      }
      // Started and never finished: the hub stopped while acting.
      recorded();
      await inbox.track(topic, id, undefined, this.#settleInterrupted(id));
      return;
    }

    try {
      inbox.claim({ id, topic, counter: null, op: null, lockId: null });
    } catch (e) {
      this.#log.error({ err: e, topic, id }, 'inbound message could not be recorded; not acting on it');
      inbox.publishNow(
        'sync/ack',
        failure(
          id,
          'store.unavailable',
          `the hub could not record ${topic} ${id} and did not carry it out; retry later`,
        ),
      );
      return;
    }
    recorded();
    await inbox.track(topic, id, undefined, this.#act(msg));
  }

  /**
   * Once at start-up: every sync left 'started' by a stop is answered `sync.interrupted` (and
   * kept, so a redelivery gets the same). Resolves with the number answered.
   */
  async recover(): Promise<number> {
    let rows: { id: string }[];
    try {
      rows = this.#inbox.interrupted('sync');
    } catch (e) {
      this.#log.error({ err: e }, 'interrupted syncs could not be read from the inbox');
      return 0;
    }
    await Promise.all(rows.map((r) => this.#inbox.track('sync', r.id, undefined, this.#settleInterrupted(r.id))));
    // Parts kept from before the stop: expired now if their time is up, else timed from here.
    await this.#inbox.serial('sync', async () => this.#expireParts());
    return rows.length;
  }

  /**
   * A sync the hub stopped while applying. It was applied in one transaction or not at all, but
   * which one the hub cannot tell from the inbox: it is answered, never applied again.
   */
  async #settleInterrupted(id: string): Promise<void> {
    this.#log.warn({ topic: 'sync', id }, 'sync interrupted by a stop: answered sync.interrupted, not applied again');
    await this.#inbox.finish(
      'sync',
      id,
      failure(
        id,
        'sync.interrupted',
        `the hub stopped while carrying out sync ${id}; it may or may not have taken effect and is not repeated: check the state and send a new sync with a new id`,
      ),
    );
  }

  async #act(msg: SyncMessage): Promise<void> {
    let answer: SyncAckPayload;
    try {
      answer = isSyncPart(msg) ? await this.#inbox.serial('sync', () => this.#takePart(msg)) : await this.#apply(msg);
    } catch (e) {
      answer = this.#inbox.failed(msg.id, e);
    }
    this.#log.info(
      {
        topic: 'sync',
        id: msg.id,
        kind: msg.kind,
        ok: answer.ok,
        code: answer.error?.code,
        ...(answer.part ? { part: answer.part } : {}),
      },
      'inbound message answered',
    );
    // Recorded, then published: a sync's answer is not waited on at a door, so it keeps the
    // plainer order (after a stop, a sync is never acknowledged ok and then interrupted). A sync
    // the mirror refused changed nothing (one transaction): it leaves no record behind, so a flood
    // of refused syncs cannot fill the inbox, and a redelivery meets the same refusal again.
    await this.#inbox.finish('sync', msg.id, answer, { keep: answer.ok });
    if (answer.error?.code === 'sync.base-mismatch') this.#onGap?.(msg.id);
  }

  /**
   * One part of a sync sent in parts, inside the syncs' serial queue: stored and answered with
   * how many of the set are held, or — the last one — the whole set checked and applied, and
   * answered as a whole sync would be (with `part` naming the set).
   */
  async #takePart(p: SyncPartPayload): Promise<SyncAckPayload> {
    const parts = this.#parts;
    if (!parts) {
      return failure(p.id, 'sync.unavailable', 'this hub does not take syncs in parts; the part was not stored');
    }
    this.#expireParts();
    const outcome = parts.take(p, (set) =>
      this.#reportDropped(set, `sync ${set.sync} was replaced by the newer sync ${p.part.sync} before it was complete`),
    );
    this.#scheduleExpiry();
    const set = p.part.sync;
    switch (outcome.kind) {
      case 'waiting':
        return {
          v: CONTRACT_VERSION,
          id: p.id,
          ok: true,
          part: { sync: set, received: outcome.received, count: outcome.count },
        };
      case 'refused':
        return {
          ...failure(p.id, outcome.code, outcome.message),
          part: { sync: set, received: outcome.received, count: outcome.count },
        };
      case 'complete': {
        const part = { sync: set, received: outcome.count, count: outcome.count };
        try {
          const applied = await this.#applyWhole(outcome.sync);
          return { ...applied, id: p.id, part };
        } catch (e) {
          return { ...this.#inbox.failed(p.id, e), part };
        }
      }
    }
  }

  /** Drop the sets whose time is up, each reported `sync.incomplete` with its drop; time the next. */
  #expireParts(): void {
    const parts = this.#parts;
    if (!parts) return;
    try {
      parts.expire((set) =>
        this.#reportDropped(
          set,
          `sync ${set.sync} was not complete in time: ${set.received} of its ${set.count} parts arrived; nothing was applied and the parts were dropped`,
        ),
      );
    } catch (e) {
      this.#log.error({ err: e }, 'expired sync parts could not be dropped; trying again later');
    }
    this.#scheduleExpiry();
  }

  /** An incomplete set dropped: the cloud hears `sync.incomplete` under the set's id (queued durably). */
  #reportDropped(set: PartSet, message: string): void {
    this.#log.warn({ topic: 'sync', id: set.sync, received: set.received, count: set.count }, message);
    this.#inbox.resend('sync', {
      ...failure(set.sync, 'sync.incomplete', message),
      part: { sync: set.sync, received: set.received, count: set.count },
    });
  }

  #scheduleExpiry(): void {
    const clock = this.#clock;
    const parts = this.#parts;
    if (!clock || !parts || this.#closed) return;
    clock.clearTimeout(this.#expiry);
    this.#expiry = undefined;
    const deadline = parts.nextDeadline();
    if (deadline === undefined) return;
    this.#expiry = clock.setTimeout(
      () => {
        this.#expiry = undefined;
        void this.#inbox.serial('sync', async () => this.#expireParts());
      },
      Math.max(0, deadline - clock.now()) + 1,
    );
  }

  async #apply(p: SyncPayload): Promise<SyncAckPayload> {
    return this.#inbox.serial('sync', () => this.#applyWhole(p));
  }

  /** Apply a whole sync (inside the syncs' serial queue). */
  async #applyWhole(p: SyncPayload): Promise<SyncAckPayload> {
    const target = this.#target;
    if (!target) {
      return failure(
        p.id,
        'sync.unavailable',
        'the access mirror is not available in this version of the hub; the sync was not applied',
      );
    }
    const { version } = await target.apply(p);
    return { v: CONTRACT_VERSION, id: p.id, ok: true, version };
  }
}
