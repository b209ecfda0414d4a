import { type ChildProcess, fork } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { OfflineLists } from '../src/access/offline.js';
import type { RunningDaemon } from '../src/app/daemon.js';
import { SeededRandom } from '../src/base/random.js';
import type { HubConfig } from '../src/config/schema.js';
import { offlineListDigest } from '../src/contract/link-offline.js';
import type { SyncPayload } from '../src/contract/mqtt-cloud-messages.js';
import type { SnapshotData } from '../src/contract/sync-data.js';
import { Secret } from '../src/crypto/secret.js';
import { EMULATED_LINK, startDaemonIn } from '../test/helpers/radio-daemon.js';
import { accessSite } from './access-data.js';
import { type Benchmark, benchmarkInTempDir, distribution, round } from './lib.js';
import { type SiteAir, type SiteLists, siteDeviceId, siteSetupCode } from './offline-site.js';
import { offlineWeek } from './offline-week.js';

/**
 * Full offline lists to a site's ZigBee locks, issue 15: a whole daemon in this process with its
 * ZigBee radio on the ZNP emulator (real zigbee-herdsman over tcp://), 16 unmodified SimLocks on
 * the emulator, bound to the hub — the emulator and the locks in a child process
 * (bench/offline-site.ts), so that the locks' work is not counted as the hub's; a 10,000-user site (bench/access-data.ts) of which 400 users are
 * offline, in 16 groups of 2 locks each, so the 16 locks' lists hold 3,200 entries together (200
 * each, about half on a weekly schedule: several windows per entry).
 *
 * - access.offlineFullPush16: from the moment the snapshot is in the mirror (the hub's sync has
 *   committed it and calls `offline.changed()`, as after a cloud sync) until all 16 locks hold
 *   their whole list — each lock's own list's digest (offlineListDigest over what the SimLock
 *   holds) equal to the digest of the list the hub wants for it. Each run starts from empty
 *   lists on the locks (an empty snapshot is applied and pushed between runs, unmeasured).
 *   `.withApply` adds the snapshot's apply to the mirror (JSON parse, checks, one transaction);
 *   `.hubCpu` is the CPU the hub's process used meanwhile (user + system): the hub's own cost,
 *   the rest of the time being the radio's (herdsman waits for each fragment's confirmation).
 * - access.offlineRecheck16: the hub forgets what it told the locks (as after a restart) and checks
 *   them again: each lock, already holding its list, costs one exchange (the digest check).
 * - access.offlineWeek16.*: the same site's lists kept for a week on a virtual clock (bench/offline-week.ts,
 *   no radio: fragments by the protocol's sizes): the full push, then what 7 daily refreshes send
 *   with no change to the site — the radio a battery lock spends on its list each week.
 * The emulator adds no air latency (it confirms a fragment after 2 ms and hands it to the lock
 * after 3); both processes share the machine's cores, so the 1-minute load average at the start
 * is reported next to the figures. IQHUB_BENCH_OFFLINE_RUNS changes the number of runs (5).
 */

const TZ = 'Europe/Madrid';
const SITE_ID = 'bench-offline-site';
const USERS = 10_000;
const LOCKS = 16;
const RUNS = Number(process.env.IQHUB_BENCH_OFFLINE_RUNS ?? 5);
/** One user in 25 is offline: 400 users, each in 2 groups of 2 locks: 3,200 list entries in all. */
const OFFLINE_SHARE = 1 / 25;
/** The week of daily refreshes counted by offlineWeek starts here (a Wednesday, inside every validity of the site). */
const WEEK_FROM = Date.parse('2026-06-03T10:00:00Z');

