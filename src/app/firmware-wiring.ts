import { createHash } from 'node:crypto';
import type { Clock } from '../base/clock.js';
import { HubError } from '../base/errors.js';
import type { HubConfig } from '../config/schema.js';
import type { ControlServer } from '../control-socket/socket-server.js';
import { FirmwareRelay } from '../firmware/relay.js';
import { FirmwareTables } from '../firmware/transfers.js';
import type { LinkManager } from '../link/manager.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import { lockIdParam } from './control-methods.js';

/**
 * The firmware relay wired to the link and the config, and its control methods: a technician's
 * image arrives over the control socket in chunks (a socket line holds 64 KiB), is checked whole
 * (its SHA-256 as the CLI computed it, then every firmware check), and only then kept and pushed.
 */

/** Raw bytes per `firmware.upload` call: base64 makes them 4/3 as long, well under a socket line. */
export const UPLOAD_CHUNK_BYTES = 32 * 1024;
/** An upload left unfinished this long is dropped. */
const UPLOAD_TTL_MS = 10 * 60_000;

export function buildFirmware(deps: {
  config: HubConfig['firmware'];
  store: Store;
  link: LinkManager;
  clock: Clock;
  log: Logger;
}): FirmwareRelay {
  const { config } = deps;
  return new FirmwareRelay({
    tables: new FirmwareTables(deps.store),
    link: {
      request: (lockId, body) => deps.link.firmwareRequest(lockId, body),
      radioOf: (lockId) => deps.link.radioOf(lockId),
    },
    clock: deps.clock,
    log: deps.log.child({ component: 'firmware' }),
    options: {
      vendorKeys: config.vendorKeys.map((k) => new Uint8Array(Buffer.from(k, 'hex'))),
      maxImageBytes: config.maxImageBytes,
      perRadio: config.perRadio,
      window: config.window,
      attempts: config.attempts,
      retryDelayMs: config.retryDelayMs,
    },
  });
}

interface Upload {
  total: number;
  bytes: Buffer;
  received: number;
  startedAt: number;
}

const sha256Param = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;

export function registerFirmwareMethods(
  server: ControlServer,
  relay: FirmwareRelay,
  opts: { clock: Clock; maxImageBytes: number },
): void {
  const uploads = new Map<string, Upload>();
  server.register('firmware.upload', {
    params: {
      properties: {
        sha256: sha256Param,
        total: { type: 'integer', minimum: 1, maximum: opts.maxImageBytes + 1024 },
        offset: { type: 'integer', minimum: 0 },
        data: {
          type: 'string',
          maxLength: Math.ceil((UPLOAD_CHUNK_BYTES * 4) / 3) + 4,
          pattern: '^[A-Za-z0-9+/]*={0,2}$',
        },
      },
      required: ['sha256', 'total', 'offset', 'data'],
    },
    handler: (p) => {
      const now = opts.clock.now();
      for (const [k, u] of uploads) if (now - u.startedAt > UPLOAD_TTL_MS) uploads.delete(k);
      const sha = p.sha256 as string;
      const total = p.total as number;
      const offset = p.offset as number;
      const data = Buffer.from(p.data as string, 'base64');
      let u = uploads.get(sha);
      if (offset === 0) {
        if (uploads.size >= 2 && !u)
          throw new HubError('firmware.busy', 'two firmware uploads are already in progress', {
            hint: 'wait for them to finish (or 10 minutes), then try again',
          });
        u = { total, bytes: Buffer.alloc(total), received: 0, startedAt: now };
        uploads.set(sha, u);
      }
      if (!u || u.total !== total || offset !== u.received || offset + data.length > total) {
        throw new HubError(
          'firmware.malformed',
          `firmware upload ${sha.slice(0, 12)}…: chunk at ${offset} does not follow`,
          {
            hint: 'start the upload again from offset 0',
          },
        );
      }
      data.copy(u.bytes, offset);
      u.received += data.length;
      if (u.received < total) return { received: u.received };
      uploads.delete(sha);
      if (createHash('sha256').update(u.bytes).digest('hex') !== sha) {
        throw new HubError(
          'firmware.truncated',
          'the uploaded firmware file does not match the SHA-256 the CLI computed',
          {
            hint: 'copy the file again and retry',
          },
        );
      }
      return { received: u.received, image: relay.addImage(new Uint8Array(u.bytes)) };
    },
  });
  server.register('firmware.push', {
    params: {
      properties: {
        sha256: sha256Param,
        lockIds: { type: 'array', minItems: 1, maxItems: 1000, items: lockIdParam },
      },
      required: ['sha256', 'lockIds'],
    },
    handler: (p) => relay.push(p.sha256 as string, p.lockIds as string[], 'cli'),
  });
  server.register('firmware.status', {
    params: { properties: { lockIds: { type: 'array', maxItems: 1000, items: lockIdParam } } },
    handler: (p) => {
      const wanted = p.lockIds as string[] | undefined;
      const all = relay.transfers();
      return wanted ? all.filter((t) => wanted.includes(t.lockId)) : all;
    },
  });
  server.register('firmware.images', { params: { properties: {} }, handler: () => relay.images() });
}
