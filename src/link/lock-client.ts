import type { Clock } from '../base/clock.js';
import type { Unsubscribe } from '../base/listeners.js';
import { Listeners } from '../base/listeners.js';
import { err, ok, type Result } from '../base/result.js';
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

interface Pending {
  op: Operation;
  resolve: (r: Result<unknown, RequestError>) => void;
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
  readonly #pending = new Map<number, Pending>();
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
    const answer = new Promise<Result<unknown, RequestError>>((resolve) =>
      this.#pending.set(id, { op: body.type, resolve }),
    );
    for (let attempt = 0; attempt < this.#opts.attempts && this.#pending.has(id); attempt++) {
      if (!(await this.session.send(bytes))) {
        this.#settle(id, err({ code: 'closed', message: 'the link refused the request' }));
        break;
      }
      await Promise.race([answer, this.#opts.clock.sleep(this.#opts.retryMs)]);
    }
    this.#settle(
      id,
      err({ code: 'timeout', message: `no answer to ${body.type} after ${this.#opts.attempts} attempts` }),
    );
    return (await answer) as Result<OpResultFor<O>, RequestError>;
  }

  close(): void {
    this.#fail('the session was closed');
  }

  #fail(message: string): void {
    this.#closed = true;
    for (const id of [...this.#pending.keys()]) this.#settle(id, err({ code: 'closed', message }));
  }

  #settle(id: number, r: Result<unknown, RequestError>): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    p.resolve(r);
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
    const p = this.#pending.get(m.id);
    if (!p) {
      this.counters.duplicates++;
      return;
    }
    if (m.type === 'error') {
      this.#settle(
        m.id,
        err({ code: 'lock-error', lockCode: m.code, message: `the lock answered ${p.op} with ${m.code}` }),
      );
    } else if (m.result.op !== p.op) {
      this.counters.unexpected++;
    } else {
      this.#settle(m.id, ok(m.result));
    }
  }
}
