import { describe, expect, it } from 'vitest';
import { SimRadio } from '../../../drivers/sim-radio/radio.js';
import type {
  Advertisement,
  Bearer,
  BearerKind,
  BearerLink,
  BearerState,
  ConnectOptions,
} from '../../../hal/bearer.js';
import { CompositeBearer } from '../../../hal/composite.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { SeededRandom } from '../../../src/base/random.js';
import { Secret } from '../../../src/crypto/secret.js';
import { drive } from '../../helpers/drive.js';

/** A simulated radio under another radio's name, so two of them can sit in one composite. */
class Renamed implements Bearer {
  joinWindows: number[] = [];
  constructor(
    readonly kind: BearerKind,
    readonly inner: Bearer,
  ) {}
  start = () => this.inner.start();
  stop = () => this.inner.stop();
  state = (): BearerState => this.inner.state();
  onStateChange = (l: (s: BearerState) => void) => this.inner.onStateChange(l);
  onAdvertisement = (l: (a: Advertisement) => void) => this.inner.onAdvertisement(l);
  connect = (address: string, o: ConnectOptions) => this.inner.connect(address, o);
  async openJoinWindow(ms: number): Promise<void> {
    this.joinWindows.push(ms);
  }
  async closeJoinWindow(): Promise<void> {
    this.joinWindows.push(0);
  }
  installCodes: string[] = [];
  async addInstallCode(code: Secret): Promise<void> {
    this.installCodes.push(Buffer.from(code.reveal()).toString('utf8'));
  }
}

function radio(clock: VirtualClock, name: string, address: string) {
  const r = new SimRadio({ clock, random: new SeededRandom(name), advertiseIntervalMs: 50 });
  const peers: BearerLink[] = [];
  r.addPeripheral({
    address,
    advertisement: () => ({ deviceId: `lock-${name}`, attachMode: false }),
    onConnect: (l) => peers.push(l),
  });
  return { radio: r, peers };
}

describe('several radios as one bearer', () => {
  it('prefixes advertisements with their radio, routes connects by prefix, and forwards join windows', async () => {
    const clock = new VirtualClock();
    const ble = radio(clock, 'ble', 'AA:BB');
    const zig = radio(clock, 'zigbee', '0x00124b');
    const bleBearer = new Renamed('ble', ble.radio.bearer());
    const zigBearer = new Renamed('zigbee', zig.radio.bearer());
    const c = new CompositeBearer([bleBearer, zigBearer]);
    const heard = new Set<string>();
    c.onAdvertisement((a) => heard.add(`${a.deviceId}@${a.address}`));
    await c.start();
    await clock.advance(200);
    expect([...heard].sort()).toEqual(['lock-ble@ble/AA:BB', 'lock-zigbee@zigbee/0x00124b']);
    expect(c.state()).toEqual({ status: 'ready' });

    const link = await drive(clock, c.connect('zigbee/0x00124b', { timeoutMs: 500 }));
    if (!link.ok) throw new Error(link.error.message);
    expect(link.value.address).toBe('zigbee/0x00124b');
    expect(zig.peers).toHaveLength(1);
    expect(ble.peers).toHaveLength(0);
    const got: number[] = [];
    zig.peers[0]?.onFrame((f) => got.push(f.length));
    expect((await drive(clock, link.value.send(new Uint8Array(300)))).ok).toBe(true);
    await clock.advance(10);
    expect(got).toEqual([300]);

    const nowhere = await drive(clock, c.connect('lora/1', { timeoutMs: 100 }));
    expect(nowhere.ok ? '' : nowhere.error.code).toBe('not-found');
    const bare = await drive(clock, c.connect('AA:BB', { timeoutMs: 100 }));
    expect(bare.ok ? '' : bare.error.code).toBe('not-found');

    await c.openJoinWindow(30_000);
    await c.closeJoinWindow();
    expect(bleBearer.joinWindows).toEqual([30_000, 0]);
    expect(zigBearer.joinWindows).toEqual([30_000, 0]);
    await c.addInstallCode(Secret.fromUtf8('00124b0001020304$CODE'));
    expect(zigBearer.installCodes).toEqual(['00124b0001020304$CODE']);
    await drive(clock, c.stop());
  });

  it('one radio down leaves the composite ready with the other; all down names each reason', async () => {
    const clock = new VirtualClock();
    const down = (kind: BearerKind, reason: string): Bearer => {
      const b = new Renamed(kind, radio(clock, kind, 'x').radio.bearer());
      b.state = () => ({ status: 'unavailable', reason });
      return b;
    };
    const ok = new Renamed('ble', radio(clock, 'ok', 'y').radio.bearer());
    const mixed = new CompositeBearer([ok, down('zigbee', 'no coordinator at /dev/ttyUSB0')]);
    await mixed.start();
    expect(mixed.state()).toEqual({ status: 'ready' });
    await mixed.stop();
    const all = new CompositeBearer([down('ble', 'no HCI device 0'), down('zigbee', 'no coordinator')]);
    expect(all.state()).toEqual({ status: 'unavailable', reason: 'ble: no HCI device 0; zigbee: no coordinator' });
    expect(() => new CompositeBearer([ok, new Renamed('ble', ok.inner)])).toThrow(/distinct radios/);
    // No radio that takes install codes: refused, naming what to do.
    const noTaker = new CompositeBearer([radio(clock, 'p', 'z').radio.bearer()]);
    await expect(noTaker.addInstallCode(Secret.fromUtf8('x$y'))).rejects.toMatchObject({ code: 'attach.install-code' });
  });

  it('a second start() changes nothing: each advertisement and state change still reaches a listener once', async () => {
    const heardOver = async (starts: number) => {
      const clock = new VirtualClock();
      const c = new CompositeBearer([radio(clock, 'ble', 'AA:BB').radio.bearer()]);
      const ads: string[] = [];
      const states: string[] = [];
      c.onAdvertisement((a) => ads.push(a.address));
      c.onStateChange((s) => states.push(s.status));
      for (let i = 0; i < starts; i++) await c.start();
      await clock.advance(500);
      await drive(clock, c.stop());
      return { ads, states };
    };
    const once = await heardOver(1);
    expect(once.ads.length).toBeGreaterThan(0);
    expect(await heardOver(2)).toEqual(once);
  });
});
