import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateInfo, parseCertificates } from '../../provisioning/certificate.js';
import { identityPaths } from '../../provisioning/identity-files.js';
import { readInstalledCertificate } from '../../provisioning/identity-load.js';
import { HubError } from '../base/errors.js';
import { systemRandom } from '../base/random.js';
import { loadConfig } from '../config/load.js';
import type { HubConfig } from '../config/schema.js';
import { SOCKET_NAME } from '../contract/control-socket.js';
import { callDaemon } from '../control-socket/socket-client.js';

/**
 * `iqhub hub-restore FILE [--approval APPROVAL]` on a new hub, daemon stopped (docs/operations.md,
 * "Hub replacement"). Without --approval: the request for the cloud (nothing is restored: only the
 * cloud can open the backup). With it: the restore. What is printed names files, ids and counts,
 * never a key.
 */
export async function hubRestore(
  file: string,
  o: { config?: string; approval?: string; hubId?: string; json?: boolean },
): Promise<void> {
  const { config } = loadConfig(o.config);
  const running = await callDaemon(join(config.runDir, SOCKET_NAME), 'status', {}, 2_000).then(
    () => true,
    () => false,
  );
  if (running) throw new HubError('backup.daemon-running', 'the daemon is running on this hub');
  const newHubId = o.hubId ?? thisHubId(config);
  const { makeRestoreRequest, applyRestore } = await import('../backup/restore.js');
  const now = Date.now();
  if (o.approval === undefined) {
    const r = await makeRestoreRequest({
      dataDir: config.dataDir,
      backupPath: file,
      newHubId,
      random: systemRandom,
      now,
      identity: readIdentity(config),
    });
    const { request: _request, ...out } = r;
    process.stdout.write(
      o.json
        ? `${JSON.stringify({ ...out, approved: false }, null, 2)}\n`
        : `not restored yet: backup ${r.backupId} of hub ${r.oldHubId} opens only with the cloud's approval\n` +
            `request ${r.reused ? '(unchanged) ' : ''}written to ${r.requestPath} (hub ${r.newHubId}, restore key ${r.restoreKeyId})\n` +
            `next: send it to the cloud; the cloud revokes ${r.oldHubId} and answers with an approval;\n` +
            `then run: iqhub hub-restore ${file} --approval APPROVAL-FILE\n`,
    );
    return;
  }
  const r = await applyRestore({
    key: {
      dataDir: config.dataDir,
      keyFile: config.secrets.storageKeyFile,
      credentialsDirectory: process.env.CREDENTIALS_DIRECTORY,
      random: systemRandom,
    },
    backupPath: file,
    approvalPath: o.approval,
    newHubId,
    now,
  });
  process.stdout.write(
    o.json
      ? `${JSON.stringify(r, null, 2)}\n`
      : `restored backup ${r.backupId} of hub ${r.oldHubId} as hub ${r.newHubId}: ${r.locks} locks keep their binding\n` +
          `${r.sealedRecords} secrets re-sealed under this hub's storage key (fingerprint ${r.storageKeyFingerprint})\n` +
          (r.zigbeeFrameCounter === null
            ? ''
            : `ZigBee coordinator frame counter moved forward to ${r.zigbeeFrameCounter}\n`) +
          'next: start the daemon (systemctl start iq-hub); the locks reconnect without an attach\n',
  );
}

/** The hub's certificate and key (uplink.certFile/keyFile, else the installed identity), if it has them. */
function readIdentity(config: HubConfig): { certificatePem: string; keyPem: string } | undefined {
  const installed = identityPaths(config.dataDir);
  const cert = config.uplink.certFile ?? installed.cert;
  const key = config.uplink.keyFile ?? installed.key;
  if (!existsSync(cert) || !existsSync(key)) return undefined;
  try {
    return { certificatePem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
  } catch (e) {
    throw new HubError(
      'backup.identity',
      `cannot read the hub's identity (${cert}, ${key}): ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: "run iqhub hub-restore as the daemon's user (sudo -u iqhub)",
      },
    );
  }
}

/** This hub's id: its certificate's CN (uplink.certFile or the installed one), else provisioning.hubId. */
function thisHubId(config: HubConfig): string {
  const now = Date.now();
  if (config.uplink.certFile) {
    const [x] = parseCertificates(readFileSync(config.uplink.certFile), config.uplink.certFile);
    if (x) return certificateInfo(x, now).hubId;
  }
  const installed = readInstalledCertificate(config.dataDir, now);
  if (installed) return installed.hubId;
  if (config.provisioning.hubId) return config.provisioning.hubId;
  throw new HubError('backup.no-hub-id', 'this hub has no certificate and no provisioning.hubId');
}
