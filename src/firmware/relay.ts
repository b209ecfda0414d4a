import type { Clock } from '../base/clock.js';
import type { Component, ComponentStatus } from '../base/component.js';
import { HubError, isHubError } from '../base/errors.js';
import { Listeners, type Unsubscribe } from '../base/listeners.js';
import {
  FIRMWARE_BLOCK_LEN,
  type FirmwareOperation,
  type FirmwareVersion,
  type OpResultFor,
} from '../contract/link-messages.js';
import type { RequestBody } from '../link/lock-client.js';
import type { Logger } from '../log/logger.js';
import {
  compareVersions,
  equalBytes,
  type FirmwareImage,
  formatVersion,
  hex,
  verifyImage,
  verifyManifest,
} from './image.js';
import type { FirmwareTables, ImageRow, TransferRow, TransferState } from './transfers.js';

/**
 * The hub's firmware relay: it verifies an image (signature, size, SHA-256) before a byte of it
 * goes anywhere, keeps it, and streams it to each lock over the sealed link in blocks, one lock at
 * a time per radio by default. Every block is its own request, so the lock's events, access
 * requests and the hub's other requests keep flowing between blocks. The lock says at every step
 * which offset it holds, so a transfer resumes where the lock stopped — after a lost link, a hub
 * restart (transfers are in the store) or a lock's power cut — and never trusts the hub's count.
 */

/** What the relay needs of the link (LinkManager): requests to a bound lock and the radio it is on. */
export interface FirmwareLinkPort {
  request<O extends FirmwareOperation>(lockId: string, body: RequestBody<O>): Promise<OpResultFor<O>>;
  /** The radio a lock is reached over (bearer name); throws HubError `lock.unknown` for no such lock. */
  radioOf(lockId: string): string;
}

export interface FirmwareRelayOptions {
  /** Pinned vendor Ed25519 public keys. */
  vendorKeys: readonly Uint8Array[];
  maxImageBytes: number;
  /** Locks updated at once on one radio. */
  perRadio: number;
  /** Blocks in flight to one lock (each answered on its own). */
  window: number;
  /** Attempts of a transfer that loses its lock (unreachable) before it is marked failed. */
  attempts: number;
  /** Wait between two attempts, ms. */
  retryDelayMs: number;
}

export const DEFAULT_RELAY_OPTIONS: Omit<FirmwareRelayOptions, 'vendorKeys'> = {
  maxImageBytes: 4 * 1024 * 1024,
  perRadio: 1,
  window: 2,
  attempts: 5,
  retryDelayMs: 2000,
};

export interface FirmwareProgress {
  lockId: string;
  sha256: string;
  model: string;
  version: string;
  state: TransferState;
  sent: number;
  size: number;
  /** Why it failed (a HubError message), for state `failed`. */
  error: string | null;
  origin: string;
}

/** What the link says about a lock that waiting will not change: the transfer fails at once. */
const FINAL_LOCK_CODES: ReadonlySet<string> = new Set(['lock.unknown', 'lock.quarantined', 'lock.not-bound']);

/** Progress is reported (listeners, the store) at most this often per lock, and at every state change. */
const PROGRESS_EVERY_MS = 500;

export class FirmwareRelay implements Component {
  readonly name = 'firmware';
  readonly #tables: FirmwareTables;
  readonly #link: FirmwareLinkPort;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #o: FirmwareRelayOptions;
  readonly #progress = new Listeners<FirmwareProgress>();
  /** Transfers running now, by lock, with the radio they occupy. */
  readonly #running = new Map<string, { radio: string; done: Promise<void> }>();
  #stopped = true;

  constructor(deps: {
    tables: FirmwareTables;
    link: FirmwareLinkPort;
    clock: Clock;
    log: Logger;
    options: Partial<FirmwareRelayOptions> & { vendorKeys: readonly Uint8Array[] };
  }) {
    this.#tables = deps.tables;
    this.#link = deps.link;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#o = { ...DEFAULT_RELAY_OPTIONS, ...deps.options };
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#tables.requeueRunning(this.#now());
    this.#pump();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled([...this.#running.values()].map((r) => r.done));
  }

  status(): ComponentStatus {
    const all = this.#tables.transfers();
    const queued = all.filter((t) => t.state === 'queued').length;
    const failed = all.filter((t) => t.state === 'failed').length;
    return {
      name: this.name,
      state: this.#stopped ? 'stopped' : 'running',
      detail: `${this.#running.size} firmware transfers running, ${queued} queued, ${failed} failed`,
    };
  }

  onProgress(l: (p: FirmwareProgress) => void): Unsubscribe {
    return this.#progress.add(l);
  }

