import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { HubError } from '../src/base/errors.js';
import { readPrivateFile } from '../src/crypto/private-file.js';
import { hubIdOfCertificate } from './hub-id.js';
import { identityPaths } from './identity-files.js';
import { loadIdentity } from './identity-load.js';

/**
 * The files the MQTT uplink connects with — the CA it trusts, the hub's certificate and its key —
 * loaded and checked together, from the config or from the identity `iqhub provision` installed.
 * The daemon loads them at start (a bad file stops it with the fix), and `iqhub diag` runs the
 * same checks without a daemon.
 */

/** The uplink's file settings (uplink.caFile, certFile, keyFile; all null: the installed identity). */
export interface UplinkFileConfig {
  caFile: string | null;
  certFile: string | null;
  keyFile: string | null;
}

export type UplinkFiles = ReturnType<typeof loadUplinkFiles>;

export interface UplinkIdentity {
  hubId: string;
  notBefore: string;
  notAfter: string;
  fingerprint: string;
}

/**
 * Read and check the uplink's certificate files: the CA, the hub certificate (its CN is the hub
 * id) and the private key (mode 0600, and it must belong to the certificate). With none of the
 * three files configured, the identity installed in `<dataDir>/identity` is used (same checks).
 * Every problem is a HubError naming the file and the fix; key material never appears in a message.
 */
export function loadUplinkFiles(
  config: UplinkFileConfig,
  dataDir: string,
): {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  identity: UplinkIdentity;
  /** Where each came from: what an error names when the broker or the hub refuses one (src/uplink/tls-errors.ts). */
  paths: { ca: string; cert: string; key: string };
} {
  const { caFile, certFile, keyFile } = config;
  if (caFile === null && certFile === null && keyFile === null) {
    const installed = loadIdentity(dataDir);
    if (!installed) {
      throw new HubError(
        'uplink.no-identity',
        `the uplink is enabled but no hub certificate is installed in ${identityPaths(dataDir).dir}`,
        {
          hint: 'run `iqhub provision init`, have the CSR signed and `iqhub provision install --cert FILE --ca FILE` (or enroll with a claim certificate); or set uplink.caFile, uplink.certFile and uplink.keyFile',
        },
      );
    }
    const { ca, cert, key, hubId, notBefore, notAfter, fingerprint, paths } = installed;
    return {
      ca,
      cert,
      key,
      identity: { hubId, notBefore, notAfter, fingerprint },
      paths: { ca: paths.ca, cert: paths.cert, key: paths.key },
    };
  }
  if (!caFile || !certFile || !keyFile) {
    throw new HubError(
      'config.uplink',
      'uplink.caFile, uplink.certFile and uplink.keyFile are set together or not at all (null: the installed identity)',
      { hint: 'set all three, or none of them to use the identity installed with `iqhub provision`' },
    );
  }
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new HubError(
        'uplink.files',
        `cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
        {
          hint: 'check uplink.* in the config and the file permissions (iqhub pki dev makes a development set)',
        },
      );
    }
  };
  const ca = read(caFile, 'CA certificate');
  const cert = read(certFile, 'hub certificate');
  const key = readPrivateFile(keyFile, {
    codePrefix: 'uplink.key',
    what: 'uplink private key',
    checkMode: true,
    maxBytes: 16384,
  });
  if (!key) throw new HubError('uplink.key.missing', `the uplink private key ${keyFile} does not exist`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
    new X509Certificate(ca);
  } catch {
    throw new HubError('uplink.files', `${certFile} or ${caFile} is not a PEM certificate`);
  }
  let matches = false;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new HubError('uplink.key.invalid', `the uplink private key ${keyFile} is not a PEM private key`);
  }
  if (!matches) {
    throw new HubError(
      'uplink.key.mismatch',
      `the private key ${keyFile} does not belong to the certificate ${certFile}`,
      {
        hint: 'install the key that was generated with this certificate, or issue a new certificate',
      },
    );
  }
  const cn = hubIdOfCertificate(x509, 'uplink');
  return {
    ca,
    cert,
    key,
    paths: { ca: caFile, cert: certFile, key: keyFile },
    identity: {
      hubId: cn,
      notBefore: new Date(x509.validFrom).toISOString(),
      notAfter: new Date(x509.validTo).toISOString(),
      fingerprint: x509.fingerprint256,
    },
  };
}
