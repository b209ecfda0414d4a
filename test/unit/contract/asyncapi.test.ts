import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildAsyncApi } from '../../../src/contract/asyncapi.js';
import { cmdResultBodySchema } from '../../../src/contract/mqtt-hub-messages.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';
import { asyncApiText } from '../../helpers/generate-docs.js';

const YAML_PATH = new URL('../../../docs/asyncapi.yaml', import.meta.url);
const text = readFileSync(YAML_PATH, 'utf8');

/** Severity 0 is an error in the parser's diagnostics (Spectral's DiagnosticSeverity). */
const errorsOf = async (doc: string) =>
  (await new Parser().validate(doc))
    .filter((d) => d.severity === 0)
    .map((d) => `${d.code} ${d.message} at ${d.path.join('.')}`);

describe('docs/asyncapi.yaml against the official AsyncAPI parser (@asyncapi/parser)', () => {
  it('has no error', async () => {
    expect(await errorsOf(text)).toEqual([]);
  }, 120_000);

  it('the parser does refuse what it used to: an OpenAPI-style discriminator object (the test can fail)', async () => {
    const doc = parse(text) as { components: { messages: { cmd: { payload: Record<string, unknown> } } } };
    doc.components.messages.cmd.payload.discriminator = { propertyName: 'op' };
    const errors = await errorsOf(JSON.stringify(doc));
    expect(errors.some((e) => /discriminator/.test(e))).toBe(true);
  }, 120_000);

  it('is byte for byte what `npm run docs` writes from the schemas', () => {
    expect(text).toBe(asyncApiText());
    expect(parse(text)).toEqual(JSON.parse(JSON.stringify(buildAsyncApi())));
  });
});

describe('cmd/result: the result of each op is described, not just an object', () => {
  const branches = cmdResultBodySchema.anyOf as readonly { title: string }[];
  const answer = (result: unknown, ok = true) => ({ v: 1, id: 'c-1', ok, result });
  const lock = {
    lockId: 'SIM-0001',
    bearer: 'ble',
    address: 'aa:bb:cc:dd:ee:ff',
    state: 'bound',
    quarantineReason: null,
    connected: true,
    lastSeen: '2026-12-07T06:00:00.000Z',
    lastEventSeq: 3,
    sessions: 1,
    failedHandshakes: 0,
    rejectedFrames: 0,
    keyFingerprint: 'ab:cd',
  };
  const state = {
    bolt: 'locked',
    mode: 'normal',
    doorOpen: false,
    batteryPercent: 80,
    lastSeq: 3,
    time: '2026-12-07T06:00:00.000Z',
  };

  it('names every op of docs/mqtt-api.md that answers with a result', () => {
    const titles = branches.map((b) => b.title).join(' ');
    for (const op of ['ping', 'listLocks', 'getState', 'open', 'lock', 'setMode', 'attach', 'detach']) {
      expect(titles).toContain(op);
    }
  });

  it('accepts the results the hub sends', () => {
    expect(conforms('cmd/result', answer({ pong: true, at: '2026-12-07T06:00:00.000Z' }))).toBe(true);
    expect(conforms('cmd/result', answer({ locks: [lock], next: null }))).toBe(true);
    expect(conforms('cmd/result', answer({ state }))).toBe(true);
    expect(conforms('cmd/result', answer({ lock }))).toBe(true);
    expect(conforms('cmd/result', answer({ detached: false, state: 'detaching' }))).toBe(true);
    expect(
      conforms('cmd/result', { ...answer({ state }, false), error: { code: 'unknown_outcome', message: 'x' } }),
    ).toBe(true);
    expect(
      conforms('cmd/result', { v: 1, id: 'c-1', ok: false, error: { code: 'lock.unreachable', message: 'x' } }),
    ).toBe(true);
  });

  it("refuses a lock state whose time is Unix milliseconds (the contract's times are ISO 8601)", () => {
    expect(conforms('cmd/result', answer({ state: { ...state, time: 1_765_000_000_000 } }))).toBe(false);
  });

  it('refuses a result that is none of them', () => {
    expect(conforms('cmd/result', answer({ whatever: 1 }))).toBe(false);
    expect(conforms('cmd/result', answer({ pong: true }))).toBe(false);
  });
});
