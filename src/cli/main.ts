#!/usr/bin/env node
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { HubError } from '../base/errors.js';
import { VERSION } from '../base/version.js';
import { DEFAULT_CONFIG_PATH, DEFAULT_RUN_DIR } from '../config/paths.js';
import { type HubStatus, SOCKET_NAME } from '../contract/control-socket.js';
import { ID_PATTERN } from '../contract/mqtt-topics.js';
import { callDaemon } from '../control-socket/socket-client.js';
import { cliError, exitCodeOf, formatCliError } from './cli-error.js';
import { addDemoCommand, loadDemoPart } from './demo-package.js';
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
import { warnUnappliedNodeArgs } from './node-args.js';
import { readSecretFromStdin } from './secret-input.js';

// This module is what every `iqhub` call loads: the commands that talk to the daemon need nothing
// more than the control client and formatting. What a command needs beyond that (the daemon, the
// demo, provisioning with node-forge, the config loader with Ajv and yaml, the local checks) is
// imported in its action.

/**
 * With --json anywhere on the line, stdout carries exactly one JSON document whatever happens: the
 * result, or `{"error": {code, message, hint}}` (docs/operations.md, "The command line"). Commander's
 * own messages (an unknown option, a bad argument) become such an object too.
 */
const JSON_MODE = process.argv.slice(2).includes('--json');

const program = new Command()
  .name('iqhub')
  .description("iq-hub: the daemon of a smart-lock hub, and the field technician's tool to talk to it.")
  .version(VERSION, '-V, --version')
  .showHelpAfterError(JSON_MODE ? false : '(run with --help for usage)')
  .configureOutput({ outputError: (str, write) => (JSON_MODE ? undefined : write(str)) })
  .exitOverride();

const configOption = () =>
  new Option('-c, --config <path>', 'configuration file').default(undefined, '/etc/iq-hub/config.yaml');

program
  .command('run')
  .description('run the daemon in the foreground (what systemd starts)')
  .addOption(configOption())
  .option('--log-pretty', 'human-readable log lines instead of JSON')
  .action(async (o: { config?: string; logPretty?: boolean }) => {
    warnUnappliedNodeArgs();
    // The daemon's code loads only for `run`; the simulation only if the config enables it.
    const { runDaemon } = await import('../app/daemon.js');
    process.exitCode = await runDaemon({
      configPath: o.config,
      logPretty: o.logPretty,
      simulation: async () =>
        (await loadDemoPart('simulation', () => import('../demo/simulated-site.js'))).simulatedSite,
    });
  });

