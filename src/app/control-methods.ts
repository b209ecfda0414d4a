import type { OfflineLists } from '../access/offline.js';
import { offlineListRows } from '../access/offline-rows.js';
import type { PinKeyDelivery } from '../access/pin-key-delivery.js';
import { HubError } from '../base/errors.js';
import { processHeapSettle } from '../base/heap-settle.js';
import type { CommandsView } from '../contract/control-socket.js';
import { MAX_OPEN_MS } from '../contract/link-messages.js';
import { wireLockState } from '../contract/mqtt-hub-messages.js';
import { ID_PATTERN } from '../contract/mqtt-topics.js';
import type { ControlServer } from '../control-socket/socket-server.js';
import { Secret } from '../crypto/secret.js';
import type { LinkManager } from '../link/manager.js';

/**
 * The control socket's methods, registered here from the services' own functions: the services
 * never see the socket, and every param is schema-checked by the server before a handler runs.
 */

/**
 * Times leave the control socket as ISO 8601 UTC, like every time the hub shows (the store keeps
 * Unix milliseconds): an event's `at` and `receivedAt`, a security event's `at`, a lock state's `time`.
 */
const iso = (ms: number) => new Date(ms).toISOString();
const eventOut = <E extends { at: number; receivedAt?: number }>(e: E) => ({
  ...e,
  at: iso(e.at),
  ...(e.receivedAt === undefined ? {} : { receivedAt: iso(e.receivedAt) }),
});
const lockOut = <L extends { recentEvents: { at: number; receivedAt?: number }[] }>(l: L) => ({
  ...l,
  recentEvents: l.recentEvents.map(eventOut),
});

/** A lock id as a control-method param (the schema every lock method uses). */
export const lockIdParam = { type: 'string', pattern: ID_PATTERN } as const;
const lockId = lockIdParam;

/** The field technician's lock commands. */
export function registerLinkMethods(server: ControlServer, link: LinkManager): void {
  server.register('locks.list', { params: { properties: {} }, handler: () => link.list() });
  server.register('locks.get', {
    params: { properties: { lockId }, required: ['lockId'] },
    handler: (p) => lockOut(link.get(p.lockId as string)),
  });
  server.register('locks.check', {
    params: { properties: { lockId }, required: ['lockId'] },
    handler: async (p) => {
      const state = await link.lockState(p.lockId as string);
      return { ...lockOut(link.get(p.lockId as string)), lockState: wireLockState(state) };
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
      link
        .attach(
          p.deviceId as string,
          Secret.fromUtf8(p.setupCode as string),
          p.timeoutMs as number | undefined,
          p.installCode === undefined ? {} : { installCode: Secret.fromUtf8(p.installCode as string) },
        )
        // An attach (a radio's pairing, the handshake, the lock's first state) leaves garbage
        // across V8's pages that an idle hub would keep: collected once attaching has stopped
        // for a moment (docs/operations.md, "Memory").
        .finally(() => processHeapSettle.soon()),
  });
  server.register('locks.open', {
    params: {
      properties: { lockId, durationMs: { type: 'integer', minimum: 1, maximum: MAX_OPEN_MS } },
      required: ['lockId', 'durationMs'],
    },
    handler: async (p) => wireLockState(await link.open(p.lockId as string, p.durationMs as number)),
  });
  server.register('locks.lock', {
    params: { properties: { lockId }, required: ['lockId'] },
    handler: async (p) => wireLockState(await link.lockNow(p.lockId as string)),
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
    handler: (p) => link.pairing.events(p.lockId as string, (p.limit as number | undefined) ?? 100).map(eventOut),
  });
  server.register('security.events', {
    params: { properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 } } },
    handler: (p) =>
      link.pairing.securityEvents((p.limit as number | undefined) ?? 50).map((e) => ({ ...e, at: iso(e.at) })),
  });
}

/** `iqhub offline`: per bound lock, what its offline list holds and whether it is up to date. */
export function registerAccessMethods(
  server: ControlServer,
  offline: OfflineLists | undefined,
  pinKeys?: PinKeyDelivery,
): void {
  server.register('access.offline', {
    params: { properties: { lockId: lockIdParam } },
    handler: (p) => {
      const lockId = p.lockId as string | undefined;
      const rows = offlineListRows(offline, pinKeys).filter((r) => lockId === undefined || r.lockId === lockId);
      if (lockId !== undefined && rows.length === 0) {
        throw new HubError('access.no-offline-list', `lock ${lockId} has no offline list on this hub`, {
          hint: 'only bound locks get one; iqhub locks lists them (a lock bound a moment ago gets its list shortly)',
        });
      }
      return rows;
    },
  });
}

/** Where `iqhub commands` reads from: undefined until the uplink is up (a hub still enrolling). */
export interface CommandsSource {
  commands(limit: number): CommandsView | undefined;
}

/**
 * `iqhub commands`: what the hub made of the cloud's remote commands — accepted and refused (by
 * code) since start-up, a lockout running, and the newest accepted commands with their outcome.
 * Nothing secret (see Inbox.recentCommands). `source` is undefined on a hub without an uplink.
 */
export function registerCommandMethods(server: ControlServer, source: CommandsSource | undefined): void {
  server.register('commands.list', {
    params: { properties: { limit: { type: 'integer', minimum: 1, maximum: 10_000 } } },
    handler: (p) => {
      if (!source) {
        throw new HubError('commands.no-uplink', 'this hub has no cloud uplink, so no remote commands reach it', {
          hint: 'configure uplink (docs/configuration.md) or enrol the hub (docs/installing.md)',
        });
      }
      const view = source.commands((p.limit as number | undefined) ?? 20);
      if (!view) {
        throw new HubError(
          'commands.not-ready',
          'remote commands are not available yet: the uplink is still starting or enrolling',
          {
            hint: 'iqhub status shows the uplink; try again once it says connected',
          },
        );
      }
      return view;
    },
  });
}

/** What `iqhub backup` / `iqhub restore` need of the ZigBee radio. */
export interface CoordinatorBackups {
  backup(): Promise<object>;
  backups(): string[];
  restore(o: { backupId?: string }): Promise<unknown>;
}

/** `iqhub backup` / `iqhub restore`: the ZigBee coordinator's sealed backups. */
export function registerRadioMethods(server: ControlServer, zigbee: () => CoordinatorBackups | undefined): void {
  const radio = () => {
    const z = zigbee();
    if (!z) {
      throw new HubError('radio.no-zigbee', 'this hub has no ZigBee radio', {
        hint: 'set radios.zigbee.enabled and radios.zigbee.port in the config (docs/zigbee.md)',
      });
    }
    return z;
  };
  server.register('zigbee.backup', {
    params: { properties: {} },
    handler: async () => ({ ...(await radio().backup()), kept: radio().backups() }),
  });
  server.register('zigbee.backups', { params: { properties: {} }, handler: () => radio().backups() });
  server.register('zigbee.restore', {
    params: { properties: { backupId: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' } } },
    handler: (p) => radio().restore(p.backupId === undefined ? {} : { backupId: p.backupId as string }),
  });
}
