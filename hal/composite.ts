import { HubError } from '../src/base/errors.js';
import { Listeners } from '../src/base/listeners.js';
import { err, ok, type Result } from '../src/base/result.js';
import type { Secret } from '../src/crypto/secret.js';
import type {
  Advertisement,
  Bearer,
  BearerError,
  BearerKind,
  BearerLink,
  BearerState,
  ConnectOptions,
  Unsubscribe,
} from './bearer.js';

/**
 * Several radios as one Bearer, for a hub with BLE and ZigBee locks (and, in simulation, the
 * in-memory radio): advertisements of all, each address prefixed with its radio (`ble/…`,
 * `zigbee/…`, `sim/…`) so the pairing store knows how to reach a lock again, and connect()
 * routed by that prefix. One radio failing changes only its own state: the composite is ready
 * while any member is, and `members()` gives each radio's own state for health.
 */
export class CompositeBearer implements Bearer {
  readonly kind: BearerKind = 'multi';
  readonly #members: readonly Bearer[];
  readonly #stateListeners = new Listeners<BearerState>();
  readonly #adListeners = new Listeners<Advertisement>();
  readonly #unsubs: Unsubscribe[] = [];

  constructor(members: readonly Bearer[]) {
    const kinds = members.map((m) => m.kind);
    if (members.length === 0 || new Set(kinds).size !== kinds.length || kinds.includes('multi')) {
      throw new Error(`a composite bearer needs distinct radios, got [${kinds.join(', ')}]`);
    }
    this.#members = members;
  }

  members(): readonly Bearer[] {
    return this.#members;
  }

  /** The member that owns a (prefixed) address, or undefined. */
  member(kind: BearerKind): Bearer | undefined {
    return this.#members.find((m) => m.kind === kind);
  }

  async start(): Promise<void> {
    // Started already (as every radio's own start, a second one changes nothing): subscribing again
    // would hand each listener every state change and advertisement twice.
    if (this.#unsubs.length > 0) return;
    for (const m of this.#members) {
      this.#unsubs.push(
        m.onStateChange(() => {
          const s = this.state();
          this.#stateListeners.emit(s);
        }),
        m.onAdvertisement((a) => {
          const prefixed = { ...a, address: `${m.kind}/${a.address}` };
          this.#adListeners.emit(prefixed);
        }),
      );
    }
    // Each radio starts on its own: a missing adapter resolves with an unavailable state, never blocks the others.
    await Promise.all(this.#members.map((m) => m.start()));
  }

  async stop(): Promise<void> {
    for (const u of this.#unsubs.splice(0)) u();
    await Promise.all(this.#members.map((m) => m.stop()));
  }

  state(): BearerState {
    const states = this.#members.map((m) => ({ kind: m.kind, s: m.state() }));
    if (states.some((x) => x.s.status === 'ready')) return { status: 'ready' };
    if (states.some((x) => x.s.status === 'starting')) return { status: 'starting' };
    if (states.every((x) => x.s.status === 'stopped')) return { status: 'stopped' };
    const reasons = states.map((x) => `${x.kind}: ${x.s.status === 'unavailable' ? x.s.reason : x.s.status}`);
    return { status: 'unavailable', reason: reasons.join('; ') };
  }

  onStateChange(listener: (state: BearerState) => void): Unsubscribe {
    return this.#stateListeners.add(listener);
  }

  onAdvertisement(listener: (advertisement: Advertisement) => void): Unsubscribe {
    return this.#adListeners.add(listener);
  }

  async connect(address: string, options: ConnectOptions): Promise<Result<BearerLink, BearerError>> {
    const slash = address.indexOf('/');
    const kind = slash > 0 ? address.slice(0, slash) : '';
    const m = this.#members.find((x) => x.kind === kind);
    if (!m) {
      return err({
        code: 'not-found',
        address,
        message: `no radio for address ${address} (this hub has ${this.#members.map((x) => x.kind).join(', ')})`,
      });
    }
    const r = await m.connect(address.slice(slash + 1), options);
    if (!r.ok) return r;
    return ok(prefixed(r.value, address));
  }

  /** Every radio that admits devices opens its window: which radio the lock is on is not known yet. */
  async openJoinWindow(durationMs: number): Promise<void> {
    await Promise.all(this.#members.map((m) => m.openJoinWindow?.(durationMs)));
  }

  /** Given to every radio that takes install codes (the code says which device; the others have none). */
  async addInstallCode(installCode: Secret): Promise<void> {
    const takers = this.#members.filter((m) => m.addInstallCode);
    if (takers.length === 0) {
      throw new HubError('attach.install-code', 'no radio of this hub takes install codes', {
        hint: 'install codes are for ZigBee locks: enable radios.zigbee, or attach without one',
      });
    }
    for (const m of takers) await m.addInstallCode?.(installCode);
  }

  async closeJoinWindow(): Promise<void> {
    await Promise.all(this.#members.map((m) => m.closeJoinWindow?.()));
  }
}

/** The member's link under its prefixed address (the link layer names the lock by it). */
function prefixed(link: BearerLink, address: string): BearerLink {
  return {
    address,
    maxFrameSize: link.maxFrameSize,
    send: (f) => link.send(f),
    onFrame: (l) => link.onFrame(l),
    onClose: (l) => link.onClose(l),
    close: () => link.close(),
    isOpen: () => link.isOpen(),
    linkQuality: () => link.linkQuality(),
  };
}
