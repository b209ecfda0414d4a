import { describe, expect, it } from 'vitest';
import { lockPage } from '../../../src/commands/lock-pages.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';
import { commandHarness, summary } from '../../helpers/commands.js';

const LIMIT = 16_384;
const ids = (n: number) => Array.from({ length: n }, (_, i) => `LOCK-${String(i).padStart(4, '0')}`);

function siteWith(n: number, maxMessageBytes = LIMIT) {
  const t = commandHarness({ maxMessageBytes });
  const locks = ids(n)
    .reverse()
    .map((id) => summary(id));
  t.target.list = () => locks;
  return t;
}

describe('listLocks in pages', () => {
  it('500 locks come in pages that each fit the message limit, every lock exactly once, in id order', async () => {
    const t = siteWith(500);
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const before = t.sink.all.length;
      await t.run({ op: 'listLocks', args: after === undefined ? {} : { after } });
      const sent = t.sink.all.slice(before);
      const answer = sent.at(-1)?.payload as {
        ok: boolean;
        result: { locks: { lockId: string }[]; next: string | null };
      };
      expect(answer.ok).toBe(true);
      expect(Buffer.byteLength(JSON.stringify(answer))).toBeLessThanOrEqual(LIMIT);
      expect(conforms('cmd/result', answer)).toBe(true);
      seen.push(...answer.result.locks.map((l) => l.lockId));
      pages++;
      if (answer.result.next === null) break;
      expect(answer.result.next).toBe(seen.at(-1));
      after = answer.result.next;
    }
    expect(pages).toBeGreaterThan(5);
    expect(seen).toEqual(ids(500));
  });

  it('a cloud that asks without paging arguments gets the first page and a next', async () => {
    const t = siteWith(500);
    await t.run({ op: 'listLocks' });
    const answer = t.last() as { result: { locks: unknown[]; next: string | null } };
    expect(answer.result.locks.length).toBeGreaterThan(0);
    expect(answer.result.locks.length).toBeLessThan(500);
    expect(answer.result.next).not.toBeNull();
  });

  it('limit bounds a page; the last page says next: null', async () => {
    const t = siteWith(5);
    await t.run({ op: 'listLocks', args: { limit: 2 } });
    expect(t.last()).toMatchObject({ ok: true, result: { next: 'LOCK-0001' } });
    await t.run({ op: 'listLocks', args: { after: 'LOCK-0003', limit: 2 } });
    expect((t.last() as { result: unknown }).result).toEqual({ locks: [summary('LOCK-0004')], next: null });
  });

  it('bad paging arguments are refused bad_request', async () => {
    const t = siteWith(5);
    await t.run({ op: 'listLocks', args: { limit: 0 } });
    expect(t.last()).toMatchObject({ ok: false, error: { code: 'bad_request' } });
    await t.run({ op: 'listLocks', args: { offset: 3 } });
    expect(t.last()).toMatchObject({ ok: false, error: { code: 'bad_request' } });
  });

  it('a cursor is stable when a lock is attached between two pages', () => {
    const all = ids(10).map((id) => ({ lockId: id }));
    const first = lockPage(all, { limit: 4 }, LIMIT);
    const grown = [{ lockId: 'LOCK-0000a' }, ...all];
    const second = lockPage(grown, { after: first.next as string, limit: 4 }, LIMIT);
    expect(second.locks.map((l) => l.lockId)).toEqual(['LOCK-0004', 'LOCK-0005', 'LOCK-0006', 'LOCK-0007']);
  });
});

describe('an answer larger than the message limit', () => {
  it('is refused answer.too-large instead of being published', async () => {
    const t = siteWith(0);
    t.target.list = () => [{ ...summary('BIG'), address: 'x'.repeat(20_000) }];
    await t.run({ op: 'listLocks' });
    const answer = t.last();
    expect(answer).toMatchObject({ ok: false, error: { code: 'answer.too-large' } });
    expect(t.sink.all.every((s) => Buffer.byteLength(JSON.stringify(s.payload)) <= LIMIT)).toBe(true);
  });
});
