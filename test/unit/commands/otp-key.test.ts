import { createHash } from 'node:crypto';
import { chmodSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevPki } from '../../../provisioning/dev-pki.js';
import { runDaemon } from '../../../src/app/daemon.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { SeededRandom } from '../../../src/base/random.js';
import { loadOtpKey, OTP_KEY_PURPOSE, otpKeyFingerprint } from '../../../src/commands/otp-key.js';
import type { HubConfig } from '../../../src/config/schema.js';
import { Sealer } from '../../../src/crypto/seal.js';
import { Secret } from '../../../src/crypto/secret.js';
import { Store } from '../../../src/store/store.js';
import { capturingLogger } from '../../helpers/commands.js';
import { refusal } from '../../helpers/refusal.js';
import { tempDir } from '../../helpers/tmp.js';

const A_HEX = '0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0';
const B_HEX = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
const fingerprint = (hex: string) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex').slice(0, 8);
const hexOf = (s: Secret | undefined) => (s ? Buffer.from(s.reveal()).toString('hex') : undefined);

const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

function setup(storageSeed = 'storage') {
  const dir = tempDir();
  const store = Store.open(join(dir, 'data'));
  stores.push(store);
  const sealer = new Sealer(new Secret(new SeededRandom(storageSeed).bytes(32)), new SeededRandom('nonces'));
  const { log, text } = capturingLogger();
  const keyFile = join(dir, 'otp.key');
  const load = (o: { file?: string | null; hubId?: string; sealer?: Sealer } = {}) =>
    loadOtpKey({
      config: { otpKeyFile: o.file === undefined ? keyFile : o.file },
      hubId: o.hubId ?? 'hub-0001',
      store,
      sealer: o.sealer ?? sealer,
      clock: new VirtualClock(),
      log,
    });
  const write = (content: string | Buffer, mode = 0o600) => {
    writeFileSync(keyFile, content, { mode });
    chmodSync(keyFile, mode);
  };
  const rows = () =>
    store.db.prepare('SELECT purpose, id, blob, fingerprint FROM sealed_secrets').all() as {
      purpose: string;
      id: string;
      blob: Buffer;
      fingerprint: string;
    }[];
  return { dir, store, sealer, keyFile, load, write, rows, logs: text };
}

