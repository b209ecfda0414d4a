import type { LinkContext } from './link-context.js';
import type { LockReports } from './lock-reports.js';
import type { LockRecord } from './pairing.js';
import type { LinkFailure } from './session.js';

/**
 * Why a lock was quarantined. A later KK handshake with the stored key proves the lock holds its key
 * and is bound to this hub again, which lifts every quarantine but one: a lock whose event numbering
 * went backwards may be a clone that holds the key, and needs a person (detach or forget, attach).
 */
export type QuarantineCode = 'impostor' | 'refused' | 'not-attached' | 'sequence-backwards' | 'attached-elsewhere';
const LIFTABLE: QuarantineCode[] = ['impostor', 'refused', 'not-attached', 'attached-elsewhere'];
const quarantineCode = (reason: string | null) => (reason?.split(':')[0] ?? '') as QuarantineCode;

/**
 * A lock that contradicts the pairing store (another key, refusals, its events numbered backwards,
 * "not attached" in our own session) may be a clone or a reset device: it is quarantined, so it is
 * never told to open, until it proves itself again or a person steps in. One place decides what
 * counts, when it is enough, and what lifts it, whichever part noticed.
 */
export class Quarantine {
  readonly #ctx: LinkContext;
  readonly #reports: LockReports;
  /** Consecutive key mismatches per lock (reset by a good handshake): the quarantine trigger. */
  readonly #mismatches = new Map<string, number>();

  constructor(ctx: LinkContext, reports: LockReports) {
    this.#ctx = ctx;
    this.#reports = reports;
  }

  impose(lockId: string, code: QuarantineCode, why: string): void {
    const rec = this.#ctx.pairing.get(lockId);
    if (!rec || rec.state === 'quarantined') return;
    const reason = `${code}: ${why}`;
    this.#ctx.pairing.setState(lockId, 'quarantined', this.#ctx.now(), reason);
    this.#reports.security('lock.quarantined', lockId, { reason }, 'error');
    this.#reports.changed(lockId);
  }

  /**
   * A handshake the lock failed or refused: reported, and counted toward a quarantine. Returns what
   * it means, for the error the caller gets.
   */
  handshakeRefused(rec: LockRecord, f: LinkFailure): string {
    const lockId = rec.lockId;
    const [code, reason]: [QuarantineCode, string] =
      f.refusal === 'not-attached'
        ? ['not-attached', 'the lock says it is not attached to any hub (it was reset, or a device imitates it)']
        : f.code === 'handshake-failed'
          ? [
              'impostor',
              'the device does not hold the key this lock was attached with (an impostor, or a replaced lock)',
            ]
          : ['refused', 'the lock refused this hub (bound to another hub, or a device imitates it)'];
    this.#reports.security('link.handshake-refused', lockId, { failure: f.code, refusal: f.refusal ?? null }, 'warn');
    // Refusals are plaintext and forgeable: like key mismatches they count, and only repeated ones
    // quarantine. A lock being detached is not quarantined: its refusal may be the detach itself.
    const failures = (this.#mismatches.get(lockId) ?? 0) + 1;
    this.#mismatches.set(lockId, failures);
    if (failures >= this.#ctx.opts.quarantineAfter && rec.state !== 'detaching') this.impose(lockId, code, reason);
    return reason;
  }

  /** A KK handshake with the stored key succeeded: the count of mismatches starts again. */
  handshakeSucceeded(lockId: string): void {
    this.#mismatches.delete(lockId);
  }

  /** After that handshake (`rec` as it was before it): a quarantine the handshake disproves is lifted. */
  liftIfDisproved(rec: LockRecord): void {
    if (rec.state !== 'quarantined' || !LIFTABLE.includes(quarantineCode(rec.quarantineReason))) return;
    this.#ctx.pairing.setState(rec.lockId, 'bound', this.#ctx.now());
    this.#reports.security('lock.quarantine-lifted', rec.lockId, { was: rec.quarantineReason }, 'info');
  }
}
