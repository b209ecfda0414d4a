import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createDevPki, type DevPkiPaths } from '../provisioning/dev-pki.js';
import type { ReferenceCloud } from '../sim/cloud/cloud.js';
import { connectReferenceCloud } from '../sim/cloud/connect.js';
import { CloudKeyIssuer } from '../sim/phone/issuer.js';
import { SimPhone } from '../sim/phone/phone.js';
import { pinVerifier, tagHash } from '../src/access/credentials.js';
import { AccessDecider, type CredentialKind, type PresentedCredential } from '../src/access/decide.js';
import { newChallenge, type SignedKey, VERIFIED_KEYS_DEFAULT } from '../src/access/digital-key.js';
import { AccessMirror } from '../src/access/mirror.js';
import type { OfflineLists } from '../src/access/offline.js';
import { systemClock } from '../src/base/clock.js';
import { HeapSettle } from '../src/base/heap-settle.js';
import { SeededRandom, systemRandom } from '../src/base/random.js';
import type { SyncPayload } from '../src/contract/mqtt-cloud-messages.js';
import type { DeltaData, SnapshotData } from '../src/contract/sync-data.js';
import { Secret } from '../src/crypto/secret.js';
import { silentLogger } from '../src/log/logger.js';
import { Store } from '../src/store/store.js';
import { type AccessPerson, type AccessSite, accessSite, businessHour, issueKey } from './access-data.js';
import { type Benchmark, benchmarkInTempDir, distribution, type Metric, round } from './lib.js';
import { type Broker, broker, startBenchDaemon } from './uplink.bench.js';

/**
 * The access figures of issue 6.
 *
 * The site: 10,000 users, each with a PIN, a tag and a digital key (10,000 of each), in 100
 * access groups over 200 locks, half the groups with a weekly schedule read in Europe/Madrid
 * (bench/access-data.ts has the shape).
 *
 * - access.fullSync: seconds to apply that snapshot — JSON.parse of the sync's 2–3 MB payload
 *   and `AccessMirror.apply` (schema, checks, one transaction) on a Store+AccessMirror in this
 *   process; median of 5, the first into an empty mirror, the others replacing a full one. In
 *   process because the uplink refuses inbound payloads above 256 KiB today (docs/access.md).
 * - access.decision.{pin,tag,digitalKey}: `AccessDecider.verifyAccess` on that mirror, random
 *   users at one of their locks at random weekday business hours (so schedules are evaluated),
 *   every decision checked to be a grant; p50/p99 ms per decision and decisions per second. A
 *   digital key's presentation is built beforehand with a fresh challenge (the phone's signing
 *   is not the hub's time). `.cpu`: the process's CPU time (user + system) per decision, which a
 *   busy machine's preemption does not inflate as it does the wall time. access.decision.
 *   digitalKey.again: the last 2,048 of those people again with fresh challenges — keys the
 *   decider has verified before (its VerifiedKeys cache), as on a site where people open doors
 *   every day.
 * - access.daemonRss: RSS of a separate Node process running the whole daemon (startDaemon,
 *   simulation with no locks, no uplink) after that snapshot was applied to its mirror directly
 *   (`hub.mirror.apply`: the uplink's 256 KiB limit again) and garbage collected; next to it the
 *   same daemon's RSS before the snapshot.
 * - access.propagation: a 200-lock simulated site attached to a whole daemon in this process,
 *   the reference cloud syncing it through a real broker: a delta that adds a tag to an offline
 *   user whose group names all 200 locks (grant), then one that deletes it (revoke). Time from
 *   the cloud's publish until each lock's own offline list holds it (or no longer does), checked
 *   on the lock when the hub's OfflineLists reports that lock updated. The locks' flash files are
 *   written without fsync (simulation.flashDurable: false); the hub's store is durable on disk. Everything shares one process and
 *   the machine's cores, so .loadAverage (1 min, at the start) is reported next to it. Grants and revokes
 *   together, 200 locks × rounds; also separately as .grant and .revoke. For reading them:
 *   .syncAck, the cloud's publish to its sync/ack (the mirror applied), and .everyLock, per
 *   delta the time until the last of the 200 locks held it.
 */

const HUB = 'bench-hub';
const TZ = 'Europe/Madrid';
const SITE_ID = 'bench-site';
const USERS = 10_000;
const LOCKS = 200;
const GROUPS = 100;
const LOCKS_PER_GROUP = 10;
const DECISIONS = 5_000;
const WARMUP = 500;
const FULL_SYNCS = 5;
const PROPAGATION_ROUNDS = 5;
/** Offline users in the big site: bounded by the locks' capacity (500) on each lock's list. */
const OFFLINE_SHARE = 0.02;

