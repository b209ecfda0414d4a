import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { simFirmwareImage, simVendor } from '../../../sim/vendor.js';
import { registerFirmwareMethods, UPLOAD_CHUNK_BYTES } from '../../../src/app/firmware-wiring.js';
import { systemClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import { parseConfig } from '../../../src/config/load.js';
import { callDaemon } from '../../../src/control-socket/socket-client.js';
import { ControlServer } from '../../../src/control-socket/socket-server.js';
import { FirmwareRelay } from '../../../src/firmware/relay.js';
import { FirmwareTables } from '../../../src/firmware/transfers.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * The technician's way in: an image uploaded over the control socket in chunks is checked whole
 * (the CLI's SHA-256, then every firmware check) before it is kept; a chunk out of order, a file
 * that is not what the CLI hashed, a forged image and a lock this hub does not have are refused
 * with an error that says so, and keep nothing. The config refuses a vendor key that is not one.
 */

const open: { close(): Promise<void> | void }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function daemon() {
  const dir = tempDir();
  const store = Store.open(join(dir, 'data'));
  open.push({ close: () => store.close() });
  const relay = new FirmwareRelay({
    tables: new FirmwareTables(store),
    link: {
      request: () => Promise.reject(new Error('no lock in this test')),
      radioOf: (lockId) => {
        if (lockId !== 'L1') throw new HubError('lock.unknown', `no lock ${lockId} is attached to this hub`);
        return 'sim';
      },
    },
    clock: systemClock,
    log: silentLogger(),
    options: { vendorKeys: [simVendor().publicKey] },
  });
  const server = new ControlServer(join(dir, 'run', 'control.sock'), silentLogger());
  registerFirmwareMethods(server, relay, { clock: systemClock, maxImageBytes: 1024 * 1024 });
  await server.start();
  open.push({ close: () => server.stop() });
  const call = (method: string, params: Record<string, unknown>) => callDaemon(server.path, method, params);
  const upload = async (file: Uint8Array, sha = createHash('sha256').update(file).digest('hex')) => {
    let last: unknown;
    for (let offset = 0; offset < file.length; offset += UPLOAD_CHUNK_BYTES) {
      const data = Buffer.from(file.subarray(offset, offset + UPLOAD_CHUNK_BYTES)).toString('base64');
      last = await call('firmware.upload', { sha256: sha, total: file.length, offset, data });
    }
    return last as { image?: { sha256: string } };
  };
  return { relay, call, upload };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
  return 'accepted';
}

describe('firmware control methods', () => {
  it('an image uploaded in chunks is verified whole and kept; pushed to a lock of this hub', async () => {
    const { relay, upload, call } = await daemon();
    const file = simFirmwareImage({ version: '1.1.0', size: 80_000 });
    const r = await upload(file);
    expect(r.image?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(relay.images()).toHaveLength(1);
    expect(await refusal(call('firmware.push', { sha256: r.image?.sha256, lockIds: ['L2'] }))).toBe('lock.unknown');
    expect(relay.transfers()).toEqual([]);
  });

  it('a forged image is refused at the end of its upload and kept nowhere', async () => {
    const { relay, upload } = await daemon();
    const forged = simFirmwareImage({ version: '1.1.0', size: 40_000 }, simVendor('attacker'));
    expect(await refusal(upload(forged))).toBe('firmware.forged');
    expect(relay.images()).toEqual([]);
  });

  it('a file that is not what the CLI hashed, and chunks out of order, are refused', async () => {
    const { relay, call, upload } = await daemon();
    const file = simFirmwareImage({ version: '1.1.0', size: 40_000 });
    expect(await refusal(upload(file, 'ab'.repeat(32)))).toBe('firmware.truncated');
    const sha = createHash('sha256').update(file).digest('hex');
    const chunk = (offset: number) => Buffer.from(file.subarray(offset, offset + 1000)).toString('base64');
    expect(
      await refusal(call('firmware.upload', { sha256: sha, total: file.length, offset: 1000, data: chunk(1000) })),
    ).toBe('firmware.malformed');
    await call('firmware.upload', { sha256: sha, total: file.length, offset: 0, data: chunk(0) });
    expect(
      await refusal(call('firmware.upload', { sha256: sha, total: file.length, offset: 5000, data: chunk(5000) })),
    ).toBe('firmware.malformed');
    expect(await refusal(call('firmware.upload', { sha256: 'nothex', total: 10, offset: 0, data: 'AAAA' }))).toMatch(
      /control|invalid|params/,
    );
    expect(relay.images()).toEqual([]);
  });

  it('a third upload begun while two are unfinished is refused (each holds its whole file in memory)', async () => {
    const { call } = await daemon();
    const begin = (n: number) =>
      call('firmware.upload', { sha256: n.toString(16).padStart(64, '0'), total: 4000, offset: 0, data: 'AAAA' });
    await begin(1);
    await begin(2);
    expect(await refusal(begin(3))).toBe('firmware.busy');
  });

  it('the config refuses a vendor key that is not 64 hex digits', () => {
    expect(() => parseConfig('firmware:\n  vendorKeys: [abc]\n', 'config.yaml')).toThrow(/vendorKeys/);
    expect(parseConfig(`firmware:\n  vendorKeys: [${'a'.repeat(64)}]\n`, 'config.yaml').firmware.vendorKeys).toEqual([
      'a'.repeat(64),
    ]);
  });
});
