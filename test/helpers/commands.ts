import { Writable } from 'node:stream';
import { afterEach } from 'vitest';
import type { AheadTicket, ResultSink, ResultTopic } from '../../hal/uplink.js';
import type { SyncTarget } from '../../src/access/cloud-sync.js';
import { Inbound } from '../../src/app/inbound.js';
import { VirtualClock } from '../../src/base/clock.js';
import { HubError } from '../../src/base/errors.js';
import { SeededRandom } from '../../src/base/random.js';
import { type CommandEnvelope, sealSetupCode, signCommand, type UnsignedCommand } from '../../src/commands/otp.js';
import type { CommandTarget } from '../../src/commands/remote-commands.js';
import { CommandVerifier, type VerifierConfig } from '../../src/commands/verifier.js';
import type { LockMode, LockState } from '../../src/contract/link-messages.js';
import type { CommandOp } from '../../src/contract/mqtt-cloud-messages.js';
import { Secret } from '../../src/crypto/secret.js';
import type { LockSummary } from '../../src/link/manager.js';
import { createLogger, type Logger, silentLogger } from '../../src/log/logger.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from './tmp.js';

/** Shared by the command tests: a hub with an OTP key, a fake lock side and a signing cloud. */
export const HUB = 'hub-0001';
export const KEY_HEX = '5f0c2d8e91a4b7c3d6e9f2a5b8c1d4e7a0b3c6d9e2f5a8b1c4d7e0f3a6b9c2d5';
export const KEY = new Secret(Buffer.from(KEY_HEX, 'hex'));
export const OTHER_KEY = new Secret(Buffer.alloc(32, 7));

export const STATE: LockState = {
  bolt: 'locked',
  mode: 'normal',
  doorOpen: false,
  batteryPercent: 87,
  lastSeq: 4,
  time: 0,
};

/** STATE as `cmd/result` carries it: the lock's clock in ISO 8601. */
export const WIRE_STATE = { ...STATE, time: new Date(STATE.time).toISOString() };

export const DEFAULT_COMMANDS: VerifierConfig = {
  lockoutFailures: 5,
  lockoutWindowSec: 60,
  lockoutSec: 60,
  maxSkewSec: 30,
  counterWindow: 1000,
};

export const summary = (lockId: string): LockSummary => ({
  lockId,
  bearer: 'sim',
  address: `sim:${lockId}`,
  state: 'bound',
  quarantineReason: null,
  connected: true,
  lastSeen: null,
  lastEventSeq: 4,
  sessions: 1,
  failedHandshakes: 0,
  rejectedFrames: 0,
  keyFingerprint: 'ab:cd',
});

export interface Deferred {
  resolve(): void;
  promise: Promise<void>;
}
export const deferred = (): Deferred => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { resolve, promise };
};

/**
 * A LinkManager stand-in: records every call (a radio would have been touched); `known` is the
 * pairing store; 'GONE' is unreachable; a gate holds a lock's requests.
 */
export class FakeTarget implements CommandTarget {
  readonly calls: string[] = [];
  readonly known = new Set(['L1', 'L2', 'GONE']);
  readonly gates = new Map<string, Deferred>();
  readonly running = new Set<string>();
  /** The setup codes attach was given, as text (to check the sealed code was opened). */
  readonly setupCodes: string[] = [];
  maxParallel = 0;
  failWith: unknown;
  stateFails = false;

  list(): LockSummary[] {
    this.calls.push('list');
    return [summary('L1'), summary('L2')];
  }
  lockState(lockId: string): Promise<LockState> {
    if (this.stateFails) return this.#op(`getState ${lockId}`, 'GONE', STATE);
    return this.#op(`getState ${lockId}`, lockId, STATE);
  }
  open(lockId: string, durationMs: number): Promise<LockState> {
    return this.#op(`open ${lockId} ${durationMs}`, lockId, { ...STATE, bolt: 'unlocked' });
  }
  lockNow(lockId: string): Promise<LockState> {
    return this.#op(`lock ${lockId}`, lockId, STATE);
  }
  setMode(lockId: string, mode: LockMode): Promise<LockState> {
    return this.#op(`setMode ${lockId} ${mode}`, lockId, { ...STATE, mode });
  }
  async attach(deviceId: string, setupCode: Secret): Promise<LockSummary> {
    this.setupCodes.push(Buffer.from(setupCode.reveal()).toString('utf8'));
    await this.#op(`attach ${deviceId}`, deviceId, STATE);
    this.known.add(deviceId);
    return summary(deviceId);
  }
  async detach(lockId: string): Promise<{ detached: boolean; state: string }> {
    await this.#op(`detach ${lockId}`, lockId, STATE);
    this.known.delete(lockId);
    return { detached: true, state: 'detached' };
  }
  /** Calls that would have moved a bolt, changed a mode or touched a pairing. */
  get actions(): string[] {
    return this.calls.filter((c) => /^(open|lock|setMode|attach|detach) /.test(c));
  }

