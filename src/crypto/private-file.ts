import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { HubError } from '../base/errors.js';

/**
 * The key files read this way. A union, so that every `<prefix>.<problem>` code is one of
 * error-codes.ts: a new key file needs its five codes there before it compiles.
 */
export type PrivateFileCodePrefix =
  | 'storage-key'
  | 'uplink.key'
  | 'identity.key'
  | 'commands.otp-key'
  | 'backup.restore-key';

export interface PrivateFileOptions {
  /** Error codes start with it: `<prefix>.unreadable`, `.not-file`, `.permissions`, `.owner`, `.too-large`. */
  codePrefix: PrivateFileCodePrefix;
  /** How the file is named in messages, e.g. "storage key file". */
  what: string;
  /** Check that only the daemon's user can read it (false for systemd credentials, whose mode systemd sets). */
  checkMode: boolean;
  maxBytes: number;
}

/**
 * Read a file that holds a secret (a key): not through a symbolic link, a regular file, owned by
 * the daemon's user and not readable or writable by group or others. Undefined if it does not
 * exist. Messages name the file and the fix, never the content.
 */
export function readPrivateFile(path: string, o: PrivateFileOptions): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new HubError(`${o.codePrefix}.unreadable`, `cannot read ${o.what} ${path}: ${code ?? 'error'}`, {
      hint: code === 'ELOOP' ? `the ${o.what} must not be a symbolic link` : 'check ownership and permissions',
    });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new HubError(`${o.codePrefix}.not-file`, `${o.what} ${path} is not a regular file`);
    if (o.checkMode && (st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new HubError(
        `${o.codePrefix}.permissions`,
        `${o.what} ${path} has mode ${mode}: it is readable or writable by group or others`,
        {
          hint: `only the daemon's user may read it: run \`chmod 600 ${path}\`, and replace the key if it may have been copied`,
        },
      );
    }
    if (o.checkMode && typeof process.getuid === 'function' && st.uid !== process.getuid()) {
      throw new HubError(
        `${o.codePrefix}.owner`,
        `${o.what} ${path} is owned by uid ${st.uid}, not by the daemon's user`,
        {
          hint: `run \`chown $(id -u):$(id -g) ${path}\` as root`,
        },
      );
    }
    if (st.size > o.maxBytes) {
      throw new HubError(`${o.codePrefix}.too-large`, `${o.what} ${path} is ${st.size} bytes, more than ${o.maxBytes}`);
    }
    const buf = Buffer.alloc(o.maxBytes);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}
