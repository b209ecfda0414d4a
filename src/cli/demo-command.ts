import { type Command, Option } from 'commander';
import { HubError } from '../base/errors.js';
import { loadDemoPart } from './demo-package.js';

/** `iqhub demo`: its options here, its code (the package iq-hub-demo) loaded only when it runs. */
export function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the whole hub on simulated hardware in a temporary data directory (what `npm start` runs)')
    .addOption(new Option('--scenario <name>', 'scripted scenario to play').choices(['smoke']).default('smoke'))
    .option('--exit', 'exit when the scenario ends (status 0 only if every step passed)')
    .option('--data-dir <dir>', 'use this data directory instead of a temporary one (kept afterwards)')
    .option('--json-log', 'log JSON lines instead of the readable format')
    .option(
      '--broker <url>',
      'use this MQTT broker (mqtts://host:port) instead of the embedded one; needs --broker-pki',
    )
    .option(
      '--broker-pki <dir>',
      "the broker's PKI as `iqhub pki dev` writes it: ca.crt, hub.crt/.key, cloud.crt/.key (the ids are the certificates' CNs)",
    )
    .option('--broker-server-name <name>', "the name in the broker's certificate (default: localhost)")
    .action(
      async (o: {
        scenario: 'smoke';
        exit?: boolean;
        dataDir?: string;
        jsonLog?: boolean;
        broker?: string;
        brokerPki?: string;
        brokerServerName?: string;
      }) => {
        if ((o.broker === undefined) !== (o.brokerPki === undefined) || (o.brokerServerName && !o.broker)) {
          throw new HubError(
            'demo.broker',
            'iqhub demo: --broker and --broker-pki go together (--broker-server-name with them)',
          );
        }
        const { runDemo } = await loadDemoPart('demo', () => import('../demo/demo.js'));
        process.exitCode = await runDemo({
          scenario: o.scenario,
          exit: Boolean(o.exit),
          dataDir: o.dataDir,
          pretty: !o.jsonLog,
          broker: o.broker
            ? { url: o.broker, pkiDir: o.brokerPki as string, serverName: o.brokerServerName }
            : undefined,
        });
      },
    );
}
