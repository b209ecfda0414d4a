import { describe, expect, it } from 'vitest';
import type { Bearer, BearerError, BearerLink, BearerState, ConnectOptions } from '../../../hal/bearer.js';
import { StartingRadio } from '../../../src/app/radio-start.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { Listeners } from '../../../src/base/listeners.js';
import { err, type Result } from '../../../src/base/result.js';
import { silentLogger } from '../../../src/log/logger.js';

/** A radio whose start the test finishes by hand; connect answers as an unopened adapter does, unless ready. */
class SlowRadio implements Bearer {
  readonly kind = 'zigbee' as const;
  st: BearerState = { status: 'stopped' };
  readonly states = new Listeners<BearerState>();
  readonly connects: { address: string; timeoutMs: number; state: BearerState['status'] }[] = [];
  finish: (to: BearerState) => void = () => {};
  installCodes = 0;

  start(): Promise<void> {
    this.set({ status: 'starting' });
    return new Promise((resolve) => {
      this.finish = (to) => {
        this.set(to);
        resolve();
      };
    });
  }
  async stop(): Promise<void> {
    this.set({ status: 'stopped' });
  }
  set(s: BearerState): void {
    this.st = s;
    this.states.emit(s);
  }
  state(): BearerState {
    return this.st;
  }
  onStateChange(l: (s: BearerState) => void) {
    return this.states.add(l);
  }
  onAdvertisement() {
    return () => {};
  }
  async connect(address: string, o: ConnectOptions): Promise<Result<BearerLink, BearerError>> {
    this.connects.push({ address, timeoutMs: o.timeoutMs, state: this.st.status });
    if (this.st.status !== 'ready') {
      return err({ code: 'adapter-unavailable', message: 'the adapter is not open', reason: this.st.status });
    }
    return err({ code: 'not-found', message: 'reached the radio', address });
  }
  async addInstallCode(): Promise<void> {
    this.installCodes++;
  }
}

const rig = () => {
  const clock = new VirtualClock();
  const inner = new SlowRadio();
  const radio = new StartingRadio(inner, clock, silentLogger());
  return { clock, inner, radio };
};

describe('a radio that starts in the background (StartingRadio)', () => {
  it('its start returns at once; `started` settles when the radio is up', async () => {
    const { inner, radio } = rig();
    let started = false;
    await radio.start();
    void radio.started.then(() => {
      started = true;
    });
    expect(radio.state().status).toBe('starting');
    await Promise.resolve();
    expect(started).toBe(false);
    inner.finish({ status: 'ready' });
    await radio.started;
    expect(started).toBe(true);
  });

  it('a connect while the radio starts waits for it, and keeps the rest of its timeout', async () => {
    const { clock, inner, radio } = rig();
    await radio.start();
    const pending = radio.connect('0x01', { timeoutMs: 5_000 });
    await clock.advance(1_200);
    expect(inner.connects).toEqual([]);
    inner.finish({ status: 'ready' });
    const r = await pending;
    expect(r).toMatchObject({ ok: false, error: { code: 'not-found' } });
    expect(inner.connects).toEqual([{ address: '0x01', timeoutMs: 3_800, state: 'ready' }]);
  });

  it('a radio that fails to start gives its own answer to the waiting connect (not a hang)', async () => {
    const { inner, radio } = rig();
    await radio.start();
    const pending = radio.connect('0x01', { timeoutMs: 5_000 });
    inner.finish({ status: 'unavailable', reason: 'no adapter at /dev/ttyACM0' });
    expect(await pending).toMatchObject({ ok: false, error: { code: 'adapter-unavailable' } });
  });

  it('a connect waits no longer than its timeout: then the radio says why it cannot', async () => {
    const { clock, inner, radio } = rig();
    await radio.start();
    const pending = radio.connect('0x01', { timeoutMs: 2_000 });
    await clock.advance(2_000);
    const r = await pending;
    expect(r).toMatchObject({ ok: false, error: { code: 'adapter-unavailable', reason: 'starting' } });
    expect(inner.connects).toEqual([{ address: '0x01', timeoutMs: 1, state: 'starting' }]);
  });

  it('a ready radio is not waited for; install codes and join windows wait like connects', async () => {
    const { inner, radio } = rig();
    await radio.start();
    const code = radio.addInstallCode?.({} as never);
    await Promise.resolve();
    expect(inner.installCodes).toBe(0);
    inner.finish({ status: 'ready' });
    await code;
    expect(inner.installCodes).toBe(1);
    await radio.connect('0x02', { timeoutMs: 700 });
    expect(inner.connects).toEqual([{ address: '0x02', timeoutMs: 700, state: 'ready' }]);
    // Only what the radio offers: no join window on a radio without one.
    expect(radio.openJoinWindow).toBeUndefined();
  });
});
