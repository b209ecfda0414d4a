import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFIG_PATH, DEFAULT_RUN_DIR } from '../config/paths.js';
import { type HubStatus, SOCKET_NAME } from '../contract/control-socket.js';
import { callDaemon } from '../control-socket/socket-client.js';
import { countOf, isLockId, secondsOf } from './arg-checks.js';
import {
  formatCommands,
  formatDiag,
  formatEvents,
  formatHealthCheck,
  formatLock,
  formatLocks,
  formatOffline,
  formatSecurity,
  formatStatus,
  type HealthCheck,
} from './format.js';
import type { QuickArgument, QuickOption, QuickSpec } from './quick-parse.js';

// The commands that talk to a running daemon: what each does, and (QUICK) how the quick path reads
// its command line. This module and what it imports — the control client and formatting — are all
// such a call loads (test/integration/module-loading.test.ts); the commander program (program.ts)
// declares the same commands with their help and calls the same actions. HubError (with the table
// of every code's hint) loads only on a failure, as in the control client.

export type SocketOpts = { config?: string; socket?: string; json?: boolean };

/**
 * The control socket: --socket (refused when empty), else <runDir>/control.sock from the config. The config loader
 * (yaml, the config's validator) loads only when there is a file to read and validate; with neither
 * --config nor a file at the default path, runDir is its default, as loadConfig would say.
 */
async function socketPath(o: { config?: string; socket?: string }): Promise<string> {
  await refuseEmptySocket(o);
  if (o.socket !== undefined) return o.socket;
  if (o.config === undefined && !defaultConfigExists()) return join(DEFAULT_RUN_DIR, SOCKET_NAME);
  const { loadConfig } = await import('../config/load.js');
  return join(loadConfig(o.config).config.runDir, SOCKET_NAME);
}

/** `--socket "$SOCK"` with SOCK unset is refused, not read as "the config's socket", which may be another daemon's. */
async function refuseEmptySocket(o: { socket?: string }): Promise<void> {
  if (o.socket !== '') return;
  const { HubError } = await import('../base/errors.js');
  throw new HubError('cli.socket-path', '--socket was given an empty path');
}

