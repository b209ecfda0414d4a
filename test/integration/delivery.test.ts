import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ReferenceCloud } from '../../sim/cloud/cloud.js';
import type { CommandEnvelope } from '../../src/commands/otp.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { attachSiteLocks, closeSite, openSite, writeSiteConfig } from '../helpers/cloud-site.js';
import { type Proc, requireBuild, start } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`delivery: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-delivery';
/** The backlog of the stop test: the issue's 10,000 commands, and opens among them to count actions. */
const PINGS = 10_000;
const OPENS = 100;

/**
 * The delivery contract through a real broker (issue "Every cloud message answered exactly as
 * documented"): what waits at the broker while the hub is down is answered when it comes back,
 * refusals included, and a stop in the middle of a backlog loses nothing — a message is
 * acknowledged to the broker only once the hub has recorded it.
 */
describe.skipIf(!haveMosquitto)(
  `every cloud message answered, through mosquitto${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`,
  () => {
    let base: string;
    let broker: Mosquitto;
    let cloud: ReferenceCloud;
    let config: string;
    let writeConfig: (o: { latencyMs: number; shutdownMs?: number }) => void = () => {};
    let daemon: Proc | undefined;
    let lockId: string;

    /** Start the hub; ready once the cloud sees it online and its control socket answers. */
    const startHub = async () => {
      const seen = cloud.statusHistory(HUB).length;
      const d = start(['run', '--config', config]);
      daemon = d;
      await cloud.waitForOnline(HUB, seen, 60_000, 'the hub online');
      for (let i = 0; ; i++) {
        try {
          await callDaemon(join(base, 'run', 'control.sock'), 'status', {}, 10_000);
          return;
        } catch (e) {
          if (i > 100 || d.child.exitCode !== null) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    const stopHub = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
      const d = daemon;
      daemon = undefined;
      if (!d) return;
      d.child.kill(signal);
      const { code } = await d.exit;
      if (signal === 'SIGTERM') expect(code, d.stderr()).toBe(0);
    };
    const answered = (ids: readonly string[]) => {
      const results = cloud.results(HUB);
      return ids.filter((id) => results.has(id)).length;
    };
    /**
     * Answers to new commands since `before` (results.size then): the cloud checks a wait after
     * every message, so a wait over a large batch counts, it does not look each id up.
     */
    const answeredSince = (before: number) => cloud.results(HUB).size - before;
    /** How many of `ids` the stopped hub's inbox holds (claimed). */
    const takenIn = (ids: readonly string[]) => {
      const db = new BetterSqlite3(join(base, 'data', 'hub.db'), { readonly: true, fileMustExist: true });
      try {
        const rows = db.prepare("SELECT id FROM inbox WHERE topic = 'cmd'").all() as { id: string }[];
        const wanted = new Set(ids);
        return rows.filter((r) => wanted.has(r.id)).length;
      } finally {
        db.close();
      }
    };
    const remoteOpenings = () =>
      cloud.events(HUB).filter((e) => e.lockId === lockId && e.type === 'opened' && e.by === 'remote').length;

    beforeAll(async () => {
      // No cap on what the broker keeps for a hub that is away (mosquitto's default is 1,000).
      const site = await openSite('delivery', HUB, { extra: ['max_queued_messages 0'] });
      ({ base, broker, cloud } = site);
      const { pki } = site;
      writeConfig = (o: { latencyMs: number; shutdownMs?: number }) => {
        config = writeSiteConfig({
          base,
          brokerUrl: broker.url,
          pki,
          locks: 1,
          seed: 'delivery',
          commands: ['  lockoutFailures: 1000'],
          // A lock that answers after tens of milliseconds, as a real one does: commands take time.
          simulation: [`  latencyMs: ${o.latencyMs}`],
          // The hub's own lines only for problems: at info it writes a line per command, and a test
          // process busy with 20,000 of them reads its pipe too slowly (a pipe write blocks the hub).
          extra: [
            'log:',
            '  level: warn',
            ...(o.shutdownMs === undefined ? [] : ['shutdown:', `  timeoutMs: ${o.shutdownMs}`]),
          ],
        });
      };
      writeConfig({ latencyMs: 15 });
      await startHub();
      [lockId = ''] = await attachSiteLocks(base);
      // A first command answered: the hub's session at the broker is set up and subscribed.
      expect(await cloud.command(HUB, { op: 'ping' }, { timeoutMs: 30_000 })).toMatchObject({ ok: true });
    }, 120_000);

    // A test that failed half-way may have left the hub stopped: the next one starts from a hub
    // running with the usual configuration, not from the failure of the one before.
    beforeEach(async () => {
      // A backlog that waited past its OTP time step was refused expired, its counters unused:
      // more than commands.counterWindow of them, and the next counter would be too far ahead.
      if (cloud) cloud.resumeCounter(HUB);
      if (daemon || !cloud) return;
      writeConfig({ latencyMs: 15 });
      await startHub();
    }, 120_000);

    afterAll(async () => {
      await closeSite({ daemon, cloud, broker, base });
    });

    it('what waited at the broker while the hub was down is answered, refusals and a retained message included', async () => {
      await stopHub();
      const expired = cloud.attack(HUB, { kind: 'expired', command: { op: 'open', lockId } });
      const forged = cloud.attack(HUB, { kind: 'forgedOtp', command: { op: 'ping' } });
      const genuine = cloud.envelope(HUB, { op: 'ping' });
      await cloud.send(HUB, 'cmd', JSON.stringify(expired));
      await cloud.send(HUB, 'cmd', JSON.stringify(forged));
      await cloud.send(HUB, 'cmd', JSON.stringify(genuine));
      // Garbage the broker keeps and hands to the hub at every subscribe.
      const garbageAnswers = () => cloud.answers(HUB).filter((a) => a.payload.id === null).length;
      const garbageBefore = garbageAnswers();
      await cloud.send(HUB, 'cmd', 'not json, kept by the broker', { retain: true });
      try {
        await startHub();
        await cloud.waitFor(
          () => answered([expired.cmdId, forged.cmdId, genuine.cmdId]) === 3,
          30_000,
          'three answers',
        );
        expect(cloud.results(HUB).get(expired.cmdId)).toMatchObject({ ok: false, error: { code: 'expired' } });
        expect(cloud.results(HUB).get(forged.cmdId)).toMatchObject({ ok: false, error: { code: 'otp_mismatch' } });
        expect(cloud.results(HUB).get(genuine.cmdId)).toMatchObject({ ok: true });
        await cloud.waitFor(() => garbageAnswers() > garbageBefore, 30_000, 'the retained garbage answered');
        const garbage = cloud
          .answers(HUB)
          .filter((a) => a.payload.id === null)
          .at(-1);
        expect(garbage).toMatchObject({ topic: 'cmd/result', payload: { ok: false, error: { code: 'bad_request' } } });
      } finally {
        await cloud.send(HUB, 'cmd', '', { retain: true });
      }
    }, 180_000);

    it(`a stop in the middle of a backlog of ${PINGS + OPENS} commands loses none: each is answered after the restart, no open acts twice`, async () => {
      await stopHub();
      const openingsBefore = remoteOpenings();
      const envelopes: CommandEnvelope[] = [];
      for (let i = 0; i < PINGS + OPENS; i++) {
        const spec =
          i % ((PINGS + OPENS) / OPENS) === 0
            ? { op: 'open' as const, lockId, args: { durationMs: 1 } }
            : { op: 'ping' as const };
        envelopes.push(cloud.envelope(HUB, spec, { expiresAt: Date.now() + 9 * 60_000 }));
      }
      const ids = envelopes.map((e) => e.cmdId);
      const before = cloud.results(HUB).size;
      const openIds = envelopes.filter((e) => e.op === 'open').map((e) => e.cmdId);
      expect(openIds).toHaveLength(OPENS);
      for (const e of envelopes) await cloud.send(HUB, 'cmd', JSON.stringify(e));

      await startHub();
      // Early in the backlog, while the broker is still handing it over, stop: what the hub had
      // recorded it finishes; the rest it never acknowledged, and the broker keeps it for the next
      // session. The stop does not wait for the backlog: it ends within shutdown.timeoutMs (8 s).
      await cloud.waitFor(() => answeredSince(before) >= 200, 240_000, 'the first 200 of the backlog answered');
      const stopAt = Date.now();
      await stopHub('SIGTERM');
      expect(Date.now() - stopAt).toBeLessThan(8_000);
      expect(answered(ids)).toBeLessThan(ids.length);

      await startHub();
      await cloud.waitFor(() => answeredSince(before) === ids.length, 240_000, 'every command of the backlog answered');
      const results = cloud.results(HUB);
      const codes = new Map<string, number>();
      for (const id of ids) {
        const r = results.get(id);
        const code = r?.ok ? 'ok' : (r?.error?.code ?? '?');
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
      // A clean stop finishes what it took in: no command is left to answer unknown_outcome. A
      // command that waited at the broker longer than its OTP time step allows is refused expired
      // (answered, never acted on): a slow machine sees some of those, and nothing else.
      expect((codes.get('ok') ?? 0) + (codes.get('expired') ?? 0), JSON.stringify([...codes])).toBe(ids.length);
      expect(codes.get('ok') ?? 0).toBeGreaterThan(0);
      const openedOk = openIds.filter((id) => results.get(id)?.ok).length;
      await cloud.waitFor(() => remoteOpenings() - openingsBefore >= openedOk, 60_000, 'every open seen as an event');
      // Each open acted once: one `opened` event for each one answered ok, none twice.
      expect(remoteOpenings() - openingsBefore).toBe(openedOk);
      // Answers the broker had not acknowledged to the hub before the stop may come again, but
      // always the same answer: no command has two different ones.
      for (const a of cloud.answers(HUB)) {
        const id = a.payload.id;
        if (id !== null && ids.includes(id)) expect(a.payload).toEqual(results.get(id));
      }
    }, 600_000);

    it('a SIGKILL in the middle of a backlog of 10,000 loses nothing the hub had not recorded: every command answered after the restart, no open acted twice', async () => {
      await stopHub();
      const openingsBefore = remoteOpenings();
      // Every tenth an open of the one lock: those run one after another, so MAX_IN_FLIGHT of
      // them are taken in at a time and what follows waits unacknowledged — the broker delivers
      // it again after the kill.
      const envelopes = Array.from({ length: 10_000 }, (_, i) =>
        cloud.envelope(HUB, i % 10 === 0 ? { op: 'open', lockId, args: { durationMs: 1 } } : { op: 'ping' }, {
          expiresAt: Date.now() + 9 * 60_000,
        }),
      );
      const ids = envelopes.map((e) => e.cmdId);
      const openIds = envelopes.filter((e) => e.op === 'open').map((e) => e.cmdId);
      const before = cloud.results(HUB).size;
      const texts = envelopes.map((e) => JSON.stringify(e));
      await cloud.sendAll(HUB, 'cmd', texts);
      await startHub();
      await cloud.waitFor(() => answeredSince(before) >= 20, 120_000, 'the first 20 answered');
      await stopHub('SIGKILL');
      const taken = takenIn(ids);
      expect(taken).toBeLessThan(ids.length);
      await startHub();
      await cloud.waitFor(() => answeredSince(before) === ids.length, 480_000, 'every command answered');
      const results = cloud.results(HUB);
      const code = (id: string) => (results.get(id)?.ok ? 'ok' : (results.get(id)?.error?.code ?? '?'));
      const counts: Record<string, number> = {};
      for (const id of ids) counts[code(id)] = (counts[code(id)] ?? 0) + 1;
      // Only what the kill caught in the middle (taken in, not answered) may be unknown_outcome;
      // a command that waited past its OTP time step is refused expired (never acted on).
      expect((counts.ok ?? 0) + (counts.unknown_outcome ?? 0) + (counts.expired ?? 0), JSON.stringify(counts)).toBe(
        ids.length,
      );
      expect(counts.unknown_outcome ?? 0).toBeLessThanOrEqual(64);
      // A command answered twice: the same answer, or its ok first and an unknown_outcome after
      // (a kill between publishing an answer and recording it: docs/mqtt-api.md, Crash safety).
      for (const a of cloud.answers(HUB)) {
        const id = a.payload.id;
        if (id === null || !results.has(id) || !ids.includes(id)) continue;
        if (JSON.stringify(a.payload) !== JSON.stringify(results.get(id)))
          expect(a.payload).toMatchObject({ error: { code: 'unknown_outcome' } });
      }
      const ok = openIds.filter((id) => code(id) === 'ok').length;
      const unknown = openIds.filter((id) => code(id) === 'unknown_outcome').length;
      await cloud.waitFor(() => remoteOpenings() - openingsBefore >= ok, 60_000, 'the opens seen as events');
      // No open acted twice: at most one opening per open that was ok or may have acted.
      const openings = remoteOpenings() - openingsBefore;
      expect(openings).toBeGreaterThanOrEqual(ok);
      expect(openings).toBeLessThanOrEqual(ok + unknown);
    }, 900_000);

    it('a stop that cannot finish within shutdown.timeoutMs (the broker stopped answering) ends then anyway (exit 1); the restart answers the rest', async () => {
      await stopHub();
      writeConfig({ latencyMs: 15, shutdownMs: 1000 });
      const openingsBefore = remoteOpenings();
      const envelopes = Array.from({ length: 100 }, () =>
        cloud.envelope(HUB, { op: 'open', lockId, args: { durationMs: 1 } }, { expiresAt: Date.now() + 9 * 60_000 }),
      );
      const ids = envelopes.map((e) => e.cmdId);
      for (const e of envelopes) await cloud.send(HUB, 'cmd', JSON.stringify(e));
      await startHub();
      await cloud.waitFor(() => answered(ids) >= 1, 120_000, 'the first open answered');
      // A broker that keeps the connection open and answers nothing: the hub's answers and its
      // offline status wait for PUBACKs that never come (bounded at 2 s and 5 s inside the uplink),
      // so the stop cannot finish in 1 s on any machine, however fast.
      broker.pause();
      const d = daemon;
      daemon = undefined;
      let took = 0;
      try {
        const stopAt = Date.now();
        d?.child.kill('SIGTERM');
        const exit = await d?.exit;
        took = Date.now() - stopAt;
        expect(exit?.code, d?.stdout()).toBe(1);
      } finally {
        broker.resume();
      }
      expect(d?.stdout()).toContain('shutdown took too long; exiting anyway');
      // The deadline and the exit itself: well under the uplink's own bounds.
      expect(took).toBeLessThan(5_000);
      writeConfig({ latencyMs: 15 });
      await startHub();
      await cloud.waitFor(() => answered(ids) === ids.length, 300_000, 'every open answered');
      const results = cloud.results(HUB);
      const ok = ids.filter((id) => results.get(id)?.ok).length;
      const unknown = ids.filter((id) => results.get(id)?.error?.code === 'unknown_outcome').length;
      const expired = ids.filter((id) => results.get(id)?.error?.code === 'expired').length;
      const codes = [
        ...new Set(ids.map((id) => (results.get(id)?.ok ? 'ok' : JSON.stringify(results.get(id)?.error)))),
      ];
      expect(ok + unknown + expired, JSON.stringify(codes)).toBe(ids.length);
      await cloud.waitFor(() => remoteOpenings() - openingsBefore >= ok, 60_000, 'the opens seen as events');
      const openings = remoteOpenings() - openingsBefore;
      expect(openings).toBeGreaterThanOrEqual(ok);
      expect(openings).toBeLessThanOrEqual(ok + unknown);
    }, 600_000);

    it('during a flood of 20,000 commands the technician still gets status, and a SIGTERM ends within shutdown.timeoutMs', async () => {
      const socket = join(base, 'run', 'control.sock');
      const before = cloud.results(HUB).size;
      const envelopes = Array.from({ length: 20_000 }, () =>
        cloud.envelope(HUB, { op: 'ping' }, { expiresAt: Date.now() + 9 * 60_000 }),
      );
      const ids = envelopes.map((e) => e.cmdId);
      const latencies: number[] = [];
      let flooding = true;
      const poll = (async () => {
        while (flooding) {
          const t0 = Date.now();
          await callDaemon(socket, 'status', {}, 30_000);
          latencies.push(Date.now() - t0);
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const texts = envelopes.map((e) => JSON.stringify(e));
      await cloud.sendAll(HUB, 'cmd', texts);
      await cloud.waitFor(() => answeredSince(before) >= ids.length / 2, 300_000, 'half the flood answered');
      flooding = false;
      await poll;
      const stopAt = Date.now();
      await stopHub('SIGTERM');
      const stopTook = Date.now() - stopAt;
      // The rest of the flood answered before any assertion: a failure here must not leave 10,000
      // commands queued in front of the next test's.
      await startHub();
      await cloud.waitFor(() => answeredSince(before) === ids.length, 300_000, 'the whole flood answered');
      expect(stopTook).toBeLessThan(8_000);
      // Every status asked during the flood was answered, between the commands, not after them:
      // none starved for seconds (660 ms at most on a quiet machine, 9-15 s before the hub took one
      // message per turn), half within 1 s even on a machine loaded 4x (375 ms measured at a load
      // of 8; the figure against the issue's 250 ms is the bench's uplink.floodStatusLatency).
      expect(latencies.length).toBeGreaterThan(10);
      const sorted = [...latencies].sort((a, b) => a - b);
      expect(sorted[Math.floor(sorted.length / 2)]).toBeLessThan(1_000);
      expect(sorted.at(-1)).toBeLessThan(5_000);
      expect(answered(ids)).toBe(ids.length);
    }, 600_000);

    it('through the broker: 20 deliveries of one open at once get 20 answers; a name given twice is refused; wrong_hub x5 locks nothing out', async () => {
      const openingsBefore = remoteOpenings();
      const open = cloud.envelope(HUB, { op: 'open', lockId, args: { durationMs: 1 } });
      const answersOf = (id: string) => cloud.answers(HUB).filter((a) => a.payload.id === id);
      await Promise.all(Array.from({ length: 20 }, () => cloud.send(HUB, 'cmd', JSON.stringify(open))));
      await cloud.waitFor(() => answersOf(open.cmdId).length >= 20, 60_000, '20 answers to one open');
      for (const a of answersOf(open.cmdId)) expect(a.payload).toEqual(answersOf(open.cmdId)[0]?.payload);
      expect(answersOf(open.cmdId)[0]?.payload).toMatchObject({ ok: true });
      await cloud.waitFor(() => remoteOpenings() - openingsBefore >= 1, 30_000, 'the opening');
      const marker = await cloud.command(HUB, { op: 'open', lockId, args: { durationMs: 1 } }, { timeoutMs: 30_000 });
      expect(marker.ok).toBe(true);
      await cloud.waitFor(() => remoteOpenings() - openingsBefore >= 2, 30_000, "the marker's opening");
      expect(remoteOpenings() - openingsBefore).toBe(2);

      // The op given twice: a reader keeping the first copy would see another command.
      const lock = cloud.envelope(HUB, { op: 'lock', lockId });
      await cloud.send(HUB, 'cmd', JSON.stringify(lock).replace('"op":"lock"', '"op":"open","op":"lock"'));
      await cloud.waitFor(() => answersOf(lock.cmdId).length > 0, 30_000, 'the duplicate-name refusal');
      expect(answersOf(lock.cmdId)[0]?.payload).toMatchObject({ ok: false, error: { code: 'bad_request' } });

      // Five commands addressed to another hub, then a genuine one: no lockout.
      for (let i = 0; i < 5; i++) {
        const r = await cloud.sendEnvelope(
          HUB,
          cloud.attack(HUB, { kind: 'otherHub', command: { op: 'ping' }, hubId: 'hub-other' }),
          {
            timeoutMs: 30_000,
          },
        );
        expect(r).toMatchObject({ ok: false, error: { code: 'wrong_hub' } });
      }
      expect(
        await cloud.command(HUB, { op: 'open', lockId, args: { durationMs: 1 } }, { timeoutMs: 30_000 }),
      ).toMatchObject({ ok: true });
    }, 300_000);

    it('10,050 refused syncs leave the record of an accepted open: its redelivery gets the stored ok and does not act', async () => {
      const open = cloud.envelope(
        HUB,
        { op: 'open', lockId, args: { durationMs: 1 } },
        { expiresAt: Date.now() + 9 * 60_000 },
      );
      const first = await cloud.sendEnvelope(HUB, open, { timeoutMs: 30_000 });
      expect(first.ok).toBe(true);
      const openingsBefore = remoteOpenings();
      const acks = () => cloud.answers(HUB).filter((a) => a.topic === 'sync/ack').length;
      const acksBefore = acks();
      // Syncs the mirror refuses: a delta on a base version it does not have.
      const refused = Array.from({ length: 10_050 }, (_, i) =>
        JSON.stringify({ v: 1, id: `refused-${i}`, kind: 'delta', baseVersion: 999_999, version: 1_000_000, data: {} }),
      );
      await cloud.sendAll(HUB, 'sync', refused);
      await cloud.waitFor(() => acks() - acksBefore >= refused.length, 300_000, '10,050 refusals');
      const last = cloud
        .answers(HUB)
        .filter((a) => a.topic === 'sync/ack')
        .at(-1);
      expect(last?.payload).toMatchObject({ ok: false, error: { code: 'sync.base-mismatch' } });
      // The cloud did not hear the first answer, say, and sends the open again.
      const again = await cloud.sendEnvelope(HUB, open, { timeoutMs: 30_000 });
      expect(again).toEqual(first);
      const marker = await cloud.command(HUB, { op: 'open', lockId, args: { durationMs: 1 } }, { timeoutMs: 30_000 });
      expect(marker.ok).toBe(true);
      await cloud.waitFor(() => remoteOpenings() - openingsBefore >= 1, 30_000, "the marker's opening");
      expect(remoteOpenings() - openingsBefore).toBe(1);
    }, 600_000);
  },
);
