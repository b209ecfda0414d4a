import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/base/atomic-file.js';
import { HubError } from '../../src/base/errors.js';
import type { Random } from '../../src/base/random.js';
import type { Sealer } from '../../src/crypto/seal.js';

/**
 * The hub's ZigBee network identity and the coordinator backups, kept sealed in the driver's
 * data directory:
 *
 * - `network.sealed`: network key (16 random bytes), PAN id, extended PAN id and channel,
 *   generated once per hub from the injected Random and sealed under the storage key. Never a
 *   default or well-known key; never logged.
 * - `backups/coordinator-<time>.sealed`: zigbee-herdsman's coordinator backups (open coordinator
 *   backup JSON, which holds the network key in clear), sealed the moment herdsman writes them.
 * - `herdsman/` (0700): herdsman's own database.db; its clear coordinator_backup.json exists
 *   only while herdsman starts (so it can restore a replaced adapter) and right after it backs up,
 *   then it is sealed and deleted (docs/zigbee.md says how long and why).
 */

export const NETWORK_FILE = 'network.sealed';
const BACKUP_DIR = 'backups';
const HERDSMAN_DIR = 'herdsman';
export const NETWORK_CONTEXT = { purpose: 'zigbee.network', id: 'coordinator' } as const;
export const BACKUP_PURPOSE = 'zigbee.coordinator-backup';
/** zigbee-herdsman's example key (Zigbee2MQTT's old default): refused even if the dice produced it. */
const WELL_KNOWN_KEYS = [
  [1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 13],
  [0x5a, 0x69, 0x67, 0x42, 0x65, 0x65, 0x41, 0x6c, 0x6c, 0x69, 0x61, 0x6e, 0x63, 0x65, 0x30, 0x39],
];

export interface NetworkParameters {
  readonly networkKey: Uint8Array;
  readonly panId: number;
  /** 8 bytes, big-endian as herdsman takes it. */
  readonly extendedPanId: Uint8Array;
  readonly channel: number;
}

export interface DataPaths {
  readonly dataDir: string;
  readonly herdsmanDir: string;
  readonly backupDir: string;
  readonly databasePath: string;
  readonly databaseBackupPath: string;
  /** Where herdsman reads and writes its (clear) coordinator backup. */
  readonly herdsmanBackupPath: string;
}

export function dataPaths(dataDir: string): DataPaths {
  const herdsmanDir = join(dataDir, HERDSMAN_DIR);
  return {
    dataDir,
    herdsmanDir,
    backupDir: join(dataDir, BACKUP_DIR),
    databasePath: join(herdsmanDir, 'database.db'),
    databaseBackupPath: join(herdsmanDir, 'database.db.backup'),
    herdsmanBackupPath: join(herdsmanDir, 'coordinator_backup.json'),
  };
}

/** Creates the directories owner-only (0700), tightening them if they exist looser. */
export function prepareDirectories(paths: DataPaths): void {
  for (const dir of [paths.dataDir, paths.herdsmanDir, paths.backupDir]) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    } catch (e) {
      throw new HubError('zigbee.data-dir', `ZigBee driver: cannot prepare ${dir}: ${(e as Error).message}`, {
        hint: 'dataDir must be writable by the hub user',
      });
    }
  }
}

/** The hub's network parameters: read and opened, or generated, sealed and written once. */
export function loadOrCreateNetwork(
  paths: DataPaths,
  sealer: Sealer,
  random: Random,
  channel: number,
): { params: NetworkParameters; created: boolean } {
  const file = join(paths.dataDir, NETWORK_FILE);
  if (existsSync(file)) {
    const opened = sealer.open(readFileSync(file), NETWORK_CONTEXT).reveal();
    return { params: decodeNetwork(opened, file), created: false };
  }
  const params = generateNetwork(random, channel);
  writeFileAtomic(file, sealer.seal(encodeNetwork(params), NETWORK_CONTEXT), 0o600);
  return { params, created: true };
}

function generateNetwork(random: Random, channel: number): NetworkParameters {
  let networkKey: Uint8Array;
  do networkKey = random.bytes(16);
  while (networkKey.every((b) => b === 0) || WELL_KNOWN_KEYS.some((k) => k.every((b, i) => networkKey[i] === b)));
  let extendedPanId: Uint8Array;
  do extendedPanId = random.bytes(8);
  while (extendedPanId.every((b) => b === 0) || extendedPanId.every((b) => b === 0xff || b === 0xdd));
  // 0x0000 and 0xfff0..0xffff are reserved or mean "any".
  const panId = 1 + random.int(0xffef);
  return { networkKey, panId, extendedPanId, channel };
}

