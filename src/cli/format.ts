import type { HubStatus } from '../control/protocol.js';

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
    ['storage key', `${s.storageKey.origin} (${s.storageKey.path})`],
    ['store', `${s.store.ok ? 'ok' : 'FAILING'}, schema v${s.store.schemaVersion}, ${s.store.walPages} WAL pages`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  lines.push('', 'components:');
  const cw = Math.max(...s.components.map((c) => c.name.length));
  for (const c of s.components) lines.push(`  ${c.name.padEnd(cw)}  ${c.state.padEnd(8)}  ${c.detail ?? ''}`.trimEnd());
  return `${lines.join('\n')}\n`;
}
