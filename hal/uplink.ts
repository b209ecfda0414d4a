/**
 * The uplink port: how the services answer the cloud without knowing MQTT. The command and sync
 * services (src/commands, src/access) write their answers through a ResultSink; the MQTT adapter
 * (src/uplink) implements it with the outbox and its publisher. Like the Bearer port, it holds
 * types only, so a service depends on this file and never on the adapter behind it.
 */

/** The topics the cloud sends on (relative to ks/hubs/{hubId}/). */
export type InboundTopic = 'cmd' | 'sync';
/** The topics their answers go on. */
export type ResultTopic = 'cmd/result' | 'sync/ack';

/**
 * An answer handed to the broker before its durable record was written (ResultSink.publishAhead).
 * Opaque to the services: they only pass it back with the record (enqueueMessage).
 */
export interface AheadTicket {
  readonly aheadOf: 'record';
}

export interface ResultSink {
  /**
   * Durable: the payload goes into the outbox and is published until the broker acknowledges it.
   * Called inside the store transaction that records the result in the inbox, so both commit or
   * neither does (the outbox must write to the same Store, synchronously). With `ahead`, the
   * payload was already published by `publishAhead`: the row only waits for that PUBACK. `text`:
   * the payload's JSON, checked against the contract by the caller already (stored as it is,
   * neither checked nor serialised again).
   */
  enqueueMessage(topic: ResultTopic, payload: object, ahead?: AheadTicket, text?: string): void;
  /** Best effort, nothing stored: for answers to messages that must change nothing (invalid or refused ones). */
  publishNow(topic: ResultTopic, payload: object): void;
  /**
   * Publish an answer (its JSON text) now, before it is queued, when nothing queued must go
   * first; undefined when it has to wait its turn in the outbox. Optional: without it every
   * answer is recorded first and published after.
   */
  publishAhead?(topic: ResultTopic, text: string): AheadTicket | undefined;
}

/** What the uplink adapter hands an inbound message to: the services' router (src/app/inbound.ts). */
export interface InboundHandler {
  /**
   * Handle one message; resolves once it is answered, never rejects. `recorded` is called as soon
   * as the message is durably taken in — claimed, or answered when it is refused — and at the
   * latest when the promise resolves: the uplink acknowledges the message to the broker then.
   */
  handle(topic: InboundTopic, payload: Buffer, recorded?: () => void): Promise<void>;
  /** Answer what the last stop interrupted; resolves with the number answered. */
  recover(): Promise<number>;
  /** Resolves when every message being acted on has been answered (for an orderly stop). */
  idle(): Promise<void>;
  /** Take nothing more in (a stop): messages not yet taken in stay unacknowledged at the broker. */
  close(): void;
}

/** Lock firmware over MQTT (src/firmware/fetch.ts): the topics the cloud sends and the hub answers on. */
export type FirmwareInboundTopic = 'firmware/announce' | 'firmware/chunk';
export type FirmwareOutboundTopic = 'firmware/request' | 'firmware/progress';

/** What the uplink adapter hands firmware messages to, and how that service publishes (through the outbox). */
export interface FirmwareUplink {
  /** Handles one message (validated inside); never throws. */
  handle(topic: FirmwareInboundTopic, payload: Buffer): void;
  /** Called once the uplink knows the hub's identity: from then on, `send` publishes. */
  attach(send: (topic: FirmwareOutboundTopic, payload: object) => void): void;
}
