import { describe, expect, it } from 'vitest';
import { simFirmwareImage, simVendor } from '../../../sim/vendor.js';
import { FIRMWARE_OPERATIONS } from '../../../src/contract/link-messages.js';
import { parseImage } from '../../../src/firmware/image.js';
import { type FirmwareProgress, FirmwareRelay, type FirmwareRelayOptions } from '../../../src/firmware/relay.js';
import { FirmwareTables } from '../../../src/firmware/transfers.js';
import { silentLogger } from '../../../src/log/logger.js';
import { refusalCode } from '../../helpers/refusal.js';
import { type Hub, Site } from '../link/manager/site.js';

/**
 * The hub's firmware relay against simulated locks on the in-memory radio: an image reaches the
 * locks and is installed; every refusal happens before any block is sent; a transfer survives a
 * cut link, a lock's power cut and a hub restart, resuming where the lock stopped.
 */

const vendor = simVendor();
/** A radio with some latency, so a transfer takes virtual time and can be caught half way. */
const RADIO = { latencyMs: 2 };

function relayFor(
  hub: Hub,
  options: Partial<FirmwareRelayOptions> = {},
): { relay: FirmwareRelay; seen: FirmwareProgress[] } {
  const relay = new FirmwareRelay({
    tables: new FirmwareTables(hub.store),
    link: {
      request: (lockId, body) => hub.manager.firmwareRequest(lockId, body),
      radioOf: (lockId) => hub.manager.radioOf(lockId),
    },
    clock: hub.site.clock,
    log: silentLogger(),
    options: { vendorKeys: [vendor.publicKey], retryDelayMs: 200, ...options },
  });
  const seen: FirmwareProgress[] = [];
  relay.onProgress((p) => seen.push(p));
  return { relay, seen };
}

function blocksHandled(site: Site, id: string): number {
  return site.world.lock(id).requestCounts().handled.fwBlock;
}

function firmwareRequests(site: Site, id: string): number {
  const handled = site.world.lock(id).requestCounts().handled;
  return FIRMWARE_OPERATIONS.reduce((n, op) => n + handled[op], 0);
}

const [A = '', B = ''] = ['SIM-0001', 'SIM-0002'];

/** Size of the image in the mid-transfer tests (100 blocks of 40 bytes). */
const SIZE = 4000;

/** One bound lock on a radio with latency, a 1.1.0 image pushed to it and half of it staged on the lock. */
async function halfwayTransfer(options: Partial<FirmwareRelayOptions> = {}) {
  const site = await Site.bound({ locks: 1, faults: RADIO });
  const { relay } = relayFor(site.hub, options);
  await relay.start();
  const image = relay.addImage(simFirmwareImage({ version: '1.1.0', size: SIZE }));
  relay.push(image.sha256, [A]);
  const lock = site.world.lock(A);
  await site.until(() => lock.firmwareStaged() >= SIZE / 2, 'half the image on the lock');
  return { site, relay, lock, size: SIZE };
}

