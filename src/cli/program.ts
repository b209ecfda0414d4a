import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { VERSION } from '../base/version.js';
import { countOf, isLockId, secondsOf } from './arg-checks.js';
import { addDemoCommand } from './demo-command.js';
import type { PkiDevOptions } from './local-commands.js';
import { runCommand } from './run-command.js';
import { actions, call, print, type SocketOpts } from './socket-commands.js';

// The whole command line as commander declares it: every command, option and help text, for the
// calls the quick path (main.ts, quick-parse.ts) does not read — help, --version, the local
// commands (pki, provision, reset, hub-restore, …), completion, the manual page and any command
// line commander must refuse in its own words. The socket commands' actions are in
// socket-commands.ts, `run`'s in run-command.ts: both paths call the same code.

/** The program; `jsonMode` (--json anywhere on the line) silences commander's own messages. */
export function buildProgram(jsonMode: boolean): Command {
  const program = new Command()
    .name('iqhub')
    .description("iq-hub: the daemon of a smart-lock hub, and the field technician's tool to talk to it.")
    .version(VERSION, '-V, --version')
    .showHelpAfterError(jsonMode ? false : '(run with --help for usage)')
    .configureOutput({ outputError: (str, write) => (jsonMode ? undefined : write(str)) })
    .exitOverride();

  const configOption = () =>
    new Option('-c, --config <path>', 'configuration file').default(undefined, '/etc/iq-hub/config.yaml');

  program
    .command('run')
    .description('run the daemon in the foreground (what systemd starts)')
    .addOption(configOption())
    .option('--log-pretty', 'human-readable log lines instead of JSON')
    .action((o: { config?: string; logPretty?: boolean }) => runCommand(o));

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
    .action((o: SocketOpts & { check?: boolean }) => actions.status(o));

  addDemoCommand(program);

  const socketOptions = (cmd: Command) =>
    cmd
      .addOption(configOption())
      .option('--socket <path>', 'control socket of the daemon (default: <runDir>/control.sock from the config)')
      .option('--json', 'machine-readable output');

  socketOptions(program.command('locks').description('list the locks attached to this hub')).action((o: SocketOpts) =>
    actions.locks(o),
  );

  socketOptions(
    program
      .command('offline')
      .description(
        "show each bound lock's offline list: how many credentials it holds, when it was last brought up to date, any problem",
      )
      .argument('[lockId]', 'only this lock', parseLockId),
  ).action((lockId: string | undefined, o: SocketOpts) => actions.offline(lockId, o));

  socketOptions(
    program
      .command('lock')
      .description('show one lock: state, counters, recent events')
      .argument('<lockId>', 'the lock (iqhub locks lists them)', parseLockId)
      .option(
        '--check',
        'connect to the lock now and ask its state (proves its key; lifts a quarantine it no longer deserves)',
      ),
  ).action((lockId: string, o: SocketOpts & { check?: boolean }) => actions.lock(lockId, o));

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
  ).action((o: SocketOpts & { deviceId: string; setupCode?: string; timeout: number; installCodeFile?: string }) =>
    actions.attach(o),
  );

  socketOptions(
    program
      .command('detach')
      .description('detach a lock: it forgets this hub, then the hub forgets it')
      .argument('<lockId>', 'the lock (iqhub locks lists them)', parseLockId),
  ).action((lockId: string, o: SocketOpts) => actions.detach(lockId, o));

  socketOptions(
    program
      .command('forget')
      .description('remove a destroyed lock from the pairing store without its confirmation')
      .argument('<lockId>', 'the lock (iqhub locks lists them)', parseLockId)
      .option('--force', 'required: the lock itself is not told'),
  ).action((lockId: string, o: SocketOpts & { force?: boolean }) => actions.forget(lockId, o));

  socketOptions(
    program
      .command('open')
      .description('open a door now (field technician on site)')
      .argument('<lockId>', 'the lock (iqhub locks lists them)', parseLockId)
      .option('--duration <seconds>', 'how long the door stays open', parseSeconds, 5),
  ).action((lockId: string, o: SocketOpts & { duration: number }) => actions.open(lockId, o));

  socketOptions(
    program
      .command('backup')
      .description(
        "back up the ZigBee coordinator now (sealed under the hub's storage key; kept in the data directory)",
      )
      .option('--list', 'list the backups kept, newest last, instead of taking one'),
  ).action((o: SocketOpts & { list?: boolean }) => actions.backup(o));

  socketOptions(
    program
      .command('restore')
      .description(
        'restore the ZigBee coordinator from a sealed backup (the newest by default), frame counter moved forward',
      )
      .argument('[backupId]', 'which backup (see iqhub backup --list)'),
  ).action((backupId: string | undefined, o: SocketOpts) => actions.restore(backupId, o));

  socketOptions(
    program
      .command('hub-backup')
      .description(
        "back up the whole hub (store, link identity, ZigBee coordinator) sealed to the cloud's recovery key, for a replacement hub (docs/operations.md)",
      ),
  ).action((o: SocketOpts) => actions.hubBackup(o));

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
  ).action((lockId: string, o: SocketOpts & { limit: number }) => actions.events(lockId, o));

  socketOptions(
    program
      .command('commands')
      .description(
        "the cloud's remote commands: accepted and refused since the daemon started, a lockout, the newest accepted ones and their outcome",
      )
      .option('--limit <n>', 'how many commands', parseCount, 20),
  ).action((o: SocketOpts & { limit: number }) => actions.commands(o));

  socketOptions(
    program
      .command('security')
      .description('what the hub refused: rogue devices, wrong setup codes, bad frames, quarantines')
      .option('--limit <n>', 'how many', parseCount, 50),
  ).action((o: SocketOpts & { limit: number }) => actions.security(o));

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
  ).action((lockIds: string[], o: SocketOpts) => actions.firmwareStatus(lockIds, o));

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
    .action(async (o: PkiDevOptions) => {
      (await import('./local-commands.js')).pkiDev(o);
    });

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
  ).action((o: SocketOpts) => actions.diag(o));

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

  return program;
}

/** Parses process.argv with the program and runs the command; a failure is thrown to main.ts. */
export async function runProgram(jsonMode: boolean): Promise<void> {
  await buildProgram(jsonMode).parseAsync(process.argv);
}

/** A lock id before it goes to the daemon: the rule in words, not the daemon's schema. */
function parseLockId(v: string): string {
  if (!isLockId(v)) {
    throw new InvalidArgumentError(
      'a lock id is 1-64 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit, as `iqhub locks` lists it',
    );
  }
  return v;
}

function parseCount(v: string): number {
  const n = countOf(v);
  if (n === undefined) throw new InvalidArgumentError('expected a whole number from 1 to 10000');
  return n;
}

function parseSeconds(v: string): number {
  const n = secondsOf(v);
  if (n === undefined) throw new InvalidArgumentError('expected a number of seconds, 0 < s <= 600');
  return n;
}
