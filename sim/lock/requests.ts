import type { Clock } from '../../src/base/clock.js';
import { encodeMessage } from '../../src/contract/link-codec.js';
import {
  type LockErrorCode,
  type LockMode,
  MAX_EVENTS_PER_BATCH,
  type OfflineItem,
  type Request,
  type Response,
} from '../../src/contract/link-messages.js';
import { offlineListDigest } from '../../src/contract/link-offline.js';
import { TAGLEN } from '../../src/link/noise.js';
import { FRAME_HEADER_LEN } from '../../src/link/transport.js';
import type { LockFirmware } from './firmware.js';
import type { SessionContext } from './hub-sessions.js';
import type { LockMemory } from './memory.js';
import type { Relock } from './relock.js';
import type { HeldPinKey, OfflineAccessEntry } from './storage.js';

/**
 * What the lock does with each request from its hub: the bolt, the modes, the event log, the
 * clock, the offline-access list and detach, each change saved before the answer (a save that
 * fails is answered `internal` and changes nothing). The policies these follow are documented on
 * SimLock (lock.ts); this is where they are carried out.
 */

/** Below this battery level the motor is not driven. */
export const CRITICAL_BATTERY_PERCENT = 2;
/** What sealing adds to a payload on the air. */
const FRAME_OVERHEAD = FRAME_HEADER_LEN + TAGLEN;

export interface LockRequestsOptions {
  readonly memory: LockMemory;
  readonly relock: Relock;
  readonly clock: Clock;
  readonly maxOfflineEntries: number;
  readonly firmware: LockFirmware;
}

export class LockRequests {
  readonly #o: LockRequestsOptions;

  constructor(options: LockRequestsOptions) {
    this.#o = options;
  }

  execute(context: SessionContext, request: Request): Response {
    const { memory, relock } = this.#o;
    const p = memory.running();
    const id = request.id;
    const fail = (code: LockErrorCode): Response => ({ type: 'error', id, code });
    if (context.hub !== p.boundHub) {
      // This hub was forgotten (detach) or replaced (another hub attached in attach mode).
      return request.type === 'detach' ? { type: 'ok', id, result: { op: 'detach' } } : fail('not-attached');
    }
    try {
      // The hub's acknowledgement riding on this request (docs/link-protocol.md "Frame budget"):
      // applied before the request itself, under the same bound as ackEvents. One beyond the newest
      // event the lock has logged refuses the whole request, changing nothing.
      if (request.ack !== undefined) {
        if (request.ack >= p.nextSeq) return fail('bad-request');
        this.#forget(request.ack);
      }
      switch (request.type) {
        case 'open':
          return this.#open(request.id, request.durationMs);
        case 'lock':
          memory.change((d) => {
            d.bolt = 'locked';
            if (d.mode === 'office') d.mode = 'normal';
          });
          relock.cancel();
          return this.#okState(id, 'lock');
        case 'setMode':
          return this.#setMode(id, request.mode);
        case 'getState':
          return this.#okState(id, 'getState');
        case 'getEvents':
          return this.#getEvents(context, id, request.sinceSeq);
        case 'ackEvents': {
          if (request.uptoSeq >= p.nextSeq) return fail('bad-request');
          this.#forget(request.uptoSeq);
          return { type: 'ok', id, result: { op: 'ackEvents' } };
        }
        case 'setTime':
          memory.change((d) => {
            d.clockOffsetMs = request.unixMs - Math.floor(this.#o.clock.now());
          });
          return { type: 'ok', id, result: { op: 'setTime' } };
        case 'setOffline':
          return this.#setOffline(id, request);
        case 'setPinKey':
          return this.#setPinKey(id, request);
        case 'detach':
          // Forgotten and saved first: the ok is the lock's confirmation. The site's PIN keys go
          // with the site: a detached lock's keypad is off until its next hub installs a key.
          memory.change((d) => {
            d.formerHub = d.boundHub;
            d.boundHub = null;
            d.offlineAccess = [];
            d.pinKeys = [];
          });
          return { type: 'ok', id, result: { op: 'detach' } };
        default:
          return this.#o.firmware.execute(id, request);
      }
    } catch {
      // The flash refused the write: nothing changed, and the hub is told so.
      return fail('internal');
    }
  }

  #setOffline(id: number, request: Extract<Request, { type: 'setOffline' }>): Response {
    const { memory, maxOfflineEntries } = this.#o;
    const next = new Map<string, OfflineAccessEntry>(
      request.reset ? [] : memory.running().offlineAccess.map((e) => [e.credentialId, e]),
    );
    for (const credentialId of request.remove) next.delete(credentialId);
    for (const item of request.upsert) next.set(item.credentialId, toEntry(item));
    // Over capacity: refused whole; the hub sends its list by priority, so this is its mistake.
    if (next.size > maxOfflineEntries) return { type: 'error', id, code: 'busy' };
    const held = [...next.values()];
    memory.change((d) => {
      d.offlineAccess = held;
    });
    return {
      type: 'ok',
      id,
      result: {
        op: 'setOffline',
        held: held.length,
        capacity: maxOfflineEntries,
        digest: offlineListDigest(held.map(fromEntry)),
      },
    };
  }

