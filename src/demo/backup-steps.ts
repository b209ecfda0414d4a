import { cpSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import type { SimWorld } from '../../sim/world.js';
import type { RunningDaemon } from '../app/daemon.js';
import { applyRestore, makeRestoreRequest } from '../backup/restore.js';
import { isHubError } from '../base/errors.js';
import { systemRandom } from '../base/random.js';
import type { HubConfig } from '../config/schema.js';
import { callDaemon } from '../control-socket/socket-client.js';
import type { LockSummary } from '../link/manager.js';
import { PairingStore } from '../link/pairing.js';
import { check, runSteps, type ScenarioResult, type Step } from './scenario.js';

/**
 * Part 3 of the demo, hub replacement (docs/operations.md, "Hub replacement"): the running hub
 * backs itself up sealed to the cloud's recovery key; it "fails" (is stopped); a replacement hub
 * with its own hub id and a second data directory (its own storage key) asks the cloud, is refused
 * without the approval, restores with it (the cloud revokes the old hub), starts, and every
 * simulated lock reconnects to it without an attach. The same locks: their flash is copied to the
 * replacement's simulated site, as the doors stay where they are.
 */
export const REPLACEMENT_HUB_ID = 'demo-hub-2';

export interface ReplacementPart {
  old: RunningDaemon;
  world: SimWorld;
  cloud: ReferenceCloud;
  hubId: string;
  base: string;
  /** The old hub's config (for the replacement's simulation and access settings). */
  config: HubConfig;
  /** Start the replacement daemon with these overrides; resolves with it and its simulated site. */
  start: (overrides: Partial<HubConfig>) => Promise<{ daemon: RunningDaemon; world: SimWorld }>;
}

export async function replacementPart(
  p: ReplacementPart,
  out: (line: string) => void,
): Promise<ScenarioResult & { daemon: RunningDaemon | undefined }> {
  const hex = (k: Uint8Array | undefined) => (k ? Buffer.from(k).toString('hex') : undefined);
  // The locks bound to the old hub now (the site steps detached one): each must come back bound.
  const ids = ((await callDaemon(p.old.hub.control.path, 'locks.list')) as LockSummary[])
    .filter((l) => l.state === 'bound')
    .map((l) => l.lockId);
  const boundBefore = new Map(ids.map((id) => [id, hex(p.world.lock(id).boundHub())]));
  const dataDir = join(p.base, 'replacement', 'data');
  let backupPath = '';
  let requestPath = '';
  let daemon: RunningDaemon | undefined;
  let replacementWorld: SimWorld | undefined;
  const oldFingerprint = p.old.hub.storageKey.fingerprint;
  const steps: Step[] = [
    {
      name: "the hub backs itself up, sealed to the cloud's recovery key: the file is 0600 and holds no key in clear",
      async run() {
        const r = (await callDaemon(p.old.hub.control.path, 'hub.backup', {}, 120_000)) as {
          path: string;
          locks: number;
        };
        backupPath = r.path;
        check(r.locks === ids.length, `the backup holds ${r.locks} locks, not ${ids.length}`);
        check((statSync(r.path).mode & 0o777) === 0o600, 'the backup file is not 0600');
        const link = new PairingStore(p.old.hub.store).hubIdentity(p.old.hub.sealer, systemRandom, Date.now());
        const text = readFileSync(r.path, 'utf8');
        const secret = Buffer.from(link.secretKey);
        check(
          ![secret.toString('hex'), secret.toString('base64'), secret.toString('base64url')].some((s) =>
            text.includes(s),
          ),
          'the link key is in the backup in clear',
        );
      },
    },
    {
      name: 'the hub fails; on the replacement (its own hub id, a second data directory) a restore without the cloud approval is refused',
      async run() {
        await p.old.shutdown('demo: the old hub fails');
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        cpSync(join(p.config.dataDir, 'sim'), join(dataDir, 'sim'), { recursive: true });
        const req = await makeRestoreRequest({
          dataDir,
          backupPath,
          newHubId: REPLACEMENT_HUB_ID,
          random: systemRandom,
          now: Date.now(),
        });
        requestPath = req.requestPath;
        const fake = join(p.base, 'replacement', 'made-up-approval.json');
        writeFileSync(fake, JSON.stringify({ format: 'iq-hub-restore-approval', v: 1 }));
        const refused = await applyRestore({
          key: keyOptions(dataDir),
          backupPath,
          approvalPath: fake,
          newHubId: REPLACEMENT_HUB_ID,
          now: Date.now(),
        }).then(
          () => undefined,
          (e: unknown) => e,
        );
        check(isHubError(refused) && refused.code === 'backup.malformed', 'a made-up approval was not refused');
      },
    },
    {
      name: `the cloud approves the replacement and revokes ${p.hubId}; the backup is restored under a new storage key`,
      async run() {
        const { approvalText, revocation } = await p.cloud.approveRestore(readFileSync(requestPath, 'utf8'));
        check(revocation.hubId === p.hubId && p.cloud.recovery.isRevoked(p.hubId), 'the old hub is not revoked');
        const approvalPath = join(p.base, 'replacement', 'approval.json');
        writeFileSync(approvalPath, approvalText);
        const r = await applyRestore({
          key: keyOptions(dataDir),
          backupPath,
          approvalPath,
          newHubId: REPLACEMENT_HUB_ID,
          now: Date.now(),
        });
        check(r.locks === ids.length, `restored ${r.locks} locks`);
        check(r.storageKeyFingerprint !== oldFingerprint, 'the replacement uses the old storage key');
      },
    },
    {
      name: 'the replacement hub starts and every simulated lock reconnects to it without an attach (no maintenance card)',
      async run() {
        const started = await p.start({
          dataDir,
          runDir: join(p.base, 'replacement', 'run'),
          simulation: p.config.simulation,
          access: p.config.access,
          provisioning: { hubId: REPLACEMENT_HUB_ID } as HubConfig['provisioning'],
        });
        daemon = started.daemon;
        replacementWorld = started.world;
        for (const id of ids) {
          const r = (await callDaemon(daemon.hub.control.path, 'locks.check', { lockId: id }, 60_000)) as LockSummary;
          check(r.state === 'bound', `${id} is ${r.state}`);
          const lock = replacementWorld.lock(id);
          check(
            hex(lock.boundHub()) !== undefined && hex(lock.boundHub()) === boundBefore.get(id),
            `${id} is not bound to the same hub key`,
          );
        }
      },
    },
    {
      name: 'a door opens through the replacement hub',
      async run() {
        check(daemon !== undefined, 'no replacement hub');
        const [id] = ids as [string];
        const s = (await callDaemon(
          daemon.hub.control.path,
          'locks.open',
          { lockId: id, durationMs: 1000 },
          60_000,
        )) as {
          bolt: string;
        };
        check(s.bolt === 'unlocked', `the bolt is ${s.bolt}`);
      },
    },
  ];
  const r = await runSteps(steps, out);
  return { ...r, daemon };
}

function keyOptions(dataDir: string) {
  return { dataDir, keyFile: null, credentialsDirectory: undefined, random: systemRandom };
}
