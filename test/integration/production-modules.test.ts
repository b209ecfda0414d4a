import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createDevPki } from '../../provisioning/dev-pki.js';
import { type RadioSite, startRadioSite } from '../../sim/emu/site.js';
import type { HubStatus } from '../../src/contract/control-socket.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { writeSiteConfig } from '../helpers/cloud-site.js';
import { CLI, type Proc, requireBuild, start } from '../helpers/daemon.js';
import { requireSocat, SOCAT_MISSING } from '../helpers/socat.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

const RECORDER = fileURLToPath(new URL('../fixtures/record-modules.mjs', import.meta.url));
const socat = requireSocat();
if (!socat) process.stderr.write(`production-modules: ${SOCAT_MISSING}\n`);

/**
 * What a production process must never load: the simulation, the demo, the test broker, a HPKE
 * library, @noble's JavaScript crypto (node:crypto does it: docs/operations.md, "Memory"); nor, at
 * start, the development PKI and node-forge with it (forge is loaded for a CSR only, through
 * require; an import of dev-pki.js, as hub-id.ts
 * once did for its identity rule, loads it with the daemon: docs/operations.md, "Memory").
 */
const forbidden = (urls: string[]) =>
  urls.filter((u) =>
    /\/dist\/sim\/|\/dist\/src\/demo\/|\/node_modules\/aedes\/|\/node_modules\/@hpke\/|\/node_modules\/@noble\/|\/dist\/provisioning\/dev-pki\.js$|\/node_modules\/node-forge\//.test(
      u,
    ),
  );

/**
 * What the daemon must not hold once it runs (issue 15, "Memory"; docs/operations.md, "Memory"):
 * yaml, dropped after the config is read (src/config/load.ts); what its libraries require but it
 * does not use, which src/base/deferred-modules.ts leaves for their first use — herdsman's mDNS
 * discovery (bonjour-service, multicast-dns, dns-packet) and zigbee-on-host, noble's whole `async`
 * (the UART driver's queue is async/queue.js), serialport's parsers and mock port, mqtt's worker
 * timers and lru-cache (topic aliases), herdsman's OTA client; and no copy of readable-stream's streams (mqtt-packet's copy is
 * mqtt's, and that one serves node's own: READABLE_STREAM=disable).
 */
const heldNeedlessly = (urls: string[]) =>
  urls.filter((u) =>
    /\/node_modules\/(yaml|bonjour-service|multicast-dns|dns-packet|zigbee-on-host|worker-timers|worker-timers-broker|lru-cache|@serialport\/binding-mock|@serialport\/parser-(byte-length|cctalk|inter-byte-timeout|packet-length|ready|regex|slip-encoder|spacepacket))\/|\/node_modules\/async\/dist\/|\/readable-stream\/lib\/internal\/|\/zigbee-herdsman\/dist\/controller\/helpers\/ota\.js$/.test(
      u,
    ),
  );

const BLE = { deviceId: 'BLE-PM01', setupCode: 'BLE1-PMOD-CODE', address: 'aa:bb:cc:00:d1:01', radio: 'ble' } as const;
const ZB = { deviceId: 'ZB-PM01', setupCode: 'ZB01-PMOD-CODE', address: 'zb-pm-01', radio: 'zigbee' } as const;

/**
 * Issue 15, "Memory": the daemon's production module graph — `iqhub run` in its own process with
 * an uplink, both real radio stacks (noble, zigbee-herdsman) on the emulated controllers, which
 * run in this test's process, a BLE and a ZigBee lock attached, a status call — loads nothing of
 * the simulation, the demo, aedes or @hpke. Every module the daemon's process loads through the
 * ESM loader is recorded (test/fixtures/record-modules.mjs).
 */
describe.skipIf(!socat)(`a production daemon with both radios${socat ? '' : ` (${SOCAT_MISSING})`}`, () => {
  let site: RadioSite | undefined;
  let daemon: Proc | undefined;
  afterAll(async () => {
    daemon?.child.kill('SIGKILL');
    await daemon?.exit;
    await site?.close();
  });

  it('loads no simulated code, no demo, no aedes, no @hpke and no node-forge, radios up and locks attached', async () => {
    const base = tempDir();
    site = await startRadioSite({ socat: socat as string, locks: [BLE, ZB], seed: 'production-modules' });
    const pki = createDevPki({ dir: join(base, 'pki'), hubId: 'hub-prod-modules', brokerHost: 'localhost' });
    // Nothing listens at port 9: the uplink keeps trying while the daemon runs (its code is loaded).
    const config = writeSiteConfig({
      base,
      brokerUrl: 'mqtts://127.0.0.1:9',
      pki,
      locks: 0,
      extra: [
        'radios:',
        '  ble:',
        '    enabled: true',
        '    transport: uart',
        `    uartPath: ${site.radios.ble.uartPath}`,
        '  zigbee:',
        '    enabled: true',
        `    port: ${site.radios.zigbee.port}`,
      ],
    });
    const log = join(base, 'modules.txt');
    writeFileSync(log, '');
    const saved = process.env.IQHUB_DAEMON_NODE_ARGS;
    process.env.IQHUB_DAEMON_NODE_ARGS = `--import ${RECORDER}`;
    try {
      daemon = start(['run', '--config', config], { IQHUB_MODULE_LOG: log }, CLI);
    } finally {
      if (saved === undefined) delete process.env.IQHUB_DAEMON_NODE_ARGS;
      else process.env.IQHUB_DAEMON_NODE_ARGS = saved;
    }
    await daemon.waitForOutput('iq-hub ready', 60_000);
    const socket = join(base, 'run', 'control.sock');
    const running = async (name: string) =>
      ((await callDaemon(socket, 'status')) as HubStatus).components.some(
        (c) => c.name === name && c.state === 'running',
      );
    const deadline = Date.now() + 60_000;
    while (!((await running('radio.ble')) && (await running('radio.zigbee')))) {
      if (Date.now() > deadline) throw new Error(`the radios did not start:\n${daemon.stdout().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const spec of [BLE, ZB]) {
      const end = Date.now() + 90_000;
      for (;;) {
        site.locks.get(spec.deviceId)?.presentMaintenanceCard();
        try {
          await callDaemon(
            socket,
            'locks.attach',
            { deviceId: spec.deviceId, setupCode: spec.setupCode, timeoutMs: 30_000 },
            35_000,
          );
          break;
        } catch (e) {
          if (Date.now() > end) throw e;
          await new Promise((r) => setTimeout(r, 1_000));
        }
      }
    }
    daemon.child.kill('SIGTERM');
    const { code } = await daemon.exit;
    expect(code, daemon.stderr()).toBe(0);
    const urls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    // The recorder saw the radio stacks and the uplink (so an empty list below proves something).
    expect(urls.some((u) => u.includes('/node_modules/zigbee-herdsman/'))).toBe(true);
    expect(urls.some((u) => u.endsWith('/dist/drivers/ble/bearer.js'))).toBe(true);
    expect(urls.some((u) => u.endsWith('/dist/src/uplink/service.js'))).toBe(true);
    expect(forbidden(urls)).toEqual([]);
    // The CommonJS modules were listed at exit (herdsman's controller is required by its index).
    expect(urls.some((u) => u.endsWith('/zigbee-herdsman/dist/controller/controller.js'))).toBe(true);
    expect(urls.some((u) => u.endsWith('/node_modules/async/queue.js'))).toBe(true);
    expect(heldNeedlessly(urls)).toEqual([]);
  }, 300_000);
});
