import { MAX_OPEN_MS } from '../contract/link-messages.js';
import { ID_PATTERN } from '../contract/mqtt.js';
import type { ControlServer } from '../control-socket/socket-server.js';
import { Secret } from '../crypto/secret.js';
import type { LinkManager } from './manager.js';

/** A lock id as a control-method param (the schema every lock method uses). */
export const lockIdParam = { type: 'string', pattern: ID_PATTERN } as const;
const lockId = lockIdParam;

/** The field technician's lock commands on the control socket. Every param is schema-checked. */
export function registerLinkMethods(server: ControlServer, link: LinkManager): void {
  server.register('locks.list', { params: { properties: {} }, handler: () => link.list() });
  server.register('locks.get', {
    params: { properties: { lockId }, required: ['lockId'] },
    handler: (p) => link.get(p.lockId as string),
  });
  server.register('locks.check', {
    params: { properties: { lockId }, required: ['lockId'] },
    handler: async (p) => {
      const state = await link.lockState(p.lockId as string);
      return { ...link.get(p.lockId as string), lockState: state };
    },
  });
  server.register('locks.discover', { params: { properties: {} }, handler: () => link.discoverable() });
  server.register('locks.attach', {
    params: {
      properties: {
        deviceId: lockId,
        setupCode: { type: 'string', minLength: 4, maxLength: 64 },
        /** A ZigBee install code as printed or in the QR code (`<ieee>|<code>`, `Z:<ieee>$I:<code>`, …: docs/zigbee.md). */
        installCode: { type: 'string', minLength: 8, maxLength: 256, pattern: '^[\\x21-\\x7e]+$' },
        timeoutMs: { type: 'integer', minimum: 1000, maximum: 120_000 },
      },
      required: ['deviceId', 'setupCode'],
    },
    handler: (p) =>
      link.attach(
        p.deviceId as string,
        Secret.fromUtf8(p.setupCode as string),
        p.timeoutMs as number | undefined,
        p.installCode === undefined ? {} : { installCode: Secret.fromUtf8(p.installCode as string) },
      ),
  });
  server.register('locks.open', {
    params: {
      properties: { lockId, durationMs: { type: 'integer', minimum: 1, maximum: MAX_OPEN_MS } },
      required: ['lockId', 'durationMs'],
    },
    handler: (p) => link.open(p.lockId as string, p.durationMs as number),
  });
  server.register('locks.lock', {
    params: { properties: { lockId }, required: ['lockId'] },
    handler: (p) => link.lockNow(p.lockId as string),
  });
  server.register('locks.detach', {
    params: { properties: { lockId }, required: ['lockId'] },
    handler: (p) => link.detach(p.lockId as string),
  });
  server.register('locks.forget', {
    params: { properties: { lockId }, required: ['lockId'] },
    handler: (p) => link.forget(p.lockId as string),
  });
  server.register('events.list', {
    params: {
      properties: { lockId, limit: { type: 'integer', minimum: 1, maximum: 10_000 } },
      required: ['lockId'],
    },
    handler: (p) => link.pairing.events(p.lockId as string, (p.limit as number | undefined) ?? 100),
  });
  server.register('security.events', {
    params: { properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 } } },
    handler: (p) => link.pairing.securityEvents((p.limit as number | undefined) ?? 50),
  });
}