const lockIds = (n: number) => Array.from({ length: n }, (_, i) => `door-${String(i).padStart(3, '0')}`);

function bigSite(pinKey: Secret): AccessSite {
  return accessSite({
    seed: 'bench',
    users: USERS,
    lockIds: lockIds(LOCKS),
    groups: GROUPS,
    locksPerGroup: LOCKS_PER_GROUP,
    siteId: SITE_ID,
    pinKey,
    offlineShare: OFFLINE_SHARE,
  });
}

const snapshotText = (version: number, data: SnapshotData) =>
  JSON.stringify({ v: 1, id: `bench-snapshot-${version}`, kind: 'snapshot', version, data });

export const accessBench: Benchmark = benchmarkInTempDir(
  'access',
  'access decisions per credential type with 10,000 users/PINs/tags/keys (p50/p99, per second), full snapshot apply (in process, and as one sync through the broker to a daemon), daemon RSS with it, grant/revoke propagation to 200 simulated locks (p50/p99)',
  async (dir, metrics) => {
    const pinKey = new Secret(new SeededRandom('bench pin key').bytes(32));
    const site = bigSite(pinKey);
    const store = Store.open(join(dir, 'mirror'));
    try {
      const settle = new HeapSettle();
      const mirror = new AccessMirror({ store, clock: systemClock, heapSettle: settle });
      fullSync(mirror, site, metrics);
      // Decisions are measured in the steady state: after the collections a large sync asks for
      // (src/base/heap-settle.ts, once per large sync, a few seconds after it).
      while (settle.busy) await new Promise((r) => setTimeout(r, 100));
      await decisions(mirror, site, pinKey, metrics);
    } finally {
      store.close();
    }
    await daemonRss(dir, site, metrics);
    await propagation(dir, site, metrics);
  },
);

function fullSync(mirror: AccessMirror, site: AccessSite, metrics: Record<string, Metric>): void {
  const texts = Array.from({ length: FULL_SYNCS }, (_, i) => snapshotText(i + 1, site.snapshot));
  const seconds: number[] = [];
  for (const text of texts) {
    const t = performance.now();
    const applied = mirror.apply(JSON.parse(text) as SyncPayload);
    seconds.push((performance.now() - t) / 1000);
    const c = applied.counts;
    if (c.users !== USERS || c.pins !== USERS || c.tags !== USERS || c.keys !== USERS) {
      throw new Error(`access.fullSync: the mirror holds ${JSON.stringify(c)}, not ${USERS} of each`);
    }
  }
  seconds.sort((a, b) => a - b);
  metrics['access.fullSync'] = {
    unit: 's (median)',
    value: round(seconds[Math.floor(FULL_SYNCS / 2)] ?? NaN),
    n: FULL_SYNCS,
  };
  metrics['access.snapshotSize'] = { unit: 'MB', value: round((texts[0]?.length ?? 0) / 1024 / 1024) };
}

interface Attempt {
  lockId: string;
  at: number;
  credential: PresentedCredential;
  userId: string;
}