  async #op(call: string, lockId: string, state: LockState): Promise<LockState> {
    this.calls.push(call);
    if (this.running.has(lockId)) throw new Error(`two requests at once for ${lockId}`);
    this.running.add(lockId);
    this.maxParallel = Math.max(this.maxParallel, this.running.size);
    try {
      await this.gates.get(lockId)?.promise;
      if (this.failWith !== undefined) throw this.failWith;
      if (lockId === 'GONE') throw new HubError('lock.unreachable', `lock ${lockId} did not answer`, { hint: 'x' });
      return state;
    } finally {
      this.running.delete(lockId);
    }
  }
}

export interface Sent {
  topic: ResultTopic;
  payload: Record<string, unknown>;
  /** Queued with the ticket of its publish ahead. */
  ahead?: AheadTicket;
}

export class FakeSink implements ResultSink {
  readonly enqueued: Sent[] = [];
  readonly published: Sent[] = [];
  /** Answers published ahead of their record (only with `enableAhead`). */
  readonly ahead: Sent[] = [];
  /** Every answer, queued or published, in the order given. */
  readonly all: Sent[] = [];
  failEnqueue = false;
  publishAhead?: ResultSink['publishAhead'];

  /** Accept publishing ahead, as the uplink does when nothing queued waits; `onAhead` runs as each goes. */
  enableAhead(onAhead: (s: Sent) => void = () => {}): void {
    this.publishAhead = (topic, text) => {
      const sent = { topic, payload: JSON.parse(text) as Record<string, unknown> };
      this.ahead.push(sent);
      this.all.push(sent);
      onAhead(sent);
      return { unit: undefined, generation: 0, outcome: 'waiting', adopted: false } as unknown as AheadTicket;
    };
  }

  enqueueMessage(topic: ResultTopic, payload: object, ahead?: AheadTicket): void {
    // What better-sqlite3 throws when the disk is full: the outbox's write fails inside the transaction.
    if (this.failEnqueue) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    const sent = { topic, payload: payload as Record<string, unknown>, ...(ahead ? { ahead } : {}) };
    this.enqueued.push(sent);
    if (!ahead) this.all.push(sent);
  }
  publishNow(topic: ResultTopic, payload: object): void {
    const sent = { topic, payload: payload as Record<string, unknown> };
    this.published.push(sent);
    this.all.push(sent);
  }
}

/** A logger at trace level whose lines are kept, to search for secrets. */
export function capturingLogger(): { log: Logger; text: () => string } {
  let out = '';
  const sink = new Writable({
    write(c, _e, done) {
      out += c.toString();
      done();
    },
  });
  return { log: createLogger({ level: 'trace', pretty: false, destination: sink }), text: () => out };
}

export interface CommandSpec {
  op: CommandOp;
  lockId?: string;
  args?: Record<string, unknown>;
}

export interface Overrides {
  cmdId?: string;
  hubId?: string;
  counter?: number;
  issuedAt?: number;
  expiresAt?: number;
  key?: Secret;
  /** Send `args.setupCode` as given instead of sealing it. */
  asIs?: boolean;
}

const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

export interface HarnessOptions {
  config?: Partial<VerifierConfig>;
  /** null: the hub has no OTP key. */
  otpKey?: Secret | null;
  log?: Logger;
  sync?: SyncTarget;
  /** Reuse a data directory (a restart). */
  dir?: string;
  clock?: VirtualClock;
  /** `uplink.maxMessageBytes` (listLocks pages, answers). */
  maxMessageBytes?: number;
  /** `uplink.syncPartsTimeoutSec`, in ms. */
  syncPartsTimeoutMs?: number;
  /** How `syncNow` and a gap publish `sync/request` (UplinkService.requestSync). */
  requestSync?: (requestId: string, reason: 'command' | 'gap') => Promise<{ version: number }>;
}

