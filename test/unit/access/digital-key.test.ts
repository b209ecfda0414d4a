import { sign } from 'node:crypto';
import canonicalize from 'canonicalize';
import { beforeAll, describe, expect, it } from 'vitest';
import { type EncryptedKey, KEY_DELIVERY_INFO } from '../../../sim/phone/delivery.js';
import { CloudKeyIssuer, type KeySpec } from '../../../sim/phone/issuer.js';
import { SimPhone } from '../../../sim/phone/phone.js';
import {
  checkSignedKey,
  doorProofMessage,
  ed25519PrivateKey,
  ed25519PublicBytes,
  ed25519PublicKey,
  fromBase64url,
  type KeyBody,
  keyBodySignatureMessage,
  newChallenge,
  type Presentation,
  type PresentationCheck,
  parseKeyBody,
  type SignedKey,
  toBase64url,
  verifyPresentation,
} from '../../../src/access/digital-key.js';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';

const FROM = Date.UTC(2026, 0, 1);
const UNTIL = Date.UTC(2027, 0, 1);
const NOW = Date.UTC(2026, 5, 15, 12);
const SPEC: KeySpec = { keyId: 'K-1', userId: 'U-1', lockIds: ['L-1', 'L-2'], validFrom: FROM, validUntil: UNTIL };

let cloud: CloudKeyIssuer;
let phone: SimPhone;
let otherPhone: SimPhone;
const random = new SeededRandom('digital-key tests');

beforeAll(async () => {
  cloud = new CloudKeyIssuer(new SeededRandom('cloud'));
  phone = await SimPhone.create(new SeededRandom('phone A'), { cloudPublicKey: cloud.publicKey });
  otherPhone = await SimPhone.create(new SeededRandom('phone B'), { cloudPublicKey: cloud.publicKey });
  await phone.receiveKey(await cloud.issueTo(SPEC, phone.keys));
});

/** The hub's check at lock `lockId` with everything valid unless overridden. */
function check(presentation: unknown, challenge: Uint8Array, over: Partial<PresentationCheck> = {}) {
  return verifyPresentation({
    presentation,
    challenge,
    lockId: 'L-1',
    at: NOW,
    cloudPublicKey: cloud.publicKey,
    revoked: () => false,
    lockAllowed: () => true,
    ...over,
  });
}

/** A presentation of `signedKey` by `by` for a fresh challenge at L-1, and that challenge. */
function atDoor(signedKey: SignedKey, by: SimPhone = phone, lockId = 'L-1') {
  const challenge = newChallenge(random);
  return { challenge, presentation: by.presentKey(signedKey, challenge, lockId) };
}

const issued = (spec: Partial<KeySpec> = {}) => cloud.issue({ ...SPEC, ...spec }, phone.keys);

/** The body of a signed key changed by `edit`, in canonical form, with the original signature. */
function altered(signedKey: SignedKey, edit: (b: KeyBody) => void): SignedKey {
  const body = JSON.parse(signedKey.body) as KeyBody;
  edit(body);
  return { body: canonicalize(body) ?? '', sig: signedKey.sig };
}

