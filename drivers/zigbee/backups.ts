import type { Controller } from 'zigbee-herdsman';
import type { TimerHandle } from '../../src/base/clock.js';
import { describeError, HubError } from '../../src/base/errors.js';
import type { Sealer } from '../../src/crypto/seal.js';
import type { Coordinator } from './coordinator.js';
import {
  backupFrameCounter,
  type DataPaths,
  listBackups,
  openBackup,
  removeClearBackup,
  type SealedBackup,
  sealHerdsmanBackup,
  stageBackupForHerdsman,
} from './network.js';

/**
 * Coordinator backups, the only way to put a replaced adapter back on the hub's network without
 * every lock joining again: taken on demand, when the network changes (formed or restored at a
 * start, a device joined or left) and on a schedule (backupIntervalMs after the newest one, so a
 * hub that restarts often is still backed up), sealed the moment herdsman writes them, and the
 * newest staged for herdsman before every start (frame counter moved forward) so a blank adapter
 * is restored by itself. A start that resumes the network as it was backed up seals nothing (the
 * stop before it sealed herdsman's own last backup). The files themselves are network.ts's.
 */

export interface BackupInfo {
  readonly id: string;
  /** The coordinator's NWK frame counter at the time of the backup. */
  readonly frameCounter: number | undefined;
}

export interface RestoreInfo {
  /** What herdsman did: 'restored' the backup onto a blank adapter, 'resumed' a configured one, or formed a new network ('reset'). */
  readonly result: 'restored' | 'resumed' | 'reset';
  readonly backupId: string;
  /** The frame counter the restored coordinator continues from (backup + frameCounterJump; herdsman adds 2500 more). */
  readonly frameCounter: number;
}

export interface BackupSettings {
  readonly backupIntervalMs: number;
  readonly backupsKept: number;
  readonly frameCounterJump: number;
}

/**
 * How long the network must have been quiet (no device joined or left) before the backup that
 * follows a change: one backup for a burst of joins, taken after their interviews and attaches
 * rather than competing with them on the coordinator's serial line.
 */
export const BACKUP_AFTER_CHANGE_MS = 15_000;

/** When a sealed backup was taken, from its id (`coordinator-2026-12-07T09-56-56-671Z`); undefined if the id says nothing. */
export function backupTakenAt(id: string): number | undefined {
  const m = /^coordinator-(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{3})Z$/.exec(id);
  if (!m) return undefined;
  const at = Date.parse(`${m[1]}T${m[2]}:${m[3]}:${m[4]}.${m[5]}Z`);
  return Number.isNaN(at) ? undefined : at;
}

export class Backups {
  readonly #coordinator: Coordinator;
  readonly #paths: DataPaths;
  readonly #sealer: Sealer;
  readonly #s: BackupSettings;
  #timer: TimerHandle | undefined;
  #soon: TimerHandle | undefined;

  constructor(coordinator: Coordinator, paths: DataPaths, sealer: Sealer, settings: BackupSettings) {
    this.#coordinator = coordinator;
    this.#paths = paths;
    this.#sealer = sealer;
    this.#s = settings;
  }