async function decisions(
  mirror: AccessMirror,
  site: AccessSite,
  pinKey: Secret,
  metrics: Record<string, Metric>,
): Promise<void> {
  const cloud = new CloudKeyIssuer(new SeededRandom('bench cloud'));
  const phones = await Promise.all(
    Array.from({ length: 8 }, (_, i) => SimPhone.create(new SeededRandom(`bench phone ${i}`))),
  );
  const decider = new AccessDecider({
    mirror,
    clock: systemClock,
    timeZone: TZ,
    cloudPublicKey: cloud.publicKey,
    log: silentLogger(),
  });
  const random = new SeededRandom('bench attempts');
  const signed = new Map<string, { key: SignedKey; phone: SimPhone }>();
  const attempt = (kind: CredentialKind): Attempt => {
    const person = site.people[random.int(site.people.length)] as AccessPerson;
    const lockId = person.lockIds[random.int(person.lockIds.length)] as string;
    const at = businessHour(random);
    if (kind === 'pin') {
      // What the lock's secure element sends for the typed digits.
      return {
        lockId,
        at,
        userId: person.userId,
        credential: { kind, verifier: pinVerifier(pinKey, person.pin, SITE_ID) },
      };
    }
    if (kind === 'tag') {
      return { lockId, at, userId: person.userId, credential: { kind, hash: tagHash(person.tagId, SITE_ID) } };
    }
    let held = signed.get(person.keyId);
    if (!held) {
      const phone = phones[random.int(phones.length)] as SimPhone;
      held = { key: issueKey(cloud, person, phone.keys), phone };
      signed.set(person.keyId, held);
    }
    const challenge = newChallenge(systemRandom);
    const presentation = new TextEncoder().encode(JSON.stringify(held.phone.presentKey(held.key, challenge, lockId)));
    return { lockId, at, userId: person.userId, credential: { kind, challenge, presentation } };
  };
  const again: Attempt[] = [];
  const repeat = (a: Attempt): Attempt => {
    const person = site.people.find((p) => p.userId === a.userId) as AccessPerson;
    const held = signed.get(person.keyId) as { key: SignedKey; phone: SimPhone };
    const challenge = newChallenge(systemRandom);
    const presentation = new TextEncoder().encode(JSON.stringify(held.phone.presentKey(held.key, challenge, a.lockId)));
    return { ...a, credential: { kind: 'digitalKey', challenge, presentation } };
  };
  for (const kind of ['pin', 'tag', 'digitalKey', 'digitalKey.again'] as const) {
    const attempts =
      kind === 'digitalKey.again' ? again : Array.from({ length: WARMUP + DECISIONS }, () => attempt(kind));
    const samples: number[] = [];
    const cpu: number[] = [];
    let busy = 0;
    for (let i = 0; i < attempts.length; i++) {
      const a = attempts[i] as Attempt;
      const c = process.cpuUsage();
      const t = performance.now();
      const d = decider.verifyAccess(a.lockId, a.credential, a.at);
      const ms = performance.now() - t;
      const used = process.cpuUsage(c);
      // Only grants are the figure: a refusal (a bug in the site or the bench) would be much cheaper.
      if (!d.grant || d.userId !== a.userId) {
        throw new Error(
          `access.decision.${kind}: ${a.userId} at ${a.lockId} on ${new Date(a.at).toISOString()} was ${d.reason} (user ${d.userId}), not granted`,
        );
      }
      if (i >= WARMUP) {
        samples.push(ms);
        cpu.push((used.user + used.system) / 1000);
        busy += ms;
      }
    }
    if (kind === 'digitalKey') {
      // The last people again, with fresh challenges: keys the decider has seen (VERIFIED_KEYS_DEFAULT of them at most).
      const recent = attempts.slice(-Math.min(VERIFIED_KEYS_DEFAULT, DECISIONS));
      for (let i = 0; i < WARMUP + DECISIONS; i++) {
        const a = recent[i % recent.length] as Attempt;
        again.push(repeat(a));
      }
    }
    metrics[`access.decision.${kind}`] = distribution('ms', samples);
    metrics[`access.decision.${kind}.cpu`] = distribution('ms', cpu);
    metrics[`access.decision.${kind}.rate`] = {
      unit: 'decisions/s',
      value: round(DECISIONS / (busy / 1000)),
      n: DECISIONS,
    };
  }
  const granted = decider.counts().granted;
  if (granted !== 4 * (WARMUP + DECISIONS))
    throw new Error(`access.decision: ${granted} grants counted by the decider`);
}

/**
 * A separate process, so the figure is the daemon's and not this bench's (its generated site and
 * its own mirror): it starts the daemon, notes its RSS, reads the snapshot file, applies it to the
 * hub's mirror, lets the offline lists and the heap settle, collects garbage and notes the RSS again.
 */
