import { HubError } from '../base/errors.js';
import { ID_PATTERN } from '../contract/mqtt-topics.js';
import { b64u, fromB64u, sha256Hex } from './envelope.js';

/**
 * The three documents of a hub replacement, as files (JSON, nothing secret in clear), each read
 * with precise refusals: the backup (`iqhub hub-backup`), the restore request the new hub makes
 * (`iqhub hub-restore FILE`), the cloud's approval (`iqhub hub-restore FILE --approval APPROVAL`).
 * A header or an approval is kept as the exact string that was sealed over (associated data), so
 * what is checked is what was authenticated, byte for byte.
 */

export const BACKUP_FORMAT = 'iq-hub-backup';
export const REQUEST_FORMAT = 'iq-hub-restore-request';
export const APPROVAL_FORMAT = 'iq-hub-restore-approval';
export const DOC_VERSION = 1;
/** A store of a large site is a few MB; this bounds what a restore reads into memory. */
export const MAX_BACKUP_BYTES = 512 * 1024 * 1024;
const MAX_HEADER_CHARS = 4096;
const hubIdRe = new RegExp(ID_PATTERN);

/** What the clear header of a backup says (authenticated, not secret). */
export interface BackupHeader {
  backupId: string;
  hubId: string;
  /** ISO 8601 UTC. */
  createdAt: string;
  /** keyId() of the recovery public key it is sealed to. */
  recoveryKeyId: string;
  /** The hub's static link public key (hex): what the locks are bound to; null before any radio ran. */
  linkPublicKey: string | null;
  locks: number;
  schemaVersion: number;
  zigbee: boolean;
  hubVersion: string;
}

export interface BackupFile {
  format: typeof BACKUP_FORMAT;
  v: typeof DOC_VERSION;
  header: string;
  /** HPKE encapsulated key and ciphertext of the content key. */
  enc: string;
  key: string;
  /** The sealed body (base64url). */
  body: string;
}

export interface RestoreRequest {
  format: typeof REQUEST_FORMAT;
  v: typeof DOC_VERSION;
  /** The backup's header and key envelope, copied: the cloud needs nothing else of the file. */
  header: string;
  enc: string;
  key: string;
  /** The hub that asks: its id (the CN of its certificate) and the public key it made for this restore. */
  newHubId: string;
  restorePublicKey: string;
  createdAt: string;
  /**
   * The new hub's proof of its mTLS identity, when it has one: its certificate (PEM, CN = newHubId)
   * and a signature by its private key over requestSigningText(). A cloud that trusts the CA of
   * its hubs requires it (sim/cloud/recovery.ts).
   */
  identity?: { certificate: string; signature: string };
}

/** What the new hub signs with its identity key: the request's every term. */
export function requestSigningText(r: RestoreRequest): string {
  return ['iq-hub restore request v1', envelopeDigest(r), r.newHubId, r.restorePublicKey, r.createdAt].join('\n');
}

/** What the cloud approves (authenticated as the approval key's associated data). */
export interface ApprovalTerms {
  backupId: string;
  /** envelopeDigest() of the backup: its header and key envelope. */
  envelopeDigest: string;
  oldHubId: string;
  newHubId: string;
  restoreKeyId: string;
  /** The hub whose certificate the cloud revoked in this approval (the old hub). */
  revokedHubId: string;
  approvedAt: string;
}

export interface RestoreApproval {
  format: typeof APPROVAL_FORMAT;
  v: typeof DOC_VERSION;
  terms: string;
  enc: string;
  key: string;
}

/** Binds an approval to one backup: its header and the sealed content key. */
export function envelopeDigest(d: { header: string; enc: string; key: string }): string {
  return sha256Hex(d.header, '\n', d.enc, '\n', d.key);
}

function bad(what: string, why: string, hint: string): HubError {
  return new HubError('backup.malformed', `${what} ${why}`, { hint });
}

function parseJson(text: string, what: string, hint: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw bad(what, 'is not JSON', hint);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(what, 'is not a JSON object', hint);
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, k: string, what: string, hint: string, max = 256): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw bad(what, `has no valid "${k}"`, hint);
  return v;
}

function hubId(o: Record<string, unknown>, k: string, what: string, hint: string): string {
  const v = str(o, k, what, hint, 64);
  if (!hubIdRe.test(v)) throw bad(what, `has an invalid hub id in "${k}"`, hint);
  return v;
}

function envelope(o: Record<string, unknown>, what: string, hint: string): { enc: string; key: string } {
  if (!fromB64u(o.enc, 32) || !fromB64u(o.key, 48)) throw bad(what, 'has a malformed key envelope (enc, key)', hint);
  return { enc: o.enc as string, key: o.key as string };
}

function checkFormat(o: Record<string, unknown>, format: string, what: string, hint: string): void {
  if (o.format !== format)
    throw bad(what, `is not a ${format} document (format: ${String(o.format).slice(0, 40)})`, hint);
  if (o.v !== DOC_VERSION)
    throw bad(what, `has version ${String(o.v).slice(0, 10)}; this hub reads version ${DOC_VERSION}`, hint);
}

