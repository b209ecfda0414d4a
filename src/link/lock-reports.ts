import type { Unsubscribe } from '../base/listeners.js';
import { Listeners } from '../base/listeners.js';
import type { LockState } from '../contract/link-messages.js';
import type { LinkContext } from './link-context.js';
import type { LockChange, LockSummary, SecurityEvent } from './manager.js';
import type { LockRecord } from './pairing.js';

/**
 * What the hub tells about its locks: security events (stored, logged and passed to listeners such
 * as the uplink), changes of a lock's pairing or reported state, and the summary without key
 * material that the CLI and the uplink show. Every part reports through here, so a report reaches
 * the store, the log and the listeners alike.
 */
export class LockReports {
  readonly #ctx: LinkContext;
  readonly #connected: (lockId: string) => boolean;
  readonly #securityListeners = new Listeners<SecurityEvent>();
  readonly #changeListeners = new Listeners<LockChange>();

  constructor(ctx: LinkContext, connected: (lockId: string) => boolean) {
    this.#ctx = ctx;
    this.#connected = connected;
  }

  onSecurityEvent(l: (e: SecurityEvent) => void): Unsubscribe {
    return this.#securityListeners.add(l);
  }

  onLockChange(l: (change: LockChange) => void): Unsubscribe {
    return this.#changeListeners.add(l);
  }

  security(
    kind: string,
    lockId: string | null,
    detail: Record<string, unknown>,
    level: 'info' | 'warn' | 'error',
  ): void {
    this.#ctx.pairing.securityEvent(kind, lockId, detail, this.#ctx.now());
    this.#ctx.log[level]({ lockId, kind, ...detail }, `security: ${kind}`);
    this.#securityListeners.emit({ kind, lockId, detail });
  }

  /** The lock's record changed, or it reported `state`. */
  changed(lockId: string, state?: LockState): void {
    if (this.#changeListeners.size === 0) return;
    const rec = this.#ctx.pairing.get(lockId);
    const change: LockChange = { lockId, summary: rec && this.summary(rec), ...(state ? { state } : {}) };
    this.#changeListeners.emit(change);
  }

  summary(r: LockRecord): LockSummary {
    return {
      lockId: r.lockId,
      bearer: r.bearer,
      address: r.address,
      state: r.state,
      quarantineReason: r.quarantineReason,
      connected: this.#connected(r.lockId),
      lastSeen: r.lastSeen === null ? null : new Date(r.lastSeen).toISOString(),
      lastEventSeq: r.lastEventSeq,
      sessions: r.sessions,
      failedHandshakes: r.failedHandshakes,
      rejectedFrames: r.rejectedFrames,
      keyFingerprint: Buffer.from(r.staticPublic.subarray(0, 8)).toString('hex'),
    };
  }
}