  /**
   * Verifies an image file and keeps it. Throws HubError `firmware.<reason>` (forged, truncated,
   * digest-mismatch, malformed, too-large) and keeps nothing when any check fails.
   */
  addImage(file: Uint8Array): ImageRow {
    const image = verifyImage(file, { vendorKeys: this.#o.vendorKeys, maxSize: this.#o.maxImageBytes });
    const row = imageRow(image);
    this.#tables.putImage(row, file, this.#now());
    this.#log.info(
      { sha256: row.sha256, model: row.model, version: row.version, size: row.size },
      'firmware image verified and kept',
    );
    return row;
  }

  images(): ImageRow[] {
    return this.#tables.images();
  }

  /**
   * Queues the image for each lock (all or none: every lock id must name a lock of this hub, and
   * none may be receiving another image). Returns at once; progress follows through onProgress.
   */
  push(sha256: string, lockIds: readonly string[], origin = 'cli'): FirmwareProgress[] {
    if (!this.#tables.imageRow(sha256))
      throw new HubError('firmware.unknown-image', `no verified firmware image ${sha256} is held by this hub`);
    const unique = [...new Set(lockIds)];
    for (const lockId of unique) {
      this.#link.radioOf(lockId);
      const t = this.#tables.transfer(lockId);
      if (t && (t.state === 'running' || t.state === 'queued') && t.sha256 !== sha256) {
        throw new HubError(
          'firmware.busy',
          `lock ${lockId} is receiving another firmware image (${t.sha256.slice(0, 12)}…)`,
        );
      }
    }
    const fresh = unique.filter((lockId) => {
      const t = this.#tables.transfer(lockId);
      return !(t && t.sha256 === sha256 && (t.state === 'running' || t.state === 'queued'));
    });
    this.#tables.queue(fresh, sha256, origin, this.#now());
    for (const lockId of fresh) this.#emit(lockId);
    this.#pump();
    return unique.map((lockId) => this.progress(lockId)).filter((p): p is FirmwareProgress => p !== undefined);
  }

  progress(lockId: string): FirmwareProgress | undefined {
    const t = this.#tables.transfer(lockId);
    if (!t) return undefined;
    return this.#toProgress(t);
  }

  transfers(): FirmwareProgress[] {
    return this.#tables.transfers().map((t) => this.#toProgress(t));
  }

  /** Resolves once no transfer is queued or running (tests, the demo, the bench). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running.values()].map((r) => r.done));
  }

  #toProgress(t: TransferRow): FirmwareProgress {
    const image = this.#tables.imageRow(t.sha256);
    return {
      lockId: t.lockId,
      sha256: t.sha256,
      model: image?.model ?? '',
      version: image?.version ?? '',
      state: t.state,
      sent: t.sent,
      size: image?.size ?? 0,
      error: t.error,
      origin: t.origin,
    };
  }

  #now(): number {
    return Math.floor(this.#clock.now());
  }

  #emit(lockId: string): void {
    const p = this.progress(lockId);
    if (p) this.#progress.emit(p);
  }

  /** Starts every queued transfer whose radio has room. */
  #pump(): void {
    if (this.#stopped) return;
    for (const t of this.#tables.transfers()) {
      if (t.state !== 'queued' || this.#running.has(t.lockId)) continue;
      let radio: string;
      try {
        radio = this.#link.radioOf(t.lockId);
      } catch (e) {
        this.#fail(t.lockId, e);
        continue;
      }
      const busy = [...this.#running.values()].filter((r) => r.radio === radio).length;
      if (busy >= this.#o.perRadio) continue;
      const done = this.#run(t)
        .catch((e: unknown) => {
          // The store refused a write (a full disk): the transfer stays as stored and resumes at the next start.
          this.#log.error({ err: e, lockId: t.lockId }, 'firmware transfer stopped by an internal fault');
        })
        .finally(() => {
          this.#running.delete(t.lockId);
          try {
            this.#pump();
          } catch (e) {
            this.#log.error({ err: e }, 'firmware: the next transfers could not be started');
          }
        });
      this.#running.set(t.lockId, { radio, done });
    }
  }

  #fail(lockId: string, e: unknown): void {
    const message = isHubError(e) ? e.message : (e as Error).message;
    this.#tables.setState(lockId, 'failed', this.#now(), message);
    this.#log.warn({ lockId, code: isHubError(e) ? e.code : undefined, error: message }, 'firmware transfer failed');
    this.#emit(lockId);
  }

  async #run(t: TransferRow): Promise<void> {
    const { lockId } = t;
    const stored = this.#tables.image(t.sha256);
    if (!stored) {
      this.#fail(lockId, new HubError('firmware.unknown-image', `the image ${t.sha256} is no longer held`));
      return;
    }
    let image: FirmwareImage;
    try {
      // Checked again from the store: nothing reaches a lock that does not pass today's checks.
      image = verifyImage(stored.file, { vendorKeys: this.#o.vendorKeys, maxSize: this.#o.maxImageBytes });
    } catch (e) {
      this.#fail(lockId, e);
      return;
    }
    this.#tables.setState(lockId, 'running', this.#now());
    this.#emit(lockId);
    for (let attempt = 1; ; attempt++) {
      if (this.#stopped) return;
      try {
        const version = await this.#transfer(lockId, image);
        this.#tables.setSent(lockId, image.manifest.size, this.#now());
        this.#tables.setState(lockId, 'installed', this.#now());
        this.#log.info({ lockId, version: formatVersion(version) }, 'firmware installed');
        this.#emit(lockId);
        return;
      } catch (e) {
        // A refusal (signature, model, version, the lock's own verdict) is final; a lost lock is retried.
        const refusal =
          isHubError(e) &&
          ((e.code.startsWith('firmware.') && e.code !== 'firmware.failed') || FINAL_LOCK_CODES.has(e.code));
        if (refusal || attempt >= this.#o.attempts || this.#stopped) {
          if (!this.#stopped) this.#fail(lockId, e);
          return;
        }
        this.#log.info({ lockId, attempt, error: (e as Error).message }, 'firmware transfer interrupted; resuming');
        await this.#clock.sleep(this.#o.retryDelayMs);
      }
    }
  }

  /** One attempt: asks the lock where it stands, begins or resumes, sends the rest, finishes. */
  async #transfer(lockId: string, image: FirmwareImage): Promise<FirmwareVersion> {
    const { manifest, manifestBytes, signature, payload } = image;
    const status = await this.#link.request(lockId, { type: 'fwStatus' });
    const staged = status.staged !== null && equalBytes(status.staged, manifest.sha256);
    if (!staged && compareVersions(status.version, manifest.version) === 0 && !manifest.downgradeAllowed) {
      // The lock already runs it: the answer to an earlier fwFinish was lost.
      return status.version;
    }
    // The lock's model and running version, checked here too: a refusal costs no transfer.
    verifyManifest(manifestBytes, signature, {
      vendorKeys: this.#o.vendorKeys,
      model: status.model,
      running: staged ? undefined : status.version,
    });
    let offset = status.offset;
    if (!staged) {
      const begun = await this.#link.request(lockId, { type: 'fwBegin', manifest: manifestBytes, signature });
      if (begun.outcome !== 'accepted') {
        throw new HubError(
          'firmware.lock-refused',
          `lock ${lockId} refused firmware ${formatVersion(manifest.version)}: ${begun.outcome}`,
        );
      }
      offset = begun.offset;
    }
    let reported = this.#clock.monotonic();
    let stalled = 0;
    while (offset < manifest.size) {
      if (this.#stopped) throw new HubError('firmware.failed', 'the hub is stopping');
      const sends: Promise<OpResultFor<'fwBlock'>>[] = [];
      for (let k = 0; k < this.#o.window; k++) {
        const at = offset + k * FIRMWARE_BLOCK_LEN;
        if (at >= manifest.size) break;
        const data = payload.subarray(at, Math.min(at + FIRMWARE_BLOCK_LEN, manifest.size));
        sends.push(this.#link.request(lockId, { type: 'fwBlock', offset: at, data }));
      }
      const answers = await Promise.all(sends);
      // A radio that answers from memory (the simulation) would otherwise chain every block in
      // microtasks and starve the daemon's timers (uplink reconnects, polls) for the whole image.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const next = Math.max(...answers.map((a) => a.offset));
      stalled = next > offset ? 0 : stalled + 1;
      if (stalled >= 3)
        throw new HubError('firmware.failed', `lock ${lockId} takes no more firmware blocks at offset ${offset}`);
      offset = Math.min(next, manifest.size);
      if (this.#clock.monotonic() - reported >= PROGRESS_EVERY_MS) {
        reported = this.#clock.monotonic();
        this.#tables.setSent(lockId, offset, this.#now());
        this.#emit(lockId);
      }
    }
    const finished = await this.#link.request(lockId, { type: 'fwFinish' });
    if (finished.outcome === 'installed') return finished.version;
    if (finished.outcome === 'incomplete')
      throw new HubError('firmware.failed', `lock ${lockId} holds less than the whole image`);
    throw new HubError(
      'firmware.lock-refused',
      `lock ${lockId} did not install firmware ${formatVersion(manifest.version)}: ${finished.outcome}; it still runs ${formatVersion(finished.version)}`,
    );
  }
}

export function imageRow(image: FirmwareImage): ImageRow {
  return {
    sha256: hex(image.manifest.sha256),
    model: image.manifest.model,
    version: formatVersion(image.manifest.version),
    size: image.manifest.size,
  };
}
