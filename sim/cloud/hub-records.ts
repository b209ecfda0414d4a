import type {
  CloudEvent,
  CmdResultPayload,
  HealthPayload,
  LockStatePayload,
  StatusPayload,
  SyncAckPayload,
} from '../../src/contract/mqtt-hub-messages.js';
import type { Logger } from '../../src/log/logger.js';

/**
 * What the reference cloud knows of each hub, from what the hub published: events (each id once,
 * since QoS 1 delivers at least once), status, lock states, health and answers; and what it could
 * not use (`invalid`). Tests assert on these records, so they are kept as received and only read
 * through the cloud's accessors.
 */

/** A message the cloud received that does not match the contract. */
export interface InvalidMessage {
  topic: string;
  reason: string;
}

/** An answer as received, in arrival order (including error answers with a null id). */
/** A hole in what the cloud holds of one lock's epoch: seqs between two it has, not (yet) received. */
export interface SequenceGap {
  hubId: string;
  lockId: string;
  epoch: number;
  /** The missing seqs, ascending (at most MAX_GAP_LISTED of them). */
  missing: number[];
}

/** A gap lists at most this many missing seqs. */
const MAX_GAP_LISTED = 100;

export interface Answer {
  topic: 'cmd/result' | 'sync/ack';
  payload: CmdResultPayload | SyncAckPayload;
}

interface HubRecord {
  events: CloudEvent[];
  eventIds: Set<string>;
  status: StatusPayload | undefined;
  statusHistory: StatusPayload[];
  locks: Map<string, LockStatePayload>;
  health: HealthPayload[];
  results: Map<string, CmdResultPayload>;
  acks: Map<string, SyncAckPayload>;
  answers: Answer[];
}

export class HubRecords {
  readonly #log: Logger | undefined;
  readonly #hubs = new Map<string, HubRecord>();
  readonly #invalid: InvalidMessage[] = [];
  #duplicates = 0;
  #repeatedAnswers = 0;
  #received = 0;

  constructor(log: Logger | undefined) {
    this.#log = log;
  }

  // ── recording ──────────────────────────────────────────────────────────────────────────────────

  countReceived(): void {
    this.#received++;
  }

  /** Starts a hub's record on its first message of the contract, readable or not (it shows in `hubs()`). */
  open(hubId: string): void {
    this.#hub(hubId);
  }

  refuse(topic: string, reason: string): void {
    this.#invalid.push({ topic, reason });
    this.#log?.warn({ topic, reason }, 'reference cloud: message does not match the contract');
  }

  /** An empty retained payload clears a retained topic (a forgotten lock, a decommissioned hub). */
  clearRetained(hubId: string, lockId: string | undefined): void {
    const hub = this.#hub(hubId);
    if (lockId === undefined) hub.status = undefined;
    else hub.locks.delete(lockId);
  }

  recordStatus(hubId: string, s: StatusPayload, retained: boolean): void {
    const hub = this.#hub(hubId);
    hub.status = s;
    if (!retained || hub.statusHistory.length === 0) hub.statusHistory.push(s);
  }

  recordEvents(hubId: string, events: readonly CloudEvent[]): void {
    const hub = this.#hub(hubId);
    for (const e of events) {
      if (hub.eventIds.has(e.id)) {
        this.#duplicates++;
        continue;
      }
      hub.eventIds.add(e.id);
      hub.events.push(e);
    }
  }

  recordLockState(hubId: string, s: LockStatePayload): void {
    this.#hub(hubId).locks.set(s.lockId, s);
  }

  recordHealth(hubId: string, h: HealthPayload): void {
    this.#hub(hubId).health.push(h);
  }

