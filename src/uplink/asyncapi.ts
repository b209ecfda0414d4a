import { CONTRACT_VERSION, schemas, type TopicMap } from './contract.js';

const channels: { [T in keyof TopicMap]: { dir: 'send' | 'receive'; retained: boolean; summary: string } } = {
  status: {
    dir: 'send',
    retained: true,
    summary: 'Online with version and start time; offline as the last will and on a clean stop.',
  },
  cmd: { dir: 'receive', retained: false, summary: 'Commands from the cloud, idempotent by id.' },
  'cmd/result': { dir: 'send', retained: false, summary: 'The result of each command, by id.' },
  sync: { dir: 'receive', retained: false, summary: 'Access-rights snapshots and deltas.' },
  'sync/ack': { dir: 'send', retained: false, summary: 'The acknowledgement of each sync, by id.' },
  events: {
    dir: 'send',
    retained: false,
    summary: 'Batches of lock events; each has a stable id, the lock id and its sequence number.',
  },
  'locks/{lockId}/state': { dir: 'send', retained: true, summary: "A lock's pairing and reported state." },
  health: {
    dir: 'send',
    retained: false,
    summary: 'Periodic: uptime, outbox depth, radios, locks, certificate expiry.',
  },
};

const key = (topic: string) => topic.replace(/[/{}]/g, (c) => (c === '/' ? '_' : ''));

/**
 * The AsyncAPI 3 description of the contract, built from the same schemas the code validates
 * with; docs/asyncapi.yaml is this object, and a test keeps the two equal.
 */
export function buildAsyncApi(): Record<string, unknown> {
  const ch: Record<string, unknown> = {};
  const ops: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  for (const [topic, info] of Object.entries(channels)) {
    const k = key(topic);
    messages[k] = { name: k, contentType: 'application/json', payload: schemas[topic as keyof TopicMap] };
    ch[k] = {
      address: `ks/hubs/{hubId}/${topic}`,
      summary: info.summary,
      messages: { [k]: { $ref: `#/components/messages/${k}` } },
      parameters: {
        hubId: { description: "The CN of the hub's client certificate." },
        ...(topic.includes('{lockId}') ? { lockId: { description: 'The lock (device) id.' } } : {}),
      },
      bindings: { mqtt: { bindingVersion: '0.2.0' } },
    };
    ops[`${info.dir === 'send' ? 'publish' : 'receive'}_${k}`] = {
      action: info.dir,
      channel: { $ref: `#/channels/${k}` },
      bindings: { mqtt: { qos: 1, retain: info.retained, bindingVersion: '0.2.0' } },
    };
  }
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'iq-hub MQTT contract',
      version: String(CONTRACT_VERSION),
      description:
        'Between a smart-lock hub and its cloud, over MQTT with mutual TLS. Operations are seen from the hub. See docs/mqtt-api.md.',
    },
    defaultContentType: 'application/json',
    channels: ch,
    operations: ops,
    components: { messages },
  };
}
