/**
 * The far end of `mqttRoundTrip` in its own process, as the hub is: connects with the hub's
 * identity, answers every message on the hub's `cmd` topic with a `cmd/result` of the given size
 * (QoS 1), and prints `ready` once subscribed. Arguments: a JSON object (ResponderArgs).
 *
 * With `storeDir`, it also makes the two durable commits a remote command needs in the hub's own
 * store (src/store/store.ts: WAL, synchronous=FULL), with the hub's statements and in the hub's
 * order (src/inbox/inbox.ts, src/commands/remote-commands.ts): the counter and the command id before answering, the answer and
 * its outbox row right after publishing it (on the next check phase, once the bytes have left).
 * Nothing else — no verification, no lock: the floor the durability rules put under
 * command.remoteOpen.
 */
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { topics } from '../src/contract/mqtt-topics.js';
import { Store } from '../src/store/store.js';

export interface ResponderArgs {
  url: string;
  ca: string;
  cert: string;
  key: string;
  hubId: string;
  v5: boolean;
  answerBytes: number;
  /** Make the two durable commits of a command in a hub store in this directory before answering. */
  storeDir?: string;
  /** Other topics than the hub's cmd and cmd/result (with another identity than the hub's). */
  requestTopic?: string;
  answerTopic?: string;
}

/** The claim and the answer of a command, as src/inbox/inbox.ts and the outbox commit them. */
function durableCommits(dir: string, answer: Buffer): { claim: () => void; record: () => void } {
  const store = Store.open(dir);
  const db = store.db;
  const advance = db.prepare(
    `INSERT INTO command_counter (id, last_counter, updated_at) VALUES (1, ?, ?)
     ON CONFLICT (id) DO UPDATE SET last_counter = excluded.last_counter, updated_at = excluded.updated_at`,
  );
  const claim = db.prepare(
    "INSERT INTO inbox (id, topic, state, result, received_at, counter, op, lock_id) VALUES (?, 'cmd', 'started', NULL, ?, ?, 'open', 'SIM-0001')",
  );
  const done = db.prepare("UPDATE inbox SET state = 'done', result = ? WHERE id = ?");
  const enqueue = db.prepare(
    "INSERT INTO outbox (kind, topic, payload, retain, bytes, created_at) VALUES ('message', 'cmd/result', ?, 0, ?, ?)",
  );
  const text = answer.toString('utf8');
  let n = 0;
  return {
    claim: () => {
      n++;
      store.transaction(() => {
        advance.run(n, Date.now());
        claim.run(`floor-${n}`, Date.now(), n);
      });
    },
    record: () => {
      store.transaction(() => {
        done.run(text, `floor-${n}`);
        enqueue.run(text, text.length, Date.now());
      });
    },
  };
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2] ?? '{}') as ResponderArgs;
  const c = await mqtt.connectAsync(a.url, {
    ca: readFileSync(a.ca),
    cert: readFileSync(a.cert),
    key: readFileSync(a.key),
    servername: 'localhost',
    rejectUnauthorized: true,
    protocolVersion: a.v5 ? 5 : 4,
    clientId: `${a.hubId}-rtt-${process.pid}`,
    reconnectPeriod: 0,
  });
  (c.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
  const answer = Buffer.alloc(a.answerBytes, 0x61);
  const commit = a.storeDir ? durableCommits(a.storeDir, answer) : undefined;
  const answerTopic = a.answerTopic ?? topics.cmdResult(a.hubId);
  c.on('message', () => {
    commit?.claim();
    c.publish(answerTopic, answer, { qos: 1 });
    if (commit) setImmediate(commit.record);
  });
  await c.subscribeAsync(a.requestTopic ?? topics.cmd(a.hubId), { qos: 1 });
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => void c.endAsync().then(() => process.exit(0)));
}

await main();
