#!/usr/bin/env node
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { runDaemon } from '../app/daemon.js';
import { VERSION } from '../app/version.js';
import { describeError } from '../base/errors.js';
import { loadConfig } from '../config/load.js';
import { callDaemon } from '../control/client.js';
import { type HubStatus, SOCKET_NAME } from '../control/protocol.js';
import { runDemo } from '../demo/demo.js';
import { formatStatus } from './format.js';

const program = new Command()
  .name('iqhub')
  .description("iq-hub: the daemon of a smart-lock hub, and the field technician's tool to talk to it.")
  .version(VERSION, '-V, --version')
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (str, write) => write(str) })
  .exitOverride();

const configOption = () =>
  new Option('-c, --config <path>', 'configuration file').default(undefined, '/etc/iq-hub/config.yaml');

program
  .command('run')
  .description('run the daemon in the foreground (what systemd starts)')
  .addOption(configOption())
  .option('--log-pretty', 'human-readable log lines instead of JSON')
  .action(async (o: { config?: string; logPretty?: boolean }) => {
    process.exitCode = await runDaemon({ configPath: o.config, logPretty: o.logPretty });
  });

program
  .command('status')
  .description('show the running daemon: version, uptime, store health, components')
  .addOption(configOption())
  .option('--socket <path>', 'control socket of the daemon (default: <runDir>/control.sock from the config)')
  .option('--json', 'machine-readable output')
  .action(async (o: { config?: string; socket?: string; json?: boolean }) => {
    const status = (await callDaemon(socketPath(o), 'status')) as HubStatus;
    process.stdout.write(o.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
  });

program
  .command('demo')
  .description('run the whole hub on simulated hardware in a temporary data directory (what `npm start` runs)')
  .addOption(new Option('--scenario <name>', 'scripted scenario to play').choices(['smoke']).default('smoke'))
  .option('--exit', 'exit when the scenario ends (status 0 only if every step passed)')
  .option('--data-dir <dir>', 'use this data directory instead of a temporary one (kept afterwards)')
  .option('--json-log', 'log JSON lines instead of the readable format')
  .action(async (o: { scenario: 'smoke'; exit?: boolean; dataDir?: string; jsonLog?: boolean }) => {
    process.exitCode = await runDemo({
      scenario: o.scenario,
      exit: Boolean(o.exit),
      dataDir: o.dataDir,
      pretty: !o.jsonLog,
    });
  });

function socketPath(o: { config?: string; socket?: string }): string {
  if (o.socket) return o.socket;
  return join(loadConfig(o.config).config.runDir, SOCKET_NAME);
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode;
  } else {
    process.stderr.write(`iqhub: ${describeError(e)}\n`);
    process.exitCode = (e as { code?: string }).code === 'daemon.not-running' ? 3 : 1;
  }
}
