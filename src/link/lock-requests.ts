import { HubError } from '../base/errors.js';
import {
  FIRMWARE_OPERATIONS,
  type LockEvent,
  type LockState,
  type Operation,
  type OpResultFor,
} from '../contract/link-messages.js';
import type { Connections } from './connections.js';
import type { EventCollection } from './event-collection.js';
import type { LinkContext } from './link-context.js';
import type { RequestBody, RequestError } from './lock-client.js';
import type { LockReports } from './lock-reports.js';
import type { LockRecord } from './pairing.js';
import type { Quarantine } from './quarantine.js';

/** Requests that move the bolt or change the mode: never sent to a quarantined lock. */
const ACTUATING = new Set<Operation>(['open', 'lock', 'setMode']);
/** What a quarantined lock is not sent either: it may be a clone holding a stolen link key (the site PIN key). */
const SECRET = new Set<Operation>(['setPinKey']);
/** Nor firmware: a clone gets none until the real lock is back. */
const FIRMWARE = new Set<Operation>(FIRMWARE_OPERATIONS);
const refusedInQuarantine = (op: Operation) => ACTUATING.has(op) || SECRET.has(op) || FIRMWARE.has(op);

/**
 * One request to a lock on the hub's behalf: sent only to a lock whose pairing state allows it
 * (nothing that moves the bolt to a quarantined one), over its connection (opened if need be),
 * with its answer read for what it says about the lock: a lock that says it is no longer attached
 * is quarantined, a state that reports events not yet stored starts a collection.
 */
export class LockRequests {
  readonly #ctx: LinkContext;
  readonly #connections: Connections;
  readonly #quarantine: Quarantine;
  readonly #reports: LockReports;
  readonly #events: EventCollection;

  constructor(
    ctx: LinkContext,
    deps: { connections: Connections; quarantine: Quarantine; reports: LockReports; events: EventCollection },
  ) {
    this.#ctx = ctx;
    this.#connections = deps.connections;
    this.#quarantine = deps.quarantine;
    this.#reports = deps.reports;
    this.#events = deps.events;
  }

  async send<O extends Operation>(
    lockId: string,
    body: RequestBody<O>,
    opts: { allowStates?: LockRecord['state'][] } = {},
  ): Promise<OpResultFor<O>> {
    const pairing = this.#ctx.pairing;
    const rec = this.#ctx.record(lockId);
    const allowed = ['bound', 'quarantined', ...(opts.allowStates ?? [])];
    if (!allowed.includes(rec.state)) {
      throw new HubError('lock.not-bound', `lock ${lockId} is ${rec.state}, not bound`, {
        hint: rec.state === 'detaching' ? 'it is being detached' : 'attach it again',
      });
    }
    if (rec.state === 'quarantined' && refusedInQuarantine(body.type)) {
      // A quarantined lock may be a clone or a reset device: it is not told to open anything.
      throw new HubError('lock.quarantined', `lock ${lockId} is quarantined: ${rec.quarantineReason ?? ''}`, {
        hint: `see iqhub security; iqhub lock ${lockId} --check if the real lock is back, else detach or forget it and attach it again`,
      });
    }
    const conn = await this.#connections.connect(lockId);
    if (pairing.get(lockId)?.state === 'quarantined' && refusedInQuarantine(body.type)) {
      throw new HubError('lock.quarantined', `lock ${lockId} is quarantined`, { hint: 'see iqhub security' });
    }
    const r = await conn.client.request(body);
    if (!r.ok) {
      if (r.error.code === 'lock-error' && r.error.lockCode === 'not-attached' && rec.state !== 'detaching') {
        // Sealed in our own session, so authentic: the lock has been attached elsewhere or reset.
        this.#quarantine.impose(lockId, 'attached-elsewhere', 'the lock says it is no longer attached to this hub');
        await this.#connections.drop(lockId);
      }
      throw requestError(lockId, body.type, r.error);
    }
    const { state, events } = r.value as { state?: LockState; events?: LockEvent[] };
    if (state) {
      this.#reports.changed(lockId, state);
      // An open's answer carries the events it logged: stored and acknowledged without another exchange.
      if (state.lastSeq > (pairing.get(lockId)?.lastEventSeq ?? 0))
        this.#events.soon(lockId, { known: state, ...(events ? { carried: events } : {}) });
      else this.#events.noteState(lockId, state);
    }
    return r.value;
  }
}

function requestError(lockId: string, op: string, e: RequestError): HubError {
  if (e.code === 'lock-error') {
    return new HubError(`lock.${e.lockCode}`, `lock ${lockId} refused ${op}: ${e.lockCode}`);
  }
  return new HubError('lock.unreachable', `lock ${lockId} did not answer ${op}: ${e.message}`, {
    hint: 'it may be out of range or without power; iqhub lock shows when it was last seen',
  });
}
