import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createDevPki } from '../../provisioning/dev-pki.js';
import type { CommandSpec, ReferenceCloud } from '../../sim/cloud/cloud.js';
import type { CommandEnvelope } from '../../src/commands/otp.js';
import type { CmdResultPayload } from '../../src/contract/mqtt-hub-messages.js';
import { callDaemon } from '../../src/control-socket/socket-client.js';
import { attachSiteLocks, closeSite, openSite, startHubOnline, writeSiteConfig } from '../helpers/cloud-site.js';
import { type Proc, requireBuild } from '../helpers/daemon.js';
import { MOSQUITTO_MISSING, type Mosquitto, requireMosquitto } from '../helpers/mosquitto.js';

requireBuild();
const haveMosquitto = requireMosquitto() !== undefined;
if (!haveMosquitto) process.stderr.write(`remote-commands: ${MOSQUITTO_MISSING}\n`);

const HUB = 'hub-remote';
const [A, B] = ['SIM-0001', 'SIM-0002'] as const;
/** The lock operations that act (move a bolt, change a mode, end a binding). */
const ACTING = ['open', 'lock', 'setMode', 'detach'] as const;

interface CommandsView {
  stats: { accepted: number; refused: Record<string, number>; lockouts: number; lockedOutUntil: string | null };
  recent: {
    cmdId: string;
    op: string;
    lockId: string | null;
    state: string;
    ok: boolean | null;
    code: string | null;
  }[];
}

interface SimLockInfo {
  deviceId: string;
  running: boolean;
  state: { bolt: string };
  requestCounts: { handled: Record<string, number>; repeated: number; ignored: number };
}

