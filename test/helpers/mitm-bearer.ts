import type {
  Advertisement,
  Bearer,
  BearerError,
  BearerLink,
  BearerState,
  CloseReason,
  ConnectOptions,
  LinkQuality,
  Unsubscribe,
} from '../../hal/bearer.js';
import { OK, type Result } from '../../src/base/result.js';

/** What the attacker does with one frame from the lock before the hub sees it. */
export type Intercept = (frame: Uint8Array, link: MitmLink) => 'pass' | 'drop' | Uint8Array;

/** What the attacker does with one advertisement before the hub hears it. */
export type AdRewrite = (ad: Advertisement) => Advertisement | undefined;

/** A copy of `frame` with one bit of byte `index` flipped (negative: from the end). */
export function flipByte(frame: Uint8Array, index: number): Uint8Array {
  const copy = frame.slice();
  const i = index < 0 ? copy.length + index : index;
  copy[i] = (copy[i] ?? 0) ^ 0x01;
  return copy;
}

/**
 * The hub's end of one link as an attacker in radio range sees it: every frame in both directions
 * is recorded, and the attacker can drop, replace or add frames on their way to the hub.
 */
export class MitmLink implements BearerLink {
  readonly inner: BearerLink;
  /** Frames the lock sent on this link, in the order they arrived. */
  readonly fromLock: Uint8Array[] = [];
  /** Frames the hub sent on this link. */
  readonly fromHub: Uint8Array[] = [];
  /** Set by a test: decides the fate of each frame from the lock (pass, drop, or a replacement). */
  intercept: Intercept | undefined;
  /** Set by a test: sees each frame the hub sends before the radio does, and may swallow it. */
  interceptHub: ((frame: Uint8Array, link: MitmLink) => 'pass' | 'drop') | undefined;
  readonly #listeners = new Set<(frame: Uint8Array) => void>();
  #early: Uint8Array[] = [];

  constructor(inner: BearerLink) {
    this.inner = inner;
    inner.onFrame((f) => this.#fromLock(f));
  }

  get address(): string {
    return this.inner.address;
  }

  get maxFrameSize(): number {
    return this.inner.maxFrameSize;
  }

  send(frame: Uint8Array): Promise<Result<void, BearerError>> {
    this.fromHub.push(frame.slice());
    if (this.interceptHub?.(frame, this) === 'drop') return Promise.resolve(OK);
    return this.inner.send(frame);
  }

  onFrame(listener: (frame: Uint8Array) => void): Unsubscribe {
    this.#listeners.add(listener);
    if (this.#early.length > 0) {
      const early = this.#early;
      this.#early = [];
      queueMicrotask(() => {
        for (const f of early) this.#dispatch(f);
      });
    }
    return () => {
      this.#listeners.delete(listener);
    };
  }

  onClose(listener: (reason: CloseReason) => void): Unsubscribe {
    return this.inner.onClose(listener);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  isOpen(): boolean {
    return this.inner.isOpen();
  }

  linkQuality(): LinkQuality {
    return this.inner.linkQuality();
  }

  /** Hands `frame` to the hub as if the lock had sent it (a replay, a forgery). Synchronous. */
  inject(frame: Uint8Array): void {
    if (!this.inner.isOpen()) throw new Error('mitm: the link is closed');
    this.#dispatch(frame.slice());
  }

  /** Transport frames (version byte 1) the lock sent on this link. */
  transportFrames(): Uint8Array[] {
    return this.fromLock.filter((f) => f[0] === 1);
  }

  /** Transport frames the hub sent on this link. */
  transportFramesFromHub(): Uint8Array[] {
    return this.fromHub.filter((f) => f[0] === 1);
  }

  #fromLock(frame: Uint8Array): void {
    this.fromLock.push(frame.slice());
    const verdict = this.intercept ? this.intercept(frame, this) : 'pass';
    if (verdict === 'drop') return;
    this.#dispatch(verdict === 'pass' ? frame : verdict);
  }

  #dispatch(frame: Uint8Array): void {
    if (this.#listeners.size === 0) {
      this.#early.push(frame);
      return;
    }
    for (const l of [...this.#listeners]) l(frame);
  }
}

/**
 * A Bearer decorator for attack tests: the links it opens are MitmLinks, recorded per address, and
 * advertisements may be rewritten (a lying radio, an attacker's own hub that ignores the flags).
 */
export class MitmBearer implements Bearer {
  readonly inner: Bearer;
  /** Every link opened, per lock address, oldest first. */
  readonly links = new Map<string, MitmLink[]>();
  rewriteAd: AdRewrite | undefined;
  /** Called with every new link before the hub uses it (to install intercepts on reconnects too). */
  onLink: ((link: MitmLink) => void) | undefined;

  constructor(inner: Bearer) {
    this.inner = inner;
  }

  get kind() {
    return this.inner.kind;
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  stop(): Promise<void> {
    return this.inner.stop();
  }

  state(): BearerState {
    return this.inner.state();
  }

  onStateChange(listener: (state: BearerState) => void): Unsubscribe {
    return this.inner.onStateChange(listener);
  }

  onAdvertisement(listener: (advertisement: Advertisement) => void): Unsubscribe {
    return this.inner.onAdvertisement((ad) => {
      const out = this.rewriteAd ? this.rewriteAd(ad) : ad;
      if (out) listener(out);
    });
  }

  async connect(address: string, options: ConnectOptions): Promise<Result<BearerLink, BearerError>> {
    const r = await this.inner.connect(address, options);
    if (!r.ok) return r;
    const link = new MitmLink(r.value);
    const list = this.links.get(address) ?? [];
    list.push(link);
    this.links.set(address, list);
    this.onLink?.(link);
    return { ok: true, value: link };
  }

  /** The newest link to `address` that is still open. */
  current(address: string): MitmLink {
    const open = (this.links.get(address) ?? []).filter((l) => l.isOpen());
    const link = open[open.length - 1];
    if (!link) throw new Error(`mitm: no open link to ${address}`);
    return link;
  }
}
