import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { HubError } from '../base/errors.js';

/**
 * `iqhub firmware push FILE LOCK…`: the file goes to the daemon in chunks (it checks the whole
 * image before anything reaches a lock), the push is queued, and the CLI follows the transfers:
 * a progress bar per lock on a terminal, a line per change otherwise, the final states with --json.
 * Loaded only when the command runs.
 */

type Call = (method: string, params?: Record<string, unknown>, timeoutMs?: number) => Promise<unknown>;

/** As the daemon's firmware.upload takes them (src/app/firmware-wiring.ts UPLOAD_CHUNK_BYTES). */
const CHUNK = 32 * 1024;
const POLL_MS = 250;

export interface Transfer {
  lockId: string;
  sha256: string;
  model: string;
  version: string;
  state: 'queued' | 'running' | 'installed' | 'failed';
  sent: number;
  size: number;
  error: string | null;
}

interface ImageRow {
  sha256: string;
  model: string;
  version: string;
  size: number;
}

function readImage(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new HubError(
      'cli.firmware-file',
      `cannot read the firmware file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: 'give the path of the image file (.iqfw) the vendor or the cloud published',
      },
    );
  }
}

/** Sends the file; the daemon answers with the verified image, or refuses it (forged, truncated…). */
export async function uploadImage(call: Call, path: string): Promise<ImageRow> {
  const file = readImage(path);
  const sha256 = createHash('sha256').update(file).digest('hex');
  let image: ImageRow | undefined;
  for (let offset = 0; offset < file.length; offset += CHUNK) {
    const data = file.subarray(offset, offset + CHUNK).toString('base64');
    const r = (await call('firmware.upload', { sha256, total: file.length, offset, data }, 60_000)) as {
      image?: ImageRow;
    };
    image = r.image;
  }
  if (!image) throw new HubError('cli.firmware-file', `the firmware file ${path} is empty`);
  return image;
}

function bar(t: Transfer, width = 30): string {
  const share = t.size > 0 ? t.sent / t.size : 0;
  const full = Math.round(share * width);
  const state = t.state === 'failed' ? `failed: ${t.error ?? ''}` : t.state;
  return `${t.lockId.padEnd(16)} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(Math.floor(share * 100)).padStart(3)}% ${state}`;
}

function line(t: Transfer): string {
  if (t.state === 'failed') return `${t.lockId}: failed: ${t.error ?? ''}`;
  if (t.state === 'installed') return `${t.lockId}: installed ${t.model} ${t.version}`;
  return `${t.lockId}: ${t.state} ${t.sent}/${t.size} bytes`;
}

/** Follows the transfers until each is installed or failed; returns their final states. */
export async function follow(
  call: Call,
  lockIds: readonly string[],
  out: { json: boolean; tty: boolean; write: (s: string) => void },
): Promise<Transfer[]> {
  const lastLine = new Map<string, string>();
  let drawn = 0;
  for (;;) {
    const transfers = (await call('firmware.status', { lockIds: [...lockIds] })) as Transfer[];
    const done = transfers.every((t) => t.state === 'installed' || t.state === 'failed');
    if (!out.json) {
      if (out.tty) {
        // Redraw the bars in place.
        if (drawn > 0) out.write(`\x1b[${drawn}A`);
        for (const t of transfers) out.write(`\x1b[2K${bar(t)}\n`);
        drawn = transfers.length;
      } else {
        for (const t of transfers) {
          // A line per state change, and per tenth of the image.
          const key = `${t.state} ${Math.floor((t.sent * 10) / Math.max(1, t.size))}`;
          if (lastLine.get(t.lockId) !== key) {
            lastLine.set(t.lockId, key);
            out.write(`${line(t)}\n`);
          }
        }
      }
    }
    if (done) return transfers;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