  ids(): string[] {
    return listBackups(this.#paths).map((b) => b.id);
  }

  /** The sealed backup to restore: `backupId`, or the newest. */
  choose(backupId: string | undefined): SealedBackup {
    const all = listBackups(this.#paths);
    const chosen = backupId ? all.find((b) => b.id === backupId) : all.at(-1);
    if (!chosen) {
      throw new HubError('zigbee.backup', `ZigBee: no sealed coordinator backup ${backupId ?? ''}`.trim(), {
        hint: `backups present: ${all.map((b) => b.id).join(', ') || 'none'}`,
      });
    }
    return chosen;
  }

  /**
   * Puts `backup` (by default the newest) where herdsman restores a blank adapter from, just
   * before it starts. Returns what was staged and the frame counter it continues from (0: none).
   */
  stage(backup?: SealedBackup): { staged: SealedBackup | undefined; frameCounter: number } {
    const staged = backup ?? listBackups(this.#paths).at(-1);
    let frameCounter = 0;
    if (staged) {
      frameCounter = stageBackupForHerdsman(this.#paths, openBackup(staged, this.#sealer), this.#s.frameCounterJump);
    } else {
      removeClearBackup(this.#paths);
    }
    return { staged, frameCounter };
  }

  /** Takes a backup now, when the bearer is ready. */
  async backup(): Promise<BackupInfo> {
    const controller = this.#coordinator.ready();
    if (!controller) {
      throw new HubError('zigbee.unavailable', 'ZigBee: cannot back up the coordinator, the adapter is not ready', {
        hint: 'retry once the bearer state is ready',
      });
    }
    return await this.take(controller);
  }

  /**
   * At a start, once herdsman runs: a backup when the network changed ('reset': formed anew;
   * 'restored' onto a blank adapter, its frame counter moved forward), when there is none, or when
   * the newest is older than backupIntervalMs; otherwise none (undefined).
   */
  async atStart(controller: Controller, result: 'restored' | 'resumed' | 'reset'): Promise<BackupInfo | undefined> {
    if (result === 'resumed' && this.#dueInMs() > 0) return undefined;
    return await this.take(controller);
  }

  /** Ms until the schedule wants the next backup: backupIntervalMs after the newest (0: now). */
  #dueInMs(): number {
    const newest = listBackups(this.#paths).at(-1);
    const at = newest && backupTakenAt(newest.id);
    if (at === undefined) return 0;
    return Math.max(0, at + this.#s.backupIntervalMs - this.#coordinator.clock.now());
  }

  /** Backs up the controller of `generation` backupIntervalMs after the newest backup, again and again, until it is torn down. */
  schedule(generation: number): void {
    const c = this.#coordinator;
    c.clock.clearTimeout(this.#timer);
    this.#timer = c.clock.setTimeout(() => {
      const controller = c.controller;
      if (generation !== c.generation || !controller) return;
      void this.take(controller)
        .catch((e) => c.herdsmanError('the scheduled backup', e))
        .finally(() => {
          if (generation === c.generation) this.schedule(generation);
        });
    }, this.#dueInMs() || this.#s.backupIntervalMs);
  }

  /**
   * The network changed (a device joined or left): a backup once it has been quiet for
   * BACKUP_AFTER_CHANGE_MS (one backup for a burst of joins, not competing with their interviews),
   * so a replaced adapter knows the devices (their trust-center link keys are in the backup).
   */
  changed(generation: number): void {
    const c = this.#coordinator;
    c.clock.clearTimeout(this.#soon);
    this.#soon = c.clock.setTimeout(() => {
      this.#soon = undefined;
      const controller = c.controller;
      if (generation !== c.generation || !controller) return;
      void this.take(controller)
        .then(() => this.schedule(generation))
        .catch((e) => c.herdsmanError('the backup after a network change', e));
    }, BACKUP_AFTER_CHANGE_MS);
  }

  cancel(): void {
    this.#coordinator.clock.clearTimeout(this.#timer);
    this.#coordinator.clock.clearTimeout(this.#soon);
    this.#soon = undefined;
  }

  async take(controller: Controller): Promise<BackupInfo> {
    const c = this.#coordinator;
    try {
      await c.bounded(controller.backup(), 60_000, 'the coordinator backup');
      const sealed = sealHerdsmanBackup(this.#paths, this.#sealer, c.clock.now(), this.#s.backupsKept);
      if (!sealed) throw new HubError('zigbee.backup', 'ZigBee: herdsman wrote no coordinator backup');
      c.counters.backups++;
      const frameCounter = backupFrameCounter(openBackup(sealed, this.#sealer));
      c.log.info({ backup: sealed.id, frameCounter }, 'ZigBee: coordinator backup sealed');
      return { id: sealed.id, frameCounter };
    } catch (e) {
      removeClearBackup(this.#paths);
      throw e instanceof HubError
        ? e
        : new HubError('zigbee.backup', `ZigBee: coordinator backup failed: ${c.clean(describeError(e))}`);
    }
  }

  /** Seals the backup herdsman writes when it stops. */
  sealFinal(): void {
    const c = this.#coordinator;
    try {
      sealHerdsmanBackup(this.#paths, this.#sealer, c.clock.now(), this.#s.backupsKept);
    } catch (e) {
      c.log.error({ err: e }, 'ZigBee: could not seal the final coordinator backup');
    } finally {
      removeClearBackup(this.#paths);
    }
  }

  /** A start failed: herdsman's clear copy must not stay on disk. */
  removeClear(): void {
    removeClearBackup(this.#paths);
  }
}
