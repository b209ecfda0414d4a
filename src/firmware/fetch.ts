import type { FirmwareInboundTopic, FirmwareOutboundTopic, FirmwareUplink } from '../../hal/uplink.js';
import type { Clock, TimerHandle } from '../base/clock.js';
import { isHubError } from '../base/errors.js';
import { sha256 } from '../base/sha256.js';
import type {
  FirmwareAnnouncePayload,
  FirmwareChunkPayload,
  FirmwareProgressPayload,
} from '../contract/mqtt-firmware.js';
import { parseInbound } from '../contract/mqtt-validate.js';
import type { Logger } from '../log/logger.js';
import { hex } from './image.js';
import type { FirmwareProgress, FirmwareRelay } from './relay.js';
import type { ImageRow } from './transfers.js';

/**
 * An image the cloud announces, fetched over MQTT: the hub asks for the file in chunks
 * (`firmware/request`, each answer within `uplink.maxMessageBytes`), checks the file's SHA-256
 * against the announce, hands it to the relay (which verifies the vendor signature and the
 * payload before any lock hears of it) and pushes it to the announced locks. Every state change
 * of every lock goes back as `firmware/progress`. One fetch at a time; announces that arrive
 * meanwhile wait (up to MAX_QUEUED). A fetch lives in memory: after a hub restart the cloud
 * announces again (docs/mqtt-api.md, "Firmware").
 */

const MAX_QUEUED = 4;
/** A chunk asked for and not received within this is asked for again... */
const CHUNK_TIMEOUT_MS = 10_000;
/** ...this many times before the fetch is given up. */
const CHUNK_ATTEMPTS = 5;
/** Room in a chunk message for everything but the base64 data. */
const CHUNK_OVERHEAD = 512;
/** The largest raw chunk the contract allows (MAX_FIRMWARE_CHUNK_CHARS of base64). */
const MAX_CHUNK_BYTES = 180 * 1024;

interface Fetch {
  announce: FirmwareAnnouncePayload;
  bytes: Uint8Array;
  received: number;
  attempts: number;
  timer: TimerHandle | undefined;
}

export class FirmwareFetch implements FirmwareUplink {
  readonly #relay: FirmwareRelay;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #chunkBytes: number;
  readonly #maxImageBytes: number;
  #send: ((topic: FirmwareOutboundTopic, payload: object) => void) | undefined;
  #current: Fetch | undefined;
  readonly #queue: FirmwareAnnouncePayload[] = [];

  constructor(deps: {
    relay: FirmwareRelay;
    clock: Clock;
    log: Logger;
    /** `uplink.maxMessageBytes`: a chunk the cloud sends fits it. */
    maxMessageBytes: number;
    maxImageBytes: number;
  }) {
    this.#relay = deps.relay;
    this.#clock = deps.clock;
    this.#log = deps.log;
    const raw = Math.floor(((deps.maxMessageBytes - CHUNK_OVERHEAD) * 3) / 4 / 3) * 3;
    this.#chunkBytes = Math.max(3, Math.min(MAX_CHUNK_BYTES, raw));
    this.#maxImageBytes = deps.maxImageBytes;
    this.#relay.onProgress((p) => this.#progress(p));
  }

  /** Bytes asked for per firmware/request. */
  get chunkBytes(): number {
    return this.#chunkBytes;
  }

  attach(send: (topic: FirmwareOutboundTopic, payload: object) => void): void {
    this.#send = send;
  }

  handle(topic: FirmwareInboundTopic, payload: Buffer): void {
    try {
      if (topic === 'firmware/announce') {
        const parsed = parseInbound('firmware/announce', payload);
        if (!parsed.ok) {
          this.#log.warn({ error: parsed.error }, 'firmware/announce refused: not the contract');
          return;
        }
        this.#announce(parsed.value);
      } else {
        const parsed = parseInbound('firmware/chunk', payload);
        if (!parsed.ok) {
          this.#log.warn({ error: parsed.error }, 'firmware/chunk refused: not the contract');
          return;
        }
        this.#chunk(parsed.value);
      }
    } catch (e) {
      this.#log.error({ err: e, topic }, 'firmware message could not be handled');
    }
  }

  #announce(a: FirmwareAnnouncePayload): void {
    // A redelivered announce (QoS 1) is the same fetch.
    if (this.#current?.announce.announceId === a.announceId) return;
    if (this.#queue.some((q) => q.announceId === a.announceId)) return;
    if (a.fileSize > this.#maxImageBytes + 1024) {
      this.#refused(a, 'firmware.too-large', `the image file of ${a.fileSize} bytes exceeds firmware.maxImageBytes`);
      return;
    }
    if (this.#current) {
      if (this.#queue.length >= MAX_QUEUED) {
        this.#refused(a, 'firmware.busy', `${MAX_QUEUED} firmware announces are already waiting`);
        return;
      }
      this.#queue.push(a);
      return;
    }
    this.#begin(a);
  }

  #begin(a: FirmwareAnnouncePayload): void {
    this.#current = { announce: a, bytes: new Uint8Array(a.fileSize), received: 0, attempts: 0, timer: undefined };
    this.#publishProgress({ announce: a, lockId: null, state: 'fetching', sent: 0, size: a.fileSize, error: null });
    this.#request();
  }

