import { HubError } from '../../src/base/errors.js';

/**
 * How the simulated medium misbehaves. Read at every send, so a change made at run time applies to
 * the frames sent after it. Every random choice comes from the radio's seeded Random, in send order,
 * so the same seed and the same sends give the same deliveries.
 */
export interface SimFaults {
  /** One-way delay of every frame, ms. A connect takes two of these. */
  readonly latencyMs: number;
  /** Extra one-way delay, uniform in [0, jitterMs). Jitter alone never reorders: a link is FIFO. */
  readonly jitterMs: number;
  /** Probability that a frame is lost. */
  readonly lossRate: number;
  /** Probability that a frame is delivered twice. */
  readonly duplicateRate: number;
  /** Probability that a frame is held back by reorderDelayMs, so that frames sent after it overtake it. */
  readonly reorderRate: number;
  readonly reorderDelayMs: number;
  /** Probability, per frame sent, that the link drops instead of carrying it (both ends see 'lost'). */
  readonly disconnectRate: number;
}

export const NO_FAULTS: SimFaults = {
  latencyMs: 0,
  jitterMs: 0,
  lossRate: 0,
  duplicateRate: 0,
  reorderRate: 0,
  reorderDelayMs: 30,
  disconnectRate: 0,
};

const RATES = ['lossRate', 'duplicateRate', 'reorderRate', 'disconnectRate'] as const;
const DURATIONS = ['latencyMs', 'jitterMs', 'reorderDelayMs'] as const;

/** Refuses a fault setting that would make the simulation meaningless, naming the field. */
export function checkFaults(faults: SimFaults): SimFaults {
  for (const key of RATES) {
    const v = faults[key];
    if (!(Number.isFinite(v) && v >= 0 && v <= 1)) {
      throw new HubError('sim-radio.config', `simulated radio: ${key} must be a probability in [0, 1], got ${v}`);
    }
  }
  for (const key of DURATIONS) {
    const v = faults[key];
    if (!(Number.isFinite(v) && v >= 0)) {
      throw new HubError('sim-radio.config', `simulated radio: ${key} must be a duration >= 0 ms, got ${v}`);
    }
  }
  return { ...faults };
}

/** What the medium did to the frames, for tests to assert on. */
export interface SimCounters {
  /** Frames handed to the medium by send() on an open link, within the size limit. */
  readonly sent: number;
  /** Frames handed to a receiving end (duplicates included). */
  readonly delivered: number;
  /** Frames lost by the lossRate fault. */
  readonly dropped: number;
  /** Frames delivered a second time by the duplicateRate fault. */
  readonly duplicated: number;
  /** Frames held back by the reorderRate fault. */
  readonly reordered: number;
  /** Frames still in flight when their link closed, never delivered. */
  readonly discarded: number;
  /** Links dropped by the medium: disconnectRate, disconnect(), a peripheral leaving range or the radio. */
  readonly disconnects: number;
}

export type MutableCounters = { -readonly [K in keyof SimCounters]: SimCounters[K] };

export function zeroCounters(): MutableCounters {
  return { sent: 0, delivered: 0, dropped: 0, duplicated: 0, reordered: 0, discarded: 0, disconnects: 0 };
}
