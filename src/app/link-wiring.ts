import type { Bearer } from '../../hal/bearer.js';
import type { AccessDecider } from '../access/decide.js';
import type { AccessMirror } from '../access/mirror.js';
import { OfflineLists } from '../access/offline.js';
import { PinKeyDelivery } from '../access/pin-key-delivery.js';
import type { PinKeyRing } from '../access/pin-keys.js';
import type { Clock } from '../base/clock.js';
import type { Random } from '../base/random.js';
import type { HubConfig } from '../config/schema.js';
import type { Sealer } from '../crypto/seal.js';
import { LinkManager, type LinkOptions } from '../link/manager.js';
import { PairingStore } from '../link/pairing.js';
import type { Logger } from '../log/logger.js';
import type { MetricsHooks } from '../metrics/source.js';
import type { Store } from '../store/store.js';

export interface LinkWiringDeps {
  config: HubConfig;
  store: Store;
  sealer: Sealer;
  bearer: Bearer;
  mirror: AccessMirror;
  access: AccessDecider;
  clock: Clock;
  random: Random;
  log: Logger;
  linkOptions?: Partial<LinkOptions>;
  /** The site PIN keys to deliver to every bound lock. */
  pinKeys: PinKeyRing;
  /** Observations for the metrics endpoint (set while it runs). */
  metrics?: MetricsHooks;
  /** Where a lock's new events go, inside the transaction that stores them (the outbox). */
  eventSink?: ConstructorParameters<typeof LinkManager>[0]['eventSink'];
}

/**
 * The locks' side of the hub, wired: the LinkManager over the radios, answering access requests
 * from the decider, and the offline lists that follow the mirror to every bound lock — checked
 * each time a lock (re)connects, so after a restart a lock gets its list only if it differs.
 */
export function buildLink(d: LinkWiringDeps): { link: LinkManager; offline: OfflineLists; pinKeys: PinKeyDelivery } {
  const access = d.config.access;
  const link = new LinkManager({
    pairing: new PairingStore(d.store),
    bearer: d.bearer,
    sealer: d.sealer,
    clock: d.clock,
    random: d.random,
    log: d.log.child({ component: 'link' }),
    options: d.linkOptions ?? {},
    accessHandler: (lockId, credential) => {
      // Timed only while the metrics endpoint runs: otherwise one field read.
      const observe = d.metrics?.decision;
      const t0 = observe ? performance.now() : 0;
      const decision = d.access.verifyAccess(lockId, credential);
      if (observe) observe((performance.now() - t0) / 1000, decision.grant);
      return { grant: decision.grant, reason: decision.reason, credentialId: decision.credentialId };
    },
    ...(d.eventSink ? { eventSink: d.eventSink } : {}),
  });
  const offline = new OfflineLists({
    mirror: d.mirror,
    clock: d.clock,
    timeZone: access.timeZone,
    log: d.log.child({ component: 'offline-lists' }),
    options: { horizonDays: access.offlineHorizonDays, defaultCapacity: access.offlineCapacity },
    link: {
      boundLocks: () =>
        link
          .list()
          .filter((l) => l.state === 'bound')
          .map((l) => l.lockId),
      setOffline: (lockId, change) => link.setOffline(lockId, change),
    },
  });
  const boundLocks = () =>
    link
      .list()
      .filter((l) => l.state === 'bound')
      .map((l) => l.lockId);
  const pinKeys = new PinKeyDelivery({
    ring: d.pinKeys,
    clock: d.clock,
    log: d.log.child({ component: 'pin-keys' }),
    link: { boundLocks, setPinKey: (lockId, install) => link.setPinKey(lockId, install) },
  });
  const connected = new Set<string>();
  link.onLockChange((change) => {
    const { lockId, summary } = change;
    if (!summary) {
      offline.lockGone(lockId);
      pinKeys.lockGone(lockId);
    }
    if (!summary?.connected || summary.state !== 'bound') {
      connected.delete(lockId);
    } else if (!connected.has(lockId)) {
      connected.add(lockId);
      // The key is asked for first: the offline list's PIN verifiers are computed under it.
      pinKeys.lockReady(lockId);
      offline.lockReady(lockId);
    }
  });
  return { link, offline, pinKeys };
}