/** Layout: version 1 ‖ key (16) ‖ PAN id (u16 BE) ‖ extended PAN id (8) ‖ channel (u8). */
function encodeNetwork(p: NetworkParameters): Uint8Array {
  const out = Buffer.alloc(28);
  out[0] = 1;
  Buffer.from(p.networkKey).copy(out, 1);
  out.writeUInt16BE(p.panId, 17);
  Buffer.from(p.extendedPanId).copy(out, 19);
  out[27] = p.channel;
  return out;
}

function decodeNetwork(raw: Uint8Array, file: string): NetworkParameters {
  const b = Buffer.from(raw);
  if (b.length !== 28 || b[0] !== 1) {
    throw new HubError('zigbee.network-file', `ZigBee driver: ${file} has an unknown layout`, {
      hint: 'restore it from a backup of the data directory; a new network would orphan every joined lock',
    });
  }
  return {
    networkKey: new Uint8Array(b.subarray(1, 17)),
    panId: b.readUInt16BE(17),
    extendedPanId: new Uint8Array(b.subarray(19, 27)),
    channel: b[27]!,
  };
}

export interface SealedBackup {
  readonly id: string;
  readonly path: string;
}

/** Seals herdsman's clear backup into backups/, deletes the clear file, keeps the newest `keep`. */
export function sealHerdsmanBackup(
  paths: DataPaths,
  sealer: Sealer,
  now: number,
  keep: number,
): SealedBackup | undefined {
  if (!existsSync(paths.herdsmanBackupPath)) return undefined;
  const clear = readFileSync(paths.herdsmanBackupPath);
  const id = `coordinator-${new Date(now).toISOString().replace(/[:.]/g, '-')}`;
  const path = join(paths.backupDir, `${id}.sealed`);
  writeFileAtomic(path, sealer.seal(clear, { purpose: BACKUP_PURPOSE, id }), 0o600);
  clear.fill(0);
  removeClearBackup(paths);
  const all = listBackups(paths);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) unlinkSync(old.path);
  return { id, path };
}

export function removeClearBackup(paths: DataPaths): void {
  for (const p of [paths.herdsmanBackupPath, `${paths.herdsmanBackupPath}.tmp`]) {
    try {
      unlinkSync(p);
    } catch {}
  }
}

/** Sealed backups, oldest first (their ids sort by time). */
export function listBackups(paths: DataPaths): SealedBackup[] {
  if (!existsSync(paths.backupDir)) return [];
  return readdirSync(paths.backupDir)
    .filter((f) => f.startsWith('coordinator-') && f.endsWith('.sealed'))
    .sort()
    .map((f) => ({ id: f.slice(0, -'.sealed'.length), path: join(paths.backupDir, f) }));
}

/** The open coordinator backup JSON inside a sealed backup (holds the network key: never log it). */
export function openBackup(backup: SealedBackup, sealer: Sealer): Record<string, unknown> {
  const clear = sealer.open(readFileSync(backup.path), { purpose: BACKUP_PURPOSE, id: backup.id }).reveal();
  try {
    const parsed = JSON.parse(Buffer.from(clear).toString('utf8')) as unknown;
    if (!parsed || typeof parsed !== 'object') throw new Error('not an object');
    return parsed as Record<string, unknown>;
  } catch {
    throw new HubError('zigbee.backup', `ZigBee driver: sealed backup ${backup.id} is not a coordinator backup`, {
      hint: 'remove it from the backups directory; older ones remain',
    });
  }
}

/** The outgoing NWK frame counter recorded in a coordinator backup. */
export function backupFrameCounter(backup: Record<string, unknown>): number | undefined {
  const key = backup.network_key as { frame_counter?: unknown } | undefined;
  return typeof key?.frame_counter === 'number' ? key.frame_counter : undefined;
}

/**
 * Writes a backup where herdsman looks for it, with the frame counter moved `jump` forward: a
 * coordinator restored from it must never reuse a counter the locks have already seen, or they
 * drop its frames as replays (herdsman adds only 2500).
 */
export function stageBackupForHerdsman(paths: DataPaths, backup: Record<string, unknown>, jump: number): number {
  const counter = backupFrameCounter(backup);
  if (counter === undefined) {
    throw new HubError('zigbee.backup', 'ZigBee driver: the coordinator backup has no network_key.frame_counter');
  }
  const moved = Math.min(0xffffffff, counter + jump);
  const staged = { ...backup, network_key: { ...(backup.network_key as object), frame_counter: moved } };
  writeFileAtomic(paths.herdsmanBackupPath, JSON.stringify(staged), 0o600);
  return moved;
}
