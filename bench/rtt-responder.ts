/**
 * The far end of `mqttRoundTrip` in its own process, as the hub is: connects with the hub's
 * identity, answers every message on the hub's `cmd` topic with a `cmd/result` of the given size
 * (QoS 1), and prints `ready` once subscribed. Arguments: a JSON object (ResponderArgs).
 */
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { topics } from '../src/uplink/contract.js';

export interface ResponderArgs {
  url: string;
  ca: string;
  cert: string;
  key: string;
  hubId: string;
  v5: boolean;
  answerBytes: number;
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
  c.on('message', () => {
    c.publish(topics.cmdResult(a.hubId), answer, { qos: 1 });
  });
  await c.subscribeAsync(topics.cmd(a.hubId), { qos: 1 });
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => void c.endAsync().then(() => process.exit(0)));
}

await main();
