import { describe, expect, it } from 'vitest';
import { targetRows } from '../../../bench/targets.js';

describe("issue 15's targets against a run's metrics", () => {
  it('says met for a figure at or under its target and NO above it, reading the figure the target names', () => {
    const rows = targetRows({
      'zigbee.openOwnCost': { unit: 'ms', p50: 1, p99: 9, n: 400 },
      'zigbee.cpuPerOpen': { unit: 'ms CPU', value: 1.6, n: 400 },
      'access.decision.digitalKey': { unit: 'ms', p50: 0.3, p99: 1.2, n: 1000 },
    });
    expect(rows).toEqual([
      ['zigbee.openOwnCost p50', '1', '<= 1 ms', 'yes'],
      ['zigbee.cpuPerOpen', '1.6', '<= 1.5 ms CPU', 'NO'],
      ['access.decision.digitalKey p99', '1.2', '<= 1 ms', 'NO'],
    ]);
  });

  it('leaves out what the run did not measure, and a single value where a p99 is asked', () => {
    expect(targetRows({})).toEqual([]);
    expect(targetRows({ 'access.decision.digitalKey': { unit: 'ms', value: 0.1 } })).toEqual([]);
  });
});
