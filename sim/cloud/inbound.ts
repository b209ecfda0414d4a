import type { TopicMap } from '../../src/contract/mqtt.js';
import { ID_PATTERN } from '../../src/contract/mqtt-topics.js';
import { conforms, parseInbound } from '../../src/contract/mqtt-validate.js';

/**
 * What arrives at the reference cloud, read and checked against the contract before anything is
 * recorded: which topic it is (a hub's, an enrollment request, or the cloud's own echo) and whether
 * its payload is JSON that matches the topic's schema. A backend must not trust a hub's bytes any
 * more than the hub trusts the cloud's, so every refusal carries the reason it is counted under.
 */

/** What the cloud hears on a hub's topics: the hub's own topics of the contract. */
export type HubTopic =
  | 'status'
  | 'cmd/result'
  | 'sync/ack'
  | 'events'
  | 'health'
  | 'cert/request'
  | 'firmware/request'
  | 'firmware/progress'
  | 'locks/{lockId}/state'
  | 'otp-key/request'
  | 'otp-key/ack'
  | 'sync/request';

export type InboundTopic =
  | { kind: 'provisioning'; claimId: string }
  /** Our own commands, syncs and event acks, echoed back over MQTT 3.1.1 (which has no "no local"). */
  | { kind: 'echo' }
  /** Not under `ks/hubs/{hubId}/`: refused before it counts as received from a hub. */
  | { kind: 'foreign'; reason: string }
  | { kind: 'unknown'; reason: string }
  | { kind: 'hub'; hubId: string; topic: HubTopic; lockId: string | undefined };

const PROVISIONING_TOPIC = /^ks\/provisioning\/([^/]+)\/request$/;
const HUB_TOPIC = /^ks\/hubs\/([^/]+)\/(.+)$/;
const LOCK_STATE = /^locks\/([^/]+)\/state$/;
const HUB_TOPICS = [
  'status',
  'cmd/result',
  'sync/ack',
  'events',
  'health',
  'cert/request',
  'firmware/request',
  'firmware/progress',
  'otp-key/request',
  'otp-key/ack',
  'sync/request',
] as const;
const hubIdPattern = new RegExp(ID_PATTERN);

export function isHubId(id: string): boolean {
  return hubIdPattern.test(id);
}

export function classifyTopic(topic: string): InboundTopic {
  const claimId = PROVISIONING_TOPIC.exec(topic)?.[1];
  if (claimId !== undefined) return { kind: 'provisioning', claimId };
  const m = HUB_TOPIC.exec(topic);
  const hubId = m?.[1];
  const rest = m?.[2];
  if (hubId === undefined || rest === undefined || !isHubId(hubId)) {
    return { kind: 'foreign', reason: 'not a hub topic (ks/hubs/{hubId}/...)' };
  }
  if (
    rest === 'cmd' ||
    rest === 'sync' ||
    rest === 'cert/response' ||
    rest === 'events/ack' ||
    rest === 'firmware/announce' ||
    rest === 'firmware/chunk' ||
    rest === 'otp-key'
  )
    return { kind: 'echo' };
  const lock = LOCK_STATE.exec(rest);
  if (lock) return { kind: 'hub', hubId, topic: 'locks/{lockId}/state', lockId: lock[1] };
  const known = HUB_TOPICS.find((k) => k === rest);
  if (!known) return { kind: 'unknown', reason: 'not a topic of the contract' };
  return { kind: 'hub', hubId, topic: known, lockId: undefined };
}

/** The payload as the contract's type for `topic`, or why it is not one. */
export function readPayload<K extends keyof TopicMap>(
  topic: K,
  payload: Buffer,
): { ok: true; value: TopicMap[K]['payload'] } | { ok: false; reason: string } {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'payload is not JSON' };
  }
  if (!conforms(topic, value)) {
    const why = parseInbound(topic, payload);
    return { ok: false, reason: why.ok ? 'does not match the contract' : why.error.message };
  }
  return { ok: true, value: value as TopicMap[K]['payload'] };
}
