import { describe, expect, it } from 'vitest';
import { HubRecords } from '../../../sim/cloud/hub-records.js';
import type { CloudEvent } from '../../../src/contract/mqtt-hub-messages.js';

const ev = (lockId: string, epoch: number, seq: number): CloudEvent => ({
  id: `${lockId}/${epoch}/${seq}`,
  lockId,
  epoch,
  seq,
  type: 'tamper',
  at: '2026-12-07T00:00:00.000Z',
  receivedAt: '2026-12-07T00:00:00.000Z',
});

describe('the reference cloud orders events by seq (docs/mqtt-api.md, "Event order")', () => {
  it('a copy lost and resent after newer ones: a hole until it comes, then none; arrival order shows it late', () => {
    const r = new HubRecords(undefined);
    r.recordEvents('h', [ev('L1', 1, 1), ev('L1', 1, 2), ev('L2', 1, 1)]);
    // 3 and 4 lost by the broker; 5 arrives.
    r.recordEvents('h', [ev('L1', 1, 5)]);
    expect(r.sequenceGaps('h')).toEqual([{ hubId: 'h', lockId: 'L1', epoch: 1, missing: [3, 4] }]);
    expect(r.orderViolations('h')).toEqual([]);
    // The resend: 1..5 again (duplicates are not counted), filling the hole.
    r.recordEvents(
      'h',
      [1, 2, 3, 4, 5].map((s) => ev('L1', 1, s)),
    );
    expect(r.sequenceGaps('h')).toEqual([]);
    expect(r.orderViolations('h').map((e) => e.id)).toEqual(['L1/1/3', 'L1/1/4']);
    expect(r.duplicates).toBe(3);
  });

  it('epochs and hubs are apart: a new epoch starting at 1 is no hole, another hub is not counted', () => {
    const r = new HubRecords(undefined);
    r.recordEvents('h', [ev('L1', 1, 1), ev('L1', 1, 2), ev('L1', 2, 1), ev('L1', 2, 3)]);
    r.recordEvents('other', [ev('L1', 1, 1), ev('L1', 1, 9)]);
    expect(r.sequenceGaps('h')).toEqual([{ hubId: 'h', lockId: 'L1', epoch: 2, missing: [2] }]);
    expect(r.sequenceGaps().map((g) => g.hubId)).toEqual(['h', 'other']);
  });

  it('a huge jump lists at most 100 missing seqs (and does not loop over billions)', () => {
    const r = new HubRecords(undefined);
    r.recordEvents('h', [ev('L1', 1, 1), ev('L1', 1, 2 ** 40)]);
    const [gap] = r.sequenceGaps('h');
    expect(gap?.missing).toHaveLength(100);
    expect(gap?.missing[0]).toBe(2);
  });
});
