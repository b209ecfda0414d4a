import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CloudRecovery } from '../../sim/cloud/recovery.js';
import { startRadioSite } from '../../sim/emu/site.js';
import type { RunningDaemon } from '../../src/app/daemon.js';
import { applyRestore, makeRestoreRequest, RESTORE_FRAME_COUNTER_JUMP } from '../../src/backup/restore.js';
import { systemClock } from '../../src/base/clock.js';
import { SeededRandom, systemRandom } from '../../src/base/random.js';
import type { HubConfig } from '../../src/config/schema.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { Secret } from '../../src/crypto/secret.js';
import { EMULATED_LINK, startDaemonIn } from '../helpers/radio-daemon.js';
import { retrying } from '../helpers/radio-rig.js';
import { requireSocat, SOCAT_MISSING } from '../helpers/socat.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Hub replacement with a ZigBee lock on real zigbee-herdsman and the ZNP emulator: the replacement
 * hub comes with a blank coordinator, which the restored coordinator backup (network key, PAN,
 * frame counter moved forward) brings back onto the hub's network, and the lock, bound to the
 * moved link key, works through the new hub without joining or attaching again.
 */

const socat = requireSocat();
if (!socat) process.stderr.write(`hub-replacement-zigbee: ${SOCAT_MISSING}\n`);
const ZB = { deviceId: 'ZB-0001', setupCode: 'ZB01-REPL-CODE', address: 'zb-0001', radio: 'zigbee' } as const;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
}, 60_000);

describe.skipIf(!socat)('hub replacement with a ZigBee lock (zigbee-herdsman, ZNP emulator)', () => {
  it('the replacement with a blank coordinator is back on the network, its frame counter past the old one, and the lock works without an attach', {
    timeout: 240_000,
  }, async () => {
    const site = await startRadioSite({ socat: socat as string, locks: [ZB], seed: 'replacement-zigbee' });
    cleanups.push(() => site.close());
    const cloud = new CloudRecovery(systemClock, new SeededRandom('replacement-zigbee-cloud'));
    const recoveryPublicKey = await cloud.enable();
    const start = async (hubId: string, dir: string): Promise<RunningDaemon> => {
      const d = await startDaemonIn(
        dir,
        {
          radios: { ...site.radios, ble: { ...site.radios.ble, enabled: false } },
          provisioning: { hubId } as HubConfig['provisioning'],
          backup: { recoveryPublicKey },
        },
        { linkOptions: { ...EMULATED_LINK, pollMs: 1_000 } },
      );
      cleanups.push(() => d.shutdown('test over'));
      return d;
    };
    const lock = site.locks.get(ZB.deviceId);
    if (!lock) throw new Error('no ZigBee lock');

    const oldDir = tempDir();
    const old = await start('hub-old', oldDir);
    const oldLink = old.hub.link;
    if (!oldLink) throw new Error('no link layer');
    lock.presentMaintenanceCard();
    await oldLink.attach(ZB.deviceId, Secret.fromUtf8(ZB.setupCode), 30_000);
    expect((await oldLink.open(ZB.deviceId, 1_000)).bolt).toBe('unlocked');
    const linkKey = Buffer.from(oldLink.hubPublicKey);
    const networkKey = Buffer.from(site.znp.networkKey() ?? []);
    const taken = (await callDaemon(old.hub.control.path, 'hub.backup', {}, 120_000)) as {
      path: string;
      zigbee: boolean;
      zigbeeFresh: boolean;
    };
    expect(taken).toMatchObject({ zigbee: true, zigbeeFresh: true });
    await old.shutdown('the old hub fails');
    site.znp.factoryReset(); // the replacement's coordinator is blank
    expect(site.znp.networkKey()).toBeUndefined();

    const newDir = tempDir();
    const dataDir = join(newDir, 'data');
    const req = await makeRestoreRequest({
      dataDir,
      backupPath: taken.path,
      newHubId: 'hub-new',
      random: systemRandom,
      now: Date.now(),
    });
    const approvalPath = join(newDir, 'approval.json');
    writeFileSync(approvalPath, (await cloud.approve(readFileSync(req.requestPath, 'utf8'))).approvalText);
    const restored = await applyRestore({
      key: { dataDir, keyFile: null, credentialsDirectory: undefined, random: systemRandom },
      backupPath: taken.path,
      approvalPath,
      newHubId: 'hub-new',
      now: Date.now(),
    });
    expect(restored.zigbeeFrameCounter).toBeGreaterThan(RESTORE_FRAME_COUNTER_JUMP);

    const replacement = await start('hub-new', newDir);
    const link = replacement.hub.link;
    if (!link) throw new Error('no link layer');
    expect(Buffer.from(link.hubPublicKey)).toEqual(linkKey);
    const state = await retrying(() => link.lockState(ZB.deviceId), 'the lock through the replacement hub', 90_000);
    expect(state.bolt).toBeDefined();
    expect((await link.open(ZB.deviceId, 1_000)).bolt).toBe('unlocked');
    expect(Buffer.from(site.znp.networkKey() ?? [])).toEqual(networkKey);
    expect(site.znp.frameCounter()).toBeGreaterThanOrEqual(restored.zigbeeFrameCounter as number);
    expect(Buffer.from(lock.boundHub() ?? [])).toEqual(linkKey);
  });
});
