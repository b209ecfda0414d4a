import { type SimFaults, SimRadio, type SimRadioOptions } from '../../../../drivers/sim-radio/radio.js';
import type { BearerLink, CloseReason } from '../../../../hal/bearer.js';
import { VirtualClock } from '../../../../src/base/clock.js';
import { SeededRandom } from '../../../../src/base/random.js';
import type { Result } from '../../../../src/base/result.js';
import { drive } from '../../../helpers/drive.js';

/** A radio on virtual time with a seeded random source. */
export function simRadio(
  seed: number | string,
  faults: Partial<SimFaults> = {},
  options: Partial<SimRadioOptions> = {},
) {
  const clock = new VirtualClock();
  const radio = new SimRadio({ clock, random: new SeededRandom(seed), faults, ...options });
  return { clock, radio };
}

/** Advances virtual time 1 ms at a time until the promise settles (drive), failing the test if it never does. */
export function settle<T>(clock: VirtualClock, promise: Promise<T>, maxMs = 60_000): Promise<T> {
  return drive(clock, promise, maxMs, 1);
}

export function unwrap<T, E>(result: Result<T, E>): T {
  if (!result.ok) throw new Error(`expected success, got ${JSON.stringify(result.error)}`);
  return result.value;
}

/** A radio with one lock in range and a started hub bearer connected to it. */
export async function connectedPair(seed: number | string, faults: Partial<SimFaults> = {}) {
  const world = simRadio(seed, faults);
  let lockLink: BearerLink | undefined;
  const lock = world.radio.addPeripheral({
    address: 'lock-1',
    advertisement: () => ({ deviceId: 'D-1', attachMode: false }),
    onConnect: (link) => {
      lockLink = link;
    },
  });
  const bearer = world.radio.bearer({ address: 'hub-1' });
  await bearer.start();
  const hubLink = unwrap(await settle(world.clock, bearer.connect('lock-1', { timeoutMs: 5_000 })));
  if (!lockLink) throw new Error('the lock was not told of the connection');
  return { ...world, lock, bearer, hubLink, lockLink };
}

/** Frame number i, as 4 bytes. */
export function numbered(i: number): Uint8Array {
  const frame = new Uint8Array(4);
  new DataView(frame.buffer).setUint32(0, i);
  return frame;
}

export function numberOf(frame: Uint8Array): number {
  return new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0);
}

/** Collects the numbers of the frames a link receives. */
export function collect(link: BearerLink): number[] {
  const got: number[] = [];
  link.onFrame((frame) => got.push(numberOf(frame)));
  return got;
}

export function closeReasons(link: BearerLink): CloseReason[] {
  const reasons: CloseReason[] = [];
  link.onClose((reason) => reasons.push(reason));
  return reasons;
}
