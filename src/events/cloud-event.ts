import type { TopicMap } from '../contract/mqtt.js';
import type { CloudEvent } from '../contract/mqtt-hub-messages.js';
import { ID_PATTERN } from '../contract/mqtt-topics.js';
import type { StoredEvent } from '../link/pairing.js';
import type { MessageTopic } from './outbox.js';

/** Lock clocks are u64; a Date holds ±8.64e15 ms. A time outside that is clamped, not refused. */
const MAX_DATE_MS = 8.64e15;

const LOCK_STATE_TOPIC = new RegExp(`^locks/(${ID_PATTERN.slice(1, -1)})/state$`);

/** The contract's key for a relative outbound topic, or undefined when the contract has no such topic. */
export function contractTopic(topic: string): keyof TopicMap | undefined {
  if (LOCK_STATE_TOPIC.test(topic)) return 'locks/{lockId}/state';
  const outbound: readonly string[] = [
    'status',
    'cmd/result',
    'sync/ack',
    'health',
    'firmware/request',
    'firmware/progress',
  ] satisfies MessageTopic[];
  return outbound.includes(topic) ? (topic as MessageTopic) : undefined;
}

function iso(ms: number): string {
  const clamped = Number.isFinite(ms) ? Math.min(Math.max(ms, 0), MAX_DATE_MS) : 0;
  return new Date(clamped).toISOString();
}

/** The contract's view of a stored lock event. */
export function toCloudEvent(s: StoredEvent): CloudEvent {
  const e = s.event;
  const out: CloudEvent = {
    id: `${s.lockId}/${s.epoch}/${e.seq}`,
    lockId: s.lockId,
    seq: e.seq,
    epoch: s.epoch,
    type: e.type,
    at: iso(e.at),
    receivedAt: iso(s.receivedAt),
  };
  switch (e.type) {
    case 'opened':
      out.by = e.by;
      out.credentialId = e.credentialId;
      break;
    case 'denied':
      out.reason = e.reason;
      out.credentialId = e.credentialId;
      break;
    case 'door':
      out.open = e.open;
      break;
    case 'battery':
      out.percent = e.percent;
      break;
    case 'tamper':
      break;
  }
  return out;
}
