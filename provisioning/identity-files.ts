import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir } from '../src/base/atomic-file.js';
import { HubError } from '../src/base/errors.js';
import { readPrivateFile } from '../src/crypto/private-file.js';

/**
 * Where the hub's own identity lives, in `<dataDir>/identity/`, and how that directory is made
 * ready and read, so every command and the daemon agree on it:
 *
 *   hub.key   the private key (RSA-2048 from node:crypto, PKCS#8 PEM, mode 0600). Made on the hub,
 *             never printed, logged or returned by the CLI.
 *   hub.csr   the certificate signing request for it (node-forge; CN = the hub id, SAN URI
 *             `urn:iq-hub:hub:<id>`), for a factory CA or claim enrollment.
 *   hub.crt   the hub's certificate (and any intermediates), issued from the CSR.
 *   ca.crt    the CA (one or more certificates) that issued it; the uplink trusts only it.
 */

export const IDENTITY_DIR = 'identity';
const KEY_MAX_BYTES = 16 * 1024;

export interface IdentityPaths {
  dir: string;
  key: string;
  csr: string;
  cert: string;
  ca: string;
  /** The old key while an install with a new key is under way. */
  keyPrev: string;
}

/** The identity files of a data directory (whether or not they exist). */
export function identityPaths(dataDir: string): IdentityPaths {
  const dir = join(dataDir, IDENTITY_DIR);
  return {
    dir,
    key: join(dir, 'hub.key'),
    csr: join(dir, 'hub.csr'),
    cert: join(dir, 'hub.crt'),
    ca: join(dir, 'ca.crt'),
    keyPrev: join(dir, 'hub.key.prev'),
  };
}

/** The identity directory, made (0700) if missing, refused when root would write into the daemon's data. */
export function prepareDir(dataDir: string): IdentityPaths {
  const paths = identityPaths(dataDir);
  // Files written by root into the daemon's data directory would be unreadable for the daemon.
  if (typeof process.getuid === 'function' && process.getuid() === 0 && existsSync(dataDir)) {
    const owner = statSync(dataDir).uid;
    if (owner !== 0) {
      throw new HubError(
        'provision.wrong-user',
        `${dataDir} belongs to uid ${owner}: files written as root there would be unreadable for the daemon`,
        { hint: `run the command as the daemon's user: \`sudo -u '#${owner}' iqhub provision ...\`` },
      );
    }
  }
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  return paths;
}

/** The hub's key (or the one at `path`): undefined when missing, refused unless only the daemon's user can read it. */
export function readKey(paths: IdentityPaths, path = paths.key): Buffer | undefined {
  return readPrivateFile(path, {
    codePrefix: 'identity.key',
    what: "the hub's private key",
    checkMode: true,
    maxBytes: KEY_MAX_BYTES,
  });
}

/**
 * Finish or roll back an install with a new key that was cut short: `hub.key.prev` exists only
 * between the renames. If the installed key fits the installed certificate the install finished;
 * if the old key fits, the new key never got its certificate and the old key is put back.
 */
export function settleInterruptedInstall(paths: IdentityPaths): void {
  if (!existsSync(paths.keyPrev)) return;
  const fits = (keyPath: string) => {
    try {
      const cert = new X509Certificate(readFileSync(paths.cert));
      return cert.checkPrivateKey(createPrivateKey(readFileSync(keyPath)));
    } catch {
      return false;
    }
  };
  if (!existsSync(paths.cert) || fits(paths.key)) unlinkSync(paths.keyPrev);
  else if (fits(paths.keyPrev)) renameSync(paths.keyPrev, paths.key);
  else return;
  fsyncDir(paths.dir);
}
