import { closeSync, constants, fsyncSync, linkSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fsyncDir } from '../base/atomic-file.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { readPrivateFile } from './private-file.js';
import { Secret } from './secret.js';

export const STORAGE_KEY_BYTES = 32;
export const CREDENTIAL_NAME = 'storage-key';

export interface StorageKeySource {
  key: Secret;
  /** Where the key came from, for `iqhub status` (a path, never the key). */
  origin: 'systemd-credential' | 'key-file' | 'key-file-created';
  path: string;
}

/**
 * Find the hub storage key: a systemd credential ($CREDENTIALS_DIRECTORY/storage-key, from
 * LoadCredential= or LoadCredentialEncrypted=), else the configured key file, else
 * `<dataDir>/storage-key`, created on first run with mode 0600.
 *
 * A key file readable or writable by group or others is refused: a copy of the key turns every
 * sealed secret in the database into plaintext.
 */
export function loadStorageKey(opts: StorageKeyOptions): StorageKeySource {
  return findStorageKey(opts) ?? createStorageKey(defaultKeyPath(opts.dataDir), opts.random);
}

export interface StorageKeyOptions {
  dataDir: string;
  keyFile: string | null;
  credentialsDirectory: string | undefined;
  random: Random;
}

/** Where the key file is made on a first start: `<dataDir>/storage-key`. */
export function defaultKeyPath(dataDir: string): string {
  return join(dataDir, CREDENTIAL_NAME);
}

/**
 * The storage key that exists (credential, configured file, default file), or undefined when there
 * is none yet; a configured key file that does not exist is refused. Makes nothing: whether a
 * new key may be made is the store's identity's decision (src/crypto/store-identity.ts).
 */
export function findStorageKey(opts: StorageKeyOptions): StorageKeySource | undefined {
  if (opts.credentialsDirectory) {
    const path = join(opts.credentialsDirectory, CREDENTIAL_NAME);
    const key = readKey(path, false);
    if (key) return { key, origin: 'systemd-credential', path };
    // CREDENTIALS_DIRECTORY is set for other credentials too; without ours fall back to the file.
  }
  const path = opts.keyFile ?? defaultKeyPath(opts.dataDir);
  const existing = readKey(path, true);
  if (existing) return { key: existing, origin: 'key-file', path };
  if (opts.keyFile) {
    throw new HubError('storage-key.missing', `storage key file ${path} does not exist`, {
      hint: 'create it (32 random bytes, mode 0600) or remove secrets.storageKeyFile to use the default',
    });
  }
  return undefined;
}

/** A new key in a new 0600 file at `path` (a first start). */
export function createStorageKey(path: string, random: Random): StorageKeySource {
  return { key: createKeyFile(path, random), origin: 'key-file-created', path };
}

/**
 * A first start's key waits as `<key file>.pending` until its new store is stamped with it, and is
 * then renamed into place (commitPendingKey): a first start cut short leaves a pending key, which
 * the next start takes up, never a key beside no store (which would be refused as a lost store).
 */
export function pendingKeyPath(dataDir: string): string {
  return `${defaultKeyPath(dataDir)}.pending`;
}

/** The pending key of a first start cut short, if there is one. */
export function readPendingKey(dataDir: string): StorageKeySource | undefined {
  const path = pendingKeyPath(dataDir);
  const key = readKey(path, true);
  return key && { key, origin: 'key-file-created', path };
}

/** The pending key becomes the key file; from now on the store and its key exist together. */
export function commitPendingKey(dataDir: string): StorageKeySource['path'] {
  const path = defaultKeyPath(dataDir);
  renameSync(pendingKeyPath(dataDir), path);
  fsyncDir(dataDir);
  return path;
}

/** Read a key file; undefined if it does not exist. */
function readKey(path: string, checkMode: boolean): Secret | undefined {
  const raw = readPrivateFile(path, { codePrefix: 'storage-key', what: 'storage key file', checkMode, maxBytes: 128 });
  return raw && parseKey(raw, path);
}

/** Accepts 32 raw bytes, or 64 hex digits with an optional trailing newline. */
function parseKey(raw: Buffer, path: string): Secret {
  if (raw.length === STORAGE_KEY_BYTES) return new Secret(raw);
  const text = raw.toString('latin1').replace(/\r?\n$/, '');
  if (/^[0-9a-fA-F]{64}$/.test(text)) return new Secret(Buffer.from(text, 'hex'));
  raw.fill(0);
  throw new HubError(
    'storage-key.format',
    `storage key ${path} has ${raw.length} bytes; expected 32 raw bytes or 64 hex digits`,
    {
      hint: 'generate one with `head -c 32 /dev/urandom > FILE && chmod 600 FILE`',
    },
  );
}

function createKeyFile(path: string, random: Random): Secret {
  const key = random.bytes(STORAGE_KEY_BYTES);
  // Write a temporary file, fsync it, then hard-link it into place: a power cut never leaves a
  // short key file, and if two processes race, link() fails for one instead of both writing keys.
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, key);
    fsyncSync(fd);
  } catch (e) {
    // A full disk: no half-written temporary key is left behind.
    unlinkSync(tmp);
    throw e;
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } finally {
    unlinkSync(tmp);
  }
  fsyncDir(dirname(path));
  return new Secret(key);
}
