import { schemas, type TopicMap } from './mqtt.js';
import { CONTRACT_VERSION } from './mqtt-topics.js';

const channels: { [T in keyof TopicMap]: { dir: 'send' | 'receive'; retained: boolean; summary: string } } = {
  status: {
    dir: 'send',
    retained: true,
    summary: 'Online with version and start time; offline as the last will and on a clean stop.',
  },
  cmd: { dir: 'receive', retained: false, summary: 'Commands from the cloud, idempotent by id.' },
  'cmd/result': { dir: 'send', retained: false, summary: 'The result of each command, by id.' },
  sync: {
    dir: 'receive',
    retained: false,
    summary:
      'Access-rights snapshots and deltas (data: docs/access.md); either may carry data.pinKey {version, key, overlapUntil?}, the site PIN key sealed to the hub (docs/mqtt-api.md, "PIN key rotation").',
  },
  'sync/ack': { dir: 'send', retained: false, summary: 'The acknowledgement of each sync, by id.' },
  events: {
    dir: 'send',
    retained: false,
    summary: 'Batches of lock events; each has a stable id, the lock id and its sequence number.',
  },
  'events/ack': {
    dir: 'receive',
    retained: false,
    summary:
      'The ids of events the cloud has stored; only these leave the outbox. Unacknowledged events are sent again after uplink.eventAckTimeoutSec.',
  },
  'locks/{lockId}/state': { dir: 'send', retained: true, summary: "A lock's pairing and reported state." },
  health: {
    dir: 'send',
    retained: false,
    summary: "Periodic: uptime, outbox depth, radios, locks, certificate expiry, the locks' site PIN key version.",
  },
  'cert/request': {
    dir: 'send',
    retained: false,
    summary: "Rotation: a CSR for the hub's new key (CN = hub id), sent at a share of the certificate's lifetime.",
  },
  'cert/response': {
    dir: 'receive',
    retained: false,
    summary: 'The renewed certificate for a cert/request (by requestId), or why not.',
  },
  'provisioning/request': {
    dir: 'send',
    retained: false,
    summary: 'Enrollment by claim: the hub id and its CSR, sent with the shared claim certificate.',
  },
  'provisioning/response': {
    dir: 'receive',
    retained: false,
    summary: "The hub's own certificate, the CA and its secrets encrypted to its key (by requestId), or why not.",
  },
  'firmware/announce': {
    dir: 'receive',
    retained: false,
    summary: 'A signed lock firmware image (model, version, file SHA-256 and size) and the locks it is for.',
  },
  'firmware/request': {
    dir: 'send',
    retained: false,
    summary: 'The hub fetches an announced image: the next bytes it wants (each chunk fits uplink.maxMessageBytes).',
  },
  'firmware/chunk': {
    dir: 'receive',
    retained: false,
    summary: 'The bytes of an announced image a firmware/request asked for (base64), or why not.',
  },
  'firmware/progress': {
    dir: 'send',
    retained: false,
    summary: "An image's state on one lock: fetching, refused (no lock reached), queued, running, installed, failed.",
  },
  'otp-key/request': {
    dir: 'send',
    retained: false,
    summary:
      "OTP key delivery: the hub's X25519 public key, signed with its TLS certificate's key (certificate included), and the key generation it holds.",
  },
  'otp-key': {
    dir: 'receive',
    retained: false,
    summary:
      "The OTP key sealed to the hub's X25519 key with HPKE (RFC 9180), bound to the hub id, with a strictly increasing generation.",
  },
  'otp-key/ack': {
    dir: 'send',
    retained: false,
    summary:
      'The delivery installed (generation, fingerprint, last accepted command counter) or refused and why (by deliveryId).',
  },
  'sync/request': {
    dir: 'send',
    retained: false,
    summary:
      "The hub asks for a sync from its mirror's version (a syncNow command, or a delta that did not fit); the cloud answers on sync.",
  },
};

/** The MQTT address of a contract topic: under the hub's base, or the claim's for enrollment. */
const address = (topic: string) =>
  topic.startsWith('provisioning/')
    ? `ks/provisioning/{claimId}/${topic.slice('provisioning/'.length)}`
    : `ks/hubs/{hubId}/${topic}`;

const key = (topic: string) => topic.replace(/[/{}]/g, (c) => (c === '/' ? '_' : ''));

/**
 * A schema as AsyncAPI's Schema Object spells it. The code validates with Ajv, whose
 * `discriminator` is OpenAPI's object (`{propertyName: 'op'}`); AsyncAPI's is the property name
 * alone (`discriminator: op`), and the official parser refuses the object.
 */
function asyncApiSchema(schema: unknown, seen = new Map<object, unknown>()): unknown {
  if (schema === null || typeof schema !== 'object') return schema;
  // A piece shared between schemas stays one object (one YAML anchor), as in the code.
  const known = seen.get(schema);
  if (known !== undefined) return known;
  if (Array.isArray(schema)) {
    const arr = schema.map((x) => asyncApiSchema(x, seen));
    seen.set(schema, arr);
    return arr;
  }
  const out: Record<string, unknown> = {};
  seen.set(schema, out);
  for (const [k, v] of Object.entries(schema)) {
    out[k] =
      k === 'discriminator' && v !== null && typeof v === 'object'
        ? (v as { propertyName: string }).propertyName
        : asyncApiSchema(v, seen);
  }
  return out;
}

const shared = new Map<object, unknown>();

/** docs/asyncapi.yaml as text: a header line saying where it comes from, then the document. */
export function asyncApiYaml(stringify: (v: unknown) => string): string {
  return `# Generated from the schemas of src/contract/mqtt*.ts (the topic map in mqtt.ts) by buildAsyncApi() (src/contract/asyncapi.ts); a test keeps it equal. Regenerate: npm run asyncapi.\n${stringify(buildAsyncApi())}`;
}

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
    messages[k] = {
      name: k,
      contentType: 'application/json',
      payload: asyncApiSchema(schemas[topic as keyof TopicMap], shared),
    };
    ch[k] = {
      address: address(topic),
      summary: info.summary,
      messages: { [k]: { $ref: `#/components/messages/${k}` } },
      parameters: topic.startsWith('provisioning/')
        ? { claimId: { description: 'The CN of the shared claim certificate.' } }
        : {
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
