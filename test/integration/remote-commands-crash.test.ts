import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import { SeededRandom } from '../../src/base/random.js';
import type { CommandEnvelope } from '../../src/commands/otp.js';
import type { CmdResultPayload } from '../../src/contract/mqtt-hub-messages.js';
import { attachSiteLocks, closeSite, openSite, startHubOnline, writeSiteConfig } from '../helpers/cloud-site.js';
import { type Proc, requireBuild, runCli } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`remote-commands-crash: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-crash';
const LOCK = 'SIM-0001';
const ROUNDS = 20;

interface StoredEvent {
  seq: number;
  type: string;
  by?: string;
}
const isRemoteOpening = (e: StoredEvent) => e.type === 'opened' && e.by === 'remote';

describe.skipIf(!haveMosquitto)(`remote open and SIGKILL${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`, () => {
  let base: string;
  let broker: Mosquitto;
  let cloud: ReferenceCloud;
  let config: string;
  let daemon: Proc | undefined;

  async function startHub(): Promise<void> {
    daemon = await startHubOnline(cloud, HUB, config);
  }

  /**
   * The sequence numbers of the lock's remote openings: those still in its flash (not yet
   * acknowledged), then those the hub stored (`iqhub events`). In that order, an event the hub
   * collects meanwhile is seen in one or the other (the hub stores before it acknowledges).
   */
  async function remoteOpenings(): Promise<Set<number>> {
    const flash = JSON.parse(readFileSync(join(base, 'data', 'sim', `${LOCK}.json`), 'utf8')) as {
      events: StoredEvent[];
    };
    const seqs = new Set(flash.events.filter(isRemoteOpening).map((e) => e.seq));
    const r = await runCli(['events', LOCK, '--limit', '10000', '--json', '--config', config]);
    if (r.code !== 0) throw new Error(`iqhub events exited ${r.code}: ${r.stderr}`);
    for (const e of JSON.parse(r.stdout) as StoredEvent[]) if (isRemoteOpening(e)) seqs.add(e.seq);
    return seqs;
  }

  beforeAll(async () => {
    const site = await openSite('remote-crash', HUB);
    ({ base, broker, cloud } = site);
    const { pki } = site;
    config = writeSiteConfig({
      base,
      brokerUrl: broker.url,
      pki,
      locks: 1,
      seed: 'remote-crash',
      reconnectBaseMs: 100,
    });
    await startHub();
    expect(await attachSiteLocks(base)).toEqual([LOCK]);
  }, 60_000);

  afterAll(() => closeSite({ daemon, cloud, broker, base }));

  it(`SIGKILL 0-30 ms after a signed open, ${ROUNDS} times: no command opens twice, a redelivery never acts`, async () => {
    const random = new SeededRandom('remote-crash');
    const sent: CommandEnvelope[] = [];
    const outcomes: Record<string, number> = {};
    let openings = await remoteOpenings();
    let okCount = 0;
    const initial = openings.size;

    for (let round = 0; round < ROUNDS; round++) {
      const envelope = cloud.envelope(HUB, { op: 'open', lockId: LOCK, args: { durationMs: 200 } });
      sent.push(envelope);
      const answer = cloud.sendEnvelope(HUB, envelope, { timeoutMs: 60_000 });
      // Every fourth round the kill comes after the answer: then the command surely acted, and
      // what follows checks that its redeliveries do not act again (a run of rounds that all end
      // unknown_outcome would check nothing of the kind).
      if (round % 4 === 3) await answer;
      else await new Promise((r) => setTimeout(r, random.int(31)));
      const d = daemon;
      daemon = undefined;
      d?.child.kill('SIGKILL');
      await d?.exit;
      await startHub();

      const r: CmdResultPayload = await answer;
      const code = r.ok ? 'ok' : (r.error?.code ?? '?');
      outcomes[code] = (outcomes[code] ?? 0) + 1;
      expect(r.id).toBe(envelope.cmdId);
      expect(['ok', 'unknown_outcome'], JSON.stringify(r)).toContain(code);
      if (r.ok) okCount++;

      // The broker (or a cloud retrying) delivers it again: the stored answer or a refusal, never an act.
      const again = await cloud.sendEnvelope(HUB, cloud.attack(HUB, { kind: 'replay', of: envelope }), {
        timeoutMs: 15_000,
      });
      expect(again.id).toBe(envelope.cmdId);
      if (again.ok) expect(r.ok, 'a redelivery succeeded where the command had not').toBe(true);
      else expect(['replayed', 'unknown_outcome'], JSON.stringify(again)).toContain(again.error?.code);

      const now = await remoteOpenings();
      const added = [...now].filter((s) => !openings.has(s));
      expect(
        [...openings].every((s) => now.has(s)),
        'a stored opening disappeared',
      ).toBe(true);
      // One command, at most one opening; and a command answered ok did open.
      expect(added.length, `round ${round}: ${code}`).toBeLessThanOrEqual(1);
      if (r.ok) expect(added.length, `round ${round}: ok without an opening`).toBe(1);
      openings = now;
    }

    // Every command once more, after all the restarts: none acts again.
    for (const envelope of sent) {
      const again = await cloud.sendEnvelope(HUB, cloud.attack(HUB, { kind: 'replay', of: envelope }), {
        timeoutMs: 15_000,
      });
      expect(again.id).toBe(envelope.cmdId);
    }
    // One more open as a marker: the lock records its openings in order in its flash before it
    // answers, so once the marker is answered ok, an opening a redelivery had caused is there too.
    const marker = await cloud.command(
      HUB,
      { op: 'open', lockId: LOCK, args: { durationMs: 200 } },
      { timeoutMs: 30_000 },
    );
    expect(marker.ok).toBe(true);
    const final = await remoteOpenings();
    expect(final.size).toBe(openings.size + 1);
    expect(okCount, 'some rounds were answered ok').toBeGreaterThanOrEqual(Math.floor(ROUNDS / 4));

    const accepted = Object.entries(outcomes)
      .filter(([c]) => c === 'ok' || c === 'unknown_outcome')
      .reduce((n, [, k]) => n + k, 0);
    expect(final.size - 1 - initial).toBeLessThanOrEqual(accepted);
    expect(final.size - 1 - initial).toBeGreaterThanOrEqual(okCount);
    expect(cloud.invalid, JSON.stringify(cloud.invalidMessages)).toBe(0);
    process.stderr.write(
      `remote-commands-crash: ${ROUNDS} rounds, outcomes ${JSON.stringify(outcomes)}, ${final.size - 1 - initial} openings\n`,
    );

    const d = daemon;
    daemon = undefined;
    d?.child.kill('SIGTERM');
    expect((await d?.exit)?.code).toBe(0);
  }, 300_000);
});
