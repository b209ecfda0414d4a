import { describe, expect, test } from 'vitest';
import type { BleBearer } from '../../drivers/ble/bearer.js';
import type { EmulatedAdapter } from '../../sim/emu/hci/rig.js';
import { SimLock } from '../../sim/lock/lock.js';
import { systemClock } from '../../src/base/clock.js';
import { SeededRandom } from '../../src/base/random.js';
import type { LockEvent } from '../../src/contract/link-messages.js';
import { Sealer } from '../../src/crypto/seal.js';
import { Secret } from '../../src/crypto/secret.js';
import { LinkManager } from '../../src/link/manager.js';
import { generateKeyPair } from '../../src/link/noise.js';
import { PairingStore } from '../../src/link/pairing.js';
import { silentLogger } from '../../src/log/logger.js';
import { Store } from '../../src/store/store.js';
import { bleBearer, closedAfterEach, startAdapter, untilWithin } from '../helpers/ble-rig.js';
import { requireSocat, SOCAT_MISSING } from '../helpers/socat.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * The hub's real link layer over the BLE driver: a LinkManager attaches an unmodified SimLock
 * hosted by the HCI emulator, through real noble and a socat PTY, then opens it, collects an
 * event, survives the adapter being pulled out, and detaches.
 */

const socat = requireSocat();
if (!socat) process.stderr.write(`ble-link: ${SOCAT_MISSING}\n`);

const open = closedAfterEach();
const until = untilWithin(20_000);

interface Site {
  adapter: EmulatedAdapter;
  bearer: BleBearer;
  lock: SimLock;
  setupCode: string;
  manager: LinkManager;
  events: { lockId: string; event: LockEvent }[];
}

async function site(): Promise<Site> {
  const adapter = await startAdapter(open, socat as string, { advertiseIntervalMs: 50 });
  const random = new SeededRandom('ble-link');
  const setupCode = 'BLE1-TEST-CODE';
  const lock = new SimLock({
    deviceId: 'BLE-0001',
    keyPair: generateKeyPair(new SeededRandom('ble-link/lock')),
    setupCode,
    radio: adapter.emulator,
    address: 'aa:bb:cc:00:01:01',
    clock: systemClock,
    random,
  });
  lock.boot();
  open.push(() => lock.crash());
  const bearer = bleBearer(
    { kind: 'uart', path: adapter.path },
    {
      maxConnections: 4,
      readyTimeoutMs: 2_000,
      recoverBaseMs: 100,
      recoverMaxMs: 500,
      scanRestartMs: 50,
    },
  );
  const store = Store.open(tempDir('iqhub-ble-link-'));
  const manager = new LinkManager({
    pairing: new PairingStore(store),
    bearer,
    sealer: new Sealer(new Secret(random.bytes(32)), random),
    clock: systemClock,
    random,
    log: silentLogger(),
    options: { connectTimeoutMs: 3_000, reconnectBaseMs: 200, reconnectMaxMs: 1_000 },
  });
  const events: { lockId: string; event: LockEvent }[] = [];
  manager.onLockEvent((lockId, event) => events.push({ lockId, event }));
  await manager.start();
  open.push(async () => {
    await manager.stop();
    store.close();
  });
  await until(() => bearer.state().status === 'ready', 'bearer ready');
  return { adapter, bearer, lock, setupCode, manager, events };
}

describe.skipIf(!socat)(`the sealed lock link over BLE (real noble)${socat ? '' : ` (${SOCAT_MISSING})`}`, () => {
  test('attach a lock in attach mode, open it, receive its event, detach', async () => {
    const s = await site();
    s.lock.presentMaintenanceCard();
    const summary = await s.manager.attach('BLE-0001', Secret.fromUtf8(s.setupCode), 15_000);
    expect(summary.lockId).toBe('BLE-0001');
    // Bound to this hub: the lock holds this hub's static key, not merely some key.
    expect(Buffer.from(s.lock.boundHub() ?? [])).toEqual(Buffer.from(s.manager.hubPublicKey));

    await s.manager.open('BLE-0001', 5_000);
    expect(s.lock.state().bolt).toBe('unlocked');
    expect(s.lock.requestCounts().handled.open).toBe(1);

    s.lock.tamper();
    await until(
      () => s.events.some((e) => e.lockId === 'BLE-0001' && e.event.type === 'tamper'),
      'tamper event at the hub',
    );

    const detached = await s.manager.detach('BLE-0001');
    expect(detached.detached).toBe(true);
    expect(s.lock.boundHub()).toBeUndefined();
  });

  test('adapter pulled out and plugged back: the hub reconnects and the lock works again', async () => {
    const s = await site();
    s.lock.presentMaintenanceCard();
    await s.manager.attach('BLE-0001', Secret.fromUtf8(s.setupCode), 15_000);
    await s.manager.open('BLE-0001', 5_000);

    await s.adapter.pty.unplug();
    await until(() => s.bearer.state().status === 'unavailable', 'bearer unavailable');
    await s.adapter.pty.plug();
    await until(() => s.bearer.state().status === 'ready', 'bearer ready again');

    await s.manager.lockNow('BLE-0001');
    expect(s.lock.state().bolt).toBe('locked');
    s.lock.setDoor(true);
    await until(
      () => s.events.some((e) => e.event.type === 'door' && (e.event as { open?: boolean }).open === true),
      'door event after the re-plug',
    );
  });
});
