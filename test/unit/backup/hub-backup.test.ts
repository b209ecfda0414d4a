import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  dataPaths,
  listBackups,
  loadOrCreateNetwork,
  openBackup,
  prepareDirectories,
  sealHerdsmanBackup,
} from '../../../drivers/zigbee/network.js';
import { createDevPki } from '../../../provisioning/dev-pki.js';
import { CloudRecovery } from '../../../sim/cloud/recovery.js';
import { APPROVAL_INFO, b64u, keyId, sealTo } from '../../../src/backup/envelope.js';
import { applyRestore, makeRestoreRequest, RESTORE_FRAME_COUNTER_JUMP } from '../../../src/backup/restore.js';
import { takeHubBackup } from '../../../src/backup/take.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { HubError } from '../../../src/base/errors.js';
import { SeededRandom } from '../../../src/base/random.js';
import { readSealed, writeSealed } from '../../../src/crypto/sealed-secrets.js';
import { Secret } from '../../../src/crypto/secret.js';
import { createStorageKey, pendingKeyPath } from '../../../src/crypto/storage-key.js';
import { keyFingerprint, openStoreWithKey, stampedHubId } from '../../../src/crypto/store-identity.js';
import { PairingStore } from '../../../src/link/pairing.js';
import { tempDir } from '../../helpers/tmp.js';

const OLD = 'hub-old';
const NEW = 'hub-new';
const OTP = new Secret(Buffer.from('9a'.repeat(32), 'hex'));
const FRAME_COUNTER = 4242;

function keyOpts(dataDir: string, random = new SeededRandom(`key-${dataDir}`)) {
  return { dataDir, keyFile: null, credentialsDirectory: undefined, random };
}

/** A hub's data directory as a daemon leaves it: store, link key, one bound lock, an OTP key, a ZigBee network and coordinator backup. */
function oldHub(random: SeededRandom) {
  const dataDir = tempDir();
  const opened = openStoreWithKey(keyOpts(dataDir, random));
  const pairing = new PairingStore(opened.store);
  const link = pairing.hubIdentity(opened.sealer, random, 1_000);
  opened.store.db
    .prepare(
      `INSERT INTO locks (lock_id, bearer, address, static_public, state, attached_at, updated_at)
       VALUES ('SIM-0001', 'sim', 'sim:SIM-0001', ?, 'bound', 1, 1)`,
    )
    .run(Buffer.alloc(32, 5));
  const otpCtx = { purpose: 'commands.otp-key', id: OLD };
  writeSealed(opened.store, otpCtx, { blob: opened.sealer.seal(OTP, otpCtx), fingerprint: 'ab12cd34' }, 1_000);
  const zig = dataPaths(join(dataDir, 'zigbee'));
  prepareDirectories(zig);
  const network = loadOrCreateNetwork(zig, opened.sealer, random, 15).params;
  writeFileSync(
    zig.herdsmanBackupPath,
    JSON.stringify({
      network_key: { key: Buffer.from(network.networkKey).toString('hex'), frame_counter: FRAME_COUNTER },
      coordinator_ieee: '00124b0000000001',
    }),
  );
  sealHerdsmanBackup(zig, opened.sealer, 2_000, 3);
  return { dataDir, ...opened, link, network };
}

/** A backup of the old hub's store as `hub-backup` takes it. */
function backUp(
  opened: Pick<ReturnType<typeof openStoreWithKey>, 'store' | 'sealer'>,
  dataDir: string,
  recoveryPublicKey: Uint8Array,
  random: SeededRandom,
  now: number,
) {
  return takeHubBackup({
    store: opened.store,
    sealer: opened.sealer,
    dataDir,
    hubId: OLD,
    recoveryPublicKey,
    random,
    now,
    hubVersion: 'test',
  });
}

