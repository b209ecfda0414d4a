import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import type forgeModule from 'node-forge';
import { fsyncDir, writeFileAtomic } from '../src/base/atomic-file.js';
import { HubError } from '../src/base/errors.js';
import type { Pem } from './certificate.js';
import { validateHubId } from './hub-id.js';
import { type IdentityPaths, identityPaths, prepareDir, readKey, settleInterruptedInstall } from './identity-files.js';

/**
 * node-forge (CSRs) is loaded on first use, not with this module: the daemon imports this file
 * for a certificate rotation or an enrollment, which happen a few times a year, and forge is
 * ~2 MB of heap for the daemon's whole life once loaded.
 */
let loaded: typeof forgeModule | undefined;
function forgeLib(): typeof forgeModule {
  loaded ??= createRequire(import.meta.url)('node-forge') as typeof forgeModule;
  return loaded;
}

/**
 * The hub's key is made here, on the hub, and leaves it only as the public half in a CSR: on disk
 * for `iqhub provision init` and `provision csr` (a factory CA or claim enrollment), or in memory
 * for a rotation, whose key is written only with its certificate.
 */

function newKeyPem(): string {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  }).privateKey;
}

/** A CSR for `keyPem` (node-forge, SHA-256): CN = hub id, SAN URI urn:iq-hub:hub:<id>, clientAuth requested. */
export function csrForKey(keyPem: Pem, hubId: string): string {
  const forge = forgeLib();
  validateHubId(hubId);
  const priv = forge.pki.privateKeyFromPem(String(keyPem)) as forgeModule.pki.rsa.PrivateKey;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(priv.n, priv.e);
  csr.setSubject([
    { shortName: 'CN', value: hubId, valueTagClass: forge.asn1.Type.UTF8 },
  ] as unknown as forgeModule.pki.CertificateField[]);
  csr.setAttributes([
    {
      name: 'extensionRequest',
      extensions: [
        { name: 'subjectAltName', altNames: [{ type: 6, value: `urn:iq-hub:hub:${hubId}` }] },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', clientAuth: true },
      ],
    },
  ] as unknown as forgeModule.pki.CertificateField[]);
  csr.sign(priv, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/** A new key and its CSR, in memory only (certificate rotation): nothing is written. */
export function makeKeyAndCsr(hubId: string): { keyPem: string; csrPem: string } {
  validateHubId(hubId);
  const keyPem = newKeyPem();
  return { keyPem, csrPem: csrForKey(keyPem, hubId) };
}

/**
 * Make the hub's key (unless it has one) and write its CSR. An existing key is not replaced
 * without `force`; with `force`, the new key makes an installed certificate useless, so
 * that certificate is removed (the uplink then says no identity is installed).
 */
export function initIdentity(o: {
  dataDir: string;
  hubId: string;
  force?: boolean;
  /** Told each step as it starts (the RSA key takes seconds): `iqhub provision init` prints them. */
  progress?: (step: string) => void;
}): {
  csrPem: string;
  hubId: string;
  paths: IdentityPaths;
  replacedKey: boolean;
  removedCertificate: boolean;
} {
  validateHubId(o.hubId);
  const paths = prepareDir(o.dataDir);
  settleInterruptedInstall(paths);
  const hadKey = existsSync(paths.key);
  if (hadKey && !o.force) {
    throw new HubError(
      'provision.key-exists',
      `this hub already has a private key (${paths.key}); it was not replaced`,
      {
        hint: '`iqhub provision csr` prints the CSR for it again; `--force` makes a new key (the installed certificate, if any, is removed and a new one must be issued)',
      },
    );
  }
  const step = o.progress ?? (() => {});
  step("making the hub's private key (RSA-2048)");
  const keyPem = newKeyPem();
  step(`making the CSR (CN=${o.hubId})`);
  const csrPem = csrForKey(keyPem, o.hubId);
  // A certificate for the old key must not sit beside the new key: remove it first.
  const removedCertificate = hadKey && existsSync(paths.cert);
  if (removedCertificate) {
    unlinkSync(paths.cert);
    fsyncDir(paths.dir);
  }
  step(`writing the key and the CSR to ${paths.dir}`);
  writeFileAtomic(paths.key, keyPem, 0o600);
  writeFileAtomic(paths.csr, csrPem, 0o644);
  return { csrPem, hubId: o.hubId, paths, replacedKey: hadKey, removedCertificate };
}

/**
 * The CSR for the installed key (hub.csr). If hub.csr is missing or belongs to another key (an
 * install cut short), it is made again from the key, for `hubId` or the old CSR's CN.
 */
export function readCsr(dataDir: string, hubId?: string): { csrPem: string; hubId: string; path: string } {
  const forge = forgeLib();
  const paths = identityPaths(dataDir);
  const keyPem = readKey(paths);
  if (!keyPem) {
    throw new HubError('provision.no-key', `this hub has no private key yet (${paths.key} does not exist)`, {
      hint: 'run `iqhub provision init` first: it makes the key and its CSR',
    });
  }
  let csr: forgeModule.pki.CertificateSigningRequest | undefined;
  let oldPem = '';
  try {
    oldPem = readFileSync(paths.csr, 'utf8');
    csr = forge.pki.certificationRequestFromPem(oldPem);
  } catch {
    csr = undefined;
  }
  const csrCn = csr ? String(csr.subject.getField('CN')?.value ?? '') : '';
  const id = hubId ?? csrCn;
  if (!id) {
    throw new HubError('provision.no-hub-id', `${paths.csr} is missing or unreadable and no hub id was given`, {
      hint: 'pass --hub-id ID (or set provisioning.hubId in the config)',
    });
  }
  const sameKey =
    csr?.publicKey &&
    spkiOf(createPublicKey(forge.pki.publicKeyToPem(csr.publicKey))).equals(spkiOf(createPrivateKey(keyPem)));
  if (csr && sameKey && csrCn === id) return { csrPem: oldPem, hubId: id, path: paths.csr };
  const csrPem = csrForKey(keyPem, id);
  writeFileAtomic(paths.csr, csrPem, 0o644);
  return { csrPem, hubId: id, path: paths.csr };
}

/** The CN of hub.csr, if there is a readable one (the hub id chosen at `provision init`). */
export function csrHubId(dataDir: string): string | undefined {
  const forge = forgeLib();
  try {
    const csr = forge.pki.certificationRequestFromPem(readFileSync(identityPaths(dataDir).csr, 'utf8'));
    const cn = csr.subject.getField('CN')?.value;
    return typeof cn === 'string' && cn ? cn : undefined;
  } catch {
    return undefined;
  }
}

const spkiOf = (k: KeyObject): Buffer =>
  (k.type === 'private' ? createPublicKey(k) : k).export({ type: 'spki', format: 'der' });
