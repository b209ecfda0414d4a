import { topics } from '../contract/mqtt-topics.js';
import type { Logger } from '../log/logger.js';

/**
 * What the cloud sends, handed on by name: the hub's own `cmd`, `sync` and `cert/response` topics
 * go to every listener, anything else on the connection is dropped. Kept apart from the connection
 * handling so that a failing handler is contained here and never reaches mqtt.js.
 */

/** The topics the cloud sends on, relative to `ks/hubs/{hubId}/`. */
export type InboundTopicName = 'cmd' | 'sync' | 'cert/response';

export type InboundListener = (topic: InboundTopicName, payload: Buffer) => void | Promise<void>;

export class InboundTopics {
  readonly #names: ReadonlyMap<string, InboundTopicName>;
  readonly #listeners = new Set<InboundListener>();
  readonly #log: Logger;

  constructor(hubId: string, log: Logger) {
    this.#names = new Map<string, InboundTopicName>([
      [topics.cmd(hubId), 'cmd'],
      [topics.sync(hubId), 'sync'],
      [topics.certResponse(hubId), 'cert/response'],
    ]);
    this.#log = log;
  }

  /** The full topics to subscribe to. */
  get topics(): string[] {
    return [...this.#names.keys()];
  }

  add(listener: InboundListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  deliver(topic: string, payload: Buffer): void {
    const name = this.#names.get(topic);
    if (!name) {
      this.#log.debug({ topic: topic.slice(0, 200) }, 'uplink: message on an unexpected topic dropped');
      return;
    }
    for (const l of [...this.#listeners]) {
      try {
        const r = l(name, payload);
        if (r && typeof r.then === 'function') {
          r.then(undefined, (e: unknown) => this.#log.error({ err: e, topic: name }, 'uplink: inbound handler failed'));
        }
      } catch (e) {
        this.#log.error({ err: e, topic: name }, 'uplink: inbound handler failed');
      }
    }
  }
}