  #request(): void {
    const f = this.#current;
    if (!f) return;
    f.attempts++;
    if (f.attempts > CHUNK_ATTEMPTS) {
      this.#fail(f, 'firmware.failed', `no firmware/chunk at offset ${f.received} after ${CHUNK_ATTEMPTS} requests`);
      return;
    }
    const length = Math.min(this.#chunkBytes, f.announce.fileSize - f.received);
    this.#send?.('firmware/request', { v: 1, announceId: f.announce.announceId, offset: f.received, length });
    this.#clock.clearTimeout(f.timer);
    f.timer = this.#clock.setTimeout(() => this.#request(), CHUNK_TIMEOUT_MS);
  }

  #chunk(c: FirmwareChunkPayload): void {
    const f = this.#current;
    // A chunk of another fetch, or one already taken (a redelivery): nothing to do.
    if (!f || f.announce.announceId !== c.announceId || c.offset !== f.received) return;
    if (c.error || c.data === undefined) {
      this.#fail(f, 'firmware.failed', `the cloud could not send the image: ${c.error?.message ?? 'no data'}`);
      return;
    }
    const data = Buffer.from(c.data, 'base64');
    if (data.length === 0 || f.received + data.length > f.announce.fileSize) {
      this.#fail(f, 'firmware.malformed', `a chunk at ${c.offset} runs past the announced size`);
      return;
    }
    f.bytes.set(data, f.received);
    f.received += data.length;
    f.attempts = 0;
    if (f.received < f.announce.fileSize) {
      this.#request();
      return;
    }
    this.#clock.clearTimeout(f.timer);
    this.#complete(f);
  }

  #complete(f: Fetch): void {
    const a = f.announce;
    if (hex(sha256(f.bytes)) !== a.fileSha256) {
      this.#fail(f, 'firmware.digest-mismatch', 'the fetched file does not match the SHA-256 of the announce');
      return;
    }
    let image: ImageRow;
    try {
      image = this.#relay.addImage(f.bytes);
    } catch (e) {
      this.#fail(f, isHubError(e) ? e.code : 'firmware.failed', (e as Error).message);
      return;
    }
    if (image.model !== a.model || image.version !== a.version) {
      this.#fail(
        f,
        'firmware.malformed',
        `the image is ${image.model} ${image.version}, the announce said ${a.model} ${a.version}`,
      );
      return;
    }
    this.#log.info({ announceId: a.announceId, locks: a.lockIds.length }, 'announced firmware fetched and verified');
    this.#next();
    try {
      this.#relay.push(image.sha256, a.lockIds, `cloud:${a.announceId}`);
    } catch (e) {
      // The next announce has begun already: this one is refused without touching it.
      const code = isHubError(e) ? e.code : 'firmware.failed';
      this.#log.warn({ announceId: a.announceId, code }, `announced firmware refused: ${(e as Error).message}`);
      this.#refused(a, code, (e as Error).message);
    }
  }

  #fail(f: Fetch, code: string, message: string): void {
    this.#clock.clearTimeout(f.timer);
    this.#log.warn({ announceId: f.announce.announceId, code }, `announced firmware refused: ${message}`);
    this.#refused(f.announce, code, message);
    this.#next();
  }

  #next(): void {
    this.#current = undefined;
    const a = this.#queue.shift();
    if (a) this.#begin(a);
  }

  #refused(a: FirmwareAnnouncePayload, code: string, message: string): void {
    this.#publishProgress({
      announce: a,
      lockId: null,
      state: 'refused',
      sent: 0,
      size: a.fileSize,
      error: { code, message },
    });
  }

  #publishProgress(p: {
    announce: FirmwareAnnouncePayload;
    lockId: string | null;
    state: FirmwareProgressPayload['state'];
    sent: number;
    size: number;
    error: FirmwareProgressPayload['error'];
  }): void {
    const payload: FirmwareProgressPayload = {
      v: 1,
      announceId: p.announce.announceId,
      lockId: p.lockId,
      model: p.announce.model,
      version: p.announce.version,
      state: p.state,
      sent: p.sent,
      size: p.size,
      error: p.error,
      at: new Date(this.#clock.now()).toISOString(),
    };
    this.#send?.('firmware/progress', payload);
  }

  #progress(p: FirmwareProgress): void {
    const announceId = p.origin.startsWith('cloud:') ? p.origin.slice('cloud:'.length) : null;
    const payload: FirmwareProgressPayload = {
      v: 1,
      announceId,
      lockId: p.lockId,
      model: p.model,
      version: p.version,
      state: p.state,
      sent: p.sent,
      size: p.size,
      error: p.error === null ? null : { code: 'firmware.failed', message: p.error.slice(0, 1024) },
      at: new Date(this.#clock.now()).toISOString(),
    };
    this.#send?.('firmware/progress', payload);
  }
}
