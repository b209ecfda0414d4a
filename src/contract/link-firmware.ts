import {
  DIGEST_LEN,
  FIRMWARE_BLOCK_LEN,
  FIRMWARE_OUTCOMES,
  FIRMWARE_SIGNATURE_LEN,
  type FirmwareRequest,
  type FirmwareResult,
  type FirmwareVersion,
  MAX_FIRMWARE_MANIFEST_LEN,
} from './link-messages.js';
import { check, type Reader, type Writer } from './link-wire.js';

/**
 * The firmware requests and results on the wire (docs/link-protocol.md, "Firmware"), one writer
 * and one reader per body side by side, like link-bodies.ts.
 */

/** The largest transfer the wire can describe (a u32 offset). */
const MAX_OFFSET = 0xffff_ffff;

function writeVersion(w: Writer, v: FirmwareVersion): void {
  w.u16(v.major, 'version.major');
  w.u16(v.minor, 'version.minor');
  w.u16(v.patch, 'version.patch');
}

function readVersion(r: Reader): FirmwareVersion {
  return { major: r.u16('version.major'), minor: r.u16('version.minor'), patch: r.u16('version.patch') };
}

export function writeFirmwareRequest(w: Writer, m: FirmwareRequest): void {
  switch (m.type) {
    case 'fwBegin':
      check(m.manifest instanceof Uint8Array, 'manifest', 'must be bytes');
      w.u8(m.manifest.length, 'manifest.length');
      check(
        m.manifest.length >= 1 && m.manifest.length <= MAX_FIRMWARE_MANIFEST_LEN,
        'manifest',
        'must be 1…128 bytes',
      );
      w.bytes(m.manifest, m.manifest.length, 'manifest');
      w.bytes(m.signature, FIRMWARE_SIGNATURE_LEN, 'signature');
      break;
    case 'fwBlock':
      w.u32(m.offset, 'offset', 0, MAX_OFFSET);
      check(m.data instanceof Uint8Array, 'data', 'must be bytes');
      w.u8(m.data.length, 'data.length');
      check(m.data.length >= 1 && m.data.length <= FIRMWARE_BLOCK_LEN, 'data', `must be 1…${FIRMWARE_BLOCK_LEN} bytes`);
      w.bytes(m.data, m.data.length, 'data');
      break;
    case 'fwStatus':
    case 'fwFinish':
      break;
  }
}

export function readFirmwareRequest(r: Reader, type: FirmwareRequest['type'], id: number): FirmwareRequest {
  switch (type) {
    case 'fwBegin': {
      const length = r.u8();
      check(length >= 1 && length <= MAX_FIRMWARE_MANIFEST_LEN, 'manifest', 'must be 1…128 bytes');
      const manifest = r.bytes(length, 'manifest');
      return { type, id, manifest, signature: r.bytes(FIRMWARE_SIGNATURE_LEN, 'signature') };
    }
    case 'fwBlock': {
      const offset = r.u32('offset');
      const length = r.u8();
      check(length >= 1 && length <= FIRMWARE_BLOCK_LEN, 'data', `must be 1…${FIRMWARE_BLOCK_LEN} bytes`);
      return { type, id, offset, data: r.bytes(length, 'data') };
    }
    case 'fwStatus':
    case 'fwFinish':
      return { type, id };
  }
}

export function writeFirmwareResult(w: Writer, result: FirmwareResult): void {
  switch (result.op) {
    case 'fwStatus':
      check(result.model !== null && result.model !== '', 'model', 'required');
      w.credentialId(result.model, 'model');
      writeVersion(w, result.version);
      w.bool(result.staged !== null, 'staged');
      if (result.staged !== null) w.bytes(result.staged, DIGEST_LEN, 'staged');
      w.u32(result.offset, 'offset');
      check(result.staged !== null || result.offset === 0, 'offset', 'must be 0 without a staged image');
      break;
    case 'fwBegin':
      w.choice(FIRMWARE_OUTCOMES, result.outcome, 'outcome');
      w.u32(result.offset, 'offset');
      break;
    case 'fwBlock':
      w.u32(result.offset, 'offset');
      break;
    case 'fwFinish':
      w.choice(FIRMWARE_OUTCOMES, result.outcome, 'outcome');
      writeVersion(w, result.version);
      break;
  }
}

export function readFirmwareResult(r: Reader, op: FirmwareResult['op']): FirmwareResult {
  switch (op) {
    case 'fwStatus': {
      const model = r.credentialId('model');
      check(model !== null, 'model', 'required');
      const version = readVersion(r);
      const staged = r.bool('staged') ? r.bytes(DIGEST_LEN, 'staged') : null;
      const offset = r.u32('offset');
      check(staged !== null || offset === 0, 'offset', 'must be 0 without a staged image');
      return { op, model: model as string, version, staged, offset };
    }
    case 'fwBegin':
      return { op, outcome: r.choice(FIRMWARE_OUTCOMES, 'outcome'), offset: r.u32('offset') };
    case 'fwBlock':
      return { op, offset: r.u32('offset') };
    case 'fwFinish':
      return { op, outcome: r.choice(FIRMWARE_OUTCOMES, 'outcome'), version: readVersion(r) };
  }
}
