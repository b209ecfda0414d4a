import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { simFirmwareImage, simVendor } from '../../../sim/vendor.js';
import type { FirmwareProgressPayload, FirmwareRequestPayload } from '../../../src/contract/mqtt-firmware.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';
import { FirmwareFetch } from '../../../src/firmware/fetch.js';
import { FirmwareRelay } from '../../../src/firmware/relay.js';
import { FirmwareTables } from '../../../src/firmware/transfers.js';
import { silentLogger } from '../../../src/log/logger.js';
import { Site } from '../link/manager/site.js';

/**
 * The hub's side of a cloud-announced image (no broker: the test plays the cloud): chunks asked
 * for within the message limit, in order; the file checked against the announce before the
 * relay; anything out of order, oversized or altered changes nothing or is refused.
 */

const MAX_MESSAGE = 16_384;

async function rig() {
  const site = await Site.bound({ locks: 1, faults: { latencyMs: 2 } });
  const relay = new FirmwareRelay({
    tables: new FirmwareTables(site.hub.store),
    link: {
      request: (lockId, body) => site.hub.manager.firmwareRequest(lockId, body),
      radioOf: (lockId) => site.hub.manager.radioOf(lockId),
    },
    clock: site.clock,
    log: silentLogger(),
    options: { vendorKeys: [simVendor().publicKey], retryDelayMs: 200 },
  });
  await relay.start();
  const fetch = new FirmwareFetch({
    relay,
    clock: site.clock,
    log: silentLogger(),
    maxMessageBytes: MAX_MESSAGE,
    maxImageBytes: 1024 * 1024,
  });
  const requests: FirmwareRequestPayload[] = [];
  const progress: FirmwareProgressPayload[] = [];
  fetch.attach((topic, payload) => {
    if (topic === 'firmware/request') requests.push(payload as FirmwareRequestPayload);
    else progress.push(payload as FirmwareProgressPayload);
  });
  const msg = (o: object) => Buffer.from(JSON.stringify({ v: 1, ...o }));
  const announce = (file: Uint8Array, announceId: string, extra: object = {}) =>
    fetch.handle(
      'firmware/announce',
      msg({
        announceId,
        model: 'iq-sim-lock',
        version: '1.1.0',
        fileSha256: createHash('sha256').update(file).digest('hex'),
        fileSize: file.length,
        lockIds: ['SIM-0001'],
        ...extra,
      }),
    );
  /** Answers the requests as an honest cloud would, until none is left unanswered. */
  const serve = (file: Uint8Array, announceId: string) => {
    let answered = 0;
    while (answered < requests.length) {
      const r = requests[answered++] as FirmwareRequestPayload;
      const data = Buffer.from(file.subarray(r.offset, r.offset + r.length)).toString('base64');
      fetch.handle('firmware/chunk', msg({ announceId, offset: r.offset, data }));
    }
  };
  return { site, relay, fetch, requests, progress, announce, serve, msg };
}