describe('digital key delivery (HPKE to the phone)', () => {
  it('round trip: the cloud seals a key to the phone, the phone opens it and opens a door with it', async () => {
    const p = await SimPhone.create(new SeededRandom('round trip'), { cloudPublicKey: cloud.publicKey });
    const delivery = await cloud.issueTo({ ...SPEC, keyId: 'K-rt' }, p.keys);
    expect(delivery).toMatchObject({ v: 1, keyId: 'K-rt' });
    expect(JSON.stringify(delivery)).not.toContain('U-1'); // the body travels encrypted
    const body = await p.receiveKey(delivery);
    expect(body).toMatchObject({ keyId: 'K-rt', userId: 'U-1', lockIds: ['L-1', 'L-2'] });
    expect(p.keyIds()).toEqual(['K-rt']);
    const challenge = newChallenge(random);
    expect(check(p.present(challenge, 'L-1'), challenge)).toEqual({ ok: true, keyId: 'K-rt', userId: 'U-1' });
  });

  it('follows RFC 9180 base mode: an independent HPKE open with the same suite, info and aad reads it', async () => {
    const delivery = await cloud.issueTo(SPEC, phone.keys);
    // An independent HPKE implementation (the @hpke library, a devDependency) with the same suite.
    const [core, chacha] = await Promise.all([import('@hpke/core'), import('@hpke/chacha20poly1305')]);
    const suite = new core.CipherSuite({
      kem: new core.DhkemX25519HkdfSha256(),
      kdf: new core.HkdfSha256(),
      aead: new chacha.Chacha20Poly1305(),
    });
    const kem = suite.kem;
    // Re-derive phone A's X25519 key pair the way SimPhone.create does (second 32 bytes of its stream).
    const r = new SeededRandom('phone A');
    r.bytes(32);
    const pair = await kem.deriveKeyPair(r.bytes(32));
    const plain = await suite.open(
      {
        recipientKey: pair,
        enc: fromBase64url(delivery.enc, 32) ?? new Uint8Array(0),
        info: new TextEncoder().encode(KEY_DELIVERY_INFO),
      },
      Buffer.from(delivery.ct, 'base64url'),
      new TextEncoder().encode('K-1'),
    );
    const signed = JSON.parse(new TextDecoder().decode(plain)) as SignedKey;
    expect(parseKeyBody(signed.body)?.keyId).toBe('K-1');
    expect(checkSignedKey(signed, cloud.publicKey).ok).toBe(true);
  });

  it('a key encrypted to another phone cannot be opened', async () => {
    const delivery = await cloud.issueTo({ ...SPEC, keyId: 'K-for-A' }, phone.keys);
    const err = await otherPhone.receiveKey(delivery).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubError);
    expect((err as HubError).code).toBe('phone.key-open');
    expect(otherPhone.keyIds()).toEqual([]);
  });

  it('an envelope relabelled with another key id, or altered by one bit, does not open', async () => {
    const delivery = await cloud.issueTo({ ...SPEC, keyId: 'K-2' }, phone.keys);
    const relabelled: EncryptedKey = { ...delivery, keyId: 'K-3' };
    await expect(phone.receiveKey(relabelled)).rejects.toMatchObject({ code: 'phone.key-open' });
    const ct = Buffer.from(delivery.ct, 'base64url');
    ct[5] = (ct[5] ?? 0) ^ 1;
    await expect(phone.receiveKey({ ...delivery, ct: ct.toString('base64url') })).rejects.toMatchObject({
      code: 'phone.key-open',
    });
    await expect(phone.receiveKey({ ...delivery, enc: 'short' })).rejects.toMatchObject({
      code: 'phone.key-malformed',
    });
  });

  it('a key whose body names another phone is refused by the phone it was sealed to', async () => {
    const mixed = { phonePublicKey: otherPhone.keys.phonePublicKey, phoneEncryptionKey: phone.keys.phoneEncryptionKey };
    const delivery = await cloud.issueTo({ ...SPEC, keyId: 'K-mixed' }, mixed);
    await expect(phone.receiveKey(delivery)).rejects.toMatchObject({ code: 'phone.key-not-mine' });
  });

  it('a phone that knows the cloud key refuses a key signed by someone else', async () => {
    const forger = new CloudKeyIssuer(new SeededRandom('forger'));
    const delivery = await forger.issueTo({ ...SPEC, keyId: 'K-forged' }, phone.keys);
    await expect(phone.receiveKey(delivery)).rejects.toMatchObject({ code: 'phone.key-signature' });
  });
});

