import type { Connections } from './connections.js';
import type { LinkContext } from './link-context.js';
import type { LockReports } from './lock-reports.js';
import type { LockRequests } from './lock-requests.js';

/**
 * Ending a lock's binding: detach, which the hub completes only once the lock confirms it has
 * forgotten the hub (else the lock would refuse every other hub for good), and forget, for a lock
 * that is gone and cannot confirm anything.
 */
export class Detacher {
  readonly #ctx: LinkContext;
  readonly #requests: LockRequests;
  readonly #connections: Connections;
  readonly #reports: LockReports;

  constructor(ctx: LinkContext, deps: { requests: LockRequests; connections: Connections; reports: LockReports }) {
    this.#ctx = ctx;
    this.#requests = deps.requests;
    this.#connections = deps.connections;
    this.#reports = deps.reports;
  }

  /** An unreachable lock stays `detaching`, and the detach is tried again whenever the lock is heard. */
  async detach(lockId: string): Promise<{ detached: boolean; state: string }> {
    const rec = this.#ctx.record(lockId);
    if (rec.state !== 'detaching') this.#ctx.pairing.setState(lockId, 'detaching', this.#ctx.now());
    try {
      await this.#requests.send(lockId, { type: 'detach' }, { allowStates: ['detaching'] });
    } catch (e) {
      this.#ctx.log.warn({ lockId, err: e }, 'detach pending: the lock has not confirmed yet');
      return { detached: false, state: 'detaching' };
    }
    this.#ctx.pairing.remove(lockId);
    this.#reports.changed(lockId);
    this.#reports.security('lock.detached', lockId, {}, 'info');
    void this.#connections.drop(lockId);
    return { detached: true, state: 'detached' };
  }

  async forget(lockId: string): Promise<{ forgotten: true; leftBehind: string }> {
    this.#ctx.record(lockId);
    await this.#connections.drop(lockId);
    this.#ctx.pairing.remove(lockId);
    this.#reports.changed(lockId);
    this.#reports.security('lock.forgotten', lockId, { forced: true }, 'warn');
    return {
      forgotten: true,
      leftBehind:
        'the lock, if it still exists, keeps this hub as its bound hub and refuses every other hub until it is reset ' +
        'with a maintenance card and attached again; its events not yet collected stay on the lock',
    };
  }
}
