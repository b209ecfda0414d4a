import type { ResultSink } from '../../hal/uplink.js';
import type { UplinkIdentity } from '../../provisioning/uplink-files.js';
import { loadUplinkFiles } from '../../provisioning/uplink-files.js';
import type { AccessMirror } from '../access/mirror.js';
import type { PinKeyRing } from '../access/pin-keys.js';
import type { Clock } from '../base/clock.js';
import { HubError } from '../base/errors.js';
import { NO_LOCKS } from '../commands/remote-commands.js';
import { CommandVerifier } from '../commands/verifier.js';
import type { HubConfig } from '../config/schema.js';
import type { Secret } from '../crypto/secret.js';
import type { LinkManager } from '../link/manager.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import type { UplinkService } from '../uplink/service.js';
import { Inbound } from './inbound.js';
import { applyWithPinKey } from './pin-key-open.js';

/** What answers the cloud's commands and syncs once the uplink knows who the hub is. */
export interface RemoteParts {
  verifier: CommandVerifier;
  inbound: Inbound;
}

export interface RemoteWiring {
  config: HubConfig;
  store: Store;
  clock: Clock;
  log: Logger;
  link: LinkManager | undefined;
  mirror: AccessMirror;
  pinKeys: PinKeyRing;
  /** The uplink, once built (it builds these parts itself, on its first identity). */
  uplink: () => UplinkService | undefined;
  /** A sync committed: the locks' PIN keys and offline lists follow. */
  synced: () => void;
}

/**
 * The verifier of signed commands and the handler of `cmd`/`sync` for one uplink identity and OTP
 * key (the uplink calls it again after an enrollment or a delivered OTP key).
 */
export function buildRemote(
  w: RemoteWiring,
  identity: UplinkIdentity,
  key: Secret | undefined,
  results: ResultSink,
): RemoteParts {
  const { config, store, clock, log, link, mirror } = w;
  const verifier = new CommandVerifier({
    hubId: identity.hubId,
    otpKey: key,
    config: config.commands,
    store,
    clock,
    log: log.child({ component: 'commands' }),
    knownLock: (lockId) => link?.pairing.get(lockId) !== undefined,
    // A lockout began: the cloud hears of it at once, besides the periodic health.
    onSecurityEvent: () => w.uplink()?.publishHealthNow(),
  });
  const inbound = new Inbound({
    store,
    clock,
    log: log.child({ component: 'uplink' }),
    target: link ?? NO_LOCKS,
    verifier,
    otpKey: key,
    results,
    maxMessageBytes: config.uplink.maxMessageBytes,
    syncPartsTimeoutMs: config.uplink.syncPartsTimeoutSec * 1000,
    requestSync: (id, reason) =>
      w.uplink()?.requestSync(id, reason, mirror.version()) ??
      Promise.reject(new HubError('sync.request-not-sent', 'no uplink')),
    sync: {
      apply: async (p) => {
        const applied = applyWithPinKey(mirror, w.pinKeys, p, () => loadUplinkFiles(config.uplink, config.dataDir).key);
        w.synced();
        return { version: applied.version };
      },
    },
  });
  return { verifier, inbound };
}