async function daemonRss(dir: string, site: AccessSite, metrics: Record<string, Metric>): Promise<void> {
  const snapshotFile = join(dir, 'snapshot.json');
  writeFileSync(snapshotFile, snapshotText(1, site.snapshot));
  const daemonModule = new URL('../src/app/daemon.js', import.meta.url).href;
  const siteModule = new URL('../src/demo/simulated-site.js', import.meta.url).href;
  const settleModule = new URL('../src/base/heap-settle.js', import.meta.url).href;
  const script = `
    import { readFileSync } from 'node:fs';
    const { startDaemon } = await import(${JSON.stringify(daemonModule)});
    const { loadSimulatedSite } = await import(${JSON.stringify(siteModule)});
    const { processHeapSettle } = await import(${JSON.stringify(settleModule)});
    const dir = ${JSON.stringify(join(dir, 'rss'))};
    const d = await startDaemon({
      configPath: null,
      logPretty: false,
      overrides: {
        dataDir: dir + '/data',
        runDir: dir + '/run',
        log: { level: 'fatal', pretty: false },
        simulation: { enabled: true, locks: 0 },
        access: { timeZone: ${JSON.stringify(TZ)} },
      },
      simulation: loadSimulatedSite,
    });
    const rss = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage().rss; };
    const before = rss();
    const applied = d.hub.mirror.apply(JSON.parse(readFileSync(${JSON.stringify(snapshotFile)}, 'utf8')));
    d.hub.offline?.changed();
    await d.hub.offline?.settled();
    // As the hub is once the collections a large sync asks for are done (src/base/heap-settle.ts).
    while (processHeapSettle.busy) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 200));
    const after = rss();
    await d.shutdown('bench done');
    process.stdout.write(JSON.stringify({ before, after, counts: applied.counts }));
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    err += b.toString();
  });
  // A daemon that does not finish is killed, never left behind.
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve)).finally(() =>
    clearTimeout(timer),
  );
  if (code !== 0) throw new Error(`access.daemonRss: the daemon process exited ${code}: ${err.slice(-2000)}`);
  const r = JSON.parse(out) as { before: number; after: number; counts: Record<string, number> };
  if (r.counts.users !== USERS || r.counts.keys !== USERS) {
    throw new Error(`access.daemonRss: the daemon's mirror holds ${JSON.stringify(r.counts)}`);
  }
  metrics['access.daemonRss'] = { unit: 'MB', value: round(r.after / 1024 / 1024) };
  metrics['access.daemonRssEmpty'] = { unit: 'MB', value: round(r.before / 1024 / 1024) };
}

async function propagation(dir: string, big: AccessSite, metrics: Record<string, Metric>): Promise<void> {
  const pki = createDevPki({ dir: join(dir, 'pki'), hubId: HUB });
  const b = await broker(join(dir, 'pki'), pki);
  // The simulated locks keep their flash in one JSON file each, written on every change
  // (sim/lock/storage.ts). A real lock writes its own flash on its own hardware; here 200 of them
  // would fsync synchronously on the hub's event loop, so they skip the fsync
  // (simulation.flashDurable: false) while the hub's store stays durable on disk as in production.
  const dataDir = join(dir, 'propagation', 'data');
  try {
    metrics['access.propagation.loadAverage'] = { unit: '1-min load', value: round(loadavg()[0] ?? Number.NaN) };
    await propagationOn(dataDir, b, pki, big, metrics);
  } finally {
    await b.close();
  }
}

