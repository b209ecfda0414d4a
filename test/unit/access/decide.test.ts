import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { CloudKeyIssuer } from '../../../sim/phone/issuer.js';
import { SimPhone } from '../../../sim/phone/phone.js';
import { pinVerifier } from '../../../src/access/credentials.js';
import { AccessDecider, type PresentedCredential } from '../../../src/access/decide.js';
import { newChallenge, type Presentation } from '../../../src/access/digital-key.js';
import { AccessMirror } from '../../../src/access/mirror.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { SeededRandom } from '../../../src/base/random.js';
import type { DeltaData, SnapshotData } from '../../../src/contract/sync-data.js';
import { Secret } from '../../../src/crypto/secret.js';
import { createLogger } from '../../../src/log/logger.js';
import { Store } from '../../../src/store/store.js';
import { deltaSync, snapshotSync as snapshot } from '../../helpers/sync.js';
import { tempDir } from '../../helpers/tmp.js';

const delta = (baseVersion: number, version: number, data: DeltaData) => deltaSync(baseVersion, data, version);

const TZ = 'Europe/Madrid';
const t = (iso: string) => Date.parse(iso);
const NOW = t('2026-06-03T10:00:00Z'); // a Wednesday, 12:00 in Madrid
const SITE = 'site-1';
const PIN_KEY = new Secret(new Uint8Array(32).fill(7));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const verifier = (pin: string) => pinVerifier(PIN_KEY, pin, SITE);
const tagHash = (label: string) => new Uint8Array(Buffer.alloc(32, label));

const random = new SeededRandom('decide');
const cloud = new CloudKeyIssuer(random);
const forger = new CloudKeyIssuer(new SeededRandom('forger'));
let phone: SimPhone;
let otherPhone: SimPhone;

const DAY = 86_400_000;
/** Alice: PIN, tag and a key for the office group (weekdays 07:00-19:00 Madrid) on front and back. */
function site(): SnapshotData {
  return {
    users: [{ id: 'alice', offline: true }, { id: 'bob' }, { id: 'carol', blocked: true }],
    groups: [
      {
        id: 'office',
        lockIds: ['front', 'back'],
        schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '19:00' }],
      },
      { id: 'lab', lockIds: ['lab-door'] },
    ],
    memberships: [
      { userId: 'alice', groupId: 'office' },
      { userId: 'bob', groupId: 'lab' },
      { userId: 'carol', groupId: 'office' },
    ],
    pins: [
      { id: 'pin-alice', userId: 'alice', verifier: hex(verifier('482916')) },
      { id: 'pin-carol', userId: 'carol', verifier: hex(verifier('555123')) },
    ],
    tags: [{ id: 'tag-alice', userId: 'alice', hash: hex(tagHash('a')) }],
    keys: [
      { id: 'K-alice', userId: 'alice', expiresAt: NOW + 365 * DAY },
      { id: 'K-alice-groups', userId: 'alice', expiresAt: NOW + 365 * DAY },
      { id: 'K-short', userId: 'alice', expiresAt: NOW + DAY },
    ],
  };
}

function setUp(options: { cloudKey?: boolean } = {}) {
  const store = Store.open(tempDir());
  const clock = new VirtualClock(NOW);
  const mirror = new AccessMirror({ store, clock });
  mirror.apply(snapshot(1, site()));
  const lines: string[] = [];
  const log = createLogger({
    level: 'trace',
    pretty: false,
    destination: new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  });
  const decider = new AccessDecider({
    mirror,
    clock,
    timeZone: TZ,
    cloudPublicKey: options.cloudKey === false ? undefined : cloud.publicKey,
    log,
    throttle: { wrongCodeLimit: 5, disableMs: 60_000 },
  });
  return { store, clock, mirror, decider, lines };
}

const presentationBytes = (p: Presentation | unknown) => new TextEncoder().encode(JSON.stringify(p));

function keyAt(present: (challenge: Uint8Array) => Presentation | unknown): PresentedCredential {
  const challenge = newChallenge(random);
  return { kind: 'digitalKey', challenge, presentation: presentationBytes(present(challenge)) };
}

