import { HubError } from '../base/errors.js';
import type { ControlServer } from '../control-socket/socket-server.js';
import { INBOX_MAX_IDS } from './inbound.js';
import type { UplinkService } from './service.js';

/**
 * `iqhub commands` on the control socket: what the hub made of the cloud's remote commands —
 * accepted and refused (by code) since start-up, a lockout running, and the newest accepted
 * commands with their outcome. Nothing secret (see Inbound.recent).
 */
export function registerCommandMethods(server: ControlServer, uplink: UplinkService | undefined): void {
  server.register('commands.list', {
    params: { properties: { limit: { type: 'integer', minimum: 1, maximum: INBOX_MAX_IDS } } },
    handler: (p) => {
      if (!uplink) {
        throw new HubError('commands.no-uplink', 'this hub has no cloud uplink, so no remote commands reach it', {
          hint: 'configure uplink (docs/configuration.md) or enrol the hub (docs/installing.md)',
        });
      }
      const view = uplink.commands((p.limit as number | undefined) ?? 20);
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
