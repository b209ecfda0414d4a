import { createRequire } from 'node:module';

/**
 * ZigBee 3.0 install codes as the installer types or scans them. The code is a per-device secret
 * (printed on the lock, like our setup code): the trust center derives the device's link key from
 * it, so whoever has it can join that device's radio identity. It is validated here, before
 * zigbee-herdsman sees it, for two reasons:
 *
 * - herdsman silently "repairs" a code whose CRC does not match (it overwrites the CRC), so a typo
 *   would register a key the lock never uses and the attach would just time out. The CRC is there
 *   to catch typos: a mismatch is refused here with a message that says so. A code without its
 *   CRC is refused too: herdsman would register it twice (as a code and as an already-derived
 *   key), and a Z-Stack coordinator keeps one link key per device, the last one.
 * - herdsman's own errors quote the code (in hex); ours never do (the caller's HubError carries
 *   only the reason).
 *
 * The accepted texts are exactly herdsman's `parseInstallCode` formats (its parser is used, so the
 * driver and herdsman never disagree about which part is the address and which the code).
 */

/** Code lengths in bytes including the 2-byte CRC (ZigBee 3.0: 6, 8, 12 or 16 code bytes). */
export const INSTALL_CODE_SIZES_WITH_CRC = [8, 10, 14, 18] as const;
/** Longer than any known format (the 95-character QR form is the longest). */
const MAX_TEXT_LENGTH = 200;

export interface ParsedInstallCode {
  /** The device's IEEE address, "0x" + 16 lowercase hex digits. Not a secret. */
  readonly ieee: string;
  /** The code bytes with their CRC. Secret. */
  readonly code: Uint8Array;
}

export type InstallCodeParse = { ok: true; value: ParsedInstallCode } | { ok: false; reason: string };

type HerdsmanParse = (installCode: string) => [string, string];
let herdsmanParse: HerdsmanParse | undefined;

/** herdsman's parser, loaded on first use (a hub without ZigBee never loads herdsman). */
function parser(): HerdsmanParse {
  herdsmanParse ??= (
    createRequire(import.meta.url)('zigbee-herdsman/dist/controller/helpers/installCodes.js') as {
      parseInstallCode: HerdsmanParse;
    }
  ).parseInstallCode;
  return herdsmanParse;
}

/**
 * Parses and checks an install code text. The reasons never contain the code (nor any part of
 * the text): they are safe for error messages and logs.
 */
export function parseInstallCodeText(text: string): InstallCodeParse {
  const trimmed = text.trim();
  if (trimmed.length === 0) return { ok: false, reason: 'it is empty' };
  if (trimmed.length > MAX_TEXT_LENGTH) {
    return { ok: false, reason: `it is ${trimmed.length} characters long, more than any install code format` };
  }
  let ieeeText: string;
  let keyText: string;
  try {
    [ieeeText, keyText] = parser()(trimmed);
  } catch {
    return {
      ok: false,
      reason:
        "it is in no known format: Z:<ieee>$I:<code> (most QR labels), <ieee>|<code>, |<ieee>|<code>|, G$M:…$A:<ieee>$I:<code>, 'HUE:Z:<code> M:<ieee>', or the 91/95-character label text",
    };
  }
  if (!/^0x[0-9a-f]{16}$/.test(ieeeText)) {
    return { ok: false, reason: 'its device address is not 16 hex digits' };
  }
  if (!/^[0-9a-fA-F]+$/.test(keyText) || keyText.length % 2 !== 0) {
    return { ok: false, reason: 'its code part is not an even number of hex digits' };
  }
  const code = Uint8Array.from(Buffer.from(keyText, 'hex'));
  if ((INSTALL_CODE_SIZES_WITH_CRC as readonly number[]).includes(code.length)) {
    const crc = crc16X25(code.subarray(0, -2));
    if (code[code.length - 2] !== (crc & 0xff) || code[code.length - 1] !== crc >> 8) {
      code.fill(0);
      return { ok: false, reason: 'its CRC (the last 4 hex digits) does not match: check the code for a typo' };
    }
    return { ok: true, value: { ieee: ieeeText, code } };
  }
  if ([6, 12, 16].includes(code.length)) {
    code.fill(0);
    return {
      ok: false,
      reason: 'its CRC is missing: enter all the hex digits on the label (a 16-byte code has 36 with its CRC)',
    };
  }
  const length = code.length;
  code.fill(0);
  return {
    ok: false,
    reason: `its code part is ${length} bytes; install codes are 6, 8, 12 or 16 bytes plus a 2-byte CRC`,
  };
}

/** CRC-16/X-25 (reflected 0x1021, init and final xor 0xffff), the install code CRC, little-endian on the label. */
export function crc16X25(data: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of data) {
    crc ^= byte;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0x8408 : crc >>> 1;
  }
  return (crc ^ 0xffff) & 0xffff;
}