program
  .command('status')
  .description('show the running daemon: version, uptime, store health, components')
  .addOption(configOption())
  .option('--socket <path>', 'control socket of the daemon (default: <runDir>/control.sock from the config)')
  .option('--json', 'machine-readable output')
  .option(
    '--check',
    'health check: exit 1 when the hub is degraded (uplink down, radio down, disk full, store failing), 3 when the daemon is not running',
  )
  .action(async (o: { config?: string; socket?: string; json?: boolean; check?: boolean }) => {
    const path = await socketPath(o);
    const status = (await callDaemon(path, 'status')) as HubStatus;
    if (!o.check) {
      process.stdout.write(o.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
      return;
    }
    const health = (await callDaemon(path, 'health.check')) as HealthCheck;
    process.stdout.write(o.json ? `${JSON.stringify({ ...status, health }, null, 2)}\n` : formatHealthCheck(health));
    process.exitCode = health.healthy ? 0 : 1;
  });

addDemoCommand(program);

const socketOptions = (cmd: Command) =>
  cmd
    .addOption(configOption())
    .option('--socket <path>', 'control socket of the daemon (default: <runDir>/control.sock from the config)')
    .option('--json', 'machine-readable output');

type SocketOpts = { config?: string; socket?: string; json?: boolean };

async function call(o: SocketOpts, method: string, params: Record<string, unknown> = {}, timeoutMs?: number) {
  return callDaemon(await socketPath(o), method, params, timeoutMs);
}

function print(o: SocketOpts, value: unknown, human: (v: never) => string): void {
  process.stdout.write(o.json ? `${JSON.stringify(value, null, 2)}\n` : human(value as never));
}

socketOptions(program.command('locks').description('list the locks attached to this hub')).action(
  async (o: SocketOpts) => {
    print(o, await call(o, 'locks.list'), formatLocks);
  },
);

socketOptions(
  program
    .command('offline')
    .description(
      "show each bound lock's offline list: how many credentials it holds, when it was last brought up to date, any problem",
    )
    .argument('[lockId]', 'only this lock', parseLockId),
).action(async (lockId: string | undefined, o: SocketOpts) => {
  print(o, await call(o, 'access.offline', lockId === undefined ? {} : { lockId }), formatOffline);
});

socketOptions(
  program
    .command('lock')
    .description('show one lock: state, counters, recent events')
    .argument('<lockId>', 'the lock (iqhub locks lists them)', parseLockId)
    .option(
      '--check',
      'connect to the lock now and ask its state (proves its key; lifts a quarantine it no longer deserves)',
    ),
).action(async (lockId: string, o: SocketOpts & { check?: boolean }) => {
  print(o, await call(o, o.check ? 'locks.check' : 'locks.get', { lockId }, 60_000), formatLock);
});

socketOptions(
  program
    .command('attach')
    .description('attach a lock in attach mode to this hub (present the maintenance card to the lock first)')
    .requiredOption('--device-id <id>', 'the device id printed on the lock')
    .option('--setup-code <code>', 'the setup code printed on the lock; prefer "-" (or leave out) to type it unseen')
    .option('--timeout <seconds>', 'how long to look for the lock', parseSeconds, 15)
    .option(
      '--install-code-file <path>',
      "a ZigBee lock's install code (as printed or in its QR code), read from this file's first line: the lock then joins only with it",
    ),
).action(
  async (o: SocketOpts & { deviceId: string; setupCode?: string; timeout: number; installCodeFile?: string }) => {
    const installCode = o.installCodeFile === undefined ? undefined : readInstallCode(o.installCodeFile);
    const setupCode =
      o.setupCode === undefined || o.setupCode === '-'
        ? await readSecretFromStdin(`setup code for ${o.deviceId}: `)
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
);

socketOptions(
  program
    .command('detach')
    .description('detach a lock: it forgets this hub, then the hub forgets it')
    .argument('<lockId>', 'the lock (iqhub locks lists them)', parseLockId),
).action(async (lockId: string, o: SocketOpts) => {
  const r = (await call(o, 'locks.detach', { lockId }, 60_000)) as { detached: boolean };
  print(o, r, () =>
    r.detached
      ? `detached ${lockId}\n`
      : `${lockId} is not reachable now: it stays 'detaching' and the hub finishes when it hears it\n`,
  );
  if (!r.detached) process.exitCode = 4;
});

socketOptions(
  program
    .command('forget')
    .description('remove a destroyed lock from the pairing store without its confirmation')
    .argument('<lockId>', 'the lock (iqhub locks lists them)', parseLockId)
    .option('--force', 'required: the lock itself is not told'),
).action(async (lockId: string, o: SocketOpts & { force?: boolean }) => {
  if (!o.force) {
    throw new HubError('cli.needs-force', `forget removes ${lockId} without telling the lock`, {
      hint: `use iqhub detach ${lockId} for a working lock; add --force for a destroyed one`,
    });
  }
  const r = (await call(o, 'locks.forget', { lockId })) as { leftBehind: string };
  print(o, r, () => `forgot ${lockId}\nleft behind: ${r.leftBehind}\n`);
});

socketOptions(
  program
    .command('open')
    .description('open a door now (field technician on site)')
    .argument('<lockId>', 'the lock (iqhub locks lists them)', parseLockId)
    .option('--duration <seconds>', 'how long the door stays open', parseSeconds, 5),
).action(async (lockId: string, o: SocketOpts & { duration: number }) => {
  const state = await call(o, 'locks.open', { lockId, durationMs: Math.round(o.duration * 1000) }, 60_000);
  print(o, state, (s: { bolt: string }) => `${lockId}: ${s.bolt} for ${o.duration} s\n`);
});

socketOptions(
  program
    .command('backup')
    .description("back up the ZigBee coordinator now (sealed under the hub's storage key; kept in the data directory)")
    .option('--list', 'list the backups kept, newest last, instead of taking one'),
).action(async (o: SocketOpts & { list?: boolean }) => {
  if (o.list) {
    print(o, await call(o, 'zigbee.backups'), (ids: string[]) => (ids.length ? `${ids.join('\n')}\n` : 'no backups\n'));
    return;
  }
  const r = await call(o, 'zigbee.backup', {}, 120_000);
  print(
    o,
    r,
    (b: { id: string; frameCounter?: number; kept: string[] }) =>
      `backup ${b.id} taken (frame counter ${b.frameCounter ?? 'unknown'}); ${b.kept.length} kept\n`,
  );
});

socketOptions(
  program
    .command('restore')
    .description(
      'restore the ZigBee coordinator from a sealed backup (the newest by default), frame counter moved forward',
    )
    .argument('[backupId]', 'which backup (see iqhub backup --list)'),
).action(async (backupId: string | undefined, o: SocketOpts) => {
  const r = await call(o, 'zigbee.restore', backupId === undefined ? {} : { backupId }, 300_000);
  print(
    o,
    r,
    (x: { result: string; backupId: string; frameCounter: number }) =>
      `coordinator ${x.result} from backup ${x.backupId}; frame counter continues from ${x.frameCounter}\n`,
  );
});

socketOptions(
  program
    .command('hub-backup')
    .description(
      "back up the whole hub (store, link identity, ZigBee coordinator) sealed to the cloud's recovery key, for a replacement hub (docs/operations.md)",
    ),
).action(async (o: SocketOpts) => {
  const r = await call(o, 'hub.backup', {}, 300_000);
  print(
    o,
    r,
    (b: { backupId: string; path: string; recoveryKeyId: string; locks: number; bytes: number; zigbee: boolean }) =>
      `hub backup ${b.backupId} written to ${b.path} (${b.bytes} bytes, mode 0600)\n` +
      `sealed to the cloud's recovery key ${b.recoveryKeyId}; ${b.locks} locks; ZigBee coordinator state ${b.zigbee ? 'included' : 'none'}\n`,
  );
});

program
  .command('hub-restore')
  .description(
    "restore a hub backup on a replacement hub (daemon stopped): without --approval, write the request for the cloud; with the cloud's approval, restore",
  )
  .argument('<file>', 'the backup file (iqhub hub-backup)')
  .addOption(configOption())
  .option('--approval <file>', "the cloud's approval of this hub's request")
  .option('--hub-id <id>', "this hub's id (default: the CN of its certificate, else provisioning.hubId)")
  .option('--json', 'machine-readable output')
  .action(async (file: string, o: { config?: string; approval?: string; hubId?: string; json?: boolean }) => {
    await (await import('./hub-restore.js')).hubRestore(file, o);
  });

socketOptions(
  program
    .command('events')
    .description("a lock's events as the hub stored them, newest first")
    .argument('<lockId>', 'the lock (iqhub locks lists them)', parseLockId)
    .option('--limit <n>', 'how many', parseCount, 50),
).action(async (lockId: string, o: SocketOpts & { limit: number }) => {
  print(o, await call(o, 'events.list', { lockId, limit: o.limit }), formatEvents);
});

socketOptions(
  program
    .command('commands')
    .description(
      "the cloud's remote commands: accepted and refused since the daemon started, a lockout, the newest accepted ones and their outcome",
    )
    .option('--limit <n>', 'how many commands', parseCount, 20),
).action(async (o: SocketOpts & { limit: number }) => {
  print(o, await call(o, 'commands.list', { limit: o.limit }), formatCommands);
});

socketOptions(
  program
    .command('security')
    .description('what the hub refused: rogue devices, wrong setup codes, bad frames, quarantines')
    .option('--limit <n>', 'how many', parseCount, 50),
).action(async (o: SocketOpts & { limit: number }) => {
  print(o, await call(o, 'security.events', { limit: o.limit }), formatSecurity);
});

const firmware = program
  .command('firmware')
  .description('lock firmware updates (docs/operations.md, "Firmware updates")');
socketOptions(
  firmware
    .command('push')
    .description('verify a signed firmware image and install it on locks, one lock at a time per radio')
    .argument('<file>', 'the image file (.iqfw)')
    .argument('<lockIds...>', 'the locks to update')
    .option('--no-wait', 'queue the transfers and return without following them'),
).action(async (file: string, lockIds: string[], o: SocketOpts & { wait: boolean }) => {
  const fw = await import('./firmware.js');
  const daemon = (method: string, params?: Record<string, unknown>, timeoutMs?: number) =>
    call(o, method, params, timeoutMs);
  const image = await fw.uploadImage(daemon, file);
  if (!o.json)
    process.stdout.write(
      `verified ${image.model} ${image.version} (${image.size} bytes, sha256 ${image.sha256.slice(0, 16)}…)\n`,
    );
  const queued = await daemon('firmware.push', { sha256: image.sha256, lockIds });
  if (!o.wait) {
    print(o, queued, (q: { lockId: string; state: string }[]) => q.map((t) => `${t.lockId}: ${t.state}\n`).join(''));
    return;
  }
  const final = await fw.follow(daemon, lockIds, {
    json: Boolean(o.json),
    tty: Boolean(process.stdout.isTTY),
    write: (s) => process.stdout.write(s),
  });
  if (o.json) process.stdout.write(`${JSON.stringify({ image, transfers: final }, null, 2)}\n`);
  process.exitCode = final.every((t) => t.state === 'installed') ? 0 : 1;
});
socketOptions(
  firmware
    .command('status')
    .description('firmware transfers: state and progress per lock')
    .argument('[lockIds...]', 'only these locks'),
).action(async (lockIds: string[], o: SocketOpts) => {
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
});

const pki = program.command('pki').description('certificates for the MQTT uplink');
pki
  .command('dev')
  .description(
    "make a development PKI: a CA, a broker certificate, a hub certificate (CN = hub id), a cloud certificate and the hub's OTP key for remote commands",
  )
  .requiredOption('--dir <dir>', 'where to write the files (keys with mode 0600)')
  .requiredOption('--hub-id <id>', "the hub's id: the CN of its certificate and its MQTT topic segment")
  .option('--cloud-id <id>', "the cloud's certificate CN", 'cloud')
  .option('--broker-host <host>', 'the name clients use to reach the broker', 'localhost')
  .option('--force', 'replace an existing CA in --dir')
  .option('--json', 'machine-readable output')
  .action(
    async (o: { dir: string; hubId: string; cloudId: string; brokerHost: string; force?: boolean; json?: boolean }) => {
      (await import('./local-commands.js')).pkiDev(o);
    },
  );

const provision = program
  .command('provision')
  .description("the hub's own identity: its key (made here, never leaves the hub), CSR and certificate");

provision
  .command('init')
  .description("make the hub's private key (RSA-2048, mode 0600) and its CSR (CN = hub id) in <dataDir>/identity")
  .addOption(configOption())
  .option('--hub-id <id>', 'the hub id (default: provisioning.hubId from the config)')
  .option('--force', 'replace an existing key (its certificate is removed: a new one must be issued)')
  .option('--json', 'machine-readable output')
  .action(async (o: { config?: string; hubId?: string; force?: boolean; json?: boolean }) => {
    (await import('./local-commands.js')).provisionInit(o);
  });

provision
  .command('csr')
  .description("print the hub's CSR (for the factory CA), or write it to a file")
  .addOption(configOption())
  .option('--out <file>', 'write the CSR to this file instead of standard output')
  .option('--hub-id <id>', 'the CN if the CSR must be made again (default: that of the existing CSR)')
  .action(async (o: { config?: string; out?: string; hubId?: string }) => {
    (await import('./local-commands.js')).provisionCsr(o);
  });

provision
  .command('install')
  .description(
    'check a certificate (issued for this key, by this CA, CN = hub id, valid now) and install it with its CA',
  )
  .addOption(configOption())
  .requiredOption('--cert <file>', "the hub's certificate (PEM; intermediates may follow it)")
  .requiredOption('--ca <file>', 'the CA certificate(s) that issued it (PEM); also the only CA the uplink trusts')
  .option('--hub-id <id>', 'the hub id the certificate must carry (default: the CN of the CSR)')
  .option('--json', 'machine-readable output')
  .action(async (o: { config?: string; cert: string; ca: string; hubId?: string; json?: boolean }) => {
    (await import('./local-commands.js')).provisionInstall(o);
  });

program
  .command('cert')
  .description("the hub's certificate: CN, issuer, validity, days left, fingerprint (reads no key)")
  .addOption(configOption())
  .option('--json', 'machine-readable output')
  .action(async (o: { config?: string; json?: boolean }) => {
    (await import('./local-commands.js')).cert(o);
  });

program
  .command('reset')
  .description(
    'start afresh: move the store and its storage key aside (never deleted) so the next start makes new ones; every lock must then be attached again',
  )
  .addOption(configOption())
  .option('--yes', 'required: confirms that the hub forgets every lock, access right and queued event it holds')
  .option('--json', 'machine-readable output')
  .addHelpText(
    'after',
    '\nStop the daemon first (systemctl stop iq-hub); reset refuses while it runs. Nothing is deleted:\n' +
      'hub.db (with -wal, -shm) and store-identity.json move into <dataDir>/reset-<time>/, and so do the\n' +
      'storage key made in the data directory and what it sealed (zigbee/). A key from a systemd\n' +
      'credential or secrets.storageKeyFile stays and seals the new store; the certificate (identity/)\n' +
      'stays. Prefer restoring a backup of the data directory with its key: reset is for starting over.\n',
  )
  .action(async (o: { config?: string; yes?: boolean; json?: boolean }) => {
    await (await import('./local-commands.js')).reset(o);
  });

socketOptions(
  program
    .command('diag')
    .description(
      "the field technician's checks: radios, uplink, certificate, clock, disk, store, outbox, locks (exit 1 if one fails)",
    ),
).action(async (o: SocketOpts) => {
  const { runDiag } = await import('./diag.js');
  const r = await runDiag(o);
  print(o, r, formatDiag);
  process.exitCode = r.verdict === 'fail' ? 1 : 0;
});

const LOCK_ID = new RegExp(ID_PATTERN);

/** A lock id before it goes to the daemon: the rule in words, not the daemon's schema. */
function parseLockId(v: string): string {
  if (!LOCK_ID.test(v)) {
    throw new InvalidArgumentError(
      'a lock id is 1-64 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit, as `iqhub locks` lists it',
    );
  }
  return v;
}

function parseCount(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 10_000)
    throw new InvalidArgumentError('expected a whole number from 1 to 10000');
  return n;
}

function parseSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 600)
    throw new InvalidArgumentError('expected a number of seconds, 0 < s <= 600');
  return n;
}