/** A store, a verifier and an Inbound with fakes around them, and a cloud that signs with KEY. */
export function commandHarness(opts: HarnessOptions = {}) {
  const dir = opts.dir ?? tempDir();
  const store = Store.open(dir);
  stores.push(store);
  const clock = opts.clock ?? new VirtualClock();
  const log = opts.log ?? silentLogger();
  const target = new FakeTarget();
  const sink = new FakeSink();
  const otpKey = opts.otpKey === null ? undefined : (opts.otpKey ?? KEY);
  const verifier = new CommandVerifier({
    hubId: HUB,
    otpKey,
    config: { ...DEFAULT_COMMANDS, ...opts.config },
    store,
    clock,
    log,
    knownLock: (id) => target.known.has(id),
  });
  const inbound = new Inbound({
    store,
    clock,
    log,
    target,
    results: sink,
    verifier,
    otpKey,
    ...(opts.sync ? { sync: opts.sync } : {}),
    ...(opts.maxMessageBytes !== undefined ? { maxMessageBytes: opts.maxMessageBytes } : {}),
    ...(opts.syncPartsTimeoutMs !== undefined ? { syncPartsTimeoutMs: opts.syncPartsTimeoutMs } : {}),
    ...(opts.requestSync ? { requestSync: opts.requestSync } : {}),
  });
  const random = new SeededRandom('command-harness');
  let nextCounter = 1;
  let nextId = 1;

  /** A signed envelope issued now (valid for a minute), with the next counter and a fresh cmdId. */
  const sign = (spec: CommandSpec, o: Overrides = {}): CommandEnvelope => {
    const cmdId = o.cmdId ?? `c${nextId++}`;
    const issuedAt = o.issuedAt ?? clock.now();
    const expiresAt = o.expiresAt ?? issuedAt + 60_000;
    const counter = o.counter ?? nextCounter++;
    if (counter >= nextCounter) nextCounter = counter + 1;
    const args = { ...spec.args };
    if (spec.op === 'attach' && typeof args.setupCode === 'string' && !o.asIs) {
      args.setupCode = sealSetupCode(o.key ?? KEY, cmdId, args.setupCode, random);
    }
    const unsigned: UnsignedCommand = {
      v: 1,
      cmdId,
      hubId: o.hubId ?? HUB,
      ...(spec.lockId === undefined ? {} : { lockId: spec.lockId }),
      op: spec.op,
      args,
      issuedAt: new Date(issuedAt).toISOString(),
      expiresAt: new Date(expiresAt).toISOString(),
      counter,
    };
    return signCommand(o.key ?? KEY, unsigned);
  };
  const sendRaw = (topic: 'cmd' | 'sync', body: unknown) =>
    inbound.handle(topic, Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body)));
  const send = (env: CommandEnvelope) => sendRaw('cmd', env);
  /** Sign and send; resolves once answered. */
  const run = async (spec: CommandSpec, o: Overrides = {}) => {
    const env = sign(spec, o);
    await send(env);
    return env;
  };
  const row = (id: string) =>
    store.db
      .prepare('SELECT topic, state, result, received_at, counter, op, lock_id FROM inbox WHERE id = ?')
      .get(id) as
      | {
          topic: string;
          state: string;
          result: string | null;
          received_at: number;
          counter: number | null;
          op: string | null;
          lock_id: string | null;
        }
      | undefined;
  const inboxCount = () => (store.db.prepare('SELECT COUNT(*) AS n FROM inbox').get() as { n: number }).n;
  const lastCounter = () => verifier.lastCounter();
  /** The last answer sent, queued or published. */
  const last = () => sink.all.at(-1)?.payload;
  const securityEvents = () =>
    store.db.prepare('SELECT kind, detail FROM security_events ORDER BY id').all() as {
      kind: string;
      detail: string;
    }[];
  return {
    dir,
    store,
    clock,
    target,
    sink,
    verifier,
    inbound,
    sign,
    send,
    sendRaw,
    run,
    row,
    inboxCount,
    lastCounter,
    last,
    securityEvents,
  };
}

export type Harness = ReturnType<typeof commandHarness>;
