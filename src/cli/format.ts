import type { CertificateInfo } from '../../provisioning/certificate.js';
import type {
  HealthCheck,
  HubStatus,
  OfflineListRow,
  RecentCommand,
  VerifierStats,
} from '../contract/control-socket.js';
import { refusedSummary } from '../diag/refused.js';

function duration(sec: number): string {
  const d = Math.floor(sec / 86400);
  const h = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  return [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : '', `${s}s`].filter(Boolean).join(' ');
}

/** `iqhub status` for people. Never prints a secret: the status object holds none. */
export function formatStatus(s: HubStatus): string {
  const rows: [string, string][] = [
    ['version', s.version],
    ['pid', String(s.pid)],
    ['up since', `${s.startedAt} (${duration(s.uptimeSec)})`],
    ['config', s.configSource ?? '(defaults)'],
    ['data dir', s.dataDir],
    [
      'storage key',
      `${s.storageKey.origin} (${s.storageKey.path})${s.storageKey.fingerprint ? `, fingerprint ${s.storageKey.fingerprint}` : ''}`,
    ],
    ['store', `${s.store.ok ? 'ok' : 'FAILING'}, schema v${s.store.schemaVersion}, ${s.store.walPages} WAL pages`],
    ...(s.store.diskFull ? ([['DISK FULL', s.store.diskFull]] as [string, string][]) : []),
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  lines.push('', 'components:');
  const cw = Math.max(...s.components.map((c) => c.name.length));
  for (const c of s.components) lines.push(`  ${c.name.padEnd(cw)}  ${c.state.padEnd(8)}  ${c.detail ?? ''}`.trimEnd());
  return `${lines.join('\n')}\n`;
}

export type { HealthCheck };

/** `iqhub status --check` for people: healthy, or each problem on its own line. */
export function formatHealthCheck(h: HealthCheck): string {
  if (h.healthy) return 'healthy\n';
  return `DEGRADED\n${h.problems.map((p) => `  ${p}`).join('\n')}\n`;
}

interface LockRow {
  lockId: string;
  bearer: string;
  state: string;
  connected: boolean;
  lastSeen: string | null;
  lastEventSeq: number;
  failedHandshakes: number;
  rejectedFrames: number;
  quarantineReason: string | null;
  keyFingerprint: string;
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(w[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

export function formatLocks(locks: LockRow[]): string {
  if (locks.length === 0) return 'no locks attached (iqhub attach --device-id ID)\n';
  const rows = locks.map((l) => [
    l.lockId,
    l.bearer,
    l.state,
    l.connected ? 'yes' : 'no',
    l.lastSeen ?? '-',
    String(l.lastEventSeq),
    String(l.failedHandshakes + l.rejectedFrames),
  ]);
  const quarantined = locks.filter((l) => l.quarantineReason).map((l) => `  ${l.lockId}: ${l.quarantineReason}`);
  return `${table(['lock', 'radio', 'state', 'connected', 'last seen', 'events', 'refused'], rows)}\n${
    quarantined.length ? `\nquarantined:\n${quarantined.join('\n')}\n` : ''
  }`;
}

export function formatLock(
  l: LockRow & { address: string; sessions: number; recentEvents: Record<string, unknown>[] },
): string {
  const rows: [string, string][] = [
    ['lock', l.lockId],
    ['state', l.state + (l.quarantineReason ? ` (${l.quarantineReason})` : '')],
    ['radio', `${l.bearer} ${l.address}`],
    ['connected', l.connected ? 'yes' : 'no'],
    ['last seen', l.lastSeen ?? '-'],
    ['key', l.keyFingerprint],
    ['sessions', String(l.sessions)],
    ['refused', `${l.failedHandshakes} handshakes, ${l.rejectedFrames} frames`],
    ['events', `last seq ${l.lastEventSeq}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const events = l.recentEvents.map((e) => `  ${eventLine(e as StoredEventRow)}`);
  return `${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n${events.length ? `\nrecent events:\n${events.join('\n')}\n` : ''}`;
}

/** A stored event as the control socket gives it: times ISO 8601. */
type StoredEventRow = { seq: number; at: string; type: string; receivedAt?: string } & Record<string, unknown>;

/** "#7  2026-…Z  opened  by=remote credentialId=-": one stored event, its body as key=value. */
function eventLine(e: StoredEventRow): string {
  const { seq, at, type, receivedAt: _r, ...rest } = e;
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${v === null ? '-' : String(v)}`)
    .join(' ');
  return `#${seq}  ${at}  ${type}${extra ? `  ${extra}` : ''}`;
}

export function formatEvents(events: StoredEventRow[]): string {
  if (events.length === 0) return 'no events stored\n';
  return `${events.map(eventLine).join('\n')}\n`;
}

export function formatSecurity(events: { at: string; kind: string; lockId: string | null; detail: object }[]): string {
  if (events.length === 0) return 'no security events\n';
  return `${events
    .map((e) => `${e.at}  ${e.kind.padEnd(24)}  ${e.lockId ?? '-'}  ${JSON.stringify(e.detail)}`)
    .join('\n')}\n`;
}

/** `iqhub commands` for people: the counts since start-up, a lockout, then the newest commands. */
export function formatCommands(v: { stats: VerifierStats; recent: RecentCommand[] }): string {
  let out = `since the daemon started: ${v.stats.accepted} accepted, ${refusedSummary(v.stats.refused)}; ${v.stats.lockouts} lockout(s)\n`;
  if (v.stats.lockedOutUntil) {
    out += `LOCKED OUT until ${v.stats.lockedOutUntil}: every remote command is refused locked_out until then (iqhub security shows why)\n`;
  }
  if (v.recent.length === 0) return `${out}\nno remote command accepted (refused ones are only counted)\n`;
  const outcome = (c: RecentCommand) =>
    c.state === 'answered' ? (c.ok ? 'ok' : (c.code ?? 'failed')) : c.state === 'acting' ? 'acting now' : 'interrupted';
  const body = v.recent.map((c) => [
    c.receivedAt,
    c.cmdId,
    c.op ?? '-',
    c.lockId ?? '-',
    c.counter === null ? '-' : String(c.counter),
    outcome(c),
  ]);
  out += `\n${table(['accepted', 'cmdId', 'op', 'lock', 'counter', 'outcome'], body)}\n`;
  if (v.recent.some((c) => c.state === 'interrupted')) {
    out += '\ninterrupted: the hub stopped while carrying it out; it is answered unknown_outcome and never repeated\n';
  }
  return out;
}

/** `iqhub diag` for people: one line per check, and what to do under each that is not ok. */
export function formatDiag(r: {
  source: string;
  verdict: string;
  checks: { name: string; verdict: string; detail: string; action: string | null }[];
}): string {
  const w = Math.max(...r.checks.map((c) => c.name.length));
  const lines = r.checks.flatMap((c) => [
    `${c.verdict.toUpperCase().padEnd(4)}  ${c.name.padEnd(w)}  ${c.detail}`,
    ...(c.verdict !== 'ok' && c.action ? [`${''.padEnd(4 + 2 + w)}  → ${c.action}`] : []),
  ]);
  const by = r.source === 'daemon' ? 'checked by the running daemon' : 'checked without the daemon';
  return `${lines.join('\n')}\n\n${r.verdict.toUpperCase()} (${by})\n`;
}

/** `iqhub cert` for people. The certificate only: no key is read or shown. */
export function formatCert(c: CertificateInfo & { path: string; warning: string | null }): string {
  const rows: [string, string][] = [
    ['certificate', c.path],
    ['hub id (CN)', c.hubId],
    ['issuer', c.issuer],
    ['serial', c.serialNumber],
    ['alt names', c.subjectAltName ?? '-'],
    ['valid from', c.notBefore],
    ['valid until', c.notAfter],
    ['days left', String(c.daysLeft)],
    ['SHA-256', c.fingerprint],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return `${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n${c.warning ? `\nwarning: ${c.warning}\n` : ''}`;
}

/** `iqhub offline` for people: per bound lock, what its offline list holds and whether it is current. */
export function formatOffline(rows: OfflineListRow[]): string {
  if (rows.length === 0) return 'no bound locks: no offline lists to keep (iqhub locks)\n';
  const body = rows.map((r) => [
    r.lockId,
    r.held === null ? `?/${r.capacity}` : `${r.held}/${r.capacity}`,
    String(r.leftOut),
    r.lastUpdatedAt ?? '-',
    r.upToDate ? 'yes' : 'no',
    r.pinKeyVersion === null
      ? '?'
      : r.pinKeyVersion === 0
        ? 'none'
        : `v${r.pinKeyVersion}${r.pinKeyCurrent ? '' : ' (old)'}`,
  ]);
  const notes: string[] = [];
  for (const r of rows) if (r.lastError) notes.push(`  ${r.lockId}: ${r.lastError}`);
  const behind = rows.filter((r) => !r.upToDate).length;
  const full = rows.filter((r) => r.leftOut > 0).map((r) => r.lockId);
  let out = `${table(['lock', 'held/capacity', 'left out', 'updated', 'up to date', 'PIN key'], body)}\n`;
  if (notes.length > 0) out += `\nlast update failed (the hub retries every 30 s):\n${notes.join('\n')}\n`;
  if (behind > 0) {
    out += `\n${behind} of ${rows.length} not up to date: a lock out of reach keeps admitting its last list alone until the hub reaches it.\n`;
  }
  const oldKey = rows.filter((r) => !r.pinKeyCurrent).length;
  if (oldKey > 0) {
    out += `\n${oldKey} of ${rows.length} not known to hold the current PIN key: PINs issued under it are refused there until the hub reaches the lock.\n`;
  }
  if (full.length > 0) {
    out += `\nover capacity (credentials usable soonest are kept, tags before PINs): ${full.join(', ')}\n`;
  }
  return out;
}
