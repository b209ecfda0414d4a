import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevPki } from '../../provisioning/dev-pki.js';
import { SiteAdmin } from '../../sim/cloud/admin.js';
import { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { devCloudConnection, devUplinkConfig } from '../../sim/cloud/connect.js';
import { CloudKeyIssuer } from '../../sim/phone/issuer.js';
import { type SimWorld, simulatedSiteSecrets } from '../../sim/world.js';
import { toBase64url } from '../access/digital-key.js';
import { type RunningDaemon, startDaemon } from '../app/daemon.js';
import { writeFileAtomic } from '../base/atomic-file.js';
import { describeError } from '../base/errors.js';
import { systemRandom } from '../base/random.js';
import type { HubConfig } from '../config/schema.js';
import { accessAfterRestartSteps, accessSteps } from './access-steps.js';
import { replacementPart } from './backup-steps.js';
import { cloudAfterRestartSteps, cloudSteps } from './cloud-steps.js';
import { checkExternalBroker, type ExternalBrokerOptions, openDemoBroker } from './demo-broker.js';
import { firmwareRadiosPart } from './firmware-radios-steps.js';
import { demoFirmwareConfig, firmwareSteps } from './firmware-steps.js';
import { otpKeySteps, syncNowSteps } from './otp-sync-steps.js';
import { pinKeySteps } from './pin-key-steps.js';
import { runSteps } from './scenario.js';
import { loadSimulatedSite } from './simulated-site.js';
import { siteAfterRestartSteps, siteSteps } from './site-steps.js';
import { afterRestartSteps, smokeSteps } from './smoke.js';

export interface DemoOptions {
  scenario: 'smoke';
  exit: boolean;
  dataDir?: string | undefined;
  pretty: boolean;
  locks?: number;
  /** A broker elsewhere instead of the embedded one (`--broker`, `--broker-pki`; demo-broker.ts). */
  broker?: ExternalBrokerOptions | undefined;
}

/**
 * `iqhub demo` (`npm start`): the daemon in a temporary data directory hosting a simulated site
 * (locks on an in-memory radio), a scripted scenario through the control socket, a restart, and
 * then — unless --exit — the daemon keeps running until Ctrl-C.
 */
export async function runDemo(opts: DemoOptions): Promise<number> {
  // An external broker's options are checked before anything is made or started.
  const external = opts.broker ? checkExternalBroker(opts.broker) : undefined;
  const base = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'iq-hub-demo-'));
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`iq-hub demo: data in ${base}`);
  // The cloud side: a development PKI (or that of --broker-pki), an MQTT broker with mutual TLS
  // (embedded, or --broker), the reference cloud.
  const hubId = external?.hubId ?? 'demo-hub';
  const pki = external?.pki ?? createDevPki({ dir: join(base, 'pki'), hubId, overwrite: true });
  mkdirSync(join(base, 'pki'), { recursive: true, mode: 0o700 });
  const pem = (p: string) => readFileSync(p);
  const broker = await openDemoBroker(external, pki);
  const line = broker.line;
  // The hub has no OTP key file: the cloud delivers its OTP key over the uplink (otp-sync-steps.ts).
  const cloud = new ReferenceCloud();
  try {
    await cloud.connect({ ...devCloudConnection(broker.cloudUrl, pki, 4), serverName: broker.serverName });
  } catch (e) {
    await broker.close();
    throw e;
  }
  cloud.enableOtpKeys({ ca: pem(pki.ca.cert) });
  out(`${broker.description}; the reference cloud is connected and signs its commands`);
  // The site's administration at the cloud: its digital-key signing key is pinned by the hub.
  const issuer = new CloudKeyIssuer(systemRandom);
  const cloudKeyFile = join(base, 'pki', 'cloud-signing.pub');
  writeFileAtomic(cloudKeyFile, `${toBase64url(issuer.publicKeyRaw)}\n`, 0o644);
  const seed = 'iq-hub-demo';
  const admin = new SiteAdmin({ ...simulatedSiteSecrets(seed), random: systemRandom, issuer });
  admin.setHubKey(hubId, readFileSync(pki.hub.cert, 'utf8')); // the PIN key goes sealed to the hub
  const pin = { value: '' };
  const overrides: Partial<HubConfig> = {
    dataDir: join(base, 'data'),
    runDir: join(base, 'run'),
    simulation: { enabled: true, locks: opts.locks ?? 3, seed } as HubConfig['simulation'],
    access: { timeZone: 'Europe/Madrid', cloudKeyFile } as HubConfig['access'],
    // Events whose copy the restarted broker lost (the hub back before the cloud subscribed again)
    // are sent again after eventAckTimeoutSec: 5 s here, not 60, so the demo waits little for them.
    uplink: devUplinkConfig(broker.hubUrl, pki, {
      mqttVersion: '3.1.1',
      healthIntervalSec: 10,
      eventAckTimeoutSec: 5,
      serverName: broker.serverName,
    }),
    backup: { recoveryPublicKey: await cloud.recovery.enable() },
    firmware: demoFirmwareConfig,
  };
  const marker = Buffer.from(systemRandom.bytes(8)).toString('hex');
  const shutdownCloud = async () => {
    await cloud.close();
    await broker.close();
  };

  let world: SimWorld | undefined;
  const start = (handleSignals: boolean): Promise<RunningDaemon> =>
    startDaemon({
      configPath: null,
      overrides,
      logPretty: opts.pretty,
      handleSignals,
      simulation: loadSimulatedSite,
      onBuilt: (_hub, w) => {
        world = w;
      },
    });

  try {
    const first = await start(false);
    if (!world) throw new Error('the simulated site was not built');
    out(`\nscenario ${opts.scenario}, part 1: a fresh daemon and a simulated site of ${world.locks.length} locks`);
    const r1 = await runSteps(
      [
        ...smokeSteps(first.hub, marker),
        ...siteSteps(first.hub, world),
        ...otpKeySteps(first.hub, world, cloud, hubId),
        ...cloudSteps(first.hub, world, cloud, hubId),
        ...accessSteps(first.hub, world, cloud, admin, hubId, line, out, pin),
        ...pinKeySteps(first.hub, world, cloud, admin, hubId, pin, out),
        ...firmwareSteps(first.hub, world),
        ...syncNowSteps(first.hub, cloud, admin, hubId),
      ],
      out,
    );
    await first.shutdown('demo: restart');

    const second = await start(!opts.exit);
    out(`\nscenario ${opts.scenario}, part 2: the same data directory after a restart`);
    const r2 = await runSteps(
      [
        ...afterRestartSteps(second.hub, marker),
        ...siteAfterRestartSteps(second.hub, world),
        ...cloudAfterRestartSteps(second.hub, world, cloud, hubId),
        ...accessAfterRestartSteps(second.hub, world, () => pin.value),
      ],
      out,
    );
    out(
      `\nscenario ${opts.scenario}, part 3: hub replacement (backup, the cloud's approval, restore on a second data directory)`,
    );
    const r3 = await replacementPart(
      {
        old: second,
        world,
        cloud,
        hubId,
        base,
        config: second.hub.deps.config,
        start: async (o) => {
          let w: SimWorld | undefined;
          const daemon = await startDaemon({
            configPath: null,
            overrides: { ...o, backup: overrides.backup },
            logPretty: opts.pretty,
            handleSignals: !opts.exit,
            simulation: loadSimulatedSite,
            onBuilt: (_hub, x) => {
              w = x;
            },
          });
          if (!w) throw new Error('the replacement simulated site was not built');
          return { daemon, world: w };
        },
      },
      out,
    );
    const last = r3.daemon ?? second;
    out(`\nscenario ${opts.scenario}, part 4: lock firmware over the real radio stacks (BLE and ZigBee emulators)`);
    const r4 = await firmwareRadiosPart(base, out);
    const passed = r1.passed + r2.passed + r3.passed + r4.passed;
    const failed = r1.failed + r2.failed + r3.failed + r4.failed;
    out(`\nscenario ${opts.scenario}: ${passed} passed, ${failed} failed`);

    if (opts.exit) {
      const code = await last.shutdown('demo finished');
      await shutdownCloud();
      return failed === 0 && code === 0 ? 0 : 1;
    }
    const cli = `node dist/src/cli/main.cjs`;
    out('\nthe daemon keeps running with its simulated locks. In another terminal:');
    out(`  ${cli} status --socket ${last.hub.control.path}`);
    out(`  ${cli} locks  --socket ${last.hub.control.path}`);
    out(`  ${cli} open SIM-0002 --socket ${last.hub.control.path}`);
    out(`  ${cli} commands --socket ${last.hub.control.path}   (the cloud's remote commands)`);
    out('press Ctrl-C to stop it.\n');
    const code = await last.done;
    await shutdownCloud();
    return failed === 0 ? code : 1;
  } catch (e) {
    out(`iq-hub demo failed: ${describeError(e)}`);
    await shutdownCloud().catch(() => {});
    return 1;
  }
}
