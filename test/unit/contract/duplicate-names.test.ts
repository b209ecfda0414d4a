import { describe, expect, it } from 'vitest';
import { duplicateMemberName, parseInbound } from '../../../src/contract/mqtt-validate.js';
import { commandHarness } from '../../helpers/commands.js';

describe('duplicate member names (RFC 7493 I-JSON)', () => {
  it('finds a name given twice in one object, compared as decoded, at any depth', () => {
    expect(duplicateMemberName('{"a":1,"a":2}')).toBe('a');
    expect(duplicateMemberName('{"a":1,"\\u0061":2}')).toBe('a');
    expect(duplicateMemberName('{"x":{"b":1,"c":{},"b":2}}')).toBe('b');
    expect(duplicateMemberName('{"x":[{"k":1},{"k":2,"k":3}]}')).toBe('k');
    expect(duplicateMemberName('{"a":{},"a":1}')).toBe('a');
  });

  it('lets the same name stand in different objects, and string values equal to names', () => {
    expect(duplicateMemberName('{"a":{"a":{"a":1}},"b":"a","c":["a","a"]}')).toBeUndefined();
    expect(duplicateMemberName('[{"k":1},{"k":2}]')).toBeUndefined();
    expect(duplicateMemberName('{"q":"\\"a\\":1,\\"a\\":2","a":[{}],"b":{}}')).toBeUndefined();
    expect(duplicateMemberName('{}')).toBeUndefined();
  });

  it('an inbound payload with one is refused before its schema is read', () => {
    const sync = '{"v":1,"id":"s1","id":"s2","kind":"snapshot","version":1,"data":{}}';
    const r = parseInbound('sync', Buffer.from(sync));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.code).toBe('payload.duplicate-name');
    expect(!r.ok && r.error.message).toContain('"id"');
  });
});

describe('a command with a member given twice', () => {
  it('is refused bad_request and reaches no lock, whichever copy the OTP was computed over', async () => {
    const t = commandHarness();
    const genuine = t.sign({ op: 'lock', lockId: 'L1' });
    const text = JSON.stringify(genuine);
    // The signed op second (JSON.parse keeps it), and first (a reader keeping the first sees it).
    for (const body of [
      text.replace('"op":"lock"', '"op":"open","op":"lock"'),
      text.replace('"op":"lock"', '"op":"lock","op":"open"'),
      text.replace(`"otp":"${genuine.otp}"`, `"otp":"00000000","otp":"${genuine.otp}"`),
    ]) {
      await t.sendRaw('cmd', Buffer.from(body));
      expect(t.last()).toMatchObject({ id: genuine.cmdId, ok: false, error: { code: 'bad_request' } });
      expect(JSON.stringify(t.last())).toContain('appears twice');
    }
    expect(t.target.calls).toEqual([]);
    expect(t.inboxCount()).toBe(0);
    expect(t.lastCounter()).toBe(0);
    // The genuine envelope, sent as it is, still works: nothing was used up.
    await t.send(genuine);
    expect(t.last()).toMatchObject({ id: genuine.cmdId, ok: true });
  });

  it('a sync with one is answered payload.duplicate-name and applies nothing', async () => {
    const applied: unknown[] = [];
    const apply = async (p: unknown) => {
      applied.push(p);
      return { version: 1 };
    };
    const t = commandHarness({ sync: { apply } });
    await t.sendRaw('sync', Buffer.from('{"v":1,"id":"s1","kind":"snapshot","kind":"delta","version":1,"data":{}}'));
    expect(t.last()).toMatchObject({ id: 's1', ok: false, error: { code: 'payload.duplicate-name' } });
    expect(applied).toEqual([]);
  });
});
