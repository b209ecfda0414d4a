import type { Clock } from '../base/clock.js';
import type { HealthCheck, HubStatus, VerifierStats } from '../contract/control-socket.js';
import { type EventDeliveryHealth, HEALTH_MAX_LOCK_IDS, type HealthPayload } from '../contract/mqtt-hub-messages.js';
import { CONTRACT_VERSION } from '../contract/mqtt-topics.js';
import type { Outbox } from '../events/outbox.js';
import type { LinkManager } from '../link/manager.js';
import type { DiskState } from '../store/disk-space.js';

/**
 * The `health` message, gathered from the parts that know each figure: the outbox, the radios,
 * the locks, the certificate in use, the offline lists and the remote commands. The uplink only
 * publishes it (periodically, and at once when a lockout starts).
 */
export interface HealthFacts {
  clock: Clock;
  startedAt: () => number;
  outbox: Outbox;
  link: LinkManager | undefined;
  radios: () => HealthPayload['radios'];
  /** The hub certificate's end of validity, once the uplink has an identity. */
  certificateNotAfter: () => string | null;
  /** The bound locks' offline lists (absent: the hub keeps none). */
  offlineLists?: () => { lockId: string; upToDate: boolean }[];
  /** The site PIN key version and what each bound lock holds (absent: no radio). */
  pinKeys?: () => { version: number; locks: { lockId: string; version: number | undefined }[] };
  /** The verifier's counts; undefined until the uplink is up. */
  commandStats: () => VerifierStats | undefined;
  /** Whether the cloud acknowledges events (`events/ack`); undefined without an uplink. */
  delivery?: () => EventDeliveryHealth | undefined;
  /** The data directory's disk (absent: not reported). */
  disk?: () => DiskState;
}

export function buildHealth(f: HealthFacts): HealthPayload {
  const now = f.clock.now();
  const locks = f.link?.list() ?? [];
  const notAfter = f.certificateNotAfter();
  const depth = f.outbox.depth();
  const commands = f.commandStats();
  const delivery = f.delivery?.();
  const disk = f.disk?.();
  return {
    v: CONTRACT_VERSION,
    at: new Date(now).toISOString(),
    uptimeSec: Math.max(0, Math.floor((now - f.startedAt()) / 1000)),
    outbox: {
      depth: depth.events + depth.messages,
      oldestAgeSec: f.outbox.oldestAgeSec(),
      dropped: f.outbox.dropped(),
    },
    radios: f.radios(),
    locks: {
      total: locks.length,
      connected: locks.filter((l) => l.connected).length,
      quarantined: locks.filter((l) => l.state === 'quarantined').length,
    },
    certificate: {
      notAfter,
      daysLeft: notAfter === null ? null : Math.floor((Date.parse(notAfter) - now) / 86_400_000),
    },
    ...(f.offlineLists ? { offlineLists: offlineSummary(f.offlineLists()) } : {}),
    ...(f.pinKeys ? { pinKeys: pinKeySummary(f.pinKeys()) } : {}),
    ...(commands ? { commands: commandSummary(commands) } : {}),
    ...(delivery ? { delivery } : {}),
    ...(disk ? { disk: disk.full ? { full: true, detail: disk.detail } : { full: false, detail: null } } : {}),
  };
}

/** `health.offlineLists`: counts, and the first lock ids not up to date (ids are in order). */
export function offlineSummary(
  locks: { lockId: string; upToDate: boolean }[],
): NonNullable<HealthPayload['offlineLists']> {
  const behind = locks
    .filter((l) => !l.upToDate)
    .map((l) => l.lockId)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { locks: locks.length, notUpToDate: behind.length, lockIds: behind.slice(0, HEALTH_MAX_LOCK_IDS) };
}

/** `health.pinKeys`: the current version, and the first locks not known to hold it (ids in order). */
export function pinKeySummary(
  p: ReturnType<NonNullable<HealthFacts['pinKeys']>>,
): NonNullable<HealthPayload['pinKeys']> {
  const behind = p.locks
    .filter((l) => l.version !== p.version)
    .map((l) => l.lockId)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    version: p.version,
    locks: p.locks.length,
    notCurrent: behind.length,
    lockIds: behind.slice(0, HEALTH_MAX_LOCK_IDS),
  };
}

/** The delivery's view as HealthFacts.pinKeys wants it. */
export function pinKeyFacts(d: {
  currentVersion(): number;
  locks(): { lockId: string; version: number | undefined }[];
}): NonNullable<HealthFacts['pinKeys']> {
  return () => ({
    version: d.currentVersion(),
    locks: d.locks().map((l) => ({ lockId: l.lockId, version: l.version })),
  });
}

/** `health.commands`: the verifier's counts (refused codes with a count only). */
export function commandSummary(s: VerifierStats): NonNullable<HealthPayload['commands']> {
  const refused: Record<string, number> = {};
  for (const [code, n] of Object.entries(s.refused)) if (n) refused[code] = n;
  return { accepted: s.accepted, refused, lockouts: s.lockouts, lockedOutUntil: s.lockedOutUntil };
}

/**
 * Whether the hub is healthy, for `iqhub status --check` (and so the container's and the image's
 * health checks): every component running — the uplink connected with its events acknowledged,
 * each radio ready, the disk watch quiet — the store answering, its disk not full, and nothing
 * the health message reports as full. Each problem is one sentence naming the part.
 */
export function healthCheck(status: HubStatus, health: HealthPayload | undefined): HealthCheck {
  const problems: string[] = [];
  if (!status.store.ok) problems.push(`store failing (${status.store.path})`);
  if (status.store.diskFull) problems.push(status.store.diskFull);
  else if (health?.disk?.full) problems.push(`disk full: ${health.disk.detail ?? 'the data directory'}`);
  for (const c of status.components) {
    if (c.state !== 'running') problems.push(`${c.name} ${c.state}${c.detail ? `: ${c.detail}` : ''}`);
  }
  return { healthy: problems.length === 0, problems };
}
