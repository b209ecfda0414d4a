import { describe, expect, it } from 'vitest';
import { simFirmwareImage, simVendor } from '../../../sim/vendor.js';
import {
  decodeManifest,
  encodeManifest,
  parseImage,
  verifyImage,
  verifyManifest,
} from '../../../src/firmware/image.js';
import { refusalCode } from '../../helpers/refusal.js';

/** The image checks the hub makes before a byte goes to a lock, and the lock makes again. */

const vendor = simVendor();
const vendorKeys = [vendor.publicKey];

describe('firmware image', () => {
  it('a signed image passes and says what it is', () => {
    const image = verifyImage(simFirmwareImage({ version: '1.2.3', size: 1000 }), { vendorKeys });
    expect(image.manifest.model).toBe('iq-sim-lock');
    expect(image.manifest.version).toEqual({ major: 1, minor: 2, patch: 3 });
    expect(image.payload.length).toBe(1000);
  });

  it('the manifest has exactly one encoding', () => {
    const image = parseImage(simFirmwareImage({ version: '2.0.0' }));
    expect(encodeManifest(decodeManifest(image.manifestBytes))).toEqual(image.manifestBytes);
    const longer = new Uint8Array([...image.manifestBytes, 0]);
    expect(refusalCode(() => decodeManifest(longer))).toBe('firmware.malformed');
  });

  it('an image signed by another key is refused as forged', () => {
    const forged = simFirmwareImage({ version: '1.2.3' }, simVendor('someone else'));
    expect(refusalCode(() => verifyImage(forged, { vendorKeys }))).toBe('firmware.forged');
  });

  it('a manifest altered after signing is refused as forged (a downgrade flag turned on, a version bumped)', () => {
    const file = simFirmwareImage({ version: '1.2.3' });
    const image = parseImage(file);
    // The last manifest byte is downgradeAllowed: 7 bytes of header come first.
    const flagAt = 7 + image.manifestBytes.length - 1;
    const flipped = file.slice();
    flipped[flagAt] = 1;
    expect(refusalCode(() => verifyImage(flipped, { vendorKeys }))).toBe('firmware.forged');
    const bumped = file.slice();
    bumped[7 + 2 + 'iq-sim-lock'.length] = 9;
    expect(refusalCode(() => verifyImage(bumped, { vendorKeys }))).toBe('firmware.forged');
  });

  it('a signature with a bit flipped is refused as forged', () => {
    const file = simFirmwareImage({ version: '1.2.3' });
    const sigAt = 7 + parseImage(file).manifestBytes.length;
    const bad = file.slice();
    bad[sigAt + 10] = (bad[sigAt + 10] ?? 0) ^ 1;
    expect(refusalCode(() => verifyImage(bad, { vendorKeys }))).toBe('firmware.forged');
  });

  it('no vendor key pinned: every image is refused', () => {
    expect(refusalCode(() => verifyImage(simFirmwareImage({ version: '1.2.3' }), { vendorKeys: [] }))).toBe(
      'firmware.forged',
    );
  });

  it('a truncated image is refused, whether cut in the payload or in the header', () => {
    const file = simFirmwareImage({ version: '1.2.3', size: 500 });
    expect(refusalCode(() => verifyImage(file.subarray(0, file.length - 1), { vendorKeys }))).toBe(
      'firmware.truncated',
    );
    expect(refusalCode(() => verifyImage(file.subarray(0, 40), { vendorKeys }))).toBe('firmware.truncated');
    expect(refusalCode(() => verifyImage(file.subarray(0, 3), { vendorKeys }))).toBe('firmware.malformed');
  });

  it('a payload altered under a genuine manifest is refused by its SHA-256', () => {
    const file = simFirmwareImage({ version: '1.2.3', size: 500 });
    const bad = file.slice();
    bad[bad.length - 5] = (bad[bad.length - 5] ?? 0) ^ 0x80;
    expect(refusalCode(() => verifyImage(bad, { vendorKeys }))).toBe('firmware.digest-mismatch');
    expect(refusalCode(() => verifyImage(new Uint8Array([...file, 0]), { vendorKeys }))).toBe('firmware.malformed');
  });

  it('firmware for another model is refused', () => {
    const image = parseImage(simFirmwareImage({ version: '1.2.3', model: 'other-lock' }));
    expect(
      refusalCode(() => verifyManifest(image.manifestBytes, image.signature, { vendorKeys, model: 'iq-sim-lock' })),
    ).toBe('firmware.wrong-model');
  });

  it('a downgrade (or the same version) is refused unless the signed manifest allows it', () => {
    const running = { major: 1, minor: 2, patch: 3 };
    const check = (version: string, downgradeAllowed: boolean) => {
      const image = parseImage(simFirmwareImage({ version, downgradeAllowed }));
      return refusalCode(() => verifyManifest(image.manifestBytes, image.signature, { vendorKeys, running }));
    };
    expect(check('1.2.2', false)).toBe('firmware.downgrade');
    expect(check('1.2.3', false)).toBe('firmware.downgrade');
    expect(check('0.9.0', true)).toBe('accepted');
    expect(check('1.2.4', false)).toBe('accepted');
    expect(check('1.10.0', false)).toBe('accepted');
  });

  it('an image above the size limit is refused', () => {
    const file = simFirmwareImage({ version: '1.2.3', size: 2000 });
    expect(refusalCode(() => verifyImage(file, { vendorKeys, maxSize: 1999 }))).toBe('firmware.too-large');
  });
});