export function parseHeader(text: string, what: string): BackupHeader {
  const hint = 'use the backup file exactly as `iqhub hub-backup` wrote it';
  if (text.length > MAX_HEADER_CHARS) throw bad(what, 'has a header that is too long', hint);
  const h = parseJson(text, `${what}'s header`, hint);
  const out: BackupHeader = {
    backupId: str(h, 'backupId', what, hint, 128),
    hubId: hubId(h, 'hubId', what, hint),
    createdAt: str(h, 'createdAt', what, hint, 40),
    recoveryKeyId: str(h, 'recoveryKeyId', what, hint, 16),
    linkPublicKey: h.linkPublicKey === null ? null : str(h, 'linkPublicKey', what, hint, 64),
    locks: h.locks as number,
    schemaVersion: h.schemaVersion as number,
    zigbee: h.zigbee as boolean,
    hubVersion: str(h, 'hubVersion', what, hint, 40),
  };
  if (!/^[A-Za-z0-9._:-]+$/.test(out.backupId)) throw bad(what, 'has an invalid backupId', hint);
  if (
    !/^[0-9a-f]{16}$/.test(out.recoveryKeyId) ||
    (out.linkPublicKey !== null && !/^[0-9a-f]{64}$/.test(out.linkPublicKey))
  ) {
    throw bad(what, 'has an invalid key id or link public key', hint);
  }
  if (!Number.isSafeInteger(out.locks) || out.locks < 0) throw bad(what, 'has an invalid lock count', hint);
  if (!Number.isSafeInteger(out.schemaVersion) || out.schemaVersion < 1)
    throw bad(what, 'has an invalid schema version', hint);
  if (typeof out.zigbee !== 'boolean') throw bad(what, 'has an invalid zigbee flag', hint);
  return out;
}

export function parseBackupFile(
  text: string,
  path: string,
): { file: BackupFile; header: BackupHeader; body: Uint8Array } {
  const what = `the backup ${path}`;
  const hint = 'use the backup file exactly as `iqhub hub-backup` wrote it (a copy damaged in transit fails here)';
  const o = parseJson(text, what, hint);
  checkFormat(o, BACKUP_FORMAT, what, hint);
  const header = parseHeader(str(o, 'header', what, hint, MAX_HEADER_CHARS), what);
  const { enc, key } = envelope(o, what, hint);
  const body = fromB64u(o.body, undefined, Math.ceil((MAX_BACKUP_BYTES * 4) / 3));
  if (!body || body.length < 28) throw bad(what, 'has a malformed body', hint);
  return {
    file: { format: BACKUP_FORMAT, v: DOC_VERSION, header: o.header as string, enc, key, body: o.body as string },
    header,
    body,
  };
}

export function parseRequest(
  text: string,
  what: string,
): { request: RestoreRequest; header: BackupHeader; restorePublicKey: Uint8Array } {
  const hint = 'send the request exactly as `iqhub hub-restore` wrote it';
  const o = parseJson(text, what, hint);
  checkFormat(o, REQUEST_FORMAT, what, hint);
  const header = parseHeader(str(o, 'header', what, hint, MAX_HEADER_CHARS), what);
  const { enc, key } = envelope(o, what, hint);
  const restorePublicKey = fromB64u(o.restorePublicKey, 32);
  if (!restorePublicKey) throw bad(what, 'has no valid restorePublicKey', hint);
  const request: RestoreRequest = {
    format: REQUEST_FORMAT,
    v: DOC_VERSION,
    header: o.header as string,
    enc,
    key,
    newHubId: hubId(o, 'newHubId', what, hint),
    restorePublicKey: b64u(restorePublicKey),
    createdAt: str(o, 'createdAt', what, hint, 40),
  };
  if (o.identity !== undefined) {
    const id = (typeof o.identity === 'object' && o.identity !== null ? o.identity : {}) as Record<string, unknown>;
    request.identity = {
      certificate: str(id, 'certificate', `${what}'s identity`, hint, 16_384),
      signature: str(id, 'signature', `${what}'s identity`, hint, 2_048),
    };
  }
  return { request, header, restorePublicKey };
}

export function parseApproval(text: string, path: string): { approval: RestoreApproval; terms: ApprovalTerms } {
  const what = `the approval ${path}`;
  const hint = "use the approval exactly as the cloud issued it for this hub's request";
  const o = parseJson(text, what, hint);
  checkFormat(o, APPROVAL_FORMAT, what, hint);
  const termsText = str(o, 'terms', what, hint, MAX_HEADER_CHARS);
  const t = parseJson(termsText, `${what}'s terms`, hint);
  const terms: ApprovalTerms = {
    backupId: str(t, 'backupId', what, hint, 128),
    envelopeDigest: str(t, 'envelopeDigest', what, hint, 64),
    oldHubId: hubId(t, 'oldHubId', what, hint),
    newHubId: hubId(t, 'newHubId', what, hint),
    restoreKeyId: str(t, 'restoreKeyId', what, hint, 16),
    revokedHubId: hubId(t, 'revokedHubId', what, hint),
    approvedAt: str(t, 'approvedAt', what, hint, 40),
  };
  const { enc, key } = envelope(o, what, hint);
  return { approval: { format: APPROVAL_FORMAT, v: DOC_VERSION, terms: termsText, enc, key }, terms };
}
