import type { Clock } from '../../src/base/clock.js';
import { decodeMessage, encodeMessage } from '../../src/contract/link-codec.js';
import {
  type AccessReason,
  FIRMWARE_OPERATIONS,
  isFromLock,
  type LinkCredential,
  type LockEvent,
  MAX_EVENTS_PER_ANSWER,
  OPERATIONS,
  type Operation,
  type Request,
  type Response,
  SINGLE_FRAME_MESSAGE_LEN,
} from '../../src/contract/link-messages.js';
import type { SecureSession } from '../../src/link/session.js';
import type { LockMemory } from './memory.js';

/**
 * The lock's sealed sessions with hubs once the handshake is done: which one is current (where
 * events and access requests go), answering each request id once per session (a request sent
 * again gets the stored answer, never a second execution), and asking the hub at the door. What a
 * request does is the caller's (`execute`); this module only decides where traffic goes and when.
 */

/** Responses kept per session for requests sent again. */
export const REQUEST_CACHE_SIZE = 64;

export interface RequestCounts {
  /** Requests handled (executed or refused with an error), by operation; repeats are not counted here. */
  handled: Record<Operation, number>;
  /** Requests whose id the session had already seen: answered from the cache. */
  repeated: number;
  /** Sealed payloads that were not a request from the hub (undecodable, a response, an event): dropped. */
  ignored: number;
}

export interface SessionContext {
  readonly session: SecureSession;
  /** The hub this session authenticated, hex. */
  readonly hub: string;
  readonly cache: Map<number, { request: Uint8Array; response: Uint8Array }>;
}

export interface AccessAnswer {
  grant: boolean;
  reason: AccessReason;
  credentialId: string | null;
}

export interface HubSessionsOptions {
  readonly memory: LockMemory;
  readonly clock: Clock;
  /** How long the lock waits for the hub's answer to an access request before deciding alone, ms. */
  readonly accessTimeoutMs: number;
  /** Carries out one request (or refuses it) and says how; called once per request id and session. */
  execute(context: SessionContext, request: Request): Response;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function zeroCounts(): RequestCounts {
  return {
    handled: Object.fromEntries([...OPERATIONS, ...FIRMWARE_OPERATIONS].map((op) => [op, 0])) as Record<
      Operation,
      number
    >,
    repeated: 0,
    ignored: 0,
  };
}

export class HubSessions {
  readonly #o: HubSessionsOptions;
  #current: SessionContext | undefined;
  /** Set by bound(): the session handed over next is the one that just attached. */
  #justBound = false;
  #counts = zeroCounts();
  #nextAccessId = 1;
  readonly #pendingAccess = new Map<number, (answer: AccessAnswer) => void>();
  /** Events logged while a request runs: its answer may carry them (see push). */
  #held: LockEvent[] | undefined;

  constructor(options: HubSessionsOptions) {
    this.#o = options;
  }

  /** Counting starts again at every boot. */
  resetCounts(): void {
    this.#counts = zeroCounts();
  }