async function propagationOn(
  dataDir: string,
  b: Broker,
  pki: DevPkiPaths,
  big: AccessSite,
  metrics: Record<string, Metric>,
): Promise<void> {
  const v5 = b.kind.startsWith('mosquitto');
  if (!v5) process.stderr.write(`access.propagation: mosquitto is not installed; measured through ${b.kind}\n`);
  const cloud = await connectReferenceCloud(b.url, pki, { protocolVersion: v5 ? 5 : 4 });
  const { daemon, world } = await startBenchDaemon(b, pki, {
    dataDir,
    runDir: join(dataDir, '..', 'run'),
    simulation: { enabled: true, locks: LOCKS, latencyMs: 0, flashDurable: false },
    access: { timeZone: TZ },
  });
  try {
    const hub = daemon.hub;
    const link = hub.link;
    const offline = hub.offline;
    if (!world || !link || !offline) throw new Error('access.propagation: the daemon has no simulated site');
    const site = world;
    for (const s of site.stickers) {
      site.lock(s.deviceId).presentMaintenanceCard();
      await link.attach(s.deviceId, Secret.fromUtf8(s.setupCode));
    }
    const locks = site.stickers.map((s) => s.deviceId);
    if (locks.length !== LOCKS) throw new Error(`access.propagation: ${locks.length} locks, not ${LOCKS}`);
    await cloud.waitFor((c) => c.status(HUB)?.state === 'online', 10_000, 'the hub online');

    const hash = (label: string) => Buffer.from(tagHash(new TextEncoder().encode(label), SITE_ID)).toString('hex');
    let version = 1;
    const ack = async (what: string, sync: Parameters<ReferenceCloud['sync']>[1]) => {
      const a = await cloud.sync(HUB, sync);
      if (!a.ok) throw new Error(`access.propagation: ${what} refused: ${a.error?.code} ${a.error?.message}`);
    };
    // An offline user in a group naming every lock, on a schedule, with a PIN and a tag already.
    await ack('the snapshot', {
      kind: 'snapshot',
      version,
      data: {
        users: [{ id: 'u-offline', offline: true }],
        groups: [
          {
            id: 'everywhere',
            lockIds: locks,
            schedule: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'], from: '07:00', to: '21:00' }],
          },
        ],
        memberships: [{ userId: 'u-offline', groupId: 'everywhere' }],
        pins: [],
        tags: [{ id: 't-base', userId: 'u-offline', hash: hash('base') }],
        keys: [],
      } satisfies SnapshotData as unknown as Record<string, unknown>,
    });
    await waitUntil(
      () =>
        locks.every((id) =>
          site
            .lock(id)
            .offlineAccess()
            .some((e) => e.credentialId === 't-base'),
        ),
      30_000,
      'the first offline lists on every lock',
    );
    await offline.settled();

    const grants: number[] = [];
    const revokes: number[] = [];
    const acks: number[] = [];
    const everyLock: number[] = [];
    const measure = async (what: string, want: boolean, holds: (lockId: string) => boolean, data: DeltaData) => {
      const r = await timed(offline, locks, holds, want, () => ack(what, delta(version++, data)));
      acks.push(r.ack);
      everyLock.push(Math.max(...r.perLock));
      return r.perLock;
    };
    for (let round = 0; round < PROPAGATION_ROUNDS; round++) {
      const tagId = `t-round-${round}`;
      const holds = (lockId: string) =>
        site
          .lock(lockId)
          .offlineAccess()
          .some((e) => e.credentialId === tagId);
      const grant: DeltaData = { upsert: { tags: [{ id: tagId, userId: 'u-offline', hash: hash(tagId) }] } };
      grants.push(...(await measure(`grant ${round}`, true, holds, grant)));
      revokes.push(...(await measure(`revoke ${round}`, false, holds, { delete: { tags: [tagId] } })));
    }
    metrics['access.propagation'] = distribution('ms', [...grants, ...revokes]);
    metrics['access.propagation.grant'] = distribution('ms', grants);
    metrics['access.propagation.revoke'] = distribution('ms', revokes);
    metrics['access.propagation.syncAck'] = distribution('ms', acks);
    metrics['access.propagation.everyLock'] = distribution('ms', everyLock);
    if (cloud.invalid > 0) throw new Error(`${cloud.invalid} messages at the cloud did not match the contract`);

    // The whole 10,000-user site as one sync through the broker: publish → parse → check → apply → ack.
    const t0 = performance.now();
    const whole = await cloud.sync(
      HUB,
      { kind: 'snapshot', version: hub.mirror.version() + 1, data: big.snapshot as unknown as Record<string, unknown> },
      { timeoutMs: 120_000 },
    );
    const seconds = (performance.now() - t0) / 1000;
    if (!whole.ok || hub.mirror.counts().users !== USERS) {
      throw new Error(`access.fullSync.viaMqtt: the snapshot was not applied: ${JSON.stringify(whole.error)}`);
    }
    metrics['access.fullSync.viaMqtt'] = { unit: 's', value: round(seconds) };
  } finally {
    await daemon.shutdown('bench done');
    await cloud.close();
  }
}

const delta = (base: number, data: DeltaData): Parameters<ReferenceCloud['sync']>[1] => ({
  kind: 'delta',
  baseVersion: base,
  version: base + 1,
  data: data as unknown as Record<string, unknown>,
});

/**
 * Milliseconds from `send` (the cloud's publish) until each lock's own list agrees with `want`,
 * checked on the lock each time the hub reports that lock's list updated (in `locks` order), and
 * until the cloud had the hub's sync/ack.
 */
async function timed(
  offline: OfflineLists,
  locks: string[],
  holds: (lockId: string) => boolean,
  want: boolean,
  send: () => Promise<void>,
): Promise<{ perLock: number[]; ack: number }> {
  const reached = new Map<string, number>();
  let t0 = 0;
  const stop = offline.onUpdated((lockId) => {
    if (!reached.has(lockId) && holds(lockId) === want) reached.set(lockId, performance.now() - t0);
  });
  try {
    t0 = performance.now();
    await send();
    const ack = performance.now() - t0;
    await waitUntil(() => reached.size === locks.length, 10_000, `${want ? 'a grant' : 'a revoke'} on every lock`);
    await offline.settled();
    return { perLock: locks.map((id) => reached.get(id) as number), ack };
  } finally {
    stop();
  }
}

async function waitUntil(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline)
      throw new Error(`access.propagation: ${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