  /**
   * Installs the site PIN key (only ever reached through a session with the bound hub: the
   * transport frame opened under that session's keys). Refused with `bad-request`, changing
   * nothing: a version below the current one (a downgrade), or the current version with another
   * key (a version names one key). A version one above the current keeps the current as the
   * previous key until `previousUntil` (lock time; 0 or past: not kept); any older key is dropped.
   * The same version and key again only moves the previous key's end (0 drops it).
   */
  #setPinKey(id: number, request: Extract<Request, { type: 'setPinKey' }>): Response {
    const { memory } = this.#o;
    const held = memory.running().pinKeys;
    const current = held[0];
    const key = Buffer.from(request.key).toString('hex');
    if (current && request.version < current.version) return { type: 'error', id, code: 'bad-request' };
    if (current && request.version === current.version && current.key !== key) {
      return { type: 'error', id, code: 'bad-request' };
    }
    const now = memory.now();
    const keep = request.previousUntil > now;
    let previous: HeldPinKey | undefined;
    if (current && request.version === current.version) previous = held[1];
    else if (current && request.version === current.version + 1) previous = { ...current };
    const next: HeldPinKey[] = [{ version: request.version, key, until: null }];
    if (previous && keep) next.push({ ...previous, until: request.previousUntil });
    memory.change((d) => {
      d.pinKeys = next;
    });
    return { type: 'ok', id, result: { op: 'setPinKey', version: request.version, previous: next[1]?.version ?? 0 } };
  }

  /** The hub holds the events up to `uptoSeq` durably: the log forgets them (saved first). */
  #forget(uptoSeq: number): void {
    const { memory } = this.#o;
    if (!memory.running().events.some((e) => e.seq <= uptoSeq)) return;
    memory.change((d) => {
      d.events = d.events.filter((e) => e.seq > uptoSeq);
    });
  }

  #okState(id: number, op: 'lock' | 'setMode' | 'getState'): Response {
    return { type: 'ok', id, result: { op, state: this.#o.memory.lockState() } };
  }

  #open(id: number, durationMs: number): Response {
    const { memory, relock } = this.#o;
    const p = memory.running();
    if (p.mode === 'locked') {
      memory.change((_d, emit) => emit({ type: 'denied', reason: 'locked-mode', credentialId: null }));
      return { type: 'error', id, code: 'bad-request' };
    }
    if (p.batteryPercent < CRITICAL_BATTERY_PERCENT) return { type: 'error', id, code: 'battery-critical' };
    memory.change((d, emit) => {
      d.bolt = 'unlocked';
      emit({ type: 'opened', by: 'remote', credentialId: null });
    });
    if (p.mode === 'normal') relock.arm(durationMs);
    // The events this open logged go in the answer (HubSessions fills them in), not in a push.
    return { type: 'ok', id, result: { op: 'open', state: memory.lockState(), events: [] } };
  }

  #setMode(id: number, mode: LockMode): Response {
    const { memory, relock } = this.#o;
    const previous = memory.running().mode;
    memory.change((d) => {
      d.mode = mode;
      if (mode === 'office') d.bolt = 'unlocked';
      else if (mode === 'locked' || previous === 'office') d.bolt = 'locked';
    });
    // Normal mode keeps a pending relock; office and locked modes make it moot.
    if (mode !== 'normal') relock.cancel();
    return this.#okState(id, 'setMode');
  }

  #getEvents(context: SessionContext, id: number, sinceSeq: number): Response {
    const after = this.#o.memory.running().events.filter((e) => e.seq > sinceSeq);
    const budget = context.session.link.maxFrameSize - FRAME_OVERHEAD;
    const batch = after.slice(0, MAX_EVENTS_PER_BATCH);
    const encode = (more: boolean): Response => ({
      type: 'ok',
      id,
      result: { op: 'getEvents', events: [...batch], more },
    });
    // Fewer events when a full batch would not fit one frame of this link: the hub asks again.
    while (batch.length > 1 && encodeMessage(encode(true)).length > budget) batch.pop();
    return encode(after.length > batch.length);
  }
}

function fromEntry(e: OfflineAccessEntry): OfflineItem {
  return {
    kind: e.kind,
    credentialId: e.credentialId,
    digest: new Uint8Array(Buffer.from(e.digest, 'hex')),
    windows: e.windows.map((w) => ({ from: w.from, until: w.until })),
  };
}

function toEntry(item: OfflineItem): OfflineAccessEntry {
  return {
    kind: item.kind,
    credentialId: item.credentialId,
    digest: Buffer.from(item.digest).toString('hex'),
    windows: item.windows.map((w) => ({ from: w.from, until: w.until })),
  };
}
