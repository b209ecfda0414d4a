import { maxInboundBytes } from '../contract/mqtt.js';
import type { SyncPayload } from '../contract/mqtt-cloud-messages.js';
import type { SyncAckPayload } from '../contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION } from '../contract/mqtt-topics.js';
import { checkUtf8, parseInbound, salvageId } from '../contract/mqtt-validate.js';
import { failure, idReused, storedAnswer } from '../inbox/answers.js';
import type { Inbox } from '../inbox/inbox.js';
import type { Logger } from '../log/logger.js';

/** The access mirror: applies a snapshot or delta and returns its version after. */
export interface SyncTarget {
  apply(p: SyncPayload): Promise<{ version: number }>;
}

export interface CloudSyncDeps {
  inbox: Inbox;
  log: Logger;
  /** Without it a sync is answered `sync.unavailable`. */
  target?: SyncTarget;
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

  constructor(deps: CloudSyncDeps) {
    this.#inbox = deps.inbox;
    this.#log = deps.log;
    this.#target = deps.target;
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

  async #act(msg: SyncPayload): Promise<void> {
    let answer: SyncAckPayload;
    try {
      answer = await this.#apply(msg);
    } catch (e) {
      answer = this.#inbox.failed(msg.id, e);
    }
    this.#log.info(
      { topic: 'sync', id: msg.id, kind: msg.kind, ok: answer.ok, code: answer.error?.code },
      'inbound message answered',
    );
    // Recorded, then published: a sync's answer is not waited on at a door, so it keeps the
    // plainer order (after a stop, a sync is never acknowledged ok and then interrupted). A sync
    // the mirror refused changed nothing (one transaction): it leaves no record behind, so a flood
    // of refused syncs cannot fill the inbox, and a redelivery meets the same refusal again.
    await this.#inbox.finish('sync', msg.id, answer, { keep: answer.ok });
  }

  async #apply(p: SyncPayload): Promise<SyncAckPayload> {
    const target = this.#target;
    if (!target) {
      return failure(
        p.id,
        'sync.unavailable',
        'the access mirror is not available in this version of the hub; the sync was not applied',
      );
    }
    const { version } = await this.#inbox.serial('sync', () => target.apply(p));
    return { v: CONTRACT_VERSION, id: p.id, ok: true, version };
  }
}
