import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDevPki, createForeignCa, issueClientCert } from '../../../provisioning/dev-pki.js';
import { CloudOtpKeys } from '../../../sim/cloud/otp-keys.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { SeededRandom } from '../../../src/base/random.js';
import { OTP_KEY_PURPOSE, otpKeyFingerprint, otpKeyGeneration } from '../../../src/commands/otp-key.js';
import type {
  OtpKeyAckPayload,
  OtpKeyDeliveryPayload,
  OtpKeyRequestPayload,
} from '../../../src/contract/mqtt-otp-key.js';
import { conforms } from '../../../src/contract/mqtt-validate.js';
import { Sealer } from '../../../src/crypto/seal.js';
import { readSealed } from '../../../src/crypto/sealed-secrets.js';
import { Secret } from '../../../src/crypto/secret.js';
import { Store } from '../../../src/store/store.js';
import { OtpKeyDelivery } from '../../../src/uplink/otp-key-delivery.js';
import { capturingLogger } from '../../helpers/commands.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * OTP key delivery to an identified hub (a factory-CA certificate, no enrollment): the hub's side
 * (src/uplink/otp-key-delivery.ts) against the reference cloud's (sim/cloud/otp-keys.ts), with the
 * messages handed across by hand. Every refusal leaves the hub as it was.
 */

