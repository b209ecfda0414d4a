import { X509Certificate } from 'node:crypto';
import { pinVerifier, tagHash } from '../../src/access/credentials.js';
import type { Schedule } from '../../src/access/schedule.js';
import { HubError } from '../../src/base/errors.js';
import type { Random } from '../../src/base/random.js';
import type { SyncAckPayload } from '../../src/contract/mqtt-hub-messages.js';
import type { DeltaData, SnapshotData, SyncPinKey } from '../../src/contract/sync-data.js';
import { Secret } from '../../src/crypto/secret.js';
import type { EncryptedKey } from '../phone/delivery.js';
import { CloudKeyIssuer, type PhoneKeys } from '../phone/issuer.js';
import { wrapForKey } from './ca.js';
import type { ReferenceCloud } from './cloud.js';

/**
 * The reference cloud's site administration: users, access groups, and credentials — PINs (the
 * digits are shown once, at issue, and only the verifier is kept), DESFire tags (the hash of the
 * credential id), digital keys (signed, sealed to the phone) — and syncing them to a hub as a
 * snapshot or as the delta since the last acknowledged sync. What a real KS cloud does, small
 * enough to read.
 */

type Row = Record<string, unknown> & { id?: string };
type Tables = {
  users: Map<string, Row>;
  groups: Map<string, Row>;
  memberships: Map<string, Row>;
  pins: Map<string, Row>;
  tags: Map<string, Row>;
  keys: Map<string, Row>;
};
const TABLES = ['users', 'groups', 'memberships', 'pins', 'tags', 'keys'] as const;
type Table = (typeof TABLES)[number];

export interface SiteAdminOptions {
  siteId: string;
  /** The site's PIN key, version 1 (a hub gets it sealed, at enrollment or in a sync; its locks from the hub). */
  pinKey: Secret;
  random: Random;
  /** Signs digital keys; a new one when absent (its publicKeyRaw is what hubs pin). */
  issuer?: CloudKeyIssuer;
}

const empty = (): Tables => ({
  users: new Map(),
  groups: new Map(),
  memberships: new Map(),
  pins: new Map(),
  tags: new Map(),
  keys: new Map(),
});

const membershipKey = (userId: string, groupId: string) => `${userId}\u0000${groupId}`;

/** A PIN re-issued under a new PIN key: the old credential stays until the overlap ends. */
export interface ReissuedPin {
  oldId: string;
  newId: string;
  userId: string;
  /** The new digits, shown once. */
  pin: string;
}

export class SiteAdmin {
  readonly siteId: string;
  readonly issuer: CloudKeyIssuer;
  #pinKey: Secret;
  #pinKeyVersion = 1;
  /** During a rotation: the previous key's version and the end of the overlap (Unix ms). */
  #overlap: { version: number; until: number } | undefined;
  /** The PIN key version each PIN's verifier was made under. */
  readonly #pinVersions = new Map<string, number>();
  /** Each hub's public key (PEM): the PIN key is sealed to it in the syncs. */
  readonly #hubKeys = new Map<string, string>();
  /** Per hub: the PIN key state (version, overlap) it acknowledged last. */
  readonly #pinKeySynced = new Map<string, string>();
  readonly #random: Random;
  #now: Tables = empty();
  /** Per hub: the content and version it acknowledged last. */
  readonly #synced = new Map<string, { version: number; tables: Tables }>();
  #version = 0;

  constructor(options: SiteAdminOptions) {
    this.siteId = options.siteId;
    this.#pinKey = options.pinKey;
    this.#random = options.random;
    this.issuer = options.issuer ?? new CloudKeyIssuer(options.random);
  }

  addUser(id: string, options: { name?: string; offline?: boolean; validUntil?: number } = {}): void {
    this.#now.users.set(id, { id, ...options });
  }

  blockUser(id: string): void {
    const u = this.#need('users', id);
    this.#now.users.set(id, { ...u, blocked: true });
  }

  addGroup(id: string, lockIds: string[], schedule?: Schedule): void {
    this.#now.groups.set(id, { id, lockIds: [...lockIds], ...(schedule ? { schedule } : {}) });
  }

  addMember(userId: string, groupId: string): void {
    this.#need('users', userId);
    this.#need('groups', groupId);
    this.#now.memberships.set(membershipKey(userId, groupId), { userId, groupId });
  }

