import type { Clock } from '../base/clock.js';
import type { HubConfig } from '../config/schema.js';
import { topics } from '../contract/mqtt-topics.js';
import { EventDelivery } from '../events/delivery.js';
import type { Outbox } from '../events/outbox.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import type { UplinkService } from '../uplink/service.js';

/**
 * The cloud's confirmation of events (`events/ack`) as the config asks for it, wired to the
 * uplink: a change of the delivery state publishes health at once, besides the periodic one.
 */
export function newDelivery(o: {
  config: HubConfig['uplink'];
  store: Store;
  outbox: Outbox;
  clock: Clock;
  log: Logger;
  uplink: () => UplinkService | undefined;
}): EventDelivery {
  const delivery = new EventDelivery({
    store: o.store,
    outbox: o.outbox,
    clock: o.clock,
    log: o.log.child({ component: 'uplink' }),
    mode: o.config.eventAck,
    ackTimeoutMs: o.config.eventAckTimeoutSec * 1000,
    faultAfterMs: o.config.eventAckFaultSec * 1000,
    connected: () => o.uplink()?.connected ?? false,
    eventsTopic: () => {
      const hubId = o.uplink()?.identity?.hubId;
      return hubId ? topics.events(hubId) : 'ks/hubs/{hubId}/events';
    },
  });
  delivery.onChange(() => o.uplink()?.publishHealthNow());
  return delivery;
}
