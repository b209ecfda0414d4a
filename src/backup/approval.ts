import { HubError } from '../base/errors.js';
import type { Random } from '../base/random.js';
import type { Secret } from '../crypto/secret.js';
import {
  APPROVAL_FORMAT,
  type ApprovalTerms,
  type BackupFile,
  type BackupHeader,
  DOC_VERSION,
  envelopeDigest,
  parseRequest,
  type RestoreApproval,
} from './documents.js';
import { APPROVAL_INFO, BACKUP_INFO, b64u, fromB64u, type HpkeKeyPair, keyId, openWith, sealTo } from './envelope.js';

/**
 * The approval of a restore, both sides. The cloud (holder of the recovery private key) opens the
 * backup's content key and seals it again to the restore key the new hub made, in terms that name
 * the backup, the old hub (whose certificate it revokes in the same act), the new hub and its
 * restore key; the hub opens it only if every term is its own. The cloud's policy (who may ask,
 * for which site) is the cloud's: `approveRestore` checks only what the documents prove.
 */

export interface ApprovalResult {
  approval: RestoreApproval;
  terms: ApprovalTerms;
  header: BackupHeader;
}

/** The cloud's side: approve a request (text as received) with the recovery key pair. */
export async function approveRestore(
  requestText: string,
  recovery: HpkeKeyPair,
  opts: { now: number; random: Random },
): Promise<ApprovalResult> {
  const { request, header, restorePublicKey } = parseRequest(requestText, 'the restore request');
  if (header.recoveryKeyId !== keyId(recovery.publicKey)) {
    throw new HubError(
      'backup.recovery-key-mismatch',
      `backup ${header.backupId} is sealed to recovery key ${header.recoveryKeyId}, not to this cloud's ${keyId(recovery.publicKey)}`,
    );
  }
  if (request.newHubId === header.hubId) {
    throw new HubError('backup.same-hub', `the restore request names ${header.hubId} as both the old and the new hub`, {
      hint: 'a replacement hub has its own certificate (its own hub id); the old one is revoked',
    });
  }
  const contentKey = await openWith(
    recovery.privateKey,
    BACKUP_INFO,
    request.header,
    fromB64u(request.enc, 32) as Uint8Array,
    fromB64u(request.key, 48) as Uint8Array,
  );
  if (!contentKey) {
    throw new HubError('backup.open', `backup ${header.backupId} does not open with the recovery key`, {
      hint: 'its header or key envelope was altered, or it was sealed to another recovery key',
    });
  }
  try {
    const terms: ApprovalTerms = {
      backupId: header.backupId,
      envelopeDigest: envelopeDigest(request),
      oldHubId: header.hubId,
      newHubId: request.newHubId,
      restoreKeyId: keyId(restorePublicKey),
      revokedHubId: header.hubId,
      approvedAt: new Date(opts.now).toISOString(),
    };
    const termsText = JSON.stringify(terms);
    const sealed = await sealTo(restorePublicKey, APPROVAL_INFO, termsText, contentKey, opts.random);
    return {
      approval: {
        format: APPROVAL_FORMAT,
        v: DOC_VERSION,
        terms: termsText,
        enc: b64u(sealed.enc),
        key: b64u(sealed.ct),
      },
      terms,
      header,
    };
  } finally {
    contentKey.wipe();
  }
}

/**
 * The hub's side: the content key from an approval, once every term is checked against this
 * backup, this hub and its restore key. Each mismatch is refused by name; terms altered after the
 * cloud sealed them fail to open.
 */
export async function contentKeyFromApproval(
  a: { approval: RestoreApproval; terms: ApprovalTerms },
  backup: { file: BackupFile; header: BackupHeader },
  me: { hubId: string; restoreKey: HpkeKeyPair },
): Promise<Secret> {
  const { terms } = a;
  const refuse = (why: string, hint: string) =>
    new HubError('backup.approval-mismatch', `the approval does not fit: ${why}`, { hint });
  if (terms.backupId !== backup.header.backupId || terms.envelopeDigest !== envelopeDigest(backup.file)) {
    throw refuse(
      `it approves backup ${terms.backupId}, this is backup ${backup.header.backupId}`,
      'give the approval the cloud issued for this backup file',
    );
  }
  if (terms.oldHubId !== backup.header.hubId || terms.revokedHubId !== backup.header.hubId) {
    const revokesOther = terms.oldHubId === backup.header.hubId;
    throw refuse(
      `it names hub ${revokesOther ? terms.revokedHubId : terms.oldHubId} as the old hub${revokesOther ? ' (the one it revokes)' : ''}, the backup is of ${backup.header.hubId}`,
      'ask the cloud again',
    );
  }
  if (terms.newHubId !== me.hubId) {
    throw refuse(
      `it is for hub ${terms.newHubId}, this hub is ${me.hubId}`,
      'run the restore on the hub the approval names',
    );
  }
  if (terms.restoreKeyId !== keyId(me.restoreKey.publicKey)) {
    throw refuse(
      `it is sealed to restore key ${terms.restoreKeyId}, this hub's request has ${keyId(me.restoreKey.publicKey)}`,
      "the approval answers another request: send this hub's request (`iqhub hub-restore FILE` wrote it) to the cloud",
    );
  }
  const key = await openWith(
    me.restoreKey.privateKey,
    APPROVAL_INFO,
    a.approval.terms,
    fromB64u(a.approval.enc, 32) as Uint8Array,
    fromB64u(a.approval.key, 48) as Uint8Array,
  );
  if (!key) {
    throw new HubError('backup.approval-open', "the approval does not open with this hub's restore key", {
      hint: 'it was altered after the cloud issued it, or made for another request: ask the cloud for a new approval',
    });
  }
  return key;
}