const A = 'hub-A';
const B = 'hub-B';
let dir: string;
let ca: string;
const stores: Store[] = [];
/** Stores opened by the current test: closed after it (its directory goes then). */
const afterCurrent: Store[] = [];
afterEach(() => {
  for (const s of afterCurrent.splice(0)) s.close();
});

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'iqhub-otpkey-'));
  createDevPki({ dir: join(dir, 'pki'), hubId: A });
  issueClientCert({ dir: join(dir, 'pki'), cn: B, fileName: 'hub-b' });
  ca = readFileSync(join(dir, 'pki', 'ca.crt'), 'utf8');
}, 60_000);
afterAll(() => {
  for (const s of stores.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

const tls = (name: string) => ({
  cert: readFileSync(join(dir, 'pki', `${name}.crt`)),
  key: readFileSync(join(dir, 'pki', `${name}.key`)),
});

function hub(hubId: string, files: string) {
  const store = Store.open(tempDir());
  afterCurrent.push(store);
  const sealer = new Sealer(new Secret(new SeededRandom(`storage-${hubId}`).bytes(32)), new SeededRandom('n'));
  const { log, text } = capturingLogger();
  const published: { topic: string; payload: OtpKeyRequestPayload | OtpKeyAckPayload }[] = [];
  const installed: Secret[] = [];
  let counter = 0;
  const delivery = new OtpKeyDelivery({
    hubId,
    identity: () => tls(files),
    store,
    sealer,
    clock: new VirtualClock(Date.parse('2026-06-01T00:00:00Z')),
    random: new SeededRandom(`hub-${hubId}`),
    log,
    publish: async (topic, payload) => {
      published.push({ topic, payload });
      return { ok: true };
    },
    lastCounter: () => counter,
    installed: (k) => installed.push(k),
  });
  const acks = () => published.filter((p) => p.topic === 'otp-key/ack').map((p) => p.payload as OtpKeyAckPayload);
  const lastAck = () => acks().at(-1) as OtpKeyAckPayload;
  const snapshot = () => ({
    key: readSealed(store, { purpose: OTP_KEY_PURPOSE, id: hubId })?.fingerprint ?? null,
    generation: otpKeyGeneration(store),
    events: (store.db.prepare('SELECT COUNT(*) AS n FROM security_events').get() as { n: number }).n,
    installed: installed.length,
  });
  const send = (p: OtpKeyDeliveryPayload | string) =>
    delivery.handle(Buffer.from(typeof p === 'string' ? p : JSON.stringify(p)));
  return {
    delivery,
    store,
    text,
    installed,
    lastAck,
    acks,
    snapshot,
    send,
    setCounter: (n: number) => {
      counter = n;
    },
  };
}

function cloud(o: { auto?: boolean; trust?: string; now?: number } = {}) {
  const sent: { hubId: string; payload: OtpKeyDeliveryPayload }[] = [];
  const keys = new Map<string, { key: Secret; counter: number }>();
  const c = new CloudOtpKeys({
    random: new SeededRandom('cloud'),
    log: undefined,
    now: () => o.now ?? Date.now(),
    publish: (hubId, payload) => {
      sent.push({ hubId, payload: payload as OtpKeyDeliveryPayload });
      return Promise.resolve();
    },
    installed: (hubId, key, lastCounter) => keys.set(hubId, { key, counter: lastCounter + 1 }),
    signingKey: (hubId) => keys.get(hubId)?.key,
  });
  c.enable({ ca: o.trust ?? ca, auto: o.auto ?? false });
  return { c, sent, keys };
}

/** The hub asks (its request checked against the contract), the cloud delivers, the hub installs and acks. */
async function handOver(h: ReturnType<typeof hub>, cl: ReturnType<typeof cloud>, hubId: string) {
  const req = h.delivery.request();
  expect(conforms('otp-key/request', req)).toBe(true);
  cl.c.request(hubId, req);
  const d = await cl.c.deliver(hubId);
  await h.send(d);
  cl.c.ack(hubId, h.lastAck());
  return d;
}

describe('OTP key delivery to a factory-CA hub', () => {
  it('a hub with no key receives one sealed to it, stores it sealed and hands it to the verifier; the cloud signs with it', async () => {
    const h = hub(A, 'hub');
    const cl = cloud();
    expect(h.delivery.request().current).toBeNull();
    const d = await handOver(h, cl, A);
    expect(conforms('otp-key', d)).toBe(true);
    const ack = h.lastAck();
    expect(conforms('otp-key/ack', ack)).toBe(true);
    expect(ack).toMatchObject({ id: d.deliveryId, ok: true, generation: 1, lastCounter: 0 });
    expect(h.installed).toHaveLength(1);
    const key = cl.keys.get(A)?.key as Secret;
    expect(Buffer.from(h.installed[0]?.reveal() ?? []).equals(Buffer.from(key.reveal()))).toBe(true);
    expect(h.snapshot()).toMatchObject({ key: otpKeyFingerprint(key), generation: 1, installed: 1 });
    expect(h.delivery.request().current).toEqual({ generation: 1, fingerprint: otpKeyFingerprint(key) });
    // Never in clear on the wire, nor in the hub's log.
    const hex = Buffer.from(key.reveal()).toString('hex');
    const b64 = Buffer.from(key.reveal()).toString('base64');
    const b64u = Buffer.from(key.reveal()).toString('base64url');
    for (const s of [JSON.stringify(d), JSON.stringify(h.acks()), h.text()]) {
      expect(s).not.toContain(hex);
      expect(s).not.toContain(b64);
      expect(s).not.toContain(b64u);
    }
  });

  it('rotation installs a higher generation; the ack tells the cloud the last counter the hub accepted', async () => {
    const h = hub(A, 'hub');
    const cl = cloud();
    await handOver(h, cl, A);
    h.setCounter(41);
    await handOver(h, cl, A);
    expect(h.lastAck()).toMatchObject({ ok: true, generation: 2, lastCounter: 41 });
    expect(cl.keys.get(A)?.counter).toBe(42);
    expect(h.installed).toHaveLength(2);
    expect(h.snapshot()).toMatchObject({ generation: 2, installed: 2 });
    const rotated = h.store.db
      .prepare("SELECT detail FROM security_events WHERE kind = 'commands.otp-key-delivered'")
      .all() as { detail: string }[];
    expect(rotated.map((r) => JSON.parse(r.detail).generation)).toEqual([1, 2]);
  });

  it('the auto cloud delivers to a hub that asks without its current key, and not again once it holds it', async () => {
    const h = hub(A, 'hub');
    const cl = cloud({ auto: true });
    cl.c.request(A, h.delivery.request());
    await vi.waitFor(() => expect(cl.sent).toHaveLength(1), { timeout: 5000 });
    await h.send(cl.sent[0]?.payload as OtpKeyDeliveryPayload);
    cl.c.ack(A, h.lastAck());
    const again = h.delivery.request();
    expect(again.current?.generation).toBe(1);
    cl.c.request(A, again);
    // Accepted, naming the key the cloud sent: "not again" is the hub holding it, not a refusal.
    expect(cl.c.requests(A).at(-1)).toMatchObject({ ok: true, current: again.current });
    // The cloud decides within request(); a delivery it started would publish after one seal.
    await new Promise((r) => setTimeout(r, 100));
    expect(cl.sent).toHaveLength(1);
  });
});

describe('refusals change nothing', () => {
  async function installed() {
    const h = hub(A, 'hub');
    const cl = cloud();
    await handOver(h, cl, A);
    return { h, cl, before: h.snapshot() };
  }

  it('an OTP key sealed to another hub is refused (its hub id, or its delivery key)', async () => {
    const { h, cl, before } = await installed();
    const b = hub(B, 'hub-b');
    cl.c.request(B, b.delivery.request());
    // A delivery for hub B, put on hub A's topic.
    const forB = await cl.c.deliver(B);
    await h.send(forB);
    expect(h.lastAck().error?.code).toBe('wrong_hub');
    // Addressed to A but sealed to B's delivery key.
    const toBKey = await cl.c.deliver(A, { recipient: cl.c.recipient(B) as string });
    await h.send(toBKey);
    expect(h.lastAck().error?.code).toBe('not_my_key');
    // The same, with the recipient field rewritten to A's key: HPKE does not open it.
    await h.send({ ...toBKey, recipient: cl.c.recipient(A) as string });
    expect(h.lastAck().error?.code).toBe('does_not_open');
    expect(h.snapshot()).toEqual(before);
  });

  it('a key bound to another hub id in the HPKE info does not open', async () => {
    const { h, cl, before } = await installed();
    const d = await cl.c.deliver(A, { bindHubId: B });
    await h.send(d);
    expect(h.lastAck()).toMatchObject({ id: d.deliveryId, ok: false, error: { code: 'does_not_open' } });
    expect(h.snapshot()).toEqual(before);
  });

  it('a replayed older delivery (rotation downgrade) is refused; the current one again is a no-op', async () => {
    const { h, cl } = await installed();
    const first = h.acks()[0]?.id as string;
    await handOver(h, cl, A);
    const before = h.snapshot();
    expect(before.generation).toBe(2);
    const old = cl.c.sentDelivery(A, first) as OtpKeyDeliveryPayload;
    await h.send(old);
    expect(h.lastAck().error?.code).toBe('stale_generation');
    // A new key under an old generation is a downgrade too.
    await h.send(await cl.c.deliver(A, { generation: 1 }));
    expect(h.lastAck().error?.code).toBe('stale_generation');
    // Another key under the installed generation is not a redelivery.
    await h.send(await cl.c.deliver(A, { generation: 2 }));
    expect(h.lastAck().error?.code).toBe('stale_generation');
    // The old delivery relabelled with a higher generation: bound in the associated data, it does not open.
    await h.send({ ...old, generation: 9 });
    expect(h.lastAck().error?.code).toBe('does_not_open');
    expect(h.snapshot()).toEqual(before);
    // The installed delivery redelivered (QoS 1): answered ok, nothing stored again.
    const current = cl.c.sentDelivery(A, h.acks()[1]?.id as string) as OtpKeyDeliveryPayload;
    await h.send(current);
    expect(h.lastAck()).toMatchObject({ ok: true, generation: 2 });
    expect(h.snapshot()).toEqual(before);
  });

  it('malformed deliveries are refused bad_request with a message that says where', async () => {
    const { h, cl, before } = await installed();
    const good = await cl.c.deliver(A, { send: false });
    const cases: [string, string | OtpKeyDeliveryPayload][] = [
      ['not JSON', '{"v":1,'],
      ['bad UTF-8', '\u00ff'],
      ['no ct', JSON.stringify({ ...good, ct: undefined })],
      ['short ct', { ...good, ct: good.ct.slice(0, 40) }],
      ['ct not base64url', { ...good, ct: `${good.ct.slice(0, 63)}+` }],
      ['enc not 32 bytes', { ...good, enc: `${good.enc.slice(0, 42)}B` }],
      ['unknown field', JSON.stringify({ ...good, key: 'x' })],
      ['generation 0', { ...good, generation: 0 }],
      ['other suite', JSON.stringify({ ...good, suite: 'P256-AES' })],
      ['duplicate member', `{"v":1,"v":1,${JSON.stringify(good).slice(1)}`],
    ];
    for (const [what, p] of cases) {
      await h.send(what === 'bad UTF-8' ? (Buffer.from([0xff, 0xfe]).toString('latin1') as string) : p);
      const ack = h.lastAck();
      expect(ack.ok, what).toBe(false);
      expect(ack.error?.code, what).toBe('bad_request');
      expect(ack.error?.message.length, what).toBeGreaterThan(5);
    }
    // A delivery too broken to read still gets an answer, with its id when it can be read.
    await h.send(JSON.stringify({ ...good, ct: 5 }));
    expect(h.lastAck().id).toBe(good.deliveryId);
    expect(h.snapshot()).toEqual(before);
    expect(conforms('otp-key/ack', h.lastAck())).toBe(true);
  });
});

describe('the request proves the certificate key named the delivery key', () => {
  it('the cloud refuses a request signed by another key, from a foreign CA, or for another hub id', () => {
    const a = hub(A, 'hub');
    const b = hub(B, 'hub-b');
    const cl = cloud();
    const good = a.delivery.request();
    cl.c.request(A, good);
    expect(cl.c.requests(A).at(-1)).toMatchObject({ ok: true });
    // Hub B's signature with hub A's certificate (another key): refused.
    const byB = b.delivery.request();
    cl.c.request(A, { ...good, sig: byB.sig });
    expect(cl.c.requests(A).at(-1)?.reason).toMatch(/signature/);
    // A's request with the delivery key swapped: the signature no longer covers it.
    cl.c.request(A, { ...good, publicKey: byB.publicKey });
    expect(cl.c.requests(A).at(-1)?.reason).toMatch(/signature/);
    // A's genuine request presented as hub B's (another topic): the certificate names A.
    cl.c.request(B, good);
    expect(cl.c.requests(B).at(-1)?.reason).toMatch(/not for hub hub-B/);
    // A cloud that trusts another CA only.
    const foreign = createForeignCa(join(dir, 'foreign'));
    const other = cloud({ trust: readFileSync(foreign.ca.cert, 'utf8') });
    other.c.request(A, good);
    expect(other.c.requests(A).at(-1)?.reason).toMatch(/chain/);
    // A cloud whose clock is before or after the certificate's validity.
    const cert = new X509Certificate(good.cert);
    for (const at of [Date.parse(cert.validFrom) - 60_000, Date.parse(cert.validTo) + 60_000]) {
      const outside = cloud({ now: at });
      outside.c.request(A, good);
      expect(outside.c.requests(A).at(-1)?.reason).toMatch(/not valid now/);
    }
    // Only the accepted request set the key the cloud seals to.
    expect(cl.c.recipient(A)).toBe(good.publicKey);
  });

  it('the delivery key is made once and kept sealed in the store', () => {
    const a = hub(A, 'hub');
    const first = a.delivery.request();
    const again = a.delivery.request();
    expect(again.publicKey).toBe(first.publicKey);
    expect(again.requestId).not.toBe(first.requestId);
    const row = a.store.db
      .prepare("SELECT blob FROM sealed_secrets WHERE purpose = 'uplink.otp-delivery-key'")
      .get() as { blob: Buffer };
    expect(row.blob.length).toBeGreaterThan(64);
  });
});