async function setup(seed = 'hub-backup') {
  const random = new SeededRandom(seed);
  // Now, not a fixed date: the dev PKI's certificates are valid from a few minutes ago.
  const clock = new VirtualClock(Date.now());
  const cloud = new CloudRecovery(clock, random);
  const recoveryPublicKey = new Uint8Array(Buffer.from(await cloud.enable(), 'base64url'));
  const old = oldHub(random);
  const taken = await backUp(old, old.dataDir, recoveryPublicKey, random, clock.now());
  old.store.close();
  type Target = { backupPath?: string; newHubId?: string };
  /** The new hub's restore request in dataDir (for this backup and hub NEW unless told). */
  const request = (dataDir: string, t: Target = {}) =>
    makeRestoreRequest({
      dataDir,
      backupPath: t.backupPath ?? taken.path,
      newHubId: t.newHubId ?? NEW,
      random,
      now: clock.now(),
    });
  /** The restore in dataDir with the approval at approvalPath (this backup, hub NEW unless told). */
  const restore = (dataDir: string, approvalPath: string, t: Target = {}) =>
    applyRestore({
      key: keyOpts(dataDir),
      backupPath: t.backupPath ?? taken.path,
      approvalPath,
      newHubId: t.newHubId ?? NEW,
      now: clock.now(),
    });
  /** The cloud's approval of a request, written to approvalPath. */
  const approveTo = async (req: { requestPath: string }, approvalPath: string) =>
    writeFileSync(approvalPath, (await cloud.approve(readFileSync(req.requestPath, 'utf8'))).approvalText);
  return { random, clock, cloud, old, taken, recoveryPublicKey, request, restore, approveTo };
}

async function rejects(p: Promise<unknown>, code: string, message?: RegExp): Promise<HubError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, `expected a refusal ${code}`).toBeInstanceOf(HubError);
  expect((e as HubError).code).toBe(code);
  if (message) expect((e as HubError).message).toMatch(message);
  return e as HubError;
}