export const offlineBench: Benchmark = benchmarkInTempDir(
  'offline',
  'full offline lists (10,000 users, 3,200 entries) to 16 ZigBee locks on the ZNP emulator (own process) through real zigbee-herdsman, from the sync to every digest matching; and the digest-only recheck',
  async (dir, metrics) => {
    began = performance.now();
    const pinKey = new Secret(new SeededRandom('offline bench pin key').bytes(32));
    const lockIds = Array.from({ length: LOCKS }, (_, i) => siteDeviceId(i + 1));
    const site = accessSite({
      seed: 'offline-bench',
      users: USERS,
      lockIds,
      groups: LOCKS,
      locksPerGroup: 2,
      siteId: SITE_ID,
      pinKey,
      offlineShare: OFFLINE_SHARE,
    });
    const empty: SnapshotData = { users: [], groups: [], memberships: [], pins: [], tags: [], keys: [] };
    const radio = await RadioSite.start(LOCKS, 'offline-bench');
    let daemon: RunningDaemon | undefined;
    try {
      daemon = await startDaemonIn(
        dir,
        {
          radios: { zigbee: { enabled: true, port: radio.url, maxLinks: LOCKS } } as HubConfig['radios'],
          access: { timeZone: TZ } as HubConfig['access'],
        },
        { linkOptions: EMULATED_LINK },
      );
      const hub = daemon.hub;
      const link = hub.link;
      const offline = hub.offline;
      if (!link || !offline) throw new Error('access.offline: the daemon built no link layer');
      await radioRunning(daemon);
      progress('daemon and radio up');
      await radio.ask('card');
      await Promise.all(lockIds.map((id, i) => link.attach(id, Secret.fromUtf8(siteSetupCode(i + 1)), 60_000)));
      await offline.settled();
      progress(`${LOCKS} locks attached`);

      let version = 1;
      const apply = (data: SnapshotData) =>
        hub.mirror.apply({
          v: 1,
          id: `offline-bench-${version}`,
          kind: 'snapshot',
          version: version++,
          data,
        } as unknown as SyncPayload);
      const text = JSON.stringify(site.snapshot);
      const load = loadavg()[0] ?? Number.NaN;
      const push: number[] = [];
      const withApply: number[] = [];
      const hubCpu: number[] = [];
      let entries = 0;
      let requests = 0;
      let airOut = 0;
      let airBack = 0;
      for (let run = 0; run < RUNS; run++) {
        apply(empty);
        offline.changed();
        await offline.settled();
        const cleared = await radio.lists();
        if (Object.values(cleared).some((l) => l.held !== 0))
          throw new Error('access.offline: a lock still holds entries');
        const sentBefore = sum(cleared);
        const airBefore = await radio.air();
        const t0 = performance.now();
        apply(JSON.parse(text) as SnapshotData);
        const t1 = performance.now();
        const cpu = process.cpuUsage();
        offline.changed();
        const done = await settledAt(offline);
        const used = process.cpuUsage(cpu);
        hubCpu.push((used.user + used.system) / 1000);
        withApply.push(done - t0);
        push.push(done - t1);
        const lists = await radio.lists();
        matching(offline, lists);
        entries = Object.values(lists).reduce((n, l) => n + l.held, 0);
        requests = sum(lists) - sentBefore;
        const airAfter = await radio.air();
        airOut = airAfter.toLocks - airBefore.toLocks;
        airBack = airAfter.fromLocks - airBefore.fromLocks;
        progress(`run ${run + 1}: ${Math.round(done - t1)} ms after the apply (${Math.round(t1 - t0)} ms)`);
      }
      if (entries !== 3_200) throw new Error(`access.offline: the locks hold ${entries} entries, not 3,200`);
      metrics['access.offlineFullPush16'] = distribution('ms', push);
      metrics['access.offlineFullPush16.withApply'] = distribution('ms', withApply);
      metrics['access.offlineFullPush16.hubCpu'] = distribution('ms', hubCpu);
      metrics['access.offlineFullPush16.entries'] = { unit: 'entries', value: entries };
      metrics['access.offlineFullPush16.requests'] = { unit: 'setOffline (16 locks)', value: requests };
      // Every frame on the air either way during the push (the lists' fragments, the locks' answers;
      // not the locks' periodic reports): the radio cost of a push to battery locks.
      metrics['access.offlineFullPush16.airFramesOut'] = { unit: 'frames to the locks', value: airOut };
      metrics['access.offlineFullPush16.airFramesBack'] = { unit: 'frames from the locks', value: airBack };
      metrics['access.offlineFullPush16.loadAverage'] = { unit: '1 min', value: round(load) };

      // A restart's check: the hub forgets what each lock holds; one digest exchange per lock.
      const recheck: number[] = [];
      let exchanges = 0;
      for (let run = 0; run < RUNS; run++) {
        const before = sum(await radio.lists());
        const t = performance.now();
        for (const id of lockIds) {
          offline.lockGone(id);
          offline.lockReady(id);
        }
        await offline.settled();
        recheck.push(performance.now() - t);
        const lists = await radio.lists();
        matching(offline, lists);
        exchanges = sum(lists) - before;
      }
      metrics['access.offlineRecheck16'] = distribution('ms', recheck);
      metrics['access.offlineRecheck16.exchanges'] = { unit: 'setOffline per round', value: exchanges };

      // A week of the same lists by the protocol's sizes (no radio): the full push, then 7 daily refreshes.
      const week = await offlineWeek(site.snapshot, lockIds, TZ, WEEK_FROM);
      metrics['access.offlineWeek16.fullPushFragments'] = { unit: 'ZigBee fragments out', value: week.full.fragments };
      metrics['access.offlineWeek16.fullPushRequests'] = {
        unit: 'setOffline (answers back)',
        value: week.full.requests,
      };
      metrics['access.offlineWeek16.refreshFragments'] = {
        unit: 'fragments out in 7 days',
        value: week.week.fragments,
      };
      metrics['access.offlineWeek16.refreshRequests'] = { unit: 'setOffline in 7 days', value: week.week.requests };
      progress(`a week of refreshes: ${JSON.stringify(week)}`);
    } finally {
      await daemon?.shutdown('bench over');
      await radio.stop();
      progress('stopped');
    }
  },
);

