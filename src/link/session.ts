import type { BearerLink } from '../../hal/bearer.js';
import type { Clock } from '../base/clock.js';
import type { Unsubscribe } from '../base/listeners.js';
import type { Random } from '../base/random.js';
import { err, ok, type Result } from '../base/result.js';
import { Waiter } from '../base/waiter.js';
import type { Secret } from '../crypto/secret.js';
import {
  ATTACH,
  type AttachMessage,
  attachMessage,
  attachProof,
  parseAttachMessage,
  proofsEqual,
} from './attach-proof.js';
import { createHandshake, type Handshake, type KeyPair, LINK_PROLOGUE } from './noise.js';
import { type ChannelStats, LINK_VERSION, type RejectReason, SealedChannel } from './transport.js';

/**
 * Sessions over one bearer link: the handshake messages on the air, the attach exchange that binds
 * a lock to a hub, and the sealed channel afterwards. The hub's side (initiator) and the lock's
 * side (responder) live here together so they cannot drift apart. docs/link-protocol.md §4.
 *
 * Bearer message kinds (first byte):
 *   0x01        a transport frame (transport.ts)
 *   0x11 0x12 0x13   Noise XX messages 1, 2, 3 (attach)
 *   0x21 0x22        Noise KK messages 1, 2 (every later connection)
 *   0x2f        a refusal from the lock, one reason byte (plaintext: a hint that ends waiting, never trusted)
 */
export const KIND = { XX1: 0x11, XX2: 0x12, XX3: 0x13, KK1: 0x21, KK2: 0x22, REFUSAL: 0x2f } as const;

export const REFUSALS = ['not-in-attach-mode', 'not-attached', 'handshake-failed', 'busy'] as const;
export type Refusal = (typeof REFUSALS)[number];

export { attachProof, normalizeSetupCode } from './attach-proof.js';

const prologue = new TextEncoder().encode(LINK_PROLOGUE);

export type LinkFailureCode =
  | 'timeout'
  | 'refused'
  | 'handshake-failed'
  | 'proof-mismatch'
  | 'device-mismatch'
  | 'bearer'
  | 'closed';

export interface LinkFailure {
  code: LinkFailureCode;
  message: string;
  refusal?: Refusal;
}

const fail = (code: LinkFailureCode, message: string, refusal?: Refusal): LinkFailure =>
  refusal ? { code, message, refusal } : { code, message };

function frame(kind: number, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(1 + body.length);
  out[0] = kind;
  out.set(body, 1);
  return out;
}

/**
 * An established session on one link: sealed payloads in both directions. Everything that
 * arrives is authenticated by the channel; what fails is counted and dropped, never thrown.
 */
export class SecureSession {
  readonly link: BearerLink;
  readonly handshakeHash: Uint8Array;
  readonly remoteStatic: Uint8Array;
  readonly #channel: SealedChannel;
  readonly #listeners = new Set<(payload: Uint8Array) => void>();
  readonly #rejectListeners = new Set<(reason: RejectReason) => void>();

  constructor(link: BearerLink, handshake: Handshake) {
    this.link = link;
    this.handshakeHash = handshake.handshakeHash;
    this.remoteStatic = handshake.remoteStatic ?? new Uint8Array(0);
    this.#channel = new SealedChannel(handshake.split());
  }

