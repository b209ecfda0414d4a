import type { Advertisement, BearerKind } from '../../hal/bearer.js';
import { HubError } from '../base/errors.js';
import { Waiter } from '../base/waiter.js';
import type { Secret } from '../crypto/secret.js';
import { type Connections, LINK_LIMIT_HINT } from './connections.js';
import type { HeardLocks } from './heard-locks.js';
import type { LinkContext } from './link-context.js';
import type { LockReports } from './lock-reports.js';
import type { LockSummary } from './manager.js';
import { attachLock, type LinkFailure } from './session.js';

/**
 * Binding a new lock to this hub: find it in attach mode, run the XX handshake and the setup-code
 * proofs, and record it as bound only once the lock has confirmed it stored this hub's key. The
 * radio admits devices (a ZigBee join window) only while an attach runs, and a lock being attached
 * is left alone by the automatic reconnects.
 */
export class Attacher {
  readonly #ctx: LinkContext;
  readonly #heard: HeardLocks;
  readonly #connections: Connections;
  readonly #reports: LockReports;
  /** Locks an attach is running for: never auto-connected meanwhile (their record is half-written). */
  readonly #inProgress = new Set<string>();

  constructor(ctx: LinkContext, deps: { heard: HeardLocks; connections: Connections; reports: LockReports }) {
    this.#ctx = ctx;
    this.#heard = deps.heard;
    this.#connections = deps.connections;
    this.#reports = deps.reports;
  }

  inProgress(deviceId: string): boolean {
    return this.#inProgress.has(deviceId);
  }

  async attach(deviceId: string, setupCode: Secret, timeoutMs: number, installCode?: Secret): Promise<LockSummary> {
    const existing = this.#ctx.pairing.get(deviceId);
    if (existing && existing.state !== 'attaching') {
      throw new HubError(
        'attach.already-attached',
        `lock ${deviceId} is already in the pairing store (${existing.state})`,
        {
          hint: `detach it first (iqhub detach ${deviceId}), or iqhub forget ${deviceId} --force if it was destroyed`,
        },
      );
    }
    if (this.#inProgress.has(deviceId)) {
      throw new HubError('attach.in-progress', `an attach of ${deviceId} is already running`);
    }
    this.#inProgress.add(deviceId);
    try {
      return await this.#attach(deviceId, setupCode, timeoutMs, installCode);
    } finally {
      this.#inProgress.delete(deviceId);
      // Joining is open only while an attach runs: closed as soon as the last one ends.
      if (this.#inProgress.size === 0) await this.#ctx.bearer.closeJoinWindow?.();
    }
  }

  async #attach(deviceId: string, setupCode: Secret, timeoutMs: number, installCode?: Secret): Promise<LockSummary> {
    const { bearer, pairing } = this.#ctx;
    if (installCode) {
      if (!bearer.addInstallCode) {
        throw new HubError('attach.install-code', 'this radio does not take install codes', {
          hint: 'install codes are for ZigBee locks; attach this lock without one',
        });
      }
      await bearer.addInstallCode(installCode);
    }
    // A radio that admits devices to its network (ZigBee) admits them only during an attach.
    await bearer.openJoinWindow?.(timeoutMs);
    const ad = await this.#findInAttachMode(deviceId, timeoutMs);
    const connected = await bearer.connect(ad.address, { timeoutMs: this.#ctx.opts.connectTimeoutMs });
    if (!connected.ok) {
      throw new HubError('attach.unreachable', `cannot connect to lock ${deviceId}: ${connected.error.message}`, {
        hint:
          connected.error.code === 'busy' && connected.error.limit !== undefined
            ? LINK_LIMIT_HINT
            : 'move closer to the lock, or check the radio with iqhub status',
      });
    }
    const link = connected.value;
    const r = await attachLock(
      link,
      {
        hub: this.#ctx.hub(),
        deviceId,
        setupCode,
        beforeCommit: (key) =>
          pairing.bind({
            lockId: deviceId,
            bearer: radioOf(bearer.kind, ad.address),
            address: ad.address,
            staticPublic: key,
            state: 'attaching',
            now: this.#ctx.now(),
          }),
      },
      this.#ctx.timing(),
    );
    if (!r.ok) {
      // A row left `attaching` (the lock may or may not have bound) is settled at the next connection.
      await link.close();
      throw this.#attachError(deviceId, r.error);
    }
    pairing.setState(deviceId, 'bound', this.#ctx.now());
    pairing.sessionOpened(deviceId, this.#ctx.now());
    this.#reports.changed(deviceId);
    this.#reports.security('lock.attached', deviceId, { address: ad.address }, 'info');
    this.#connections.adopt(deviceId, r.value.session.link, r.value.session);
    return this.#reports.summary(this.#ctx.record(deviceId));
  }

  async #findInAttachMode(deviceId: string, timeoutMs: number): Promise<Advertisement> {
    const known = this.#heard.get(deviceId);
    if (known?.attachMode && this.#ctx.now() - known.seenAt < 5_000) return known;
    const ads = new Waiter<Advertisement, 'timeout'>(this.#ctx.clock, (deliver) => this.#heard.onHeard(deliver));
    const found = await ads.wait((a) => (a.deviceId === deviceId && a.attachMode ? a : undefined), {
      ms: timeoutMs,
      error: 'timeout',
    }).result;
    if (found.ok) return found.value;
    if (this.#heard.get(deviceId)) {
      throw new HubError('attach.not-in-attach-mode', `lock ${deviceId} is in range but not in attach mode`, {
        hint: 'present the maintenance card to the lock, then attach within a minute',
      });
    }
    throw new HubError('attach.not-found', `no lock ${deviceId} heard within ${Math.round(timeoutMs / 1000)} s`, {
      hint: 'check the device id on the sticker, that the lock has power, and that it is in range',
    });
  }

  #attachError(deviceId: string, f: LinkFailure): HubError {
    switch (f.code) {
      case 'proof-mismatch':
        this.#reports.security('attach.proof-mismatch', deviceId, {}, 'warn');
        return new HubError('attach.wrong-setup-code', `lock ${deviceId} did not prove the setup code`, {
          hint: "check the setup code on the lock's sticker; if it is right, this device is not that lock",
        });
      case 'refused':
        if (f.refusal === 'not-in-attach-mode') {
          return new HubError('attach.not-in-attach-mode', `lock ${deviceId} is not in attach mode`, {
            hint: 'present the maintenance card to the lock, then attach within a minute',
          });
        }
        this.#reports.security('attach.refused', deviceId, { refusal: f.refusal ?? null }, 'warn');
        return new HubError('attach.refused', `lock ${deviceId} refused to attach: ${f.refusal ?? f.message}`);
      default:
        return new HubError('attach.failed', `attaching lock ${deviceId} failed: ${f.message}`, {
          hint: 'stay in range of the lock and try again while it is in attach mode',
        });
    }
  }
}

/** The radio a lock is reached over: the bearer's, or, on several radios (hal/composite.ts), its address prefix. */
function radioOf(kind: BearerKind, address: string): BearerKind {
  if (kind !== 'multi') return kind;
  const prefix = address.slice(0, Math.max(0, address.indexOf('/')));
  return prefix === 'ble' || prefix === 'zigbee' || prefix === 'sim' ? prefix : kind;
}