/**
 * The control socket: --socket, else <runDir>/control.sock from the config. The config loader (Ajv,
 * yaml) loads only when there is a file to read and validate; with neither --config nor a file at
 * the default path, runDir is its default, as loadConfig would say.
 */
async function socketPath(o: { config?: string; socket?: string }): Promise<string> {
  if (o.socket) return o.socket;
  if (o.config === undefined && !defaultConfigExists()) return join(DEFAULT_RUN_DIR, SOCKET_NAME);
  const { loadConfig } = await import('../config/load.js');
  return join(loadConfig(o.config).config.runDir, SOCKET_NAME);
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

program
  .command('completion')
  .description('print a shell completion script for bash or zsh (docs/operations.md: where to put it)')
  .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh', 'json']))
  .addHelpText(
    'after',
    '\n  bash: iqhub completion bash > /etc/bash_completion.d/iqhub\n  zsh:  iqhub completion zsh > "$fpath[1]/_iqhub"\n  json: the command tree (commands, arguments, options) for tools\n',
  )
  .action(async (shell: 'bash' | 'zsh' | 'json') => {
    const c = await import('./completion.js');
    const tree = c.commandTree(program);
    process.stdout.write(
      shell === 'bash'
        ? c.bashCompletion(tree)
        : shell === 'zsh'
          ? c.zshCompletion(tree)
          : `${JSON.stringify(tree, null, 2)}\n`,
    );
  });

program
  .command('man')
  .description("print iqhub's manual page (roff, made from this help; docs/iqhub.1 is a copy: man ./docs/iqhub.1)")
  .action(async () => {
    process.stdout.write((await import('./man-page.js')).manPage(program));
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // Help and --version end through here too, with their own exit status and nothing to add.
  const quiet = e instanceof CommanderError && (e.exitCode === 0 || !JSON_MODE);
  if (!quiet) {
    const err = cliError(e);
    if (JSON_MODE) process.stdout.write(`${JSON.stringify({ error: err })}\n`);
    else process.stderr.write(formatCliError(err));
  }
  process.exitCode = exitCodeOf(e);
}

/** The first line of an install-code file; never echoed, even in an error. */
function readInstallCode(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
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