  /** Seal and send one payload. False if the link refused it (closed, too large). */
  async send(payload: Uint8Array): Promise<boolean> {
    if (this.#channel.exhausted || !this.link.isOpen()) return false;
    const r = await this.link.send(this.#channel.seal(payload));
    return r.ok;
  }

  onPayload(listener: (payload: Uint8Array) => void): Unsubscribe {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Take every transport frame of the link (the hub's side, which owns its link). */
  listen(): Unsubscribe {
    return this.link.onFrame((f) => {
      if (f[0] === LINK_VERSION) this.receive(f);
    });
  }

  /** Every frame the channel refused (replayed, too old, tampered, ...), for counting and reporting. */
  onRejected(listener: (reason: RejectReason) => void): Unsubscribe {
    this.#rejectListeners.add(listener);
    return () => this.#rejectListeners.delete(listener);
  }

  /** Called by the owner of the link with each transport frame. */
  receive(frameBytes: Uint8Array): void {
    const r = this.#channel.open(frameBytes);
    if (!r.ok) {
      for (const l of [...this.#rejectListeners]) l(r.error);
      return;
    }
    for (const l of [...this.#listeners]) l(r.value.payload);
  }

  stats(): ChannelStats {
    return this.#channel.stats();
  }

  close(): Promise<void> {
    return this.link.close();
  }
}

type WaitFailure = 'timeout' | 'closed';

/**
 * Waits for what `listen` hands over on a link, ended by the link closing. It listens only while
 * someone waits: frames arriving between two waits stay with the link (hal/bearer.ts keeps them for
 * the next listener), so a late answer to an earlier send still reaches the next wait.
 */
function waiterOn<V>(
  link: BearerLink,
  clock: Clock,
  listen: (deliver: (value: V) => void) => Unsubscribe,
): Waiter<V, WaitFailure> {
  return new Waiter(clock, (deliver, cancelAll) => {
    const offValue = listen(deliver);
    const offClose = link.onClose(() => cancelAll('closed'));
    return () => {
      offValue();
      offClose();
    };
  });
}

export interface HandshakeTiming {
  clock: Clock;
  random: Random;
  /** How long to wait for each answer before sending again. */
  stepTimeoutMs: number;
  /** How many times a step is tried before giving up. */
  attempts: number;
}

function refusalOf(f: Uint8Array): Refusal {
  return REFUSALS[(f[1] ?? 0) - 1] ?? 'handshake-failed';
}

/**
 * Hub side, every connection after attach: Noise KK with the lock's static key from the pairing
 * store. A peer that does not hold that key fails here (handshake-failed); a lock that is bound to
 * another hub says so (refused: handshake-failed) or stays silent (timeout).
 */
export async function connectBound(
  link: BearerLink,
  hub: KeyPair,
  lockStatic: Uint8Array,
  t: HandshakeTiming,
): Promise<Result<SecureSession, LinkFailure>> {
  // One handshake per connection, its message 1 resent as is: a late answer to an earlier send is
  // still an answer to this handshake (the lock answers a repeated message 1 with the same message 2).
  const hs = createHandshake({ pattern: 'KK', initiator: true, prologue, s: hub, rs: lockStatic, random: t.random });
  const m2 = await exchangeHello(link, frame(KIND.KK1, hs.writeMessage()), KIND.KK2, t, {
    refusalEnds: false,
    what: 'the connection',
  });
  if (!m2.ok) return m2;
  try {
    hs.readMessage(m2.value);
  } catch {
    return err(fail('handshake-failed', 'the peer does not hold the static key stored for this lock'));
  }
  const session = new SecureSession(link, hs);
  session.listen();
  return ok(session);
}

/**
 * The first step of XX and KK: send message 1 until message 2 or a refusal comes back. A refusal
 * is plaintext, so anyone can send one: for a connection (`refusalEnds: false`) it ends only that
 * attempt, and only a lock that refuses every attempt is reported as refusing; for an attach the
 * lock's refusal ("not in attach mode") ends it, since the worst a forger gets is a failed attach.
 */
async function exchangeHello(
  link: BearerLink,
  hello: Uint8Array,
  answer: number,
  t: HandshakeTiming,
  o: { refusalEnds: boolean; what: string },
): Promise<Result<Uint8Array, LinkFailure>> {
  const frames = waiterOn<Uint8Array>(link, t.clock, (deliver) => link.onFrame(deliver));
  let lastRefusal: Refusal | undefined;
  for (let attempt = 0; attempt < t.attempts; attempt++) {
    const sent = await link.send(hello);
    if (!sent.ok) return err(fail('bearer', sent.error.message));
    const reply = await frames.wait((f) => (f[0] === answer || f[0] === KIND.REFUSAL ? f : undefined), {
      ms: t.stepTimeoutMs,
      error: 'timeout',
    }).result;
    if (!reply.ok) {
      if (reply.error === 'closed') return err(fail('closed', 'the link closed during the handshake'));
      continue;
    }
    if (reply.value[0] === KIND.REFUSAL) {
      lastRefusal = refusalOf(reply.value);
      if (o.refusalEnds && lastRefusal !== 'busy') break;
      continue;
    }
    return ok(reply.value.subarray(1));
  }
  if (lastRefusal) return err(fail('refused', `the lock refused ${o.what}: ${lastRefusal}`, lastRefusal));
  return err(fail('timeout', `no answer to ${o.what} handshake after ${t.attempts} attempts`));
}

export interface AttachRequest {
  hub: KeyPair;
  deviceId: string;
  setupCode: Secret;
  /**
   * Called once the lock has proved itself and before the hub proves itself (after which the lock
   * binds): the hub records the lock as `attaching` here, so a crash between the lock binding and
   * the hub recording it is resolved at the next start instead of leaving the two disagreeing.
   */
  beforeCommit?: (lockStatic: Uint8Array) => void;
}

/**
 * Hub side of attach: Noise XX, then the lock proves it knows the setup code for this device id and
 * static key; only then does the hub prove the same, and the lock stores the hub's key. Resolves
 * when the lock confirms it is bound (DONE), with the lock's static key for the pairing store.
 */
export async function attachLock(
  link: BearerLink,
  req: AttachRequest,
  t: HandshakeTiming,
): Promise<Result<{ session: SecureSession; lockStatic: Uint8Array }, LinkFailure>> {
  const hs = createHandshake({ pattern: 'XX', initiator: true, prologue, s: req.hub, random: t.random });
  const m2 = await exchangeHello(link, frame(KIND.XX1, hs.writeMessage()), KIND.XX2, t, {
    refusalEnds: true,
    what: 'the attach',
  });
  if (!m2.ok) return m2;
  let msg3: Uint8Array;
  try {
    hs.readMessage(m2.value);
    msg3 = frame(KIND.XX3, hs.writeMessage());
  } catch {
    return err(fail('handshake-failed', 'the attach handshake failed'));
  }

  const session = new SecureSession(link, hs);
  const lockStatic = session.remoteStatic;
  const unsub = session.listen();
  const attachMessages = waiterOn<AttachMessage>(link, t.clock, (deliver) =>
    session.onPayload((p) => {
      const m = parseAttachMessage(p);
      if (m) deliver(m);
    }),
  );
  const awaitAttach = (kind: number) =>
    attachMessages.wait((m) => (m.kind === kind ? m : undefined), { ms: t.stepTimeoutMs, error: 'timeout' }).result;

  let done = false;
  try {
    // Message 3 may be lost: send it again until the lock's proof comes back.
    let lockProof: Uint8Array | undefined;
    for (let attempt = 0; attempt < t.attempts && !lockProof; attempt++) {
      const waiting = awaitAttach(ATTACH.LOCK_PROOF);
      await link.send(msg3);
      const r = await waiting;
      if (!r.ok && r.error === 'closed') return err(fail('closed', 'the link closed during attach'));
      if (r.ok) lockProof = r.value.proof;
    }
    if (!lockProof) return err(fail('timeout', 'the lock did not prove its identity'));
    const expected = attachProof(
      'lock',
      req.setupCode,
      session.handshakeHash,
      req.deviceId,
      lockStatic,
      req.hub.publicKey,
    );
    if (!proofsEqual(lockProof, expected)) {
      await link.close();
      return err(
        fail(
          'proof-mismatch',
          `the lock did not prove the setup code for ${req.deviceId}: wrong setup code, or not that lock`,
        ),
      );
    }
    req.beforeCommit?.(lockStatic);
    const hubProof = attachProof(
      'hub',
      req.setupCode,
      session.handshakeHash,
      req.deviceId,
      lockStatic,
      req.hub.publicKey,
    );
    for (let attempt = 0; attempt < t.attempts; attempt++) {
      const waiting = awaitAttach(ATTACH.DONE);
      await session.send(attachMessage(ATTACH.HUB_PROOF, hubProof));
      const r = await waiting;
      if (r.ok) {
        done = true;
        return ok({ session, lockStatic });
      }
      if (r.error === 'closed') return err(fail('closed', 'the link closed before the lock confirmed attach'));
    }
    return err(fail('timeout', 'the lock did not confirm attach'));
  } finally {
    if (!done) unsub();
  }
}

/** What the lock's side needs from the lock firmware. */
export interface LockIdentity {
  deviceId: string;
  keyPair: KeyPair;
  setupCode: Secret;
  /** The bound hub's static key, if bound. */
  boundHub(): Uint8Array | undefined;
  /**
   * The hub this lock was detached from, until it binds again: accepted in KK only so that hub can
   * hear the detach confirmed again when the first confirmation was lost (every other request on
   * such a session is answered `not-attached`).
   */
  formerHub?(): Uint8Array | undefined;
  /** Attach mode: entered by a physical act on the lock, with a timeout. */
  inAttachMode(): boolean;
  /** Persist the new hub key (before confirming) and leave attach mode. */
  bind(hubStatic: Uint8Array): void;
  /** Counted and logged by the lock: a handshake it refused and why. */
  refused(reason: Refusal | 'bad-proof'): void;
}

/**
 * The lock's side of one link: answers handshakes, runs the attach exchange, and hands each new
 * established session to `onSession`. A new handshake replaces the previous session on the link.
 */
export class LockEndpoint {
  readonly #link: BearerLink;
  readonly #id: LockIdentity;
  readonly #random: Random;
  readonly #onSession: (s: SecureSession) => void;
  #pending: Handshake | undefined;
  /** The last handshake message 1 and our answer, so a duplicated message 1 gets the same answer. */
  #lastHello: { hello: Buffer; answer: Uint8Array } | undefined;
  #attaching: { session: SecureSession; proof: Buffer; bound: boolean } | undefined;
  #session: SecureSession | undefined;

  constructor(link: BearerLink, id: LockIdentity, random: Random, onSession: (s: SecureSession) => void) {
    this.#link = link;
    this.#id = id;
    this.#random = random;
    this.#onSession = onSession;
    link.onFrame((f) => {
      this.#receive(f).catch(() => void this.#link.close());
    });
  }

  get session(): SecureSession | undefined {
    return this.#session;
  }

  async #refuse(reason: Refusal): Promise<void> {
    this.#id.refused(reason);
    await this.#link.send(frame(KIND.REFUSAL, Uint8Array.of(REFUSALS.indexOf(reason) + 1)));
  }

  async #receive(f: Uint8Array): Promise<void> {
    const kind = f[0];
    const body = f.subarray(1);
    if (kind === LINK_VERSION) {
      (this.#attaching?.session ?? this.#session)?.receive(f);
      return;
    }
    if ((kind === KIND.XX1 || kind === KIND.KK1) && this.#lastHello?.hello.equals(f)) {
      await this.#link.send(this.#lastHello.answer);
      return;
    }
    if (kind === KIND.XX1) {
      if (!this.#id.inAttachMode()) return this.#refuse('not-in-attach-mode');
      this.#attaching = undefined;
      const hs = createHandshake({
        pattern: 'XX',
        initiator: false,
        prologue,
        s: this.#id.keyPair,
        random: this.#random,
      });
      try {
        hs.readMessage(body);
        const answer = frame(KIND.XX2, hs.writeMessage());
        this.#pending = hs;
        this.#lastHello = { hello: Buffer.from(f), answer };
        await this.#link.send(answer);
      } catch {
        return this.#refuse('handshake-failed');
      }
      return;
    }
    if (kind === KIND.XX3) {
      const attaching = this.#attaching;
      if (attaching) {
        // A duplicate of message 3: our proof was lost, send it again.
        await attaching.session.send(attachMessage(ATTACH.LOCK_PROOF, attaching.proof));
        return;
      }
      const hs = this.#pending;
      if (hs?.pattern !== 'XX' || !this.#id.inAttachMode()) return;
      this.#pending = undefined;
      try {
        hs.readMessage(body);
      } catch {
        return this.#refuse('handshake-failed');
      }
      const session = new SecureSession(this.#link, hs);
      const hubStatic = session.remoteStatic;
      const proof = attachProof(
        'lock',
        this.#id.setupCode,
        session.handshakeHash,
        this.#id.deviceId,
        this.#id.keyPair.publicKey,
        hubStatic,
      );
      const state = { session, proof, bound: false };
      this.#attaching = state;
      session.onPayload((p) => {
        this.#onAttachMessage(state, p).catch(() => void this.#link.close());
      });
      await session.send(attachMessage(ATTACH.LOCK_PROOF, proof));
      return;
    }
    if (kind === KIND.KK1) {
      const hubKey = this.#id.boundHub() ?? this.#id.formerHub?.();
      if (!hubKey) return this.#refuse('not-attached');
      const hs = createHandshake({
        pattern: 'KK',
        initiator: false,
        prologue,
        s: this.#id.keyPair,
        rs: hubKey,
        random: this.#random,
      });
      let answer: Uint8Array;
      try {
        hs.readMessage(body);
        answer = frame(KIND.KK2, hs.writeMessage());
      } catch {
        return this.#refuse('handshake-failed');
      }
      this.#attaching = undefined;
      this.#lastHello = { hello: Buffer.from(f), answer };
      const session = new SecureSession(this.#link, hs);
      this.#session = session;
      this.#onSession(session);
      await this.#link.send(answer);
    }
    // Anything else (unknown kinds, stray messages 2) is dropped: a lock never answers garbage.
  }

  async #onAttachMessage(state: { session: SecureSession; bound: boolean }, p: Uint8Array): Promise<void> {
    const m = parseAttachMessage(p);
    if (m?.kind !== ATTACH.HUB_PROOF || !m.proof) return;
    const s = state.session;
    if (!state.bound) {
      const expected = attachProof(
        'hub',
        this.#id.setupCode,
        s.handshakeHash,
        this.#id.deviceId,
        this.#id.keyPair.publicKey,
        s.remoteStatic,
      );
      if (!proofsEqual(m.proof, expected)) {
        this.#id.refused('bad-proof');
        this.#attaching = undefined;
        await this.#link.close();
        return;
      }
      if (!this.#id.inAttachMode()) return;
      try {
        this.#id.bind(s.remoteStatic);
      } catch {
        // Not saved, so not confirmed: the hub sees no DONE and its attach fails.
        this.#attaching = undefined;
        await this.#link.close();
        return;
      }
      state.bound = true;
      this.#session = s;
      this.#onSession(s);
    }
    // Sent again for a duplicated hub proof: our DONE was lost.
    await s.send(attachMessage(ATTACH.DONE));
  }
}
