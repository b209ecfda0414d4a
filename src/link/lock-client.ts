import type { Clock, TimerHandle } from '../base/clock.js';
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
  SINGLE_FRAME_MESSAGE_LEN,
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
  /**
   * An acknowledgement of stored events waits this long for a request to ride on, then goes as an
   * `ackEvents` of its own (docs/link-protocol.md "Frame budget"). Default 2000 ms.
   */
  ackDelayMs?: number;
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
  /** Events stored durably up to here and not yet acknowledged to the lock (0: none owed). */
  #owedAck = 0;
  #ackTimer: TimerHandle | undefined;
  /** The highest acknowledgement the lock has answered on this session. */
  #ackedUpto = 0;
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

  /** The acknowledgement owed to the lock, 0 when none (for tests and the collection). */
  get owedAck(): number {
    return this.#owedAck;
  }

  /** The highest acknowledgement the lock has answered ok on this session (0: none). */
  get ackedUpto(): number {
    return this.#ackedUpto;
  }

  /**
   * The lock's events up to `uptoSeq` are stored durably: tell the lock, on the next request that
   * has room for it (one frame), or with an `ackEvents` of its own once ackDelayMs passes without one.
   * Acknowledgements are cumulative, so only the highest owed one is kept.
   */
  oweAck(uptoSeq: number): void {
    if (this.#closed || uptoSeq <= this.#owedAck || uptoSeq <= this.#ackedUpto) return;
    this.#owedAck = uptoSeq;
    this.#armAck();
  }

  #armAck(): void {
    if (this.#ackTimer !== undefined || this.#closed) return;
    this.#ackTimer = this.#opts.clock.setTimeout(() => {
      this.#ackTimer = undefined;
      const upto = this.#owedAck;
      if (upto === 0 || this.#closed) return;
      // Not answered (lost, refused): still owed, tried again after the same delay.
      void this.request({ type: 'ackEvents', uptoSeq: upto }).then(() => {
        if (this.#owedAck > 0) this.#armAck();
      });
    }, this.#opts.ackDelayMs ?? 2_000);
  }

  /** The lock answered a request that acknowledged up to `upto`: nothing below is owed any more. */
  #acked(upto: number): void {
    this.#ackedUpto = Math.max(this.#ackedUpto, upto);
    if (upto < this.#owedAck) return;
    this.#owedAck = 0;
    if (this.#ackTimer !== undefined) this.#opts.clock.clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
  }

  /** The request's bytes, with the owed acknowledgement riding on it when the message stays one frame. */
  #encode(body: RequestBody, id: number): { bytes: Uint8Array; ack: number } {
    const plain = encodeMessage({ ...body, id } as Request);
    const ack = this.#owedAck;
    if (ack === 0 || body.type === 'ackEvents') return { bytes: plain, ack: 0 };
    const acked = encodeMessage({ ...body, id, ack } as Request);
    return acked.length <= SINGLE_FRAME_MESSAGE_LEN ? { bytes: acked, ack } : { bytes: plain, ack: 0 };
  }

  async request<O extends Operation>(body: RequestBody<O>): Promise<Result<OpResultFor<O>, RequestError>> {
    if (this.#closed) return err({ code: 'closed', message: 'the session is closed' });
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1;
    const { bytes, ack } = this.#encode(body, id);
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
    // Only an ok says the lock applied the acknowledgement (an error may be that it did not): until
    // then it stays owed, and the delayed ackEvents carries it.
    const upto = 'uptoSeq' in body && typeof body.uptoSeq === 'number' ? body.uptoSeq : ack;
    if (upto > 0 && r.value.type === 'ok') this.#acked(upto);
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
    if (this.#ackTimer !== undefined) this.#opts.clock.clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
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