  counts(): RequestCounts {
    return structuredClone(this.#counts);
  }

  /** A crash: no session survives it. */
  forget(): void {
    this.#current = undefined;
    this.#justBound = false;
  }

  /** A hub just bound: the next session handed over is its own, and becomes current. */
  bound(): void {
    this.#justBound = true;
  }

  /** A link closed: its session no longer carries anything. */
  closed(link: SecureSession['link']): void {
    if (this.#current?.session.link === link) this.#current = undefined;
  }

  /** A session after a completed handshake, in the lock's life `generation`. */
  open(session: SecureSession, generation: number): void {
    const memory = this.#o.memory;
    if (!memory.alive(generation)) return;
    const context: SessionContext = { session, hub: hex(session.remoteStatic), cache: new Map() };
    const boundHub = memory.peek()?.boundHub;
    if (this.#justBound) {
      this.#justBound = false;
      this.#current = context;
    } else if (!this.#usable(this.#current) && context.hub === boundHub) {
      // The bound hub reconnected and the old session is gone: this one carries the door's requests
      // at once (a replayed handshake gives a session nobody can answer on: the door then decides
      // from its offline list, as with the hub away).
      this.#current = context;
    }
    session.onPayload((payload) => {
      if (memory.alive(generation)) this.#onPayload(context, payload);
    });
  }

  /**
   * A new event goes to the bound hub on the current session, if there is one; one logged while a
   * request runs waits for its answer (an `open` answer carries it, docs/link-protocol.md "Frame budget").
   */
  push(event: LockEvent): void {
    if (this.#held) {
      this.#held.push(event);
      return;
    }
    const current = this.#current;
    if (!this.#usable(current)) return;
    void current.session.send(encodeMessage({ type: 'event', event }));
  }

  /**
   * Ask the bound hub over the current session, resending under one id until it answers or
   * accessTimeoutMs passes; undefined when it did not answer in time.
   */
  async askHub(credential: LinkCredential): Promise<AccessAnswer | undefined> {
    const clock = this.#o.clock;
    const deadline = clock.monotonic() + this.#o.accessTimeoutMs;
    // No session right now: the lock advertises and its hub connects; wait for it within the timeout.
    while (!this.#usable(this.#current) && clock.monotonic() < deadline && this.#o.memory.peek()?.boundHub) {
      await clock.sleep(20);
    }
    const context = this.#current;
    if (!this.#usable(context)) return undefined;
    const id = this.#nextAccessId;
    this.#nextAccessId = this.#nextAccessId >= 0xffff_ffff ? 1 : this.#nextAccessId + 1;
    const bytes = encodeMessage({ type: 'access', id, credential });
    const answer = new Promise<AccessAnswer>((resolve) => this.#pendingAccess.set(id, resolve));
    const resendMs = Math.max(1, Math.floor(this.#o.accessTimeoutMs / 4));
    try {
      while (this.#pendingAccess.has(id) && clock.monotonic() < deadline && context.session.link.isOpen()) {
        void context.session.send(bytes);
        const wait = Math.min(resendMs, deadline - clock.monotonic());
        const result = await Promise.race([answer, clock.sleep(wait).then(() => undefined)]);
        if (result) return result;
      }
      return undefined;
    } finally {
      this.#pendingAccess.delete(id);
    }
  }

  /** A session that can carry traffic to the bound hub now. */
  #usable(c: SessionContext | undefined): c is SessionContext {
    return c !== undefined && c.hub === this.#o.memory.peek()?.boundHub && c.session.link.isOpen();
  }

  #onPayload(context: SessionContext, payload: Uint8Array): void {
    const boundHub = this.#o.memory.peek()?.boundHub;
    const decoded = decodeMessage(payload);
    if (decoded.ok && decoded.value.type === 'accessAnswer') {
      const answer = decoded.value;
      const waiting = context.hub === boundHub ? this.#pendingAccess.get(answer.id) : undefined;
      if (!waiting) {
        this.#counts.ignored++;
        return;
      }
      this.#pendingAccess.delete(answer.id);
      waiting(answer);
      return;
    }
    if (!decoded.ok || isFromLock(decoded.value)) {
      this.#counts.ignored++;
      return;
    }
    const request = decoded.value as Request;
    if (context.hub === boundHub) this.#current = context;
    const cached = context.cache.get(request.id);
    if (cached) {
      this.#counts.repeated++;
      const same = Buffer.from(cached.request).equals(Buffer.from(payload));
      const answer = same ? cached.response : encodeMessage({ type: 'error', id: request.id, code: 'bad-request' });
      void context.session.send(answer);
      return;
    }
    this.#counts.handled[request.type]++;
    const held: LockEvent[] = [];
    this.#held = held;
    let answer: Response;
    try {
      answer = this.#o.execute(context, request);
    } finally {
      this.#held = undefined;
    }
    const { response, rest } = carryEvents(answer, held);
    context.cache.set(request.id, { request: payload.slice(), response });
    if (context.cache.size > REQUEST_CACHE_SIZE) {
      const oldest = context.cache.keys().next();
      if (!oldest.done) context.cache.delete(oldest.value);
    }
    void context.session.send(response);
    for (const event of rest) this.push(event);
  }
}

/**
 * The answer to a request and the events it logged: an `open` answer carries them in sequence
 * while the answer stays one frame (SINGLE_FRAME_MESSAGE_LEN); whatever it does not carry is pushed
 * after it. Either way they stay in the log until the hub acknowledges them.
 */
function carryEvents(answer: Response, held: LockEvent[]): { response: Uint8Array; rest: LockEvent[] } {
  if (answer.type !== 'ok' || answer.result.op !== 'open') return { response: encodeMessage(answer), rest: held };
  const result = answer.result;
  let carried = held.filter((e) => e.seq <= result.state.lastSeq).slice(0, MAX_EVENTS_PER_ANSWER);
  let response = encodeMessage({ ...answer, result: { ...result, events: carried } });
  while (carried.length > 0 && response.length > SINGLE_FRAME_MESSAGE_LEN) {
    carried = carried.slice(0, -1);
    response = encodeMessage({ ...answer, result: { ...result, events: carried } });
  }
  return { response, rest: held.slice(carried.length) };
}