describe('firmware relay (simulated radio)', () => {
  it('a signed image reaches two locks, one after the other on one radio, and each reports its new version', async () => {
    const site = await Site.bound({ locks: 2, faults: RADIO });
    const { relay, seen } = relayFor(site.hub);
    await relay.start();
    const image = relay.addImage(simFirmwareImage({ version: '1.1.0', size: 12_000 }));
    relay.push(image.sha256, [A, B]);
    // One lock at a time per radio: B waits while A receives.
    expect(relay.transfers().map((t) => t.state)).toEqual(['running', 'queued']);
    await site.drive(relay.idle());
    for (const id of [A, B]) {
      expect(site.world.lock(id).firmwareVersion()).toEqual({ major: 1, minor: 1, patch: 0 });
      expect(relay.progress(id)).toMatchObject({ state: 'installed', sent: 12_000, size: 12_000 });
    }
    expect(seen.some((p) => p.lockId === A && p.state === 'running' && p.sent > 0 && p.sent < 12_000)).toBe(true);
    await relay.stop();
  });

  it('a forged image is refused before any block is sent to any lock', async () => {
    const site = await Site.bound({ locks: 2, faults: RADIO });
    const { relay } = relayFor(site.hub);
    await relay.start();
    const forged = simFirmwareImage({ version: '9.0.0' }, simVendor('attacker'));
    expect(refusalCode(() => relay.addImage(forged))).toBe('firmware.forged');
    expect(relay.images()).toEqual([]);
    expect(refusalCode(() => relay.push('00'.repeat(32), [A]))).toBe('firmware.unknown-image');
    await site.pass(500);
    for (const id of [A, B]) expect(firmwareRequests(site, id)).toBe(0);
  });

  it('a truncated or altered image is refused and kept nowhere', async () => {
    const site = await Site.bound({ locks: 1, faults: RADIO });
    const { relay } = relayFor(site.hub);
    const file = simFirmwareImage({ version: '1.1.0', size: 1000 });
    expect(refusalCode(() => relay.addImage(file.subarray(0, 900)))).toBe('firmware.truncated');
    const altered = file.slice();
    altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 1;
    expect(refusalCode(() => relay.addImage(altered))).toBe('firmware.digest-mismatch');
    expect(relay.images()).toEqual([]);
  });

  it('firmware for another model, and a downgrade, are refused by the hub before a block is sent', async () => {
    const site = await Site.bound({ locks: 2, faults: RADIO });
    const { relay } = relayFor(site.hub);
    await relay.start();
    const other = relay.addImage(simFirmwareImage({ version: '2.0.0', model: 'other-lock' }));
    relay.push(other.sha256, [A]);
    const older = relay.addImage(simFirmwareImage({ version: '0.9.0' }));
    relay.push(older.sha256, [B]);
    await site.drive(relay.idle());
    expect(relay.progress(A)).toMatchObject({ state: 'failed' });
    expect(relay.progress(A)?.error).toMatch(/model other-lock/);
    expect(relay.progress(B)).toMatchObject({ state: 'failed' });
    expect(relay.progress(B)?.error).toMatch(/older than the running 1\.0\.0/);
    for (const id of [A, B]) {
      expect(blocksHandled(site, id)).toBe(0);
      expect(site.world.lock(id).requestCounts().handled.fwBegin).toBe(0);
      expect(site.world.lock(id).firmwareVersion()).toEqual({ major: 1, minor: 0, patch: 0 });
    }
  });

  it('a downgrade the signed manifest allows is installed', async () => {
    const site = await Site.bound({ locks: 1, faults: RADIO });
    const { relay } = relayFor(site.hub);
    await relay.start();
    const older = relay.addImage(simFirmwareImage({ version: '0.9.0', downgradeAllowed: true, size: 200 }));
    relay.push(older.sha256, [A]);
    await site.drive(relay.idle());
    expect(site.world.lock(A).firmwareVersion()).toEqual({ major: 0, minor: 9, patch: 0 });
  });

  it('the lock checks the signature itself: a manifest no pinned key signed is refused at fwBegin', async () => {
    const site = await Site.bound({ locks: 1, faults: RADIO });
    // A hub whose config pins the attacker's key: the lock's own boot ROM still refuses.
    const attacker = simVendor('attacker');
    const { relay } = relayFor(site.hub, { vendorKeys: [attacker.publicKey] });
    await relay.start();
    const image = relay.addImage(simFirmwareImage({ version: '9.0.0' }, attacker));
    relay.push(image.sha256, [A]);
    await site.drive(relay.idle());
    expect(relay.progress(A)).toMatchObject({ state: 'failed' });
    expect(relay.progress(A)?.error).toMatch(/forged/);
    expect(blocksHandled(site, A)).toBe(0);
    expect(site.world.lock(A).firmwareStaged()).toBe(0);
  });

  it('an image altered in the store after it was verified is refused before a block is sent', async () => {
    const site = await Site.bound({ locks: 1, faults: RADIO });
    const { relay } = relayFor(site.hub);
    await relay.start();
    const file = simFirmwareImage({ version: '1.1.0', size: 400 });
    const image = relay.addImage(file);
    const altered = Buffer.from(file);
    altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 0x01;
    site.hub.store.db.prepare('UPDATE firmware_images SET file = ? WHERE sha256 = ?').run(altered, image.sha256);
    relay.push(image.sha256, [A]);
    await site.drive(relay.idle());
    expect(relay.progress(A)).toMatchObject({ state: 'failed' });
    expect(relay.progress(A)?.error).toMatch(/SHA-256 of its signed manifest/);
    expect(firmwareRequests(site, A)).toBe(0);
    expect(site.world.lock(A).firmwareVersion()).toEqual({ major: 1, minor: 0, patch: 0 });
  });

  it('a failed install leaves the old firmware running', async () => {
    const site = await Site.bound({ locks: 1, faults: RADIO });
    const { relay } = relayFor(site.hub);
    await relay.start();
    site.world.lock(A).failNextFirmwareInstall();
    const image = relay.addImage(simFirmwareImage({ version: '1.1.0', size: 400 }));
    relay.push(image.sha256, [A]);
    await site.drive(relay.idle());
    expect(relay.progress(A)).toMatchObject({ state: 'failed' });
    expect(relay.progress(A)?.error).toMatch(/install-failed; it still runs 1\.0\.0/);
    expect(site.world.lock(A).firmwareVersion()).toEqual({ major: 1, minor: 0, patch: 0 });
    // Pushed again, the lock still holds the blocks: only fwFinish is needed.
    const before = blocksHandled(site, A);
    relay.push(image.sha256, [A]);
    await site.drive(relay.idle());
    expect(site.world.lock(A).firmwareVersion()).toEqual({ major: 1, minor: 1, patch: 0 });
    expect(blocksHandled(site, A)).toBe(before);
  });

  it('a link cut mid-transfer resumes from the offset the lock holds', async () => {
    const { site, relay, lock, size } = await halfwayTransfer();
    site.world.radio.disconnect();
    const cutAt = lock.firmwareStaged();
    await site.drive(relay.idle());
    expect(lock.firmwareVersion()).toEqual({ major: 1, minor: 1, patch: 0 });
    // Blocks before the cut were not sent again (a few in flight at the cut may be).
    const blocks = Math.ceil(size / 40);
    expect(blocksHandled(site, A)).toBeLessThan(blocks + 4);
    expect(cutAt).toBeGreaterThan(0);
  });

  it("a lock's power cut mid-transfer keeps the blocks in its flash; the transfer resumes after it boots", async () => {
    const { site, relay, lock, size } = await halfwayTransfer({ retryDelayMs: 1000 });
    lock.crash();
    await site.pass(300);
    lock.boot();
    expect(lock.firmwareStaged()).toBeGreaterThanOrEqual(size / 2);
    await site.drive(relay.idle());
    expect(lock.firmwareVersion()).toEqual({ major: 1, minor: 1, patch: 0 });
    expect(relay.progress(A)?.state).toBe('installed');
  });

  it('a hub restart mid-transfer resumes the transfer from the store and the lock', async () => {
    const halfway = await halfwayTransfer();
    const { site, lock, size } = halfway;
    let { relay } = halfway;
    // SIGKILL: the relay and the manager are abandoned mid-flight.
    await site.hub.restart('kill');
    const staged = lock.firmwareStaged();
    const blocksBefore = blocksHandled(site, A);
    ({ relay } = relayFor(site.hub));
    expect(relay.progress(A)?.state).toBe('running');
    await relay.start();
    await site.drive(relay.idle());
    expect(lock.firmwareVersion()).toEqual({ major: 1, minor: 1, patch: 0 });
    expect(relay.progress(A)?.state).toBe('installed');
    expect(blocksHandled(site, A) - blocksBefore).toBeLessThan(Math.ceil((size - staged) / 40) + 4);
  });

  it("the lock's events keep flowing while it receives an image", async () => {
    const site = await Site.bound({ locks: 1, faults: RADIO });
    const { relay } = relayFor(site.hub);
    await relay.start();
    const image = relay.addImage(simFirmwareImage({ version: '1.1.0', size: 8000 }));
    relay.push(image.sha256, [A]);
    const lock = site.world.lock(A);
    await site.until(() => lock.firmwareStaged() > 0, 'the transfer started');
    const event = lock.openByHand();
    await site.until(() => site.hub.pairing.get(A)?.lastEventSeq === event.seq, 'the event is stored by the hub');
    expect(lock.firmwareStaged()).toBeLessThan(8000);
    expect(await site.hub.tryOpen(A)).toEqual({ ok: true });
    await site.drive(relay.idle());
    expect(lock.firmwareVersion()).toEqual({ major: 1, minor: 1, patch: 0 });
  });

  it('the lock installs nothing whose bytes do not match the signed SHA-256, and keeps its old firmware', async () => {
    const site = await Site.bound({ locks: 1, faults: RADIO });
    const image = parseImage(simFirmwareImage({ version: '1.1.0', size: 80 }));
    const send = <O extends 'fwBegin' | 'fwBlock' | 'fwFinish'>(
      body: Parameters<typeof site.hub.manager.firmwareRequest<O>>[1],
    ) => site.drive(site.hub.manager.firmwareRequest(A, body));
    // A hub gone wrong (or a bug) sends a genuine manifest, then other bytes.
    expect(await send({ type: 'fwBegin', manifest: image.manifestBytes, signature: image.signature })).toMatchObject({
      outcome: 'accepted',
      offset: 0,
    });
    const other = image.payload.map((b) => b ^ 0xff);
    await send({ type: 'fwBlock', offset: 0, data: other.subarray(0, 40) });
    expect(await send({ type: 'fwFinish' })).toMatchObject({ outcome: 'incomplete' });
    await send({ type: 'fwBlock', offset: 40, data: other.subarray(40, 80) });
    expect(await send({ type: 'fwFinish' })).toMatchObject({
      outcome: 'digest-mismatch',
      version: { major: 1, minor: 0, patch: 0 },
    });
    const lock = site.world.lock(A);
    expect(lock.firmwareVersion()).toEqual({ major: 1, minor: 0, patch: 0 });
    expect(lock.firmwareStaged()).toBe(0);
  });

  it('a quarantined lock (maybe a clone) is sent no firmware', async () => {
    const site = await Site.bound({ locks: 1, faults: RADIO });
    const { relay } = relayFor(site.hub);
    await relay.start();
    site.hub.pairing.setState(A, 'quarantined', Math.floor(site.clock.now()), 'key-mismatch');
    const image = relay.addImage(simFirmwareImage({ version: '1.1.0', size: 400 }));
    relay.push(image.sha256, [A]);
    await site.drive(relay.idle());
    expect(relay.progress(A)).toMatchObject({ state: 'failed' });
    expect(relay.progress(A)?.error).toMatch(/quarantined/);
    expect(firmwareRequests(site, A)).toBe(0);
  });
});