describe('firmware fetched over MQTT', () => {
  it('asks for chunks whose answers fit the message limit, then installs the image', async () => {
    const { site, relay, fetch, requests, progress, announce, serve } = await rig();
    const file = simFirmwareImage({ version: '1.1.0', size: 30_000 });
    announce(file, 'a1');
    serve(file, 'a1');
    expect(requests.length).toBe(Math.ceil(file.length / fetch.chunkBytes));
    for (const r of requests) {
      expect(conforms('firmware/request', r)).toBe(true);
      const answer = JSON.stringify({ v: 1, announceId: 'a1', offset: r.offset, data: 'x'.repeat((r.length / 3) * 4) });
      expect(Buffer.byteLength(answer)).toBeLessThanOrEqual(MAX_MESSAGE);
    }
    await site.drive(relay.idle());
    expect(site.world.lock('SIM-0001').firmwareVersion()).toEqual({ major: 1, minor: 1, patch: 0 });
    for (const p of progress) expect(conforms('firmware/progress', p)).toBe(true);
    expect(progress.map((p) => p.state)).toContain('installed');
    expect(progress.every((p) => p.announceId === 'a1')).toBe(true);
  });

  it('a file that does not match the announced SHA-256 is refused and reaches no lock', async () => {
    const { site, relay, progress, announce, serve } = await rig();
    const file = simFirmwareImage({ version: '1.1.0', size: 20_000 });
    announce(file, 'a2', { fileSha256: '00'.repeat(32) });
    serve(file, 'a2');
    expect(progress.at(-1)).toMatchObject({
      state: 'refused',
      lockId: null,
      error: { code: 'firmware.digest-mismatch' },
    });
    expect(relay.images()).toEqual([]);
    await site.pass(200);
    expect(site.world.lock('SIM-0001').requestCounts().handled.fwStatus).toBe(0);
  });

  it('an announce larger than firmware.maxImageBytes allows is refused before any chunk is asked for', async () => {
    const { requests, progress, announce } = await rig();
    const file = simFirmwareImage({ version: '1.1.0', size: 2_000 });
    announce(file, 'a9', { fileSize: 1024 * 1024 + 1024 + 1 });
    expect(requests).toEqual([]);
    expect(progress.at(-1)).toMatchObject({ state: 'refused', error: { code: 'firmware.too-large' } });
  });

  it('an announce the relay refuses to push does not drop the announce waiting behind it', async () => {
    const { site, relay, fetch, requests, progress, announce, msg } = await rig();
    const first = simFirmwareImage({ version: '1.1.0', size: 2_000 });
    const second = simFirmwareImage({ version: '1.2.0', size: 2_000 });
    announce(first, 'b1', { lockIds: ['SIM-0009'] });
    announce(second, 'b2', { version: '1.2.0' });
    const answer = (file: Uint8Array, announceId: string) => {
      const r = requests.at(-1) as FirmwareRequestPayload;
      expect(r.announceId).toBe(announceId);
      const data = Buffer.from(file.subarray(r.offset, r.offset + r.length)).toString('base64');
      fetch.handle('firmware/chunk', msg({ announceId, offset: r.offset, data }));
    };
    answer(first, 'b1');
    expect(progress.find((p) => p.announceId === 'b1' && p.state === 'refused')).toBeDefined();
    answer(second, 'b2');
    await site.drive(relay.idle());
    expect(site.world.lock('SIM-0001').firmwareVersion()).toEqual({ major: 1, minor: 2, patch: 0 });
  });

  it('an image that is not what the announce said (another version) is refused', async () => {
    const { relay, progress, announce, serve } = await rig();
    const file = simFirmwareImage({ version: '1.2.0', size: 2_000 });
    announce(file, 'a3');
    serve(file, 'a3');
    expect(progress.at(-1)).toMatchObject({ state: 'refused', error: { code: 'firmware.malformed' } });
    expect(relay.transfers()).toEqual([]);
  });

  it('chunks of another announce, at another offset or running past the size change nothing or stop the fetch', async () => {
    const { relay, fetch, requests, progress, announce, msg } = await rig();
    const file = simFirmwareImage({ version: '1.1.0', size: 20_000 });
    announce(file, 'a4');
    const first = requests.length;
    fetch.handle('firmware/chunk', msg({ announceId: 'other', offset: 0, data: 'AAAA' }));
    fetch.handle('firmware/chunk', msg({ announceId: 'a4', offset: 3, data: 'AAAA' }));
    fetch.handle('firmware/chunk', msg({ announceId: 'a4', offset: 0, data: 12 }));
    expect(requests.length).toBe(first);
    expect(progress.at(-1)?.state).toBe('fetching');
    const tooMuch = Buffer.alloc(file.length + 1).toString('base64');
    fetch.handle('firmware/chunk', msg({ announceId: 'a4', offset: 0, data: tooMuch }));
    expect(progress.at(-1)).toMatchObject({ state: 'refused', error: { code: 'firmware.malformed' } });
    expect(relay.images()).toEqual([]);
  });

  it('a chunk that never comes is asked for again, then the fetch is given up', async () => {
    const { site, requests, progress, announce } = await rig();
    announce(simFirmwareImage({ version: '1.1.0', size: 2_000 }), 'a5');
    await site.pass(60_000, 100);
    expect(requests.length).toBe(5);
    expect(requests.every((r) => r.offset === 0)).toBe(true);
    expect(progress.at(-1)).toMatchObject({ state: 'refused', error: { code: 'firmware.failed' } });
  });
});
