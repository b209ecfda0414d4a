import { verify, X509Certificate } from 'node:crypto';
import { approveRestore } from '../../src/backup/approval.js';
import { parseRequest, requestSigningText } from '../../src/backup/documents.js';
import { b64u, generateHpkeKeyPair, type HpkeKeyPair, keyId } from '../../src/backup/envelope.js';
import type { Clock } from '../../src/base/clock.js';
import { HubError } from '../../src/base/errors.js';
import type { Random } from '../../src/base/random.js';
import { checkHubCertificate } from './hub-certificate.js';

/**
 * The cloud's side of a hub replacement (docs/operations.md, "Hub replacement"): it holds the
 * recovery key pair every hub backup is sealed to, approves a restore request by sealing the
 * backup's content key again to the new hub's restore key, and revokes the old hub in the same act.
 * A revoked hub stays revoked: its messages are refused (ReferenceCloud) and no second replacement
 * of it to another hub is approved. What a real backend adds (who may ask, for which site, a
 * person's confirmation) is its policy; the checks of the documents are src/backup/approval.ts.
 */

export interface Revocation {
  hubId: string;
  replacedBy: string;
  backupId: string;
  revokedAt: string;
}

export class CloudRecovery {
  readonly #clock: Clock;
  readonly #random: Random;
  #keys: HpkeKeyPair | undefined;
  readonly #revoked = new Map<string, Revocation>();
  readonly #refusals: { code: string; message: string }[] = [];
  #hubCa: X509Certificate | undefined;

  constructor(clock: Clock, random: Random) {
    this.#clock = clock;
    this.#random = random;
  }

  /** Make (once) the recovery key pair; returns the public key for the hubs' backup.recoveryPublicKey. */
  async enable(keys?: HpkeKeyPair): Promise<string> {
    this.#keys ??= keys ?? (await generateHpkeKeyPair(this.#random));
    return b64u(this.#keys.publicKey);
  }

  /**
   * Require every restore request to be signed by the new hub's own certificate, issued by this CA
   * (the hubs' CA: the cloud's own, or the factory's) with CN = the new hub id: only a provisioned
   * hub can then ask to take a site over.
   */
  requireHubIdentity(caPem: string | Buffer): void {
    this.#hubCa = new X509Certificate(caPem);
  }

  get publicKey(): string | undefined {
    return this.#keys && b64u(this.#keys.publicKey);
  }

  get keyId(): string | undefined {
    return this.#keys && keyId(this.#keys.publicKey);
  }

  /**
   * Approve a restore request (the text the new hub wrote): the approval's text, and the
   * revocation it made. A refusal is thrown (and kept in `refusals()`).
   */
  async approve(requestText: string): Promise<{ approvalText: string; revocation: Revocation }> {
    try {
      if (!this.#keys) throw new HubError('backup.no-recovery-key', 'the cloud has no recovery key (enable() first)');
      if (this.#hubCa) this.#checkIdentity(requestText, this.#hubCa);
      const r = await approveRestore(requestText, this.#keys, { now: this.#clock.now(), random: this.#random });
      const { oldHubId, newHubId, backupId } = r.terms;
      const before = this.#revoked.get(oldHubId);
      if (before && before.replacedBy !== newHubId) {
        throw new HubError('backup.hub-revoked', `hub ${oldHubId} was already replaced by ${before.replacedBy}`);
      }
      if (this.#revoked.has(newHubId)) {
        throw new HubError('backup.hub-revoked', `hub ${newHubId} is revoked: it cannot take over another hub`);
      }
      const revocation = before ?? { hubId: oldHubId, replacedBy: newHubId, backupId, revokedAt: r.terms.approvedAt };
      this.#revoked.set(oldHubId, revocation);
      return { approvalText: `${JSON.stringify(r.approval, null, 2)}\n`, revocation };
    } catch (e) {
      const err = e instanceof HubError ? e : new HubError('backup.malformed', (e as Error).message);
      this.#refusals.push({ code: err.code, message: err.message });
      throw err;
    }
  }

  #checkIdentity(requestText: string, ca: X509Certificate): void {
    const { request } = parseRequest(requestText, 'the restore request');
    const refuse = (why: string) =>
      new HubError('backup.request-identity', `the restore request of ${request.newHubId} is refused: ${why}`);
    if (!request.identity) throw refuse("it is not signed by the new hub's certificate");
    const checked = checkHubCertificate(request.identity.certificate, request.newHubId, [ca], this.#clock.now());
    if ('refused' in checked) throw refuse(checked.refused.replace(/^the certificate/, 'its certificate'));
    const { cert } = checked;
    const signed = verify(
      'sha256',
      Buffer.from(requestSigningText(request), 'utf8'),
      cert.publicKey,
      Buffer.from(request.identity.signature, 'base64url'),
    );
    if (!signed) throw refuse("its signature does not verify with the certificate's key");
  }

  isRevoked(hubId: string): Revocation | undefined {
    return this.#revoked.get(hubId);
  }

  revocations(): Revocation[] {
    return [...this.#revoked.values()];
  }

  refusals(): readonly { code: string; message: string }[] {
    return this.#refusals;
  }
}