describe('verifyPresentation: the hub at the door', () => {
  it('grants a valid key presented by its phone, answering only key id and user id', () => {
    const challenge = newChallenge(random);
    const verdict = check(phone.present(challenge, 'L-1'), challenge);
    expect(verdict).toEqual({ ok: true, keyId: 'K-1', userId: 'U-1' });
    expect(Object.keys(verdict).sort()).toEqual(['keyId', 'ok', 'userId']);
  });

  it('a forged cloud signature is denied bad-signature', () => {
    const forger = new CloudKeyIssuer(new SeededRandom('forger'));
    const { challenge, presentation } = atDoor(forger.issue(SPEC, phone.keys));
    expect(check(presentation, challenge)).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('an altered body is denied bad-signature: lockIds widened, validity extended, user changed, a flipped signature bit', () => {
    const genuine = issued({ lockIds: ['L-2'] });
    const edits: ((b: KeyBody) => void)[] = [
      (b) => {
        b.lockIds = ['L-1', 'L-2'];
      },
      (b) => {
        b.validUntil = new Date(Date.UTC(2030, 0, 1)).toISOString();
      },
      (b) => {
        b.userId = 'U-admin';
      },
    ];
    for (const edit of edits) {
      const { challenge, presentation } = atDoor(altered(genuine, edit));
      expect(check(presentation, challenge)).toEqual({ ok: false, reason: 'bad-signature' });
    }
    const sig = Buffer.from(genuine.sig, 'base64url');
    sig[10] = (sig[10] ?? 0) ^ 0x40;
    const { challenge, presentation } = atDoor({ body: genuine.body, sig: sig.toString('base64url') });
    expect(check(presentation, challenge)).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('an expired key is denied expired (validUntil is exclusive)', () => {
    const { challenge, presentation } = atDoor(issued());
    expect(check(presentation, challenge, { at: UNTIL })).toEqual({ ok: false, reason: 'expired' });
    expect(check(presentation, challenge, { at: UNTIL - 1 }).ok).toBe(true);
  });

  it('a key not yet valid is denied not-yet-valid (validFrom is inclusive)', () => {
    const { challenge, presentation } = atDoor(issued());
    expect(check(presentation, challenge, { at: FROM - 1 })).toEqual({ ok: false, reason: 'not-yet-valid' });
    expect(check(presentation, challenge, { at: FROM }).ok).toBe(true);
  });

  it('a key for another lock is denied wrong-lock', () => {
    const { challenge, presentation } = atDoor(issued({ lockIds: ['L-2'] }));
    expect(check(presentation, challenge)).toEqual({ ok: false, reason: 'wrong-lock' });
    // The mirror's say cannot widen a key's own list.
    expect(check(presentation, challenge, { lockAllowed: () => true })).toEqual({ ok: false, reason: 'wrong-lock' });
  });

  it('a group key opens the locks the mirror puts in its groups, and no others', () => {
    const { challenge, presentation } = atDoor(issued({ lockIds: undefined, groupIds: ['G-staff'] }));
    const seen: [string[] | undefined, string][] = [];
    const lockAllowed = (b: KeyBody, lockId: string) => {
      seen.push([b.groupIds, lockId]);
      return lockId === 'L-1';
    };
    expect(check(presentation, challenge, { lockAllowed })).toEqual({ ok: true, keyId: 'K-1', userId: 'U-1' });
    expect(seen).toEqual([[['G-staff'], 'L-1']]);
    const other = atDoor(issued({ lockIds: undefined, groupIds: ['G-staff'] }), phone, 'L-9');
    expect(check(other.presentation, other.challenge, { lockId: 'L-9', lockAllowed })).toEqual({
      ok: false,
      reason: 'wrong-lock',
    });
  });

  it('a revoked key is denied revoked', () => {
    const { challenge, presentation } = atDoor(issued());
    const asked: string[] = [];
    const revoked = (keyId: string) => {
      asked.push(keyId);
      return keyId === 'K-1';
    };
    expect(check(presentation, challenge, { revoked })).toEqual({ ok: false, reason: 'revoked' });
    expect(asked).toEqual(['K-1']);
  });

  it('a replayed proof (made for another challenge) is denied bad-proof', () => {
    const first = newChallenge(random);
    const presentation = phone.present(first, 'L-1');
    expect(check(presentation, first).ok).toBe(true);
    expect(check(presentation, newChallenge(random))).toEqual({ ok: false, reason: 'bad-proof' });
  });

  it('a proof made at another lock is denied bad-proof, even for a key that opens both', () => {
    const challenge = newChallenge(random);
    const atL2 = phone.present(challenge, 'L-2');
    expect(check(atL2, challenge, { lockId: 'L-2' }).ok).toBe(true);
    expect(check(atL2, challenge, { lockId: 'L-1' })).toEqual({ ok: false, reason: 'bad-proof' });
  });

  it("a proof by another phone (holding a copy of this phone's signed key) is denied bad-proof", () => {
    const stolen = phone.signedKey('K-1');
    expect(stolen).toBeDefined();
    const { challenge, presentation } = atDoor(stolen as SignedKey, otherPhone);
    expect(check(presentation, challenge)).toEqual({ ok: false, reason: 'bad-proof' });
  });

  it('a proof by another phone is bad-proof even when the key is also revoked or expired: cryptography first', () => {
    const { challenge, presentation } = atDoor(issued(), otherPhone);
    expect(check(presentation, challenge, { revoked: () => true })).toEqual({ ok: false, reason: 'bad-proof' });
    expect(check(presentation, challenge, { at: UNTIL + 1 })).toEqual({ ok: false, reason: 'bad-proof' });
  });

  it('malformed presentations are denied malformed, and never throw', () => {
    const { challenge, presentation } = atDoor(issued());
    const p = presentation as Presentation;
    const shortProof = p.proof.slice(0, -1);
    const junk: unknown[] = [
      null,
      undefined,
      'text',
      42,
      [],
      {},
      { signedKey: p.signedKey },
      { ...p, extra: 1 },
      { ...p, proof: shortProof },
      { ...p, proof: `${shortProof}=` },
      { ...p, proof: `${shortProof}!` },
      { ...p, signedKey: { body: p.signedKey.body } },
      { ...p, signedKey: { ...p.signedKey, extra: 1 } },
      { ...p, signedKey: { body: 'x'.repeat(9000), sig: p.signedKey.sig } },
      { ...p, signedKey: { body: 7, sig: p.signedKey.sig } },
      { ...p, signedKey: null },
    ];
    for (const j of junk)
      expect(check(j, challenge), JSON.stringify(j)?.slice(0, 80)).toEqual({ ok: false, reason: 'malformed' });
    expect(check(p, challenge.subarray(0, 31))).toEqual({ ok: false, reason: 'malformed' });
    expect(check(p, challenge, { lockId: 'L\u00001' })).toEqual({ ok: false, reason: 'malformed' });
    expect(check(p, challenge, { at: Number.NaN })).toEqual({ ok: false, reason: 'malformed' });
  });

  it('a non-canonical signature encoding is malformed (one spelling per signature)', () => {
    const { challenge, presentation } = atDoor(issued());
    const p = presentation as Presentation;
    // 64 bytes = 86 base64url characters; the last holds 4 spare bits, which must be zero.
    const last = p.signedKey.sig.at(-1) ?? 'A';
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = alphabet[alphabet.indexOf(last) + 1] ?? 'B';
    const sig = p.signedKey.sig.slice(0, -1) + twin;
    expect(Buffer.from(sig, 'base64url').equals(Buffer.from(p.signedKey.sig, 'base64url'))).toBe(true);
    expect(check({ ...p, signedKey: { ...p.signedKey, sig } }, challenge)).toEqual({ ok: false, reason: 'malformed' });
  });

  describe('bodies the cloud signed but the hub refuses as malformed', () => {
    // A cloud of our own, so the test can sign bodies the issuer would refuse to write.
    const seed = new SeededRandom('raw cloud').bytes(32);
    const rawCloud = ed25519PrivateKey(seed);
    const rawCloudPublic = ed25519PublicKey(ed25519PublicBytes(rawCloud));
    const signRaw = (body: string): SignedKey => ({
      body,
      sig: toBase64url(sign(null, keyBodySignatureMessage(body), rawCloud)),
    });
    const base = (): Record<string, unknown> => JSON.parse(issued().body) as Record<string, unknown>;
    const canon = (o: Record<string, unknown>) => canonicalize(o) ?? '';

    const cases: [string, () => string][] = [
      ['the canonical body is accepted', () => canon(base())],
      ['pretty-printed', () => JSON.stringify(base(), null, 2)],
      ['members out of order', () => JSON.stringify({ v: 1, ...base() })],
      ['a duplicate member', () => canon(base()).replace('"keyId":"K-1"', '"keyId":"K-1","keyId":"K-1"')],
      ['an unknown member', () => canon({ ...base(), admin: true })],
      ['version 2', () => canon({ ...base(), v: 2 })],
      ['both lockIds and groupIds', () => canon({ ...base(), groupIds: ['G-1'] })],
      ['neither lockIds nor groupIds', () => canon({ ...base(), lockIds: undefined })],
      ['an empty lockIds', () => canon({ ...base(), lockIds: [] })],
      ['a repeated lock id', () => canon({ ...base(), lockIds: ['L-1', 'L-1'] })],
      ['a bad lock id', () => canon({ ...base(), lockIds: ['L 1'] })],
      ['a time without milliseconds', () => canon({ ...base(), validFrom: '2026-01-01T00:00:00Z' })],
      ['an impossible date', () => canon({ ...base(), validFrom: '2026-02-30T00:00:00.000Z' })],
      ['validFrom after validUntil', () => canon({ ...base(), validFrom: '2027-06-01T00:00:00.000Z' })],
      ['a time as a number', () => canon({ ...base(), validUntil: UNTIL })],
      ['a 31-byte phone key', () => canon({ ...base(), phonePublicKey: toBase64url(new Uint8Array(31)) })],
      ['not JSON', () => '{"v":1,'],
      ['an array', () => '[1]'],
    ];
    for (const [name, make] of cases) {
      it(name, () => {
        const signedKey = signRaw(make());
        const challenge = newChallenge(random);
        const presentation = { signedKey, proof: phone.presentKey(issued(), challenge, 'L-1').proof };
        const verdict = check(presentation, challenge, { cloudPublicKey: rawCloudPublic });
        expect(verdict).toEqual(
          name.startsWith('the canonical')
            ? { ok: true, keyId: 'K-1', userId: 'U-1' }
            : { ok: false, reason: 'malformed' },
        );
      });
    }
  });

  it('the proof message is unambiguous and bound to its challenge, lock and key', () => {
    const c = new Uint8Array(32);
    expect(doorProofMessage(c, 'L-1', 'K1').equals(doorProofMessage(c, 'L-1K', '1'))).toBe(false);
    expect(doorProofMessage(c, 'L-1', 'K-1').toString('hex')).toBe(
      Buffer.concat([Buffer.from('iq-hub door v1\u0000'), c, Buffer.from('L-1\u0000K-1')]).toString('hex'),
    );
    expect(() => doorProofMessage(c.subarray(1), 'L-1', 'K-1')).toThrow(HubError);
  });

  it('refuses a pinned cloud key that is not an Ed25519 public key (a configuration error, thrown)', () => {
    const { challenge, presentation } = atDoor(issued());
    const privateKey = ed25519PrivateKey(new Uint8Array(32).fill(1));
    expect(() => check(presentation, challenge, { cloudPublicKey: privateKey })).toThrow(HubError);
  });

  it('the issuer refuses to sign a body the hub would refuse', () => {
    expect(() => issued({ keyId: 'bad id' })).toThrow(HubError);
    expect(() => issued({ validFrom: UNTIL, validUntil: FROM })).toThrow(HubError);
    expect(() => issued({ groupIds: ['G-1'] })).toThrow(HubError);
  });
});
