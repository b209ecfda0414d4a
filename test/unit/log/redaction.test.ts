import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import { Sealer } from '../../../src/crypto/seal.js';
import { Secret } from '../../../src/crypto/secret.js';
import { createLogger, redactSecrets } from '../../../src/log/logger.js';
import { formatLine } from '../../../src/log/pretty.js';

function capture(pretty: boolean) {
  let out = '';
  const sink = new Writable({
    write(c, _e, done) {
      out += c.toString();
      done();
    },
  });
  const log = createLogger({ level: 'trace', pretty, destination: sink });
  return { log, text: () => out };
}

const PIN = '739164';
const SETUP = 'K7Q2-XW9P-33RA';
const KEY_HEX = 'c0ffee00'.repeat(8);

describe('logging never carries a secret', () => {
  for (const pretty of [false, true]) {
    it(`a PIN, a setup code, a key and a sealed secret are redacted (${pretty ? 'pretty' : 'JSON'})`, () => {
      const { log, text } = capture(pretty);
      const sealer = new Sealer(new Secret(new SeededRandom('s').bytes(32)), new SeededRandom('n'));
      const sealed = Buffer.from(sealer.seal(Buffer.from(KEY_HEX, 'hex'), { purpose: 'p', id: 'i' })).toString(
        'base64',
      );
      log.info({ pin: PIN, setupCode: SETUP, key: KEY_HEX }, 'top level');
      log.info({ lock: { setupCode: SETUP, linkKey: KEY_HEX, sealed } }, 'one level down');
      log.info({ req: { credential: { pin: PIN, privateKey: KEY_HEX } } }, 'two levels down');
      log.warn({ attempt: Secret.fromUtf8(PIN) }, 'wrapped secret under an innocent name');
      log.child({ component: 'link' }).info({ otpKey: KEY_HEX, networkKey: KEY_HEX, installCode: KEY_HEX }, 'child');
      log.info(
        { lockId: 'L1', credential: { verifier: KEY_HEX, hash: KEY_HEX, presentation: PIN } },
        'access material one level down',
      );
      log.info({ upsert: { digest: KEY_HEX }, proof: KEY_HEX }, 'offline digest and attach proof');
      const out = text();
      expect(out).toContain('two levels down');
      expect(out).toContain('[redacted]');
      for (const secret of [PIN, SETUP, KEY_HEX, sealed]) expect(out).not.toContain(secret);
    });
  }

  it("a child logger's bindings, secrets in arrays and at the third level are redacted; the caller's object is left as it was", () => {
    const { log, text } = capture(false);
    log.child({ setupCode: SETUP, lock: { pin: PIN } }).info('child bindings');
    const fields = {
      locks: [{ setupCode: SETUP }, { id: 'L2' }],
      a: { b: { key: KEY_HEX } },
      deep: { a: { b: { c: 1 } } },
    };
    log.info(fields, 'arrays and depth');
    const out = text();
    for (const secret of [PIN, SETUP, KEY_HEX]) expect(out).not.toContain(secret);
    const line = JSON.parse(out.trim().split('\n')[1] ?? '') as Record<string, unknown>;
    expect(line.locks).toEqual([{ setupCode: '[redacted]' }, { id: 'L2' }]);
    expect(line.a).toEqual({ b: { key: '[redacted]' } });
    expect(line.deep).toEqual({ a: { b: { c: 1 } } });
    expect(fields.locks[0]?.setupCode).toBe(SETUP);
    expect(fields.a.b.key).toBe(KEY_HEX);
  });

  it('an object without a secret field is passed on as it is (no copy); an Error keeps its class and message', () => {
    const plain = { cmdId: 'c1', op: 'open', lock: { id: 'L1' } };
    expect(redactSecrets(plain)).toBe(plain);
    const e = Object.assign(new HubError('noise.decrypt', 'refused'), { key: KEY_HEX });
    const out = redactSecrets({ err: e }).err as HubError & { key: string };
    expect(out).toBeInstanceOf(HubError);
    expect(out.message).toBe('refused');
    expect(out.key).toBe('[redacted]');
    expect(e.key).toBe(KEY_HEX);
    const bytes = new Uint8Array(4);
    expect(redactSecrets({ bytes }).bytes).toBe(bytes);
  });

  it('a logged HubError carries its code and message but not its cause', () => {
    const { log, text } = capture(false);
    const cause = new Error(`decrypt failed with key ${KEY_HEX}`);
    log.error({ err: new HubError('noise.decrypt', 'handshake with L1 failed', { cause }) }, 'refused');
    const line = JSON.parse(text()) as { err: { code: string; message: string } };
    expect(line.err.code).toBe('noise.decrypt');
    expect(text()).not.toContain(KEY_HEX);
  });

  it('the pretty format shows level, component, message and fields', () => {
    const line = formatLine(
      JSON.stringify({ level: 'warn', time: '2026-01-01T12:00:01.234Z', component: 'store', msg: 'slow', ms: 12 }),
      false,
    );
    expect(line).toBe('12:00:01.234 WARN  [store] slow ms=12');
  });
});