beforeAll(async () => {
  phone = await SimPhone.create(new SeededRandom('phone A'), { cloudPublicKey: cloud.publicKey });
  otherPhone = await SimPhone.create(new SeededRandom('phone B'), { cloudPublicKey: cloud.publicKey });
  const year = { validFrom: t('2026-01-01T00:00:00Z'), validUntil: NOW + 365 * DAY };
  await phone.receiveKey(
    await cloud.issueTo({ keyId: 'K-alice', userId: 'alice', lockIds: ['front'], ...year }, phone.keys),
  );
  await phone.receiveKey(
    await cloud.issueTo({ keyId: 'K-alice-groups', userId: 'alice', groupIds: ['office'], ...year }, phone.keys),
  );
  await phone.receiveKey(
    await cloud.issueTo(
      { keyId: 'K-short', userId: 'alice', lockIds: ['front'], validFrom: NOW - DAY, validUntil: NOW + DAY },
      phone.keys,
    ),
  );
});

describe('access decisions: PIN', () => {
  it('grants the right verifier at a lock of the user, naming the credential and the group', () => {
    const { decider } = setUp();
    expect(decider.verifyAccess('front', { kind: 'pin', verifier: verifier('482916') })).toEqual({
      grant: true,
      reason: 'granted',
      kind: 'pin',
      credentialId: 'pin-alice',
      userId: 'alice',
      groupId: 'office',
    });
  });

  it('refuses an unknown code, a blocked user, a lock without rights, and outside the schedule', () => {
    const { decider } = setUp();
    expect(decider.verifyAccess('front', { kind: 'pin', verifier: verifier('000000') }).reason).toBe(
      'unknown-credential',
    );
    expect(decider.verifyAccess('front', { kind: 'pin', verifier: verifier('555123') })).toMatchObject({
      grant: false,
      reason: 'blocked',
      credentialId: 'pin-carol',
    });
    expect(decider.verifyAccess('lab-door', { kind: 'pin', verifier: verifier('482916') }).reason).toBe('no-right');
    const saturday = t('2026-06-06T10:00:00Z');
    expect(decider.verifyAccess('front', { kind: 'pin', verifier: verifier('482916') }, saturday).reason).toBe(
      'outside-schedule',
    );
  });

  it('disables the keypad of one lock after 5 wrong codes: even the right code is refused until it ends', async () => {
    const { decider, clock } = setUp();
    for (let i = 0; i < 5; i++) {
      expect(decider.verifyAccess('front', { kind: 'pin', verifier: verifier(`11110${i}`) }).reason).toBe(
        'unknown-credential',
      );
    }
    expect(decider.verifyAccess('front', { kind: 'pin', verifier: verifier('482916') }).reason).toBe('lockout');
    // Another lock's keypad is not affected.
    expect(decider.verifyAccess('back', { kind: 'pin', verifier: verifier('482916') }).grant).toBe(true);
    await clock.advance(60_000);
    expect(decider.verifyAccess('front', { kind: 'pin', verifier: verifier('482916') }).grant).toBe(true);
  });

  it('refuses a malformed verifier without counting a lookup', () => {
    const { decider } = setUp();
    expect(decider.verifyAccess('front', { kind: 'pin', verifier: new Uint8Array(31) }).reason).toBe('malformed');
    expect(decider.verifyAccess('front', { kind: 'nfc' } as unknown as PresentedCredential).reason).toBe('malformed');
  });
});

describe('access decisions: tag', () => {
  it('grants a known tag and refuses it as soon as the delta that revokes it is applied', () => {
    const { decider, mirror } = setUp();
    expect(decider.verifyAccess('back', { kind: 'tag', hash: tagHash('a') })).toMatchObject({
      grant: true,
      credentialId: 'tag-alice',
    });
    mirror.apply(delta(1, 2, { delete: { tags: ['tag-alice'] } }));
    expect(decider.verifyAccess('back', { kind: 'tag', hash: tagHash('a') })).toMatchObject({
      grant: false,
      reason: 'unknown-credential',
      credentialId: null,
    });
  });

  it('refuses the tag of a user blocked by a delta', () => {
    const { decider, mirror } = setUp();
    mirror.apply(delta(1, 2, { upsert: { users: [{ id: 'alice', offline: true, blocked: true }] } }));
    expect(decider.verifyAccess('back', { kind: 'tag', hash: tagHash('a') }).reason).toBe('blocked');
  });
});

