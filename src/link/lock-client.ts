import type { Clock } from '../base/clock.js';
import type { Unsubscribe } from '../base/listeners.js';
import { Listeners } from '../base/listeners.js';
import { err, ok, type Result } from '../base/result.js';
import { type Wait, Waiter } from '../base/waiter.js';
import { decodeMessage, encodeMessage } from '../contract/link-codec.js';
import {
  type AccessAnswer,
  type AccessRequest,
  isFromLock,
  type LockErrorCode,
  type LockEvent,
  type Operation,
  type OpResultFor,
  type Request,
  type Response,
} from '../contract/link-messages.js';
import type { SecureSession } from './session.js';

/** A request without its id: the client numbers requests itself. */
export type RequestBody<O extends Operation = Operation> = Omit<Extract<Request, { type: O }>, 'id'> & { type: O };

export type RequestError =
  | { code: 'timeout'; message: string }
  | { code: 'closed'; message: string }
  | { code: 'lock-error'; message: string; lockCode: LockErrorCode };

/** Access answers kept per session for requests the lock sends again. */
const ANSWER_CACHE_SIZE = 64;

export interface ClientOptions {
  clock: Clock;
  /** Wait this long for an answer before sending the request again (same id, freshly sealed). */
  retryMs: number;
  /** Give up after this many sends. */
  attempts: number;
}

/**
 * The hub's side of requests on one session. A request is resent under the same id until its
 * answer arrives; the lock executes an id once and answers duplicates from a cache, so an `open`
 * resent over a lossy radio opens once. Answers that match no pending request, messages that do
 * not decode, and requests coming the wrong way are dropped and counted.
 */
export class LockClient {
  readonly session: SecureSession;
  readonly #opts: ClientOptions;
  /** Answers, each to the request waiting for its id and operation. */
  readonly #replies: Waiter<Response, RequestError>;
  /**
   * The requests' waits by id, so an answer no wait takes is told apart: for a request still waiting
   * it answers another operation (unexpected); otherwise the request was already answered (a duplicate).
   */
  readonly #inFlight = new Map<number, Wait<Response, RequestError>>();
  readonly #eventListeners = new Listeners<LockEvent>();
  #accessHandler: ((r: AccessRequest) => Omit<AccessAnswer, 'type' | 'id'>) | undefined;
  /** Answers to the lock's last access requests, by its id: a resent request gets the same answer, not a second decision. */
  readonly #answers = new Map<number, { request: Uint8Array; answer: Uint8Array }>();
  #nextId = 1;
  #closed = false;
  readonly counters = { undecodable: 0, unexpected: 0, duplicates: 0 };

  constructor(session: SecureSession, opts: ClientOptions) {
    this.session = session;
    this.#opts = opts;
    this.#replies = new Waiter(opts.clock);
    session.onPayload((p) => this.#onPayload(p));
    session.link.onClose(() => this.#fail('the link closed'));
  }

  onEvent(listener: (e: LockEvent) => void): Unsubscribe {
    return this.#eventListeners.add(listener);
  }

  /**
   * Who answers the lock's access requests on this session. Without a handler they are dropped
   * (counted unexpected) and the lock decides from its offline list.
   */
  onAccessRequest(handler: (r: AccessRequest) => Omit<AccessAnswer, 'type' | 'id'>): void {
    this.#accessHandler = handler;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async request<O extends Operation>(body: RequestBody<O>): Promise<Result<OpResultFor<O>, RequestError>> {
    if (this.#closed) return err({ code: 'closed', message: 'the session is closed' });
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1;
    const bytes = encodeMessage({ ...body, id } as Request);
    const reply = this.#replies.wait((m) =>
      m.id === id && (m.type === 'error' || m.result.op === body.type) ? m : undefined,
    );
    this.#inFlight.set(id, reply);
    for (let attempt = 0; attempt < this.#opts.attempts && reply.pending; attempt++) {
      if (!(await this.session.send(bytes))) {
        reply.cancel({ code: 'closed', message: 'the link refused the request' });
        break;
      }
      await Promise.race([reply.result, this.#opts.clock.sleep(this.#opts.retryMs)]);
    }
    reply.cancel({ code: 'timeout', message: `no answer to ${body.type} after ${this.#opts.attempts} attempts` });
    this.#inFlight.delete(id);
    const r = await reply.result;
    if (!r.ok) return r;
    if (r.value.type === 'error') {
      const lockCode = r.value.code;
      return err({ code: 'lock-error', lockCode, message: `the lock answered ${body.type} with ${lockCode}` });
    }
    return ok(r.value.result as OpResultFor<O>);
  }

  close(): void {
    this.#fail('the session was closed');
  }

  #fail(message: string): void {
    this.#closed = true;
    this.#replies.cancelAll({ code: 'closed', message });
  }

  #answerAccess(m: AccessRequest, payload: Uint8Array): void {
    const handler = this.#accessHandler;
    if (!handler) {
      this.counters.unexpected++;
      return;
    }
    const cached = this.#answers.get(m.id);
    if (cached) {
      this.counters.duplicates++;
      // The same id with other content is not a resend: refuse it rather than decide twice under one id.
      if (Buffer.from(cached.request).equals(Buffer.from(payload))) void this.session.send(cached.answer);
      return;
    }
    const decision = handler(m);
    const answer = encodeMessage({ type: 'accessAnswer', id: m.id, ...decision });
    this.#answers.set(m.id, { request: payload.slice(), answer });
    if (this.#answers.size > ANSWER_CACHE_SIZE) {
      const oldest = this.#answers.keys().next();
      if (!oldest.done) this.#answers.delete(oldest.value);
    }
    void this.session.send(answer);
  }

  #onPayload(payload: Uint8Array): void {
    const decoded = decodeMessage(payload);
    if (!decoded.ok) {
      this.counters.undecodable++;
      return;
    }
    const m = decoded.value;
    if (!isFromLock(m)) {
      this.counters.unexpected++;
      return;
    }
    if (m.type === 'event') {
      this.#eventListeners.emit(m.event);
      return;
    }
    if (m.type === 'access') {
      this.#answerAccess(m, payload);
      return;
    }
    if (this.#replies.deliver(m)) return;
    if (this.#inFlight.get(m.id)?.pending) this.counters.unexpected++;
    else this.counters.duplicates++;
  }
}
