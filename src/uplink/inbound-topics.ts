import { topics } from '../contract/mqtt-topics.js';
import type { Logger } from '../log/logger.js';

/**
 * What the cloud sends, handed on by name: the hub's own `cmd`, `sync`, `cert/response`, `events/ack` and `otp-key` topics
 * go to every listener, anything else on the connection is dropped. Kept apart from the connection
 * handling so that a failing handler is contained here and never reaches mqtt.js.
 */

/** The topics the cloud sends on, relative to `ks/hubs/{hubId}/`. */
export type InboundTopicName =
  | 'cmd'
  | 'sync'
  | 'cert/response'
  | 'events/ack'
  | 'firmware/announce'
  | 'firmware/chunk'
  | 'otp-key';

/**
 * Resolves once the message is recorded (or answered): its PUBACK waits for that. A listener that
 * returns nothing is done with it at once.
 */
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
      [topics.eventsAck(hubId), 'events/ack'],
      [topics.firmwareAnnounce(hubId), 'firmware/announce'],
      [topics.firmwareChunk(hubId), 'firmware/chunk'],
      [topics.otpKey(hubId), 'otp-key'],
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

  /**
   * Hand a message to the listeners; resolves when all of them have recorded it. A message on one
   * of the hub's topics that no listener takes (the uplink is stopping) never resolves: it is not
   * acknowledged, and the broker delivers it again. A topic not the hub's resolves at once.
   */
  deliver(topic: string, payload: Buffer): Promise<void> {
    const name = this.#names.get(topic);
    if (!name) {
      this.#log.debug({ topic: topic.slice(0, 200) }, 'uplink: message on an unexpected topic dropped');
      return Promise.resolve();
    }
    if (this.#listeners.size === 0) return new Promise<void>(() => {});
    const recorded: Promise<void>[] = [];
    for (const l of [...this.#listeners]) {
      try {
        const r = l(name, payload);
        if (r && typeof r.then === 'function') {
          recorded.push(
            r.then(undefined, (e: unknown) =>
              this.#log.error({ err: e, topic: name }, 'uplink: inbound handler failed'),
            ),
          );
        }
      } catch (e) {
        this.#log.error({ err: e, topic: name }, 'uplink: inbound handler failed');
      }
    }
    return Promise.all(recorded).then(() => undefined);
  }
}
