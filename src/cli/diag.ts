import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateInfo, parseCertificates } from '../../provisioning/certificate.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import { loadIdentity } from '../../provisioning/identity-load.js';
import { loadUplinkFiles } from '../../provisioning/uplink-files.js';
import { describeError, HubError } from '../base/errors.js';
import { type LoadedConfig, loadConfig } from '../config/load.js';
import type { HubConfig } from '../config/schema.js';
import { type CertSummary, type DiagCheck, type DiagReport, SOCKET_NAME } from '../contract/control-socket.js';
import { callDaemon } from '../control-socket/socket-client.js';
import { certificateCheck, check, clockCheck, diskCheck, report, storeFileCheck } from '../diag/checks.js';

/**
 * `iqhub diag` from the command line: through the daemon if it answers (src/app/daemon-diag.ts computes
 * the checks), otherwise the checks that need no daemon (config, identity, certificate, clock,
 * disk, store file) and a failing `daemon` check. Nothing here reads or shows key material.
 */

/** The checks that need no daemon: config, identity, certificate, clock, disk, store file. */
export function localDiag(o: {
  loaded: LoadedConfig | undefined;
  configError?: unknown;
  daemon: DiagCheck;
}): DiagReport {
  const now = Date.now();
  if (!o.loaded) {
    const err = o.configError;
    return report('local', now, [
      o.daemon,
      check(
        'config',
        'fail',
        describeError(err).split('\n  → ')[0] ?? 'invalid',
        err instanceof HubError ? err.hint : 'fix the configuration (docs/configuration.md)',
      ),
    ]);
  }
  const { config, source } = o.loaded;
  const checks: DiagCheck[] = [o.daemon, check('config', 'ok', source ?? '(defaults)')];
  // The identity as the daemon would load it at start (the configured files, or the installed identity).
  let cert: CertSummary | undefined;
  try {
    if (config.uplink.enabled) {
      const files = loadUplinkFiles(config.uplink, config.dataDir);
      const x = new X509Certificate(files.cert);
      cert = {
        hubId: files.identity.hubId,
        notBefore: new Date(Date.parse(x.validFrom)).toISOString(),
        notAfter: files.identity.notAfter,
        fingerprint: files.identity.fingerprint,
        source: config.uplink.certFile ?? identityPaths(config.dataDir).cert,
      };
      checks.push(check('identity', 'ok', `key and certificate of ${cert.hubId} load and belong together`));
    } else {
      const id = loadIdentity(config.dataDir);
      if (id) {
        cert = {
          hubId: id.hubId,
          notBefore: id.notBefore,
          notAfter: id.notAfter,
          fingerprint: id.fingerprint,
          source: id.paths.cert,
        };
        checks.push(check('identity', 'ok', `key and certificate of ${id.hubId} load and belong together`));
      } else {
        checks.push(
          check(
            'identity',
            'warn',
            'no hub certificate is installed (the uplink is disabled)',
            '`iqhub provision init`, have the CSR signed, then `iqhub provision install --cert FILE --ca FILE`',
          ),
        );
      }
    }
  } catch (e) {
    checks.push(
      check(
        'identity',
        'fail',
        e instanceof HubError ? e.message : describeError(e),
        e instanceof HubError ? e.hint : 'see docs/operations.md',
      ),
    );
  }
  // Even when the key cannot be used, the certificate alone says how long it is valid.
  cert ??= certificateOnly(config, now);
  checks.push(certificateCheck(cert, now, { uplinkEnabled: config.uplink.enabled }));
  checks.push(clockCheck(now, cert?.notBefore));
  checks.push(diskCheck(config.dataDir));
  checks.push(storeFileCheck(config.dataDir));
  return report('local', now, checks);
}

function certificateOnly(config: HubConfig, now: number): CertSummary | undefined {
  const path = config.uplink.certFile ?? identityPaths(config.dataDir).cert;
  try {
    const [x] = parseCertificates(readFileSync(path), path);
    if (!x) return undefined;
    const info = certificateInfo(x, now);
    return {
      hubId: info.hubId,
      notBefore: info.notBefore,
      notAfter: info.notAfter,
      fingerprint: info.fingerprint,
      source: path,
    };
  } catch {
    return undefined;
  }
}

/** `iqhub diag`: through the daemon if it answers, else the local checks and a failing `daemon` check. */
export async function runDiag(o: { config?: string; socket?: string }): Promise<DiagReport> {
  let loaded: LoadedConfig | undefined;
  let configError: unknown;
  try {
    loaded = loadConfig(o.config);
  } catch (e) {
    configError = e;
  }
  const socket = o.socket ?? (loaded ? join(loaded.config.runDir, SOCKET_NAME) : undefined);
  let daemon: DiagCheck;
  if (!socket) {
    daemon = check(
      'daemon',
      'fail',
      'not asked: the config is invalid, so its control socket is unknown',
      'fix the config first',
    );
  } else {
    try {
      return (await callDaemon(socket, 'diag', {}, 60_000)) as DiagReport;
    } catch (e) {
      const err = e instanceof HubError ? e : new HubError('daemon.unreachable', describeError(e));
      const start = `start it: systemctl start iq-hub (or iqhub run${o.config ? ` --config ${o.config}` : ''})`;
      daemon =
        err.code === 'daemon.not-running'
          ? check('daemon', 'fail', `not running (nothing answers on ${socket})`, start)
          : err.code === 'control.unknown-method'
            ? check(
                'daemon',
                'warn',
                'the running daemon is older and has no diag: local checks only',
                'restart it after an upgrade',
              )
            : check('daemon', 'fail', err.message, err.hint);
    }
  }
  return localDiag({ loaded, configError, daemon });
}
