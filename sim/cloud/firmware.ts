import { createHash } from 'node:crypto';
import type { FirmwareProgressPayload, FirmwareRequestPayload } from '../../src/contract/mqtt-firmware.js';
import { topics } from '../../src/contract/mqtt-topics.js';
import { parseImage } from '../../src/firmware/image.js';

/**
 * The reference cloud's side of lock firmware (docs/mqtt-api.md, "Firmware"): it announces an
 * image file to a hub, serves the chunks the hub asks for (never more than the hub asked, never
 * beyond the message limit), and records every `firmware/progress` the hub reports. The image is
 * whatever file it is given: a test can announce a forged one and see the hub refuse it.
 */

export interface FirmwareAnnounceOptions {
  announceId: string;
  /** Announce these instead of what the file's manifest says (to test a hub's refusal). */
  model?: string;
  version?: string;
}

export class CloudFirmware {
  readonly #publish: (topic: string, body: object) => Promise<unknown> | undefined;
  readonly #maxMessageBytes: number;
  readonly #files = new Map<string, Uint8Array>();
  readonly #progress = new Map<string, FirmwareProgressPayload[]>();
  /** Chunk requests served, per hub. */
  readonly served = new Map<string, number>();

  constructor(deps: {
    publish: (topic: string, body: object) => Promise<unknown> | undefined;
    maxMessageBytes: number;
  }) {
    this.#publish = deps.publish;
    this.#maxMessageBytes = deps.maxMessageBytes;
  }

  async announce(hubId: string, file: Uint8Array, lockIds: string[], o: FirmwareAnnounceOptions): Promise<void> {
    let model = o.model ?? 'unknown';
    let version = o.version ?? '0.0.0';
    try {
      const m = parseImage(file).manifest;
      model = o.model ?? m.model;
      version = o.version ?? `${m.version.major}.${m.version.minor}.${m.version.patch}`;
    } catch {
      // An unreadable file is announced as given: the hub must refuse it.
    }
    this.#files.set(`${hubId}/${o.announceId}`, file);
    await this.#publish(topics.firmwareAnnounce(hubId), {
      v: 1,
      announceId: o.announceId,
      model,
      version,
      fileSha256: createHash('sha256').update(file).digest('hex'),
      fileSize: file.length,
      lockIds,
    });
  }

  /** A hub asks for bytes of an announced file. */
  serve(hubId: string, r: FirmwareRequestPayload): void {
    this.served.set(hubId, (this.served.get(hubId) ?? 0) + 1);
    const file = this.#files.get(`${hubId}/${r.announceId}`);
    const base = { v: 1, announceId: r.announceId, offset: r.offset };
    if (!file || r.offset >= file.length) {
      void this.#publish(topics.firmwareChunk(hubId), {
        ...base,
        error: { code: 'unknown-image', message: 'no such announced image or offset' },
      });
      return;
    }
    const room = Math.floor(((this.#maxMessageBytes - 512) * 3) / 4);
    const bytes = file.subarray(r.offset, r.offset + Math.min(r.length, room));
    void this.#publish(topics.firmwareChunk(hubId), { ...base, data: Buffer.from(bytes).toString('base64') });
  }

  record(hubId: string, p: FirmwareProgressPayload): void {
    const list = this.#progress.get(hubId) ?? [];
    list.push(p);
    this.#progress.set(hubId, list);
  }

  progress(hubId: string): FirmwareProgressPayload[] {
    return [...(this.#progress.get(hubId) ?? [])];
  }
}
