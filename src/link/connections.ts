import type { BearerLink } from '../../hal/bearer.js';
import { HubError } from '../base/errors.js';
import type { EventCollection } from './event-collection.js';
import type { HeardLocks } from './heard-locks.js';
import type { LinkContext } from './link-context.js';
import { LockClient } from './lock-client.js';
import type { LockReports } from './lock-reports.js';
import type { AccessHandler } from './manager.js';
import type { LockRecord } from './pairing.js';
import type { Quarantine } from './quarantine.js';
import { connectBound, type LinkFailure, type SecureSession } from './session.js';

/**
 * What to do when the radio refused a connect as `busy` because all its links are open: the hub
 * keeps a session with every bound lock it hears, so the radio's limit must cover the site's locks.
 */
export const LINK_LIMIT_HINT =
  "the radio's link limit is reached: raise radios.zigbee.maxLinks (or radios.ble.maxConnections) to at least the number of locks on that radio and restart, or detach a lock (docs/configuration.md)";

/** A lock's session and the link it runs on. */
export interface Connection {
  client: LockClient;
  link: BearerLink;
}

interface Retry {
  failures: number;
  notBefore: number;
}

/**
 * The session with each bound lock: opened (KK with the stored key) once however many callers
 * want it, backed off after failures so a silent lock is not hammered, wired up when it opens
 * (rejected frames reported, the lock's access requests answered, its events collected) and
 * forgotten when its link closes. What a failed handshake means (out of range, an attach that
 * never completed, a suspect lock for the quarantine to count) is decided here, where it happens.
 */
export class Connections {
  readonly #ctx: LinkContext;
  readonly #heard: HeardLocks;
  readonly #reports: LockReports;
  readonly #quarantine: Quarantine;
  readonly #events: EventCollection;
  readonly #accessHandler: AccessHandler | undefined;
  readonly #conns = new Map<string, Connection>();
  readonly #connecting = new Map<string, Promise<Connection>>();
  readonly #retry = new Map<string, Retry>();

  constructor(
    ctx: LinkContext,
    deps: {
      heard: HeardLocks;
      reports: LockReports;
      quarantine: Quarantine;
      events: EventCollection;
      accessHandler: AccessHandler | undefined;
    },
  ) {
    this.#ctx = ctx;
    this.#heard = deps.heard;
    this.#reports = deps.reports;
    this.#quarantine = deps.quarantine;
    this.#events = deps.events;
    this.#accessHandler = deps.accessHandler;
  }

  get size(): number {
    return this.#conns.size;
  }

  get(lockId: string): Connection | undefined {
    return this.#conns.get(lockId);
  }

  has(lockId: string): boolean {
    return this.#conns.has(lockId);
  }

  /** Connected, or a connection attempt under way. */
  busy(lockId: string): boolean {
    return this.#conns.has(lockId) || this.#connecting.has(lockId);
  }

  /** Whether the back-off after the lock's last failed connection still holds. */
  backingOff(lockId: string): boolean {
    const retry = this.#retry.get(lockId);
    return retry !== undefined && this.#ctx.clock.monotonic() < retry.notBefore;
  }

  /** One connection attempt at a time per lock; callers share it. */
  connect(lockId: string): Promise<Connection> {
    const existing = this.#conns.get(lockId);
    if (existing && !existing.client.closed) return Promise.resolve(existing);
    let p = this.#connecting.get(lockId);
    if (!p) {
      p = this.#doConnect(lockId).finally(() => this.#connecting.delete(lockId));
      this.#connecting.set(lockId, p);
    }
    return p;
  }