  /** Issues a PIN: the digits are returned once and never kept; the cloud keeps only the verifier. */
  issuePin(credentialId: string, userId: string, digits = 6): string {
    this.#need('users', userId);
    let pin = '';
    for (const b of this.#random.bytes(digits)) pin += String(b % 10);
    const verifier = Buffer.from(pinVerifier(this.#pinKey, pin, this.siteId)).toString('hex');
    if ([...this.#now.pins.values()].some((p) => p.verifier === verifier))
      return this.issuePin(credentialId, userId, digits);
    this.#now.pins.set(credentialId, { id: credentialId, userId, verifier });
    this.#pinVersions.set(credentialId, this.#pinKeyVersion);
    return pin;
  }

  /** The site PIN key version now, and the end of a running overlap. */
  pinKeyState(): { version: number; overlapUntil: number | undefined } {
    return { version: this.#pinKeyVersion, overlapUntil: this.#overlap?.until };
  }

  /**
   * Registers a hub's public key (PEM, from its certificate or CSR): its syncs then carry the site
   * PIN key sealed to it, as the enrollment's secrets are (RSA-OAEP-SHA-256).
   */
  setHubKey(hubId: string, publicKeyOrCertPem: string): void {
    const pem = publicKeyOrCertPem.includes('CERTIFICATE')
      ? new X509Certificate(publicKeyOrCertPem).publicKey.export({ type: 'spki', format: 'pem' }).toString()
      : publicKeyOrCertPem;
    this.#hubKeys.set(hubId, pem);
    this.#pinKeySynced.delete(hubId);
  }

  /**
   * Rotates the site PIN key: a new random key (version + 1), sealed to each hub in its next sync.
   * The cloud keeps no digits, so every PIN is re-issued under the new key with new digits (new
   * credential id `<old id>.k<version>`); the old PINs stay in the mirror, and the previous key on
   * the locks, until `overlapUntil` (Unix ms) — then `endPinKeyOverlap()` removes them.
   * `newKey`: a given key instead of a random one (tests that search outputs for it).
   */
  rotatePinKey(overlapUntil: number, newKey?: Secret): { version: number; reissued: ReissuedPin[] } {
    if (this.#overlap) throw new HubError('cloud.admin', 'a PIN key overlap is running: end it first');
    const previous = this.#pinKeyVersion;
    this.#pinKey = newKey ?? new Secret(this.#random.bytes(32));
    this.#pinKeyVersion = previous + 1;
    this.#overlap = { version: previous, until: overlapUntil };
    const reissued: ReissuedPin[] = [];
    for (const row of [...this.#now.pins.values()]) {
      const oldId = row.id as string;
      if (this.#pinVersions.get(oldId) !== previous) continue;
      const newId = `${oldId.replace(/\.k[0-9]+$/, '')}.k${this.#pinKeyVersion}`;
      const userId = row.userId as string;
      reissued.push({ oldId, newId, userId, pin: this.issuePin(newId, userId) });
    }
    return { version: this.#pinKeyVersion, reissued };
  }

  /** Ends the overlap: the previous key's PINs leave the mirror, and the hubs drop the previous key. */
  endPinKeyOverlap(): void {
    const overlap = this.#overlap;
    if (!overlap) return;
    for (const [id, version] of [...this.#pinVersions]) {
      if (version <= overlap.version) {
        this.#now.pins.delete(id);
        this.#pinVersions.delete(id);
      }
    }
    this.#overlap = undefined;
  }

  /** The PIN key for a hub's sync (undefined when the hub's key is unknown, or it has this state already). */
  #pinKeyFor(hubId: string, always: boolean): { data: SyncPinKey; state: string } | undefined {
    const pem = this.#hubKeys.get(hubId);
    if (!pem) return undefined;
    const state = JSON.stringify([this.#pinKeyVersion, this.#overlap?.until ?? null]);
    if (!always && this.#pinKeySynced.get(hubId) === state) return undefined;
    const data: SyncPinKey = {
      version: this.#pinKeyVersion,
      key: wrapForKey(pem, this.#pinKey.reveal()),
      ...(this.#overlap ? { overlapUntil: this.#overlap.until } : {}),
    };
    return { data, state };
  }

  /** Enrols a DESFire tag by its credential id (read by the enrolment desk); the cloud keeps its hash. */
  issueTag(credentialId: string, userId: string, tagUid: Uint8Array): void {
    this.#need('users', userId);
    const hash = Buffer.from(tagHash(tagUid, this.siteId)).toString('hex');
    this.#now.tags.set(credentialId, { id: credentialId, userId, hash });
  }

  /** Issues a digital key to a phone: signed by the cloud, sealed so only that phone can read it. */
  issueKey(
    keyId: string,
    userId: string,
    phone: PhoneKeys,
    scope: { lockIds: string[] } | { groupIds: string[] },
    validity: { validFrom: number; validUntil: number },
  ): Promise<EncryptedKey> {
    this.#need('users', userId);
    this.#now.keys.set(keyId, { id: keyId, userId, expiresAt: validity.validUntil });
    return this.issuer.issueTo({ keyId, userId, ...scope, ...validity }, phone);
  }

  revokeTag(credentialId: string): void {
    this.#need('tags', credentialId);
    this.#now.tags.delete(credentialId);
  }

  revokePin(credentialId: string): void {
    this.#need('pins', credentialId);
    this.#now.pins.delete(credentialId);
    this.#pinVersions.delete(credentialId);
  }

  revokeKey(keyId: string): void {
    const k = this.#need('keys', keyId);
    this.#now.keys.set(keyId, { ...k, revoked: true });
  }

  /** The whole site, in the sync format. */
  snapshotData(): SnapshotData {
    return Object.fromEntries(TABLES.map((t) => [t, [...this.#now[t].values()]])) as unknown as SnapshotData;
  }

  /**
   * Brings a hub up to date: a delta from what it acknowledged last, or a snapshot when it has
   * acknowledged nothing (or refused a delta: `sync.base-mismatch`). Resolves with its answer.
   */
  async sync(
    cloud: ReferenceCloud,
    hubId: string,
    opts: { timeoutMs?: number; snapshot?: boolean } = {},
  ): Promise<SyncAckPayload> {
    const last = this.#synced.get(hubId);
    const version = ++this.#version;
    const pinKey = this.#pinKeyFor(hubId, !last || opts.snapshot === true);
    const data = {
      ...(last && !opts.snapshot ? this.#delta(last.tables) : this.snapshotData()),
      ...(pinKey ? { pinKey: pinKey.data } : {}),
    };
    const ack = await cloud.sync(
      hubId,
      last && !opts.snapshot
        ? { kind: 'delta', version, baseVersion: last.version, data: data as unknown as Record<string, unknown> }
        : { kind: 'snapshot', version, data: data as unknown as Record<string, unknown> },
      { timeoutMs: opts.timeoutMs ?? 10_000 },
    );
    if (ack.ok) {
      this.#synced.set(hubId, { version, tables: this.#copy() });
      if (pinKey) this.#pinKeySynced.set(hubId, pinKey.state);
    } else if (ack.error?.code === 'sync.base-mismatch') this.#synced.delete(hubId);
    return ack;
  }

  /**
   * Answer hubs' `sync/request` (a `syncNow`, or a gap the hub found): a delta from the version
   * the hub names when it is the one it acknowledged last (its content is known here), else a
   * snapshot. Each answer is recorded in `served`. Returns the way to stop serving.
   */
  serve(cloud: ReferenceCloud, opts: { timeoutMs?: number } = {}): () => void {
    return cloud.onSyncRequest((hubId, r) => {
      const last = this.#synced.get(hubId);
      const snapshot = last?.version !== r.version;
      void this.sync(cloud, hubId, { snapshot, timeoutMs: opts.timeoutMs ?? 10_000 }).then(
        (ack) =>
          this.served.push({
            hubId,
            requestId: r.requestId,
            from: r.version,
            kind: snapshot ? 'snapshot' : 'delta',
            ack,
          }),
        () => undefined,
      );
    });
  }

  /** The `sync/request`s answered by `serve`, in order, with the hub's answer to each sync. */
  readonly served: {
    hubId: string;
    requestId: string;
    from: number;
    kind: 'snapshot' | 'delta';
    ack: SyncAckPayload;
  }[] = [];

  /**
   * Play a sync lost on the way (a broker that dropped it, a session that expired while the hub
   * was away): the site's version advances and nothing reaches the hub, whose acknowledged version
   * stays where it was. Returns the lost version.
   */
  loseSync(): number {
    return ++this.#version;
  }

  /** The version the hub acknowledged last (0: none). */
  syncedVersion(hubId: string): number {
    return this.#synced.get(hubId)?.version ?? 0;
  }

  #delta(base: Tables): DeltaData {
    const upsert: Record<string, Row[]> = {};
    const remove: Record<string, unknown[]> = {};
    for (const t of TABLES) {
      const changed = [...this.#now[t].entries()]
        .filter(([k, row]) => JSON.stringify(base[t].get(k)) !== JSON.stringify(row))
        .map(([, row]) => row);
      const gone = [...base[t].entries()].filter(([k]) => !this.#now[t].has(k)).map(([, row]) => row);
      if (changed.length > 0) upsert[t] = changed;
      if (gone.length > 0) {
        remove[t] =
          t === 'memberships' ? gone.map((r) => ({ userId: r.userId, groupId: r.groupId })) : gone.map((r) => r.id);
      }
    }
    return {
      ...(Object.keys(upsert).length > 0 ? { upsert } : {}),
      ...(Object.keys(remove).length > 0 ? { delete: remove } : {}),
    } as unknown as DeltaData;
  }

  #copy(): Tables {
    const out = empty();
    for (const t of TABLES) for (const [k, v] of this.#now[t]) out[t].set(k, structuredClone(v));
    return out;
  }

  #need(table: Table, id: string): Row {
    const row = this.#now[table].get(id);
    if (!row) throw new HubError('cloud.admin', `the site has no ${table.slice(0, -1)} ${id}`);
    return row;
  }
}