describe('hub backup and restore on replacement hardware', () => {
  it('a backup restored with the cloud approval on a second data directory keeps the link identity, the secrets and the ZigBee network under a new storage key', async () => {
    const { random, cloud, old, taken, request, restore } = await setup();
    expect(taken.locks).toBe(1);
    expect(taken.zigbee).toBe(true);
    const fileText = readFileSync(taken.path, 'utf8');
    expect((await import('node:fs')).statSync(taken.path).mode & 0o777).toBe(0o600);
    // Nothing secret in the file, in any spelling.
    for (const secret of [old.link.secretKey, OTP.reveal(), old.network.networkKey]) {
      for (const spelling of [
        Buffer.from(secret).toString('hex'),
        b64u(secret),
        Buffer.from(secret).toString('base64'),
      ]) {
        expect(fileText).not.toContain(spelling);
      }
    }
    expect(JSON.stringify(taken)).not.toMatch(/[0-9a-f]{64}/);

    const newDir = tempDir();
    const req = await request(newDir);
    expect(req.oldHubId).toBe(OLD);
    // Asking twice gives the same request (an approval of the first still fits).
    const again = await request(newDir);
    expect(again.reused).toBe(true);
    expect(again.restoreKeyId).toBe(req.restoreKeyId);

    const { approvalText, revocation } = await cloud.approve(readFileSync(req.requestPath, 'utf8'));
    expect(revocation).toMatchObject({ hubId: OLD, replacedBy: NEW });
    const approvalPath = join(newDir, '..', `${NEW}-approval.json`);
    writeFileSync(approvalPath, approvalText);

    const r = await restore(newDir, approvalPath);
    expect(r).toMatchObject({
      oldHubId: OLD,
      newHubId: NEW,
      locks: 1,
      zigbeeFrameCounter: FRAME_COUNTER + RESTORE_FRAME_COUNTER_JUMP,
    });
    expect(r.storageKeyFingerprint).not.toBe(old.fingerprint);

    const restored = openStoreWithKey(keyOpts(newDir));
    try {
      expect(restored.identity).toBe('matched');
      expect(restored.fingerprint).not.toBe(old.fingerprint);
      expect(stampedHubId(restored.store)).toBe(NEW);
      const link = new PairingStore(restored.store).hubIdentity(restored.sealer, random, 0);
      expect(Buffer.from(link.publicKey)).toEqual(Buffer.from(old.link.publicKey));
      expect(Buffer.from(link.secretKey)).toEqual(Buffer.from(old.link.secretKey));
      expect(new PairingStore(restored.store).get('SIM-0001')?.state).toBe('bound');
      const otpCtx = { purpose: 'commands.otp-key', id: NEW };
      const sealed = readSealed(restored.store, otpCtx);
      expect(sealed).toBeDefined();
      expect(Buffer.from(restored.sealer.open(sealed!.blob, otpCtx).reveal())).toEqual(Buffer.from(OTP.reveal()));
      // The old storage key opens nothing in the new store.
      expect(() => old.sealer.open(sealed!.blob, otpCtx)).toThrow(HubError);
      const zig = dataPaths(join(newDir, 'zigbee'));
      const net = loadOrCreateNetwork(zig, restored.sealer, random, 15);
      expect(net.created).toBe(false);
      expect(Buffer.from(net.params.networkKey)).toEqual(Buffer.from(old.network.networkKey));
      expect(net.params.panId).toBe(old.network.panId);
      const coordinator = openBackup(listBackups(zig).at(-1)!, restored.sealer) as {
        network_key: { frame_counter: number };
      };
      expect(coordinator.network_key.frame_counter).toBe(FRAME_COUNTER + RESTORE_FRAME_COUNTER_JUMP);
    } finally {
      restored.store.close();
    }
    // The restore key is gone once used.
    expect((await import('node:fs')).existsSync(join(newDir, 'restore'))).toBe(false);
  });

  it('without the cloud approval nothing is restored: no request, or an approval made without the recovery key', async () => {
    const { random, clock, request, restore } = await setup('no-approval');
    const newDir = tempDir();
    const fake = join(tempDir(), 'approval.json');
    writeFileSync(fake, '{}');
    await rejects(restore(newDir, fake), 'backup.malformed');
    // A well-formed approval from someone without the recovery key: terms right, content key guessed.
    const req = await request(newDir);
    const { envelopeDigest } = await import('../../../src/backup/documents.js');
    const terms = JSON.stringify({
      backupId: req.backupId,
      envelopeDigest: envelopeDigest(req.request),
      oldHubId: OLD,
      newHubId: NEW,
      restoreKeyId: req.restoreKeyId,
      revokedHubId: OLD,
      approvedAt: new Date(clock.now()).toISOString(),
    });
    const sealed = await sealTo(
      Buffer.from(req.request.restorePublicKey, 'base64url'),
      APPROVAL_INFO,
      terms,
      new Secret(random.bytes(32)),
      random,
    );
    writeFileSync(
      fake,
      JSON.stringify({ format: 'iq-hub-restore-approval', v: 1, terms, enc: b64u(sealed.enc), key: b64u(sealed.ct) }),
    );
    await rejects(restore(newDir, fake), 'backup.open');
    expect((await import('node:fs')).existsSync(join(newDir, 'hub.db'))).toBe(false);
  });

  it('an approval whose terms name another old hub (or revoke another) is refused by name, before any key is opened', async () => {
    const { random, clock, request, restore } = await setup('other-old-hub');
    const newDir = tempDir();
    const req = await request(newDir);
    const { envelopeDigest } = await import('../../../src/backup/documents.js');
    const forged = async (oldHubId: string, revokedHubId: string) => {
      const terms = JSON.stringify({
        backupId: req.backupId,
        envelopeDigest: envelopeDigest(req.request),
        oldHubId,
        newHubId: NEW,
        restoreKeyId: req.restoreKeyId,
        revokedHubId,
        approvedAt: new Date(clock.now()).toISOString(),
      });
      const sealed = await sealTo(
        Buffer.from(req.request.restorePublicKey, 'base64url'),
        APPROVAL_INFO,
        terms,
        new Secret(random.bytes(32)),
        random,
      );
      const path = join(tempDir(), 'approval.json');
      writeFileSync(
        path,
        JSON.stringify({ format: 'iq-hub-restore-approval', v: 1, terms, enc: b64u(sealed.enc), key: b64u(sealed.ct) }),
      );
      return path;
    };
    // A cloud that revoked hub-elsewhere but approves taking over hub-old's backup: the hub refuses by the
    // term, not later by a key that fails to open (which a cloud holding the recovery key would not hit).
    await rejects(restore(newDir, await forged('hub-elsewhere', OLD)), 'backup.approval-mismatch', /hub-elsewhere/);
    await rejects(
      restore(newDir, await forged(OLD, 'hub-elsewhere')),
      'backup.approval-mismatch',
      /hub-elsewhere as the old hub \(the one it revokes\)/,
    );
    expect((await import('node:fs')).existsSync(join(newDir, 'hub.db'))).toBe(false);
  });

  it('a pending restore key that others may read, or that is a symbolic link, is refused and named, never used', async () => {
    const { request, restore, approveTo } = await setup('restore-key-mode');
    const newDir = tempDir();
    const req = await request(newDir);
    const approvalPath = join(newDir, '..', 'mode-approval.json');
    await approveTo(req, approvalPath);
    const { chmodSync, renameSync, symlinkSync } = await import('node:fs');
    const keyPath = join(newDir, 'restore', 'restore.key');
    chmodSync(keyPath, 0o644);
    const e = await rejects(restore(newDir, approvalPath), 'backup.restore-key.permissions', /mode 0644/);
    expect(e.message).toContain(keyPath);
    chmodSync(keyPath, 0o600);
    renameSync(keyPath, `${keyPath}.real`);
    symlinkSync(`${keyPath}.real`, keyPath);
    await rejects(restore(newDir, approvalPath), 'backup.restore-key.unreadable', /restore key/);
    expect((await import('node:fs')).existsSync(join(newDir, 'hub.db'))).toBe(false);
  });

  it('a restore on a hub that made no request is refused', async () => {
    const { clock, taken, request, approveTo } = await setup('no-request');
    const asker = tempDir();
    const req = await request(asker);
    const approvalPath = join(asker, 'approval.json');
    await approveTo(req, approvalPath);
    await rejects(
      applyRestore({ key: keyOpts(tempDir()), backupPath: taken.path, approvalPath, newHubId: NEW, now: clock.now() }),
      'backup.no-request',
    );
  });

  it('a tampered backup is refused: by the cloud (header, key envelope) or by the hub (body)', async () => {
    const { cloud, taken, request, restore, approveTo } = await setup('tampered');
    const file = JSON.parse(readFileSync(taken.path, 'utf8')) as Record<string, string>;
    const newDir = tempDir();

    // The header altered (more locks): the cloud cannot open the content key.
    const header = JSON.parse(file.header!) as Record<string, unknown>;
    const forgedHeader = join(tempDir(), 'forged-header.iqbackup');
    writeFileSync(forgedHeader, JSON.stringify({ ...file, header: JSON.stringify({ ...header, locks: 99 }) }));
    const r1 = await request(newDir, { backupPath: forgedHeader });
    await rejects(cloud.approve(readFileSync(r1.requestPath, 'utf8')), 'backup.open');

    // The body altered (one byte): the approval is for this file's envelope, but the body does not open.
    const body = Buffer.from(file.body!, 'base64url');
    body[body.length - 40]! ^= 1;
    const forgedBody = join(tempDir(), 'forged-body.iqbackup');
    writeFileSync(forgedBody, JSON.stringify({ ...file, body: b64u(body) }));
    const dir2 = tempDir();
    const r2 = await request(dir2, { backupPath: forgedBody });
    const approvalPath = join(dir2, 'approval.json');
    await approveTo(r2, approvalPath);
    await rejects(restore(dir2, approvalPath, { backupPath: forgedBody }), 'backup.open', /body/);
    expect((await import('node:fs')).existsSync(join(dir2, 'hub.db'))).toBe(false);

    // Not JSON at all.
    const junk = join(tempDir(), 'junk.iqbackup');
    writeFileSync(junk, 'not a backup');
    await rejects(request(tempDir(), { backupPath: junk }), 'backup.malformed');
  });

  it('a backup sealed to another recovery key is refused by this cloud, even relabelled with its key id', async () => {
    const { random, clock, request } = await setup('other-recovery');
    const other = new CloudRecovery(clock, random);
    const otherKey = await other.enable();
    const newDir = tempDir();
    const req = await request(newDir);
    const requestText = readFileSync(req.requestPath, 'utf8');
    await rejects(other.approve(requestText), 'backup.recovery-key-mismatch');
    const asked = JSON.parse(requestText) as Record<string, string>;
    const relabelled = JSON.stringify({
      ...asked,
      header: JSON.stringify({
        ...(JSON.parse(asked.header!) as object),
        recoveryKeyId: keyId(Buffer.from(otherKey, 'base64url')),
      }),
    });
    await rejects(other.approve(relabelled), 'backup.open');
    expect(other.revocations()).toEqual([]);
  });

  it('an approval for another hub, another request or another backup, or with altered terms, is refused', async () => {
    const { random, clock, cloud, old, recoveryPublicKey, taken, request } = await setup('other-approval');
    const mine = tempDir();
    const mineReq = await request(mine);
    const mineApproval = (await cloud.approve(readFileSync(mineReq.requestPath, 'utf8'))).approvalText;
    const path = join(tempDir(), 'approval.json');
    const apply = (dir: string, hubId: string, text: string, backupPath = taken.path) => {
      writeFileSync(path, text);
      return applyRestore({ key: keyOpts(dir), backupPath, approvalPath: path, newHubId: hubId, now: clock.now() });
    };

    // Another hub (its own request for the same backup) presents this hub's approval.
    const other = tempDir();
    await request(other, { newHubId: 'hub-intruder' });
    await rejects(apply(other, 'hub-intruder', mineApproval), 'backup.approval-mismatch', /is for hub hub-new/);
    // Same hub id, but another request (another restore key).
    const twin = tempDir();
    await request(twin);
    await rejects(apply(twin, NEW, mineApproval), 'backup.approval-mismatch', /restore key/);

    // Terms altered after the cloud sealed them.
    const a = JSON.parse(mineApproval) as { terms: string };
    const altered = JSON.stringify({
      ...a,
      terms: JSON.stringify({ ...(JSON.parse(a.terms) as object), approvedAt: '2030-01-01T00:00:00.000Z' }),
    });
    await rejects(apply(mine, NEW, altered), 'backup.approval-open');

    // Another backup of the same hub: the approval of the first does not restore the second.
    const reopened = openStoreWithKey(keyOpts(old.dataDir, random));
    const second = await backUp(reopened, old.dataDir, recoveryPublicKey, random, clock.now() + 60_000);
    reopened.store.close();
    await rejects(apply(mine, NEW, mineApproval, second.path), 'backup.approval-mismatch', /approves backup/);

    // The first approval still restores what it approved.
    await expect(apply(mine, NEW, mineApproval)).resolves.toMatchObject({ newHubId: NEW });
    // ...once: the data directory now holds a store.
    await rejects(apply(mine, NEW, mineApproval), 'backup.target-not-empty');
  });

  it('the cloud revokes the old hub once: a second replacement of it by another hub is refused, and the two hubs must differ', async () => {
    const { cloud, request } = await setup('revoked');
    const first = await request(tempDir());
    await cloud.approve(readFileSync(first.requestPath, 'utf8'));
    expect(cloud.isRevoked(OLD)?.replacedBy).toBe(NEW);
    const second = await request(tempDir(), { newHubId: 'hub-third' });
    await rejects(cloud.approve(readFileSync(second.requestPath, 'utf8')), 'backup.hub-revoked');
    const same = await request(tempDir(), { newHubId: OLD });
    await rejects(cloud.approve(readFileSync(same.requestPath, 'utf8')), 'backup.same-hub');
  });

  it('a restore cut short after its new storage key was made takes that key up on the next run', async () => {
    const { random, request, restore, approveTo } = await setup('cut-short');
    const newDir = tempDir();
    const req = await request(newDir);
    const approvalPath = join(newDir, '..', 'cut-short-approval.json');
    await approveTo(req, approvalPath);
    const pending = createStorageKey(pendingKeyPath(newDir), random);
    const r = await restore(newDir, approvalPath);
    expect(r.storageKeyFingerprint).toBe(keyFingerprint(pending.key));
    expect(existsSync(pendingKeyPath(newDir))).toBe(false);
  });

  it('a damaged pending request is refused, naming what to do', async () => {
    const { request, restore, approveTo } = await setup('damaged-request');
    const newDir = tempDir();
    const req = await request(newDir);
    const approvalPath = join(newDir, '..', 'damaged-approval.json');
    await approveTo(req, approvalPath);
    const intact = readFileSync(req.requestPath);
    writeFileSync(req.requestPath, '{"format":');
    const e = await rejects(restore(newDir, approvalPath), 'backup.no-request', /damaged/);
    expect(e.hint).toMatch(/hub-restore FILE/);
    // An intact request beside a restore key that is not the one it names.
    writeFileSync(req.requestPath, intact);
    writeFileSync(join(newDir, 'restore', 'restore.key'), Buffer.alloc(64, 7), { mode: 0o600 });
    await rejects(restore(newDir, approvalPath), 'backup.no-request', /damaged/);
  });

  it("a cloud that trusts the hubs' CA approves only a request signed by the new hub's own certificate", async () => {
    const { random, clock, cloud, taken } = await setup('identity');
    const pkiDir = tempDir();
    const pki = createDevPki({ dir: pkiDir, hubId: NEW });
    const identity = { certificatePem: readFileSync(pki.hub.cert, 'utf8'), keyPem: readFileSync(pki.hub.key, 'utf8') };
    cloud.requireHubIdentity(readFileSync(pki.ca.cert));
    const ask = async (newHubId: string, id?: typeof identity) =>
      readFileSync(
        (
          await makeRestoreRequest({
            dataDir: tempDir(),
            backupPath: taken.path,
            newHubId,
            random,
            now: clock.now(),
            identity: id,
          })
        ).requestPath,
        'utf8',
      );

    await rejects(cloud.approve(await ask(NEW)), 'backup.request-identity', /not signed/);
    // NEW's certificate on a request for another hub id.
    await rejects(cloud.approve(await ask('hub-intruder', identity)), 'backup.request-identity', /is for hub-new/);
    // A term changed after signing.
    const signed = JSON.parse(await ask(NEW, identity)) as Record<string, unknown>;
    await rejects(
      cloud.approve(JSON.stringify({ ...signed, createdAt: '2030-01-01T00:00:00.000Z' })),
      'backup.request-identity',
      /signature/,
    );
    // A certificate for the right CN from another CA.
    const other = createDevPki({ dir: tempDir(), hubId: NEW });
    const foreign = {
      certificatePem: readFileSync(other.hub.cert, 'utf8'),
      keyPem: readFileSync(other.hub.key, 'utf8'),
    };
    await rejects(cloud.approve(await ask(NEW, foreign)), 'backup.request-identity', /not issued/);
    expect(cloud.revocations()).toEqual([]);

    await expect(cloud.approve(JSON.stringify(signed))).resolves.toMatchObject({ revocation: { replacedBy: NEW } });
    // The same request once its certificate has expired.
    const validTo = Date.parse(new X509Certificate(identity.certificatePem).validTo);
    await clock.advance(validTo - clock.now() + 60_000);
    await rejects(cloud.approve(JSON.stringify(signed)), 'backup.request-identity', /not valid now/);
  });

  it('the hub keeps its newest 5 backups', async () => {
    const { random, clock, old, recoveryPublicKey, taken } = await setup('kept');
    const reopened = openStoreWithKey(keyOpts(old.dataDir, random));
    try {
      for (let i = 1; i <= 6; i++) {
        await backUp(reopened, old.dataDir, recoveryPublicKey, random, clock.now() + i * 60_000);
      }
    } finally {
      reopened.store.close();
    }
    const kept = readdirSync(join(old.dataDir, 'hub-backups')).sort();
    expect(kept).toHaveLength(5);
    expect(kept).not.toContain(basename(taken.path));
  });

  it('a restore never writes into a data directory that holds a store', async () => {
    const { old, request } = await setup('occupied');
    await rejects(request(old.dataDir), 'backup.target-not-empty');
  });
});
