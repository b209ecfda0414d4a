import type { Clock } from '../base/clock.js';
import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import { VERSION } from '../base/version.js';
import type { HubConfig } from '../config/schema.js';
import type { ControlServer } from '../control-socket/socket-server.js';
import type { Sealer } from '../crypto/seal.js';
import { stampedHubId } from '../crypto/store-identity.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import type { CoordinatorBackups } from './control-methods.js';

/**
 * `hub.backup` on the control socket (`iqhub hub-backup`): the whole hub, sealed to the cloud's
 * recovery key (src/backup/). The daemon takes it, because it alone holds the store (exclusively)
 * and the storage key; the file stays in `<dataDir>/hub-backups/` (0600) and only its path and
 * what it holds (ids, counts, never a key) go back over the socket.
 */
export function registerHubBackupMethod(
  server: ControlServer,
  d: {
    config: HubConfig;
    store: Store;
    sealer: Sealer;
    random: Random;
    clock: Clock;
    log: Logger;
    zigbee: () => CoordinatorBackups | undefined;
  },
): void {
  server.register('hub.backup', {
    params: { properties: {} },
    handler: async () => {
      const recovery = d.config.backup.recoveryPublicKey;
      if (recovery === null) {
        throw new HubError('backup.no-recovery-key', 'no recovery public key is configured (backup.recoveryPublicKey)');
      }
      const hubId = stampedHubId(d.store) ?? d.config.provisioning.hubId;
      if (hubId === null) {
        throw new HubError(
          'backup.no-hub-id',
          'this hub has no hub id yet: the cloud could not name the hub it replaces',
        );
      }
      // A fresh coordinator backup first, so the ZigBee state is as recent as the store; if the
      // adapter is not ready, the newest sealed one goes in (its frame counter is moved forward at restore).
      let zigbeeFresh: boolean | null = null;
      const z = d.zigbee();
      if (z) {
        zigbeeFresh = await z.backup().then(
          () => true,
          (e: unknown) => {
            d.log.warn({ err: e }, 'hub backup: no fresh coordinator backup, the newest sealed one is used');
            return false;
          },
        );
      }
      const { takeHubBackup } = await import('../backup/take.js');
      const taken = await takeHubBackup({
        store: d.store,
        sealer: d.sealer,
        dataDir: d.config.dataDir,
        hubId,
        recoveryPublicKey: new Uint8Array(Buffer.from(recovery, 'base64url')),
        random: d.random,
        now: d.clock.now(),
        hubVersion: VERSION,
      });
      const { path, ...facts } = taken;
      d.store.journal('hub.backup', facts, d.clock.now());
      d.log.info({ ...facts, path }, 'hub backup sealed to the recovery key');
      return { ...taken, zigbeeFresh };
    },
  });
}
