import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/base/random.js';
import { DB_FILE } from '../../src/store/store.js';
import { requireBuild, runCli, start } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

requireBuild();

const LOCKS = ['SIM-0001', 'SIM-0002', 'SIM-0003'];

function site(): { base: string; config: string; data: string } {
  const base = tempDir();
  const data = join(base, 'data');
  const config = join(base, 'config.yaml');
  writeFileSync(
    config,
    `dataDir: ${data}\nrunDir: ${base}/run\nsimulation:\n  enabled: true\n  locks: 3\n  seed: crash-test\n`,
  );
  return { base, config, data };
}

async function cli(config: string, args: string[], stdin?: string) {
  const r = await runCli([...args, '--config', config, '--json'], {}, stdin);
  if (r.code !== 0) throw new Error(`iqhub ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout || 'null') as unknown;
}

/** Call a control method directly (for the simulated physical acts, which have no CLI command). */
async function control(base: string, method: string, params: Record<string, unknown>) {
  const { callDaemon } = await import('../../src/control-socket/socket-client.js');
  return callDaemon(join(base, 'run', 'control.sock'), method, params, 30_000);
}

function storedSeqs(data: string): Map<string, number[]> {
  const db = new BetterSqlite3(join(data, DB_FILE), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT lock_id, seq FROM lock_events ORDER BY lock_id, seq').all() as {
      lock_id: string;
      seq: number;
    }[];
    const out = new Map<string, number[]>();
    for (const r of rows) out.set(r.lock_id, [...(out.get(r.lock_id) ?? []), r.seq]);
    return out;
  } finally {
    db.close();
  }
}

/** Ask the running daemon, as a technician would (iqhub events): it holds the store exclusively. */
async function storedSeqsLive(config: string): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const id of LOCKS) {
    const events = (await cli(config, ['events', id, '--limit', '10000'])) as { seq: number }[];
    out.set(
      id,
      events.map((e) => e.seq).sort((a, b) => a - b),
    );
  }
  return out;
}

function lockFlash(data: string, id: string): { nextSeq: number; events: { seq: number }[]; boundHub: string | null } {
  return JSON.parse(readFileSync(join(data, 'sim', `${id}.json`), 'utf8')) as never;
}

describe('a simulated site under SIGKILL', () => {
  it('after repeated kills of the daemon (hub and locks) mid-session, no event is lost or stored twice and counters never go backwards', async () => {
    const { base, config, data } = site();
    const random = new SeededRandom('site-crash');
    let d = start(['run', '--config', config]);
    await d.waitForOutput('iq-hub ready');
    const stickers = readFileSync(join(data, 'sim', 'stickers.txt'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ') as [string, string]);
    expect(stickers.map(([id]) => id)).toEqual(LOCKS);
    for (const [id, code] of stickers) {
      await control(base, 'sim.card', { deviceId: id });
      // The setup code goes in on standard input, as an installer would type it.
      const lock = (await cli(config, ['attach', '--device-id', id], `${code}\n`)) as { state: string };
      expect(lock.state).toBe('bound');
    }

    const lastSeqSeen = new Map<string, number>();
    for (let round = 0; round < 6; round++) {
      // Physical events on the locks while the hub collects them; then a kill at a random moment.
      const acts = 3 + random.int(6);
      for (let i = 0; i < acts; i++) {
        const id = LOCKS[random.int(LOCKS.length)] as string;
        // Each act must happen (an act that failed would leave the kill nothing to interrupt).
        await control(base, 'sim.act', { deviceId: id, act: random.int(2) === 0 ? 'open-by-hand' : 'tamper' });
      }
      await new Promise((r) => setTimeout(r, random.int(40)));
      d.child.kill('SIGKILL');
      await d.exit;

      const seqs = storedSeqs(data);
      for (const id of LOCKS) {
        const s = seqs.get(id) ?? [];
        expect(new Set(s).size, `${id}: an event stored twice`).toBe(s.length);
        const top = s.at(-1) ?? 0;
        expect(top, `${id}: stored sequence went backwards`).toBeGreaterThanOrEqual(lastSeqSeen.get(id) ?? 0);
        lastSeqSeen.set(id, top);
      }
      d = start(['run', '--config', config]);
      await d.waitForOutput('iq-hub ready');
    }

    // Let the restarted hub collect what the locks still hold, then compare with the locks' own numbering.
    // A bound, not a pause: the loop ends as soon as every event is stored (about a second here).
    const deadline = Date.now() + 60_000;
    for (;;) {
      const seqs = await storedSeqsLive(config);
      const complete = LOCKS.every((id) => {
        const flash = lockFlash(data, id);
        return (seqs.get(id)?.length ?? 0) === flash.nextSeq - 1 && flash.events.length === 0;
      });
      if (complete || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const seqs = await storedSeqsLive(config);
    const produced = LOCKS.reduce((n, id) => n + lockFlash(data, id).nextSeq - 1, 0);
    // The test means something only if the locks produced events across the kills.
    expect(produced).toBeGreaterThan(15);
    for (const id of LOCKS) {
      const flash = lockFlash(data, id);
      expect(flash.boundHub, `${id} lost its binding`).not.toBeNull();
      const expected = Array.from({ length: flash.nextSeq - 1 }, (_, i) => i + 1);
      expect(seqs.get(id) ?? [], `${id}: every event the lock produced is stored exactly once`).toEqual(expected);
      expect(flash.events, `${id}: the lock still holds unacknowledged events`).toEqual([]);
    }
    const status = (await cli(config, ['locks'])) as { lockId: string; state: string }[];
    expect(status.map((l) => l.state)).toEqual(['bound', 'bound', 'bound']);
    d.child.kill('SIGTERM');
    expect((await d.exit).code).toBe(0);
  });
});