describe.skipIf(!haveMosquitto)(
  `remote commands with OTPs through mosquitto${haveMosquitto ? '' : ` (${MOSQUITTO_MISSING})`}`,
  () => {
    let base: string;
    let broker: Mosquitto;
    let cloud: ReferenceCloud;
    let config: string;
    let pki: ReturnType<typeof createDevPki>;
    let daemon: Proc | undefined;

    /** The config: the dev PKI's OTP key; `lockout` gives the defaults with a 2 s lockout, else none. */
    const writeConfig = (lockout: boolean) => {
      config = writeSiteConfig({
        base,
        brokerUrl: broker.url,
        pki,
        locks: 2,
        seed: 'remote-commands',
        // The attacks below are many refusals in a row: without this they would end in a lockout.
        commands: [`  lockoutFailures: ${lockout ? 5 : 1000}`, '  lockoutWindowSec: 60', '  lockoutSec: 2'],
      });
    };

    const call = (method: string, params: Record<string, unknown> = {}) =>
      callDaemon(join(base, 'run', 'control.sock'), method, params, 30_000);
    const simLocks = async () => (await call('sim.locks')) as SimLockInfo[];
    /**
     * Acting requests each lock handled since it booted, and requests it answered from its cache
     * (a repeated frame). The hub's background event polls (getState, getEvents, ackEvents) are
     * left out: they may run at any moment.
     */
    const acting = async () =>
      Object.fromEntries(
        (await simLocks()).flatMap((l) => [
          ...ACTING.map((op) => [`${l.deviceId} ${op}`, l.requestCounts.handled[op] ?? 0]),
          [`${l.deviceId} repeated`, l.requestCounts.repeated],
        ]),
      );
    const remoteOpenings = (lockId: string) =>
      cloud.events(HUB).filter((e) => e.lockId === lockId && e.type === 'opened' && e.by === 'remote').length;

    async function startHub(): Promise<void> {
      daemon = await startHubOnline(cloud, HUB, config);
    }

    async function stopHub(): Promise<void> {
      const d = daemon;
      daemon = undefined;
      if (!d) return;
      d.child.kill('SIGTERM');
      expect((await d.exit).code).toBe(0);
    }

    async function ping(): Promise<void> {
      const pong = await cloud.command(HUB, { op: 'ping' }, { timeoutMs: 10_000 });
      expect(pong, JSON.stringify(pong)).toMatchObject({ ok: true });
    }

    /** Waits until the uplink's outbox holds nothing (its detail in `iqhub status`). */
    async function outboxEmpty(): Promise<void> {
      let detail = '';
      for (let i = 0; i < 100; i++) {
        const status = (await call('status')) as { components: { name: string; detail: string }[] };
        detail = status.components.find((c) => c.name === 'uplink')?.detail ?? '';
        if (detail.includes('outbox 0 events, 0 messages')) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`the outbox did not empty: ${detail}`);
    }

    const open = (lockId: string, durationMs = 500): CommandSpec => ({ op: 'open', lockId, args: { durationMs } });

    beforeAll(async () => {
      ({ base, pki, broker, cloud } = await openSite('remote', HUB));
      writeConfig(false);
      await startHub();
      await attachSiteLocks(base);
    }, 60_000);

    afterAll(() => closeSite({ daemon, cloud, broker, base }));

    it('a signed open opens the lock: an ok cmd/result and an opened{by: remote} event reach the cloud', async () => {
      const before = await acting();
      const eventsBefore = remoteOpenings(A);
      const envelope = cloud.envelope(HUB, open(A, 1000));
      const r = await cloud.sendEnvelope(HUB, envelope, { timeoutMs: 15_000 });
      expect(r, JSON.stringify(r)).toMatchObject({ v: 1, id: envelope.cmdId, ok: true });
      expect((await acting())[`${A} open`]).toBe((before[`${A} open`] ?? 0) + 1);
      await cloud.waitFor(() => remoteOpenings(A) === eventsBefore + 1, 15_000, 'the opened{by: remote} event');
      const event = cloud
        .events(HUB)
        .filter((e) => e.lockId === A && e.type === 'opened')
        .at(-1);
      expect(event).toMatchObject({ lockId: A, type: 'opened', by: 'remote' });
      expect(cloud.invalid, JSON.stringify(cloud.invalidMessages)).toBe(0);
      // The result went out ahead of its outbox row; the row left with the broker's PUBACK.
      await outboxEmpty();
    }, 60_000);

    describe('each forged, altered, replayed or stale command is refused with its code, reaches no lock, and the hub keeps serving', () => {
      let accepted: CommandEnvelope;

      beforeAll(async () => {
        // The genuine command the replays copy; it has been carried out.
        accepted = cloud.envelope(HUB, open(A));
        const r = await cloud.sendEnvelope(HUB, accepted, { timeoutMs: 15_000 });
        expect(r, JSON.stringify(r)).toMatchObject({ ok: true });
        expect(cloud.acceptedCounter(HUB)).toBe(accepted.counter);
      }, 90_000);

      const cases: [string, () => CommandEnvelope, string][] = [
        ['a wrong OTP', () => cloud.attack(HUB, { kind: 'forgedOtp', command: open(A) }), 'otp_mismatch'],
        [
          'the OTP of another command: args altered after signing',
          () => cloud.attack(HUB, { kind: 'alteredArgs', command: open(A), args: { durationMs: 600_000 } }),
          'otp_mismatch',
        ],
        [
          'the OTP of another command: lockId altered after signing',
          () => cloud.attack(HUB, { kind: 'alteredLockId', command: open(A), lockId: B }),
          'otp_mismatch',
        ],
        [
          'a replay of an accepted command under a new cmdId (old counter and OTP)',
          () => cloud.attack(HUB, { kind: 'replayNewId', of: accepted }),
          'otp_mismatch',
        ],
        [
          'a replay of an accepted command under a new cmdId, correctly signed with its old counter',
          () => cloud.attack(HUB, { kind: 'replayResigned', of: accepted }),
          'replayed',
        ],
        [
          'a counter going backwards',
          () => cloud.attack(HUB, { kind: 'counterBackwards', command: open(B) }),
          'replayed',
        ],
        ['an expired command', () => cloud.attack(HUB, { kind: 'expired', command: open(A) }), 'expired'],
        ['a future-dated command', () => cloud.attack(HUB, { kind: 'futureDated', command: open(A) }), 'not_yet_valid'],
        [
          "another hub's command",
          () => cloud.attack(HUB, { kind: 'otherHub', command: open(A), hubId: 'hub-elsewhere' }),
          'wrong_hub',
        ],
        ['a lock that is not attached', () => cloud.envelope(HUB, open('SIM-0099')), 'unknown_lock'],
        [
          'arguments outside the contract, correctly signed',
          () => cloud.envelope(HUB, { op: 'open', lockId: A, args: { durationMs: -5 } }),
          'bad_request',
        ],
      ];

      it.each(cases)('%s → %s', async (_what, make, code) => {
        const before = await acting();
        const envelope = make();
        const r: CmdResultPayload = await cloud.sendEnvelope(HUB, envelope, { timeoutMs: 10_000 });
        expect(r, JSON.stringify(r)).toMatchObject({ id: envelope.cmdId, ok: false, error: { code } });
        await ping();
        expect(await acting(), 'a refused command reached a lock').toEqual(before);
      });

      it('both doors lock again after the genuine opens (an altered 10-minute open would keep one open)', async () => {
        const end = Date.now() + 5_000;
        let bolts: string[] = [];
        do {
          bolts = (await simLocks()).map((l) => l.state.bolt);
          if (bolts.every((b) => b === 'locked')) break;
          await new Promise((r) => setTimeout(r, 100));
        } while (Date.now() < end);
        expect(bolts).toEqual(['locked', 'locked']);
        expect(cloud.invalid, JSON.stringify(cloud.invalidMessages)).toBe(0);
      });
    });

    it('the same envelope delivered twice (in flight, and again after its answer) acts once', async () => {
      const before = await acting();
      const eventsBefore = remoteOpenings(B);
      const envelope = cloud.envelope(HUB, open(B));
      // Twice at once, as a QoS 1 duplicate arrives while the first copy is being carried out.
      const [first, second] = await Promise.all([
        cloud.sendEnvelope(HUB, envelope, { timeoutMs: 15_000 }),
        cloud.sendEnvelope(HUB, cloud.attack(HUB, { kind: 'replay', of: envelope }), { timeoutMs: 15_000 }),
      ]);
      expect(first, JSON.stringify(first)).toMatchObject({ id: envelope.cmdId, ok: true });
      expect(second.id).toBe(envelope.cmdId);
      // And once more after it was answered: the stored answer, or a refusal as a replay; never a second opening.
      const again = await cloud.sendEnvelope(HUB, cloud.attack(HUB, { kind: 'replay', of: envelope }), {
        timeoutMs: 15_000,
      });
      expect(again.id).toBe(envelope.cmdId);
      if (again.ok) expect(again).toEqual(first);
      else expect(again.error?.code).toBe('replayed');
      await ping();
      expect((await acting())[`${B} open`]).toBe((before[`${B} open`] ?? 0) + 1);
      await cloud.waitFor(() => remoteOpenings(B) >= eventsBefore + 1, 15_000, 'the opened event');
      await new Promise((r) => setTimeout(r, 1000));
      expect(remoteOpenings(B)).toBe(eventsBefore + 1);
      const answers = cloud.answers(HUB).filter((a) => a.payload.id === envelope.cmdId);
      expect(answers.length).toBeGreaterThanOrEqual(2);
      expect(
        answers.filter((a) => a.payload.ok).every((a) => JSON.stringify(a.payload) === JSON.stringify(first)),
      ).toBe(true);
    }, 60_000);

    it('20 wrong OTPs in a row lock remote commands out; a valid one is refused, and works after the lockout', async () => {
      await stopHub();
      writeConfig(true);
      const restartedAt = Date.now();
      await startHub();
      await ping();
      // The first health of this run has gone (a second after start; the next is a minute away).
      await cloud.waitFor(
        () => cloud.health(HUB).some((h) => Date.parse(h.at) >= restartedAt),
        5_000,
        'the first health message after the restart',
      );
      const before = await acting();
      const codes: string[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await cloud.sendEnvelope(HUB, cloud.attack(HUB, { kind: 'forgedOtp', command: open(A) }), {
          timeoutMs: 10_000,
        });
        expect(r.ok).toBe(false);
        codes.push(r.error?.code ?? '');
      }
      // The first ones are mismatches; once 5 failures are counted everything is refused. The
      // refusals the tests above caused (forged and replayed commands, under lockoutFailures 1000)
      // are within the 60 s window and survived the restart, so the lockout may come sooner.
      const first = codes.indexOf('locked_out');
      expect(first, codes.join(' ')).toBeGreaterThanOrEqual(1);
      expect(first, codes.join(' ')).toBeLessThanOrEqual(5);
      expect(codes.slice(0, first)).toEqual(Array(first).fill('otp_mismatch'));
      expect(
        codes.slice(first).every((c) => c === 'otp_mismatch' || c === 'locked_out'),
        codes.join(' '),
      ).toBe(true);

      const refused = await cloud.command(HUB, open(A), { timeoutMs: 10_000 });
      expect(refused, JSON.stringify(refused)).toMatchObject({ ok: false, error: { code: 'locked_out' } });
      expect(await acting(), 'a command reached a lock during the lockout').toEqual(before);
      // What a technician sees meanwhile (iqhub commands, iqhub status).
      const during = (await call('commands.list', { limit: 5 })) as CommandsView;
      expect(during.stats.lockouts).toBe(1);
      expect(during.stats.lockedOutUntil).not.toBeNull();
      // Since this start (the counts are per run; the lockout's own failures are what is stored).
      expect(during.stats.refused.otp_mismatch).toBeGreaterThanOrEqual(first);
      expect(during.stats.refused.locked_out).toBeGreaterThanOrEqual(1);
      // Refused commands are counted, never recorded: the newest recorded one is the ping.
      expect(during.recent[0]).toMatchObject({ op: 'ping', state: 'answered', ok: true, code: null });
      const status = (await call('status')) as { components: { name: string; detail?: string }[] };
      expect(status.components.find((c) => c.name === 'uplink')?.detail).toContain('remote commands locked out until');
      const diag = (await call('diag')) as { checks: { name: string; verdict: string; detail: string }[] };
      expect(diag.checks.find((c) => c.name === 'commands')).toMatchObject({ verdict: 'warn' });
      // The cloud heard of it at once: a health message carries the lockout (not only every 60 s).
      await cloud.waitFor(
        () => cloud.health(HUB).some((h) => h.commands?.lockedOutUntil === during.stats.lockedOutUntil),
        5_000,
        'a health message with the lockout',
      );

      // lockoutSec: 2 in this config.
      await new Promise((r) => setTimeout(r, 2_500));
      const eventsBefore = remoteOpenings(A);
      const ok = await cloud.command(HUB, open(A), { timeoutMs: 10_000 });
      expect(ok, JSON.stringify(ok)).toMatchObject({ ok: true });
      expect((await acting())[`${A} open`]).toBe((before[`${A} open`] ?? 0) + 1);
      await cloud.waitFor(() => remoteOpenings(A) === eventsBefore + 1, 15_000, 'the opened event after the lockout');
      const after = (await call('commands.list', { limit: 1 })) as CommandsView;
      expect(after.stats.lockedOutUntil).toBeNull();
      expect(after.recent).toEqual([
        expect.objectContaining({ cmdId: ok.id, op: 'open', lockId: A, state: 'answered', ok: true, code: null }),
      ]);
      expect(cloud.invalid, JSON.stringify(cloud.invalidMessages)).toBe(0);
      await stopHub();
    }, 90_000);
  },
);