  /** Every answer goes in arrival order; by id only the first (a repeat is counted). */
  recordAnswer(hubId: string, topic: Answer['topic'], a: CmdResultPayload | SyncAckPayload): void {
    const hub = this.#hub(hubId);
    hub.answers.push({ topic, payload: a });
    if (a.id === null) return;
    const byId: Map<string, CmdResultPayload | SyncAckPayload> = topic === 'cmd/result' ? hub.results : hub.acks;
    if (byId.has(a.id)) this.#repeatedAnswers++;
    else byId.set(a.id, a);
  }

  // ── reading ────────────────────────────────────────────────────────────────────────────────────

  hubs(): string[] {
    return [...this.#hubs.keys()];
  }

  events(hubId: string): readonly CloudEvent[] {
    return this.#hubs.get(hubId)?.events ?? [];
  }

  get duplicates(): number {
    return this.#duplicates;
  }

  sequenceGaps(hubId?: string): SequenceGap[] {
    const out: SequenceGap[] = [];
    for (const [id, hub] of this.#hubs) {
      if (hubId !== undefined && id !== hubId) continue;
      const seqs = new Map<string, { lockId: string; epoch: number; seqs: Set<number> }>();
      for (const e of hub.events) {
        const key = `${e.lockId}\n${e.epoch}`;
        let s = seqs.get(key);
        if (!s) {
          s = { lockId: e.lockId, epoch: e.epoch, seqs: new Set() };
          seqs.set(key, s);
        }
        s.seqs.add(e.seq);
      }
      for (const s of seqs.values()) {
        const sorted = [...s.seqs].sort((a, b) => a - b);
        const missing: number[] = [];
        for (let i = 1; i < sorted.length; i++) {
          const to = sorted[i] as number;
          for (let n = (sorted[i - 1] as number) + 1; n < to && missing.length < MAX_GAP_LISTED; n++) missing.push(n);
        }
        if (missing.length > 0) out.push({ hubId: id, lockId: s.lockId, epoch: s.epoch, missing });
      }
    }
    return out;
  }

  orderViolations(hubId?: string): CloudEvent[] {
    const out: CloudEvent[] = [];
    for (const [id, hub] of this.#hubs) {
      if (hubId !== undefined && id !== hubId) continue;
      const highest = new Map<string, number>();
      for (const e of hub.events) {
        const key = `${e.lockId}\n${e.epoch}`;
        const before = highest.get(key);
        if (before !== undefined && e.seq <= before) out.push(e);
        else highest.set(key, e.seq);
      }
    }
    return out;
  }

  status(hubId: string): StatusPayload | undefined {
    return this.#hubs.get(hubId)?.status;
  }

  statusHistory(hubId: string): readonly StatusPayload[] {
    return this.#hubs.get(hubId)?.statusHistory ?? [];
  }

  lockStates(hubId: string): ReadonlyMap<string, LockStatePayload> {
    return this.#hubs.get(hubId)?.locks ?? new Map();
  }

  health(hubId: string): readonly HealthPayload[] {
    return this.#hubs.get(hubId)?.health ?? [];
  }

  results(hubId: string): ReadonlyMap<string, CmdResultPayload> {
    return this.#hubs.get(hubId)?.results ?? new Map();
  }

  syncAcks(hubId: string): ReadonlyMap<string, SyncAckPayload> {
    return this.#hubs.get(hubId)?.acks ?? new Map();
  }

  answers(hubId: string): readonly Answer[] {
    return this.#hubs.get(hubId)?.answers ?? [];
  }

  get repeatedAnswers(): number {
    return this.#repeatedAnswers;
  }

  get invalidMessages(): readonly InvalidMessage[] {
    return this.#invalid;
  }

  get received(): number {
    return this.#received;
  }

  #hub(hubId: string): HubRecord {
    let h = this.#hubs.get(hubId);
    if (!h) {
      h = {
        events: [],
        eventIds: new Set(),
        status: undefined,
        statusHistory: [],
        locks: new Map(),
        health: [],
        results: new Map(),
        acks: new Map(),
        answers: [],
      };
      this.#hubs.set(hubId, h);
    }
    return h;
  }
}