  /** Takes a new session with the lock as its connection and wires it up. */
  adopt(lockId: string, link: BearerLink, session: SecureSession): Connection {
    const client = new LockClient(session, this.#ctx.clientOptions());
    const conn = { client, link };
    this.#conns.set(lockId, conn);
    session.onRejected((reason) => {
      this.#ctx.pairing.countFailures(lockId, 0, 1);
      this.#reports.security('link.frame-rejected', lockId, { reason }, 'warn');
    });
    const decide = this.#accessHandler;
    if (decide) {
      client.onAccessRequest((r) => {
        // Only a lock bound to this hub gets a decision; a quarantined one may be a clone.
        if (this.#ctx.pairing.get(lockId)?.state !== 'bound') {
          return { grant: false, reason: 'no-right', credentialId: null };
        }
        try {
          return decide(lockId, r.credential);
        } catch (e) {
          this.#ctx.log.error({ err: e, lockId }, 'access decision failed: refused');
          return { grant: false, reason: 'malformed', credentialId: null };
        }
      });
    }
    link.onClose(() => {
      if (this.#conns.get(lockId) === conn) this.#conns.delete(lockId);
      client.close();
    });
    this.#events.watch(lockId, conn);
    return conn;
  }

  async drop(lockId: string): Promise<void> {
    const c = this.#conns.get(lockId);
    this.#conns.delete(lockId);
    c?.client.close();
    await c?.link.close();
  }

  async closeAll(): Promise<void> {
    for (const c of this.#conns.values()) c.client.close();
    await Promise.allSettled([...this.#conns.values()].map((c) => c.link.close()));
    this.#conns.clear();
  }

  async #doConnect(lockId: string): Promise<Connection> {
    const ctx = this.#ctx;
    const rec = ctx.record(lockId);
    const address = this.#heard.get(lockId)?.address ?? rec.address;
    const c = await ctx.bearer.connect(address, { timeoutMs: ctx.opts.connectTimeoutMs });
    if (!c.ok) {
      this.#backoff(lockId);
      throw new HubError('lock.unreachable', `cannot connect to lock ${lockId}: ${c.error.message}`, {
        hint:
          c.error.code === 'busy' && c.error.limit !== undefined
            ? LINK_LIMIT_HINT
            : 'it may be out of range or without power',
      });
    }
    const s = await connectBound(c.value, ctx.hub(), rec.staticPublic, ctx.timing());
    if (!s.ok) {
      await c.value.close();
      this.#backoff(lockId);
      throw this.#handshakeFailed(rec, s.error);
    }
    this.#retry.delete(lockId);
    // The lock proved its key at this address: from now on it is the lock's address.
    if (address !== rec.address) ctx.pairing.seen(lockId, address, ctx.now());
    this.#quarantine.handshakeSucceeded(lockId);
    const conn = this.adopt(lockId, c.value, s.value);
    if (rec.state === 'attaching') {
      // The lock answered KK with our key: it did bind before we crashed. Finish the record.
      ctx.pairing.setState(lockId, 'bound', ctx.now());
      this.#reports.security('lock.attach-recovered', lockId, {}, 'info');
    }
    this.#quarantine.liftIfDisproved(rec);
    ctx.pairing.sessionOpened(lockId, ctx.now());
    return conn;
  }

  #handshakeFailed(rec: LockRecord, f: LinkFailure): HubError {
    const lockId = rec.lockId;
    if (f.code === 'timeout' && !f.refusal) {
      return new HubError('lock.unreachable', `lock ${lockId} did not answer: ${f.message}`);
    }
    this.#ctx.pairing.countFailures(lockId, 1, 0);
    if (rec.state === 'attaching' && f.refusal === 'not-attached') {
      // We crashed during attach before the lock bound: nothing was agreed, forget the half record.
      this.#ctx.pairing.remove(lockId);
      this.#reports.security('lock.attach-abandoned', lockId, {}, 'warn');
      return new HubError(
        'lock.unknown',
        `lock ${lockId} never completed attach; it was removed from the pairing store`,
      );
    }
    const reason = this.#quarantine.handshakeRefused(rec, f);
    return new HubError('lock.refused', `lock ${lockId}: ${reason}`, {
      hint: `see iqhub lock ${lockId}; if the lock was reset or replaced, detach or forget it and attach it again`,
    });
  }

  #backoff(lockId: string): void {
    const prev = this.#retry.get(lockId);
    const failures = (prev?.failures ?? 0) + 1;
    const opts = this.#ctx.opts;
    const cap = Math.min(opts.reconnectMaxMs, opts.reconnectBaseMs * 2 ** (failures - 1));
    // Full jitter: spread many locks' retries after a radio outage.
    this.#retry.set(lockId, { failures, notBefore: this.#ctx.clock.monotonic() + this.#ctx.random.float() * cap });
  }
}