describe('access decisions: digital keys', () => {
  it("grants the key's own phone at a listed lock, and through the key's groups", () => {
    const { decider } = setUp();
    expect(
      decider.verifyAccess(
        'front',
        keyAt((c) => phone.present(c, 'front', 'K-alice')),
      ),
    ).toEqual({
      grant: true,
      reason: 'granted',
      kind: 'digitalKey',
      credentialId: 'K-alice',
      userId: 'alice',
      groupId: 'office',
    });
    expect(
      decider.verifyAccess(
        'back',
        keyAt((c) => phone.present(c, 'back', 'K-alice-groups')),
      ),
    ).toMatchObject({ grant: true, credentialId: 'K-alice-groups' });
  });

  it('refuses a key for another lock', () => {
    const { decider } = setUp();
    // K-alice lists only "front"; alice's group would open "back", the key does not.
    expect(
      decider.verifyAccess(
        'back',
        keyAt((c) => phone.present(c, 'back', 'K-alice')),
      ).reason,
    ).toBe('wrong-lock');
    // K-alice-groups names the office group, which does not open the lab.
    expect(
      decider.verifyAccess(
        'lab-door',
        keyAt((c) => phone.present(c, 'lab-door', 'K-alice-groups')),
      ).reason,
    ).toBe('wrong-lock');
  });

  it('refuses an expired key', () => {
    const { decider } = setUp();
    const later = NOW + 2 * DAY;
    const c = keyAt((ch) => phone.present(ch, 'front', 'K-short'));
    expect(decider.verifyAccess('front', c, later).reason).toBe('expired');
  });

  it('refuses a key the mirror says has expired, though its signed body is valid (the cloud cut its life short)', () => {
    const { decider, mirror } = setUp();
    mirror.apply(delta(1, 2, { upsert: { keys: [{ id: 'K-alice', userId: 'alice', expiresAt: NOW + 3_600_000 }] } }));
    const before = keyAt((ch) => phone.present(ch, 'front', 'K-alice'));
    expect(decider.verifyAccess('front', before, NOW + 1_800_000)).toMatchObject({ grant: true });
    const after = keyAt((ch) => phone.present(ch, 'front', 'K-alice'));
    expect(decider.verifyAccess('front', after, NOW + 2 * 3_600_000)).toMatchObject({
      grant: false,
      reason: 'expired',
    });
  });

  it('refuses a key the mirror holds for another user than its signed body names', () => {
    const { decider, mirror } = setUp();
    mirror.apply(delta(1, 2, { upsert: { keys: [{ id: 'K-alice', userId: 'bob', expiresAt: NOW + 365 * DAY }] } }));
    expect(
      decider.verifyAccess(
        'front',
        keyAt((c) => phone.present(c, 'front', 'K-alice')),
      ),
    ).toMatchObject({ grant: false, reason: 'unknown-credential', credentialId: 'K-alice' });
  });

  it('refuses a key outside its schedule, read in the site zone across the spring DST change', () => {
    const { decider } = setUp();
    const at = (iso: string) =>
      decider.verifyAccess(
        'front',
        keyAt((c) => phone.present(c, 'front', 'K-alice')),
        t(iso),
      ).reason;
    // Friday 27 March 2026, 05:30Z = 06:30 CET: before opening time.
    expect(at('2026-03-27T05:30:00Z')).toBe('outside-schedule');
    // Monday 30 March 2026, after the change: 05:30Z = 07:30 CEST, open. (A fixed UTC+1 would say 06:30: closed.)
    expect(at('2026-03-30T05:30:00Z')).toBe('granted');
    // 17:30Z = 19:30 CEST: closed (a fixed UTC+1 would say 18:30: open).
    expect(at('2026-03-30T17:30:00Z')).toBe('outside-schedule');
    expect(at('2026-03-28T10:00:00Z')).toBe('outside-schedule'); // Saturday
  });

  it('refuses a replayed phone signature: the same challenge again, and an old proof for a new challenge', () => {
    const { decider } = setUp();
    const first = keyAt((c) => phone.present(c, 'front', 'K-alice'));
    expect(decider.verifyAccess('front', first).grant).toBe(true);
    expect(decider.verifyAccess('front', first).reason).toBe('replayed');
    if (first.kind !== 'digitalKey') throw new Error('unreachable');
    const fresh = newChallenge(random);
    expect(decider.verifyAccess('front', { ...first, challenge: fresh }).reason).toBe('bad-proof');
  });

  it('remembers the last 1024 challenges of each lock: the oldest is forgotten first, locks apart', () => {
    const { decider } = setUp();
    const junk = new TextEncoder().encode('{}');
    const challengeNo = (n: number) => {
      const c = new Uint8Array(32);
      new DataView(c.buffer).setUint32(0, n);
      return c;
    };
    const at = (lockId: string, n: number) =>
      decider.verifyAccess(lockId, { kind: 'digitalKey', challenge: challengeNo(n), presentation: junk }).reason;
    for (let n = 0; n <= 1024; n++) expect(at('front', n)).toBe('malformed');
    expect(at('front', 1024)).toBe('replayed');
    expect(at('front', 1)).toBe('replayed');
    expect(at('front', 0)).toBe('malformed'); // the 1025th challenge pushed out the first
    expect(at('back', 1024)).toBe('malformed');
  });

  it('refuses a key whose cloud signature is forged', async () => {
    const { decider } = setUp();
    const forged = forger.sign(
      forger.body(
        { keyId: 'K-alice', userId: 'alice', lockIds: ['front'], validFrom: NOW - DAY, validUntil: NOW + DAY },
        phone.keys,
      ),
    );
    const c = keyAt((ch) => phone.presentKey(forged, ch, 'front'));
    expect(decider.verifyAccess('front', c).reason).toBe('bad-signature');
  });

  it('refuses a key encrypted to another phone: that phone cannot open it, nor use its content', async () => {
    const { decider } = setUp();
    const envelope = await cloud.issueTo(
      { keyId: 'K-alice', userId: 'alice', lockIds: ['front'], validFrom: NOW - DAY, validUntil: NOW + DAY },
      phone.keys,
    );
    await expect(otherPhone.receiveKey(envelope)).rejects.toThrow();
    // Even with the signed key in hand (leaked from phone A), phone B's proof is not the key's phone's.
    const signed = phone.signedKey('K-alice');
    if (!signed) throw new Error('phone A holds K-alice');
    const c = keyAt((ch) => otherPhone.presentKey(signed, ch, 'front'));
    expect(decider.verifyAccess('front', c).reason).toBe('bad-proof');
  });

  it('refuses a revoked key and a key the mirror does not hold', () => {
    const { decider, mirror } = setUp();
    mirror.apply(
      delta(1, 2, { upsert: { keys: [{ id: 'K-alice', userId: 'alice', expiresAt: NOW + DAY, revoked: true }] } }),
    );
    expect(
      decider.verifyAccess(
        'front',
        keyAt((c) => phone.present(c, 'front', 'K-alice')),
      ).reason,
    ).toBe('revoked');
    mirror.apply(delta(2, 3, { delete: { keys: ['K-alice'] } }));
    expect(
      decider.verifyAccess(
        'front',
        keyAt((c) => phone.present(c, 'front', 'K-alice')),
      ),
    ).toMatchObject({
      grant: false,
      reason: 'unknown-credential',
      credentialId: 'K-alice',
    });
  });

  it('refuses every key without a pinned cloud key, and garbage presentations', () => {
    const unpinned = setUp({ cloudKey: false }).decider;
    expect(
      unpinned.verifyAccess(
        'front',
        keyAt((c) => phone.present(c, 'front', 'K-alice')),
      ).reason,
    ).toBe('bad-signature');
    const { decider } = setUp();
    const challenge = newChallenge(random);
    for (const presentation of [
      new TextEncoder().encode('{"signedKey":'),
      new Uint8Array([0xff, 0xfe, 0x00]),
      presentationBytes({ signedKey: 1, proof: 2 }),
      new Uint8Array(4096),
    ]) {
      expect(
        decider.verifyAccess('front', { kind: 'digitalKey', challenge: newChallenge(random), presentation }).reason,
      ).toBe('malformed');
    }
    expect(
      decider.verifyAccess('front', {
        kind: 'digitalKey',
        challenge: challenge.slice(1),
        presentation: new Uint8Array(2),
      }).reason,
    ).toBe('malformed');
  });
});

describe('access decisions: secrets', () => {
  it('no verifier, hash, key or proof reaches the log; decisions are counted by reason', () => {
    const { decider, lines } = setUp();
    const v = verifier('482916');
    decider.verifyAccess('front', { kind: 'pin', verifier: v });
    decider.verifyAccess('front', { kind: 'tag', hash: tagHash('a') });
    const c = keyAt((ch) => phone.present(ch, 'front', 'K-alice'));
    decider.verifyAccess('front', c);
    const text = lines.join('');
    expect(text).toContain('access decision');
    expect(text).toContain('pin-alice');
    for (const secret of [hex(v), Buffer.from(v).toString('base64'), hex(tagHash('a')), '482916']) {
      expect(text).not.toContain(secret);
    }
    if (c.kind === 'digitalKey') {
      const p = JSON.parse(new TextDecoder().decode(c.presentation)) as Presentation;
      expect(text).not.toContain(p.proof);
      expect(text).not.toContain(p.signedKey.sig);
    }
    expect(decider.counts()).toEqual({ granted: 3, denied: {} });
  });
});
