import { describe, expect, it } from 'vitest';
import type { LockEvent } from '../../../src/contract/link-messages.js';
import { PairingStore } from '../../../src/link/pairing.js';
import { Store } from '../../../src/store/store.js';
import { pairingWithLock } from '../../helpers/pairing.js';
import { tempDir } from '../../helpers/tmp.js';

/** The pairing store keeps lock records it has read; every write forgets the lock it touched. */

const T0 = Date.parse('2026-11-28T00:00:00Z');
const tamper = (seq: number): LockEvent => ({ seq, at: T0 + seq, type: 'tamper' });

/** A second view of the same store, with nothing kept: what the row says now. */
const pairingWithoutCache = (store: Store) => new PairingStore(store);

function bound() {
  const store = Store.open(tempDir());
  return { store, pairing: pairingWithLock(store, T0) };
}

describe('pairing store records', () => {
  it('a record read twice is the same frozen object; every write shows at the next read', async () => {
    const { store, pairing } = bound();
    try {
      const first = pairing.get('L1');
      expect(pairing.get('L1')).toBe(first);
      expect(Object.isFrozen(first)).toBe(true);

      pairing.setState('L1', 'quarantined', T0 + 1, 'test');
      expect(pairing.get('L1')?.state).toBe('quarantined');
      pairing.seen('L1', 'a2', T0 + 2);
      expect(pairing.get('L1')?.address).toBe('a2');
      pairing.sessionOpened('L1', T0 + 3);
      expect(pairing.get('L1')?.sessions).toBe(1);
      pairing.countFailures('L1', 2, 3);
      expect(pairing.get('L1')).toMatchObject({ failedHandshakes: 2, rejectedFrames: 3 });
      await pairing.storeEvents('L1', [tamper(1), tamper(2)], T0 + 4);
      expect(pairing.get('L1')?.lastEventSeq).toBe(2);
      pairing.bind({
        lockId: 'L1',
        bearer: 'sim',
        address: 'a3',
        staticPublic: new Uint8Array(32),
        state: 'attaching',
        now: T0 + 5,
      });
      expect(pairing.get('L1')).toMatchObject({ state: 'attaching', address: 'a3', lastEventSeq: 0, epoch: 2 });
      expect(pairing.remove('L1')).toBe(true);
      expect(pairing.get('L1')).toBeUndefined();
    } finally {
      store.close();
    }
  });

  it('nothing read inside a transaction that rolls back outlives it', () => {
    const { store, pairing } = bound();
    try {
      expect(pairing.get('L1')?.state).toBe('bound');
      expect(() =>
        store.transaction(() => {
          pairing.setState('L1', 'quarantined', T0 + 1, 'rolled back');
          expect(pairing.get('L1')?.state).toBe('quarantined');
          throw new Error('roll back');
        }),
      ).toThrow('roll back');
      expect(pairing.get('L1')?.state).toBe('bound');
    } finally {
      store.close();
    }
  });

  it('after an event batch commits, the kept record carries its sequence and last_seen, as a fresh read would', async () => {
    const { store, pairing } = bound();
    try {
      const before = pairing.get('L1')!;
      await pairing.storeEvents('L1', [tamper(1), tamper(3)], T0 + 9);
      const kept = pairing.get('L1')!;
      expect(kept).not.toBe(before);
      expect(Object.isFrozen(kept)).toBe(true);
      expect(kept).toMatchObject({ lastEventSeq: 3, lastSeen: T0 + 9 });
      expect(pairingWithoutCache(store).get('L1')).toEqual(kept);
      // A resent (older) batch moves nothing back.
      await pairing.storeEvents('L1', [tamper(2)], T0 + 10);
      expect(pairing.get('L1')).toEqual(pairingWithoutCache(store).get('L1'));
      expect(pairing.get('L1')?.lastEventSeq).toBe(3);
    } finally {
      store.close();
    }
  });

  it('a write between the event transaction and its commit is not hidden by the kept record', async () => {
    const { store, pairing } = bound();
    try {
      pairing.get('L1');
      const stored = pairing.storeEvents('L1', [tamper(1)], T0 + 9);
      // The group commit runs the transaction on its timer; the quarantine lands before it resolves.
      store.flushGroup();
      pairing.setState('L1', 'quarantined', T0 + 10, 'test');
      await stored;
      expect(pairing.get('L1')).toMatchObject({ state: 'quarantined', lastEventSeq: 1 });
      expect(pairing.get('L1')).toEqual(pairingWithoutCache(store).get('L1'));
    } finally {
      store.close();
    }
  });

  it('a failed event commit leaves no kept record behind', async () => {
    const { store, pairing } = bound();
    try {
      pairing.get('L1');
      const stored = pairing.storeEvents('L1', [tamper(1)], T0 + 9, () => {
        throw new Error('disk gone');
      });
      await expect(stored).rejects.toThrow('disk gone');
      expect(pairing.get('L1')).toEqual(pairingWithoutCache(store).get('L1'));
      expect(pairing.get('L1')?.lastEventSeq).toBe(0);
    } finally {
      store.close();
    }
  });
});