let began = performance.now();
function progress(what: string): void {
  process.stderr.write(`access.offline: ${what} (${Math.round((performance.now() - began) / 1000)} s)\n`);
}

const sum = (lists: SiteLists) => Object.values(lists).reduce((n, l) => n + l.setOffline, 0);

/** The emulator and its locks in a child process (bench/offline-site.ts). */
class RadioSite {
  readonly #child: ChildProcess;
  readonly url: string;

  private constructor(child: ChildProcess, url: string) {
    this.#child = child;
    this.url = url;
  }

  static start(count: number, seed: string): Promise<RadioSite> {
    const child = fork(fileURLToPath(new URL('./offline-site.js', import.meta.url)), ['site', String(count), seed], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`access.offline: the radio site exited (${code})`)));
      child.once('message', (m: { op: string; url: string }) => resolve(new RadioSite(child, m.url)));
    });
  }

  ask(op: string): Promise<{ op: string; lists?: SiteLists; air?: SiteAir }> {
    return new Promise((resolve) => {
      this.#child.once('message', resolve);
      this.#child.send({ op });
    });
  }

  async lists(): Promise<SiteLists> {
    return (await this.ask('lists')).lists ?? {};
  }

  async air(): Promise<SiteAir> {
    return (await this.ask('lists')).air ?? { toLocks: 0, fromLocks: 0 };
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    this.#child.removeAllListeners('exit');
    const exited = new Promise((r) => this.#child.once('exit', r));
    this.#child.send({ op: 'stop' });
    await exited;
  }
}

async function radioRunning(daemon: RunningDaemon): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!daemon.hub.status().components.some((c) => c.name === 'radio.zigbee' && c.state === 'running')) {
    if (Date.now() > deadline) throw new Error('access.offline: the ZigBee radio is not ready within 30 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits for the offline lists to settle; resolves with the moment (performance.now()) the last lock was reported updated. */
async function settledAt(offline: OfflineLists): Promise<number> {
  let last = performance.now();
  const off = offline.onUpdated(() => {
    last = performance.now();
  });
  try {
    await offline.settled();
  } finally {
    off();
  }
  const failing = offline.locks().filter((l) => l.lastError !== undefined);
  if (failing.length > 0) throw new Error(`access.offline: ${failing.length} locks failed: ${failing[0]?.lastError}`);
  return last;
}

/** Every lock's own list is the one the hub wants for it (its digest over what the lock holds). */
function matching(offline: OfflineLists, lists: SiteLists): void {
  for (const [lockId, held] of Object.entries(lists)) {
    const wanted = Buffer.from(offlineListDigest(offline.desired(lockId).items)).toString('hex');
    if (held.digest !== wanted) throw new Error(`access.offline: ${lockId}'s list is not the one the hub wants`);
  }
}