describe('the OTP key', () => {
  it('a hex key file is imported sealed under (commands.otp-key, hub id); the row never holds the key', () => {
    const t = setup();
    t.write(`${A_HEX}\n`);
    const key = t.load();
    expect(hexOf(key)).toBe(A_HEX);
    expect(otpKeyFingerprint(key as Secret)).toBe(fingerprint(A_HEX));
    const [row, ...more] = t.rows();
    expect(more).toEqual([]);
    expect(row).toMatchObject({ purpose: OTP_KEY_PURPOSE, id: 'hub-0001', fingerprint: fingerprint(A_HEX) });
    expect(Buffer.from(row?.blob ?? []).includes(Buffer.from(A_HEX, 'hex'))).toBe(false);
    expect(hexOf(t.sealer.open(row?.blob ?? new Uint8Array(), { purpose: OTP_KEY_PURPOSE, id: 'hub-0001' }))).toBe(
      A_HEX,
    );
    expect(t.logs()).toContain(fingerprint(A_HEX));
    expect(t.logs()).not.toContain(A_HEX);
  });

  it('accepts 32 raw bytes, and hex in either case with or without CRLF', () => {
    for (const content of [Buffer.from(A_HEX, 'hex'), A_HEX.toUpperCase(), `${A_HEX}\r\n`, A_HEX]) {
      const t = setup();
      t.write(content);
      expect(hexOf(t.load())).toBe(A_HEX);
    }
  });

  it('without the file (absent, or not configured) the stored key is used', () => {
    const t = setup();
    t.write(`${A_HEX}\n`);
    t.load();
    const absent = join(t.dir, 'gone.key');
    expect(hexOf(t.load({ file: absent }))).toBe(A_HEX);
    expect(hexOf(t.load({ file: null }))).toBe(A_HEX);
    // Sealed for this hub id only.
    expect(t.load({ file: null, hubId: 'hub-0002' })).toBeUndefined();
    expect(t.logs()).toContain('every remote command will be refused (no_otp_key)');
  });

  it('no file and nothing stored: undefined', () => {
    const t = setup();
    expect(t.load({ file: null })).toBeUndefined();
    expect(t.load()).toBeUndefined();
    expect(t.rows()).toEqual([]);
  });

  it('a file with another key replaces the stored one (rotation), logged by fingerprint, recorded as a security event', () => {
    const t = setup();
    t.write(`${A_HEX}\n`);
    t.load();
    t.write(`${B_HEX}\n`);
    expect(hexOf(t.load())).toBe(B_HEX);
    expect(t.rows().map((r) => r.fingerprint)).toEqual([fingerprint(B_HEX)]);
    expect(hexOf(t.load({ file: null }))).toBe(B_HEX);
    const logs = t.logs();
    expect(logs).toContain('OTP key rotated');
    expect(logs).toContain(fingerprint(A_HEX));
    expect(logs).toContain(fingerprint(B_HEX));
    for (const k of [A_HEX, B_HEX]) expect(logs).not.toContain(k);
    const events = t.store.db.prepare('SELECT kind, detail FROM security_events').all() as {
      kind: string;
      detail: string;
    }[];
    expect(events).toEqual([
      {
        kind: 'commands.otp-key-rotated',
        detail: JSON.stringify({ previous: fingerprint(A_HEX), fingerprint: fingerprint(B_HEX) }),
      },
    ]);
    // The same file again is no rotation.
    t.load();
    expect(t.store.db.prepare('SELECT COUNT(*) AS n FROM security_events').get()).toEqual({ n: 1 });
  });

  it('a key file readable by group or others is refused (commands.otp-key.permissions), naming the file, not the key', () => {
    const t = setup();
    t.write(`${A_HEX}\n`, 0o644);
    const e = refusal(() => t.load());
    expect(e.code).toBe('commands.otp-key.permissions');
    expect(e.message).toContain(t.keyFile);
    expect(e.message).toContain('0644');
    expect(`${e.message} ${e.hint}`).not.toContain(A_HEX);
    expect(t.rows()).toEqual([]);
  });

  it('a symbolic link or a malformed file is refused, without quoting it', () => {
    const t = setup();
    const real = join(t.dir, 'real.key');
    writeFileSync(real, `${A_HEX}\n`, { mode: 0o600 });
    symlinkSync(real, t.keyFile);
    expect(refusal(() => t.load()).code).toBe('commands.otp-key.unreadable');
    for (const bad of [A_HEX.slice(1), `${A_HEX.slice(0, 63)}g`, Buffer.alloc(31, 1), `${A_HEX}\n\n`, `x${A_HEX}`]) {
      const u = setup();
      u.write(bad);
      const e = refusal(() => u.load());
      expect(e.code).toBe('commands.otp-key.invalid');
      expect(e.message).not.toContain(A_HEX.slice(0, 16));
    }
  });

  it('a stored key that no longer opens: refused without a file, replaced by one', () => {
    const t = setup();
    t.write(`${A_HEX}\n`);
    t.load();
    const otherStorage = new Sealer(
      new Secret(new SeededRandom('another storage key').bytes(32)),
      new SeededRandom('n'),
    );
    expect(refusal(() => t.load({ file: null, sealer: otherStorage })).code).toBe('commands.otp-key.sealed');
    t.write(`${B_HEX}\n`);
    expect(hexOf(t.load({ sealer: otherStorage }))).toBe(B_HEX);
    expect(hexOf(t.load({ file: null, sealer: otherStorage }))).toBe(B_HEX);
  });

  it('the daemon refuses to start on a bad key file with exit 78 (a restart cannot fix it)', async () => {
    const dir = tempDir();
    const pki = createDevPki({
      dir: join(dir, 'pki'),
      hubId: 'hub-0001',
      cloudId: 'backend',
      brokerHost: 'localhost',
      days: 30,
      random: new SeededRandom('otp-key-daemon'),
    });
    const keyFile = join(dir, 'bad-otp.key');
    writeFileSync(keyFile, `${A_HEX}\n`, { mode: 0o644 });
    chmodSync(keyFile, 0o644);
    const stderr = process.stderr.write;
    let err = '';
    process.stderr.write = ((chunk: string | Uint8Array) => {
      err += chunk.toString();
      return true;
    }) as typeof process.stderr.write;
    let code: number;
    try {
      code = await runDaemon({
        configPath: null,
        overrides: {
          dataDir: join(dir, 'data'),
          runDir: join(dir, 'run'),
          log: { level: 'fatal', pretty: false },
          uplink: {
            enabled: true,
            url: 'mqtts://localhost:1',
            caFile: pki.ca.cert,
            certFile: pki.hub.cert,
            keyFile: pki.hub.key,
          },
          commands: { otpKeyFile: keyFile },
        } as unknown as Partial<HubConfig>,
        env: {},
      });
    } finally {
      process.stderr.write = stderr;
    }
    expect(code).toBe(78);
    expect(err).toContain(keyFile);
    expect(err).not.toContain(A_HEX);
    // The store was released: it opens again.
    stores.push(Store.open(join(dir, 'data')));
  });
});