/** False only when nothing is at the default path; any other doubt goes to loadConfig, which reports it. */
function defaultConfigExists(): boolean {
  try {
    statSync(DEFAULT_CONFIG_PATH);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

export async function call(o: SocketOpts, method: string, params: Record<string, unknown> = {}, timeoutMs?: number) {
  return callDaemon(await socketPath(o), method, params, timeoutMs);
}

export function print(o: SocketOpts, value: unknown, human: (v: never) => string): void {
  process.stdout.write(o.json ? `${JSON.stringify(value, null, 2)}\n` : human(value as never));
}

/** What each socket command does once its command line is read (by commander or the quick path). */
export const actions = {
  async status(o: SocketOpts & { check?: boolean }): Promise<void> {
    const path = await socketPath(o);
    const status = (await callDaemon(path, 'status')) as HubStatus;
    if (!o.check) {
      process.stdout.write(o.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
      return;
    }
    const health = (await callDaemon(path, 'health.check')) as HealthCheck;
    process.stdout.write(o.json ? `${JSON.stringify({ ...status, health }, null, 2)}\n` : formatHealthCheck(health));
    process.exitCode = health.healthy ? 0 : 1;
  },

  async locks(o: SocketOpts): Promise<void> {
    print(o, await call(o, 'locks.list'), formatLocks);
  },

  async offline(lockId: string | undefined, o: SocketOpts): Promise<void> {
    print(o, await call(o, 'access.offline', lockId === undefined ? {} : { lockId }), formatOffline);
  },

  async lock(lockId: string, o: SocketOpts & { check?: boolean }): Promise<void> {
    print(o, await call(o, o.check ? 'locks.check' : 'locks.get', { lockId }, 60_000), formatLock);
  },

  async attach(
    o: SocketOpts & { deviceId: string; setupCode?: string; timeout: number; installCodeFile?: string },
  ): Promise<void> {
    const installCode = o.installCodeFile === undefined ? undefined : await readInstallCode(o.installCodeFile);
    const setupCode =
      o.setupCode === undefined || o.setupCode === '-'
        ? await (await import('./secret-input.js')).readSecretFromStdin(`setup code for ${o.deviceId}: `)
        : o.setupCode;
    if (!o.json) process.stderr.write(`attaching ${o.deviceId}...\n`);
    const lock = await call(
      o,
      'locks.attach',
      { deviceId: o.deviceId, setupCode, timeoutMs: o.timeout * 1000, ...(installCode ? { installCode } : {}) },
      o.timeout * 1000 + 30_000,
    );
    print(
      o,
      lock,
      (l: { lockId: string; keyFingerprint: string }) => `attached ${l.lockId} (key ${l.keyFingerprint})\n`,
    );
  },

  async detach(lockId: string, o: SocketOpts): Promise<void> {
    const r = (await call(o, 'locks.detach', { lockId }, 60_000)) as { detached: boolean };
    print(o, r, () =>
      r.detached
        ? `detached ${lockId}\n`
        : `${lockId} is not reachable now: it stays 'detaching' and the hub finishes when it hears it\n`,
    );
    if (!r.detached) process.exitCode = 4;
  },

  async forget(lockId: string, o: SocketOpts & { force?: boolean }): Promise<void> {
    if (!o.force) {
      const { HubError } = await import('../base/errors.js');
      throw new HubError('cli.needs-force', `forget removes ${lockId} without telling the lock`, {
        hint: `use iqhub detach ${lockId} for a working lock; add --force for a destroyed one`,
      });
    }
    const r = (await call(o, 'locks.forget', { lockId })) as { leftBehind: string };
    print(o, r, () => `forgot ${lockId}\nleft behind: ${r.leftBehind}\n`);
  },

  async open(lockId: string, o: SocketOpts & { duration: number }): Promise<void> {
    const state = await call(o, 'locks.open', { lockId, durationMs: Math.round(o.duration * 1000) }, 60_000);
    print(o, state, (s: { bolt: string }) => `${lockId}: ${s.bolt} for ${o.duration} s\n`);
  },

  async backup(o: SocketOpts & { list?: boolean }): Promise<void> {
    if (o.list) {
      print(o, await call(o, 'zigbee.backups'), (ids: string[]) =>
        ids.length ? `${ids.join('\n')}\n` : 'no backups\n',
      );
      return;
    }
    const r = await call(o, 'zigbee.backup', {}, 120_000);
    print(
      o,
      r,
      (b: { id: string; frameCounter?: number; kept: string[] }) =>
        `backup ${b.id} taken (frame counter ${b.frameCounter ?? 'unknown'}); ${b.kept.length} kept\n`,
    );
  },

  async restore(backupId: string | undefined, o: SocketOpts): Promise<void> {
    const r = await call(o, 'zigbee.restore', backupId === undefined ? {} : { backupId }, 300_000);
    print(
      o,
      r,
      (x: { result: string; backupId: string; frameCounter: number }) =>
        `coordinator ${x.result} from backup ${x.backupId}; frame counter continues from ${x.frameCounter}\n`,
    );
  },

  async hubBackup(o: SocketOpts): Promise<void> {
    const r = await call(o, 'hub.backup', {}, 300_000);
    print(
      o,
      r,
      (b: { backupId: string; path: string; recoveryKeyId: string; locks: number; bytes: number; zigbee: boolean }) =>
        `hub backup ${b.backupId} written to ${b.path} (${b.bytes} bytes, mode 0600)\n` +
        `sealed to the cloud's recovery key ${b.recoveryKeyId}; ${b.locks} locks; ZigBee coordinator state ${b.zigbee ? 'included' : 'none'}\n`,
    );
  },

  async events(lockId: string, o: SocketOpts & { limit: number }): Promise<void> {
    print(o, await call(o, 'events.list', { lockId, limit: o.limit }), formatEvents);
  },

  async commands(o: SocketOpts & { limit: number }): Promise<void> {
    print(o, await call(o, 'commands.list', { limit: o.limit }), formatCommands);
  },

  async security(o: SocketOpts & { limit: number }): Promise<void> {
    print(o, await call(o, 'security.events', { limit: o.limit }), formatSecurity);
  },

  async firmwareStatus(lockIds: string[], o: SocketOpts): Promise<void> {
    const rows = await call(o, 'firmware.status', lockIds.length > 0 ? { lockIds } : {});
    print(
      o,
      rows,
      (
        r: {
          lockId: string;
          model: string;
          version: string;
          state: string;
          sent: number;
          size: number;
          error: string | null;
        }[],
      ) =>
        r.length === 0
          ? 'no firmware transfers\n'
          : r
              .map(
                (t) =>
                  `${t.lockId}  ${t.model} ${t.version}  ${t.state}  ${t.sent}/${t.size}${t.error ? `  ${t.error}` : ''}\n`,
              )
              .join(''),
    );
  },

  async diag(o: SocketOpts): Promise<void> {
    // Before the config is read or a local check runs, as for every socket command.
    await refuseEmptySocket(o);
    const { runDiag } = await import('./diag.js');
    const r = await runDiag(o);
    print(o, r, formatDiag);
    process.exitCode = r.verdict === 'fail' ? 1 : 0;
  },
};

/** The first line of an install-code file; never echoed, even in an error. */
async function readInstallCode(path: string): Promise<string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const { HubError } = await import('../base/errors.js');
    throw new HubError(
      'cli.install-code-file',
      `cannot read the install code file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: 'give the file that holds the install code printed on the lock (or scanned from its QR code)',
      },
    );
  }
  const line = text.split(/\r?\n/)[0]?.trim() ?? '';
  if (line.length < 8 || line.length > 256) {
    const { HubError } = await import('../base/errors.js');
    throw new HubError(
      'cli.install-code-file',
      `the install code file ${path} does not hold an install code on its first line`,
      {
        hint: 'the first line is the code as printed or scanned, e.g. <ieee address>|<code> or the QR text Z:<ieee>$I:<code> (docs/zigbee.md)',
      },
    );
  }
  return line;
}

// How the quick path reads each command's line: the same options, defaults and argument rules as
// program.ts declares (test/unit/cli/quick-parse.test.ts compares them).

const flag = (long: string): QuickOption => ({ long, value: false });
/** -c/--config, --socket, --json: what every socket command takes (program.ts socketOptions). */
const SOCKET: QuickOption[] = [
  { long: '--config', short: '-c', value: true },
  { long: '--socket', value: true },
  flag('--json'),
];
const lockIdArg: QuickArgument = { required: true, check: isLockId };
const limit = (n: number): QuickOption => ({ long: '--limit', value: true, parse: countOf, default: n });

type Run = (args: unknown[], opts: Record<string, unknown>) => Promise<void>;
const quick = (options: QuickOption[], args: QuickArgument[], run: Run): QuickSpec & { run: Run } => ({
  options,
  args,
  run,
});

/** Command path (as typed: `firmware status`) → how the quick path reads it and what it runs. */
export const QUICK: Record<string, QuickSpec & { run: Run }> = {
  status: quick([...SOCKET, flag('--check')], [], (_, o) => actions.status(o)),
  locks: quick(SOCKET, [], (_, o) => actions.locks(o)),
  offline: quick(SOCKET, [{ required: false, check: isLockId }], ([id], o) => actions.offline(id as string, o)),
  lock: quick([flag('--check'), ...SOCKET], [lockIdArg], ([id], o) => actions.lock(id as string, o)),
  attach: quick(
    [
      { long: '--device-id', value: true, mandatory: true },
      { long: '--setup-code', value: true },
      { long: '--timeout', value: true, parse: secondsOf, default: 15 },
      { long: '--install-code-file', value: true },
      ...SOCKET,
    ],
    [],
    (_, o) => actions.attach(o as Parameters<typeof actions.attach>[0]),
  ),
  detach: quick(SOCKET, [lockIdArg], ([id], o) => actions.detach(id as string, o)),
  forget: quick([flag('--force'), ...SOCKET], [lockIdArg], ([id], o) => actions.forget(id as string, o)),
  open: quick([{ long: '--duration', value: true, parse: secondsOf, default: 5 }, ...SOCKET], [lockIdArg], ([id], o) =>
    actions.open(id as string, o as SocketOpts & { duration: number }),
  ),
  backup: quick([flag('--list'), ...SOCKET], [], (_, o) => actions.backup(o)),
  restore: quick(SOCKET, [{ required: false }], ([id], o) => actions.restore(id as string | undefined, o)),
  'hub-backup': quick(SOCKET, [], (_, o) => actions.hubBackup(o)),
  events: quick([limit(50), ...SOCKET], [lockIdArg], ([id], o) =>
    actions.events(id as string, o as SocketOpts & { limit: number }),
  ),
  commands: quick([limit(20), ...SOCKET], [], (_, o) => actions.commands(o as SocketOpts & { limit: number })),
  security: quick([limit(50), ...SOCKET], [], (_, o) => actions.security(o as SocketOpts & { limit: number })),
  'firmware status': quick(SOCKET, [{ required: false, variadic: true }], ([ids], o) =>
    actions.firmwareStatus(ids as string[], o),
  ),
  diag: quick(SOCKET, [], (_, o) => actions.diag(o)),
};
