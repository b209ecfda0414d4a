import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { type DevPkiPaths, pkiPaths, validateIdentity } from '../../provisioning/dev-pki.js';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../sim/broker/embedded-broker.js';
import { HubError } from '../base/errors.js';
import type { CloudLine } from './access-steps.js';

/**
 * `iqhub demo --broker URL --broker-pki DIR`: the demo against a broker that runs elsewhere (the VM
 * boot test's mosquitto on the host) instead of its embedded one. The broker must trust the CA of
 * DIR and give the hub certificate's CN `ks/hubs/{CN}/#` and the cloud certificate's CN `ks/hubs/#`
 * (the ACL of docs/mqtt-api.md). The demo's hub reaches it through a TCP relay of its own on
 * loopback, so that "the cloud goes away" (access-steps.ts) can cut the hub's line and restore it
 * without stopping a broker the demo does not own. docs/installing.md, "The demo".
 */
export interface ExternalBrokerOptions {
  /** `mqtts://host[:port]` (port 8883 when absent). */
  url: string;
  /** A directory as `iqhub pki dev` writes it: ca.crt, hub.crt, hub.key, cloud.crt, cloud.key. */
  pkiDir: string;
  /** The name the broker's certificate carries (default `localhost`, as `iqhub pki dev` issues it). */
  serverName?: string | undefined;
}

export interface CheckedExternalBroker {
  url: string;
  host: string;
  port: number;
  pki: DevPkiPaths;
  /** The CN of hub.crt: the demo hub's id on that broker. */
  hubId: string;
  /** The CN of cloud.crt. */
  cloudId: string;
  serverName: string;
}

const refuse = (message: string, hint?: string): never => {
  throw new HubError('demo.broker', message, hint ? { hint } : {});
};

function certificate(file: string, what: string): X509Certificate {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (e) {
    return refuse(
      `iqhub demo --broker-pki: ${what} ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      'give --broker-pki a directory as `iqhub pki dev` writes it, readable by the user who runs the demo',
    );
  }
  try {
    return new X509Certificate(pem);
  } catch {
    return refuse(`iqhub demo --broker-pki: ${what} ${file} is not a PEM certificate`);
  }
}

function readable(file: string, what: string): void {
  try {
    readFileSync(file);
  } catch (e) {
    refuse(
      `iqhub demo --broker-pki: ${what} ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      'give --broker-pki a directory as `iqhub pki dev` writes it, readable by the user who runs the demo',
    );
  }
}

function commonName(x: X509Certificate): string | undefined {
  const cns = x.subject.split('\n').filter((l) => l.startsWith('CN='));
  return cns.length === 1 ? cns[0]?.slice(3) : undefined;
}

/** The URL as a refusal shows it: any user and password before `@` left out (they are refused, never echoed). */
function shownUrl(url: string): string {
  return JSON.stringify(url.replace(/\/\/[^/@]*@/, '//…@'));
}

/** Checks the options before anything starts: every refusal names the option and what to give. */
export function checkExternalBroker(o: ExternalBrokerOptions): CheckedExternalBroker {
  let u: URL;
  try {
    u = new URL(o.url);
  } catch {
    return refuse(`iqhub demo --broker: ${shownUrl(o.url)} is not a URL`);
  }
  if (u.protocol !== 'mqtts:') {
    refuse(`iqhub demo --broker: ${shownUrl(o.url)} is not an mqtts:// URL (the hub speaks MQTT over TLS only)`);
  }
  if (u.username || u.password || (u.pathname && u.pathname !== '/') || u.search || u.hash) {
    refuse(
      `iqhub demo --broker: ${shownUrl(o.url)} has more than a host and a port`,
      'give --broker as mqtts://host:port: the identities come from the certificates of --broker-pki',
    );
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!host) refuse(`iqhub demo --broker: ${shownUrl(o.url)} names no host`);
  const port = u.port ? Number(u.port) : 8883;
  const serverName = o.serverName ?? 'localhost';
  if (
    !/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/.test(serverName) ||
    serverName.length > 253
  ) {
    refuse(
      `iqhub demo --broker-server-name: ${JSON.stringify(serverName)} is not a host name`,
      "give the DNS name in the broker's certificate (`iqhub pki dev` issues it for localhost and its --broker-host)",
    );
  }

  const pki = pkiPaths(o.pkiDir);
  const ca = certificate(pki.ca.cert, 'the CA certificate');
  if (!ca.ca) refuse(`iqhub demo --broker-pki: ${pki.ca.cert} is not a CA certificate`);
  const ids: string[] = [];
  for (const [name, paths] of [
    ['hub', pki.hub],
    ['cloud', pki.cloud],
  ] as const) {
    const x = certificate(paths.cert, `the ${name} certificate`);
    readable(paths.key, `the ${name} key`);
    if (!x.checkIssued(ca) || !x.verify(ca.publicKey)) {
      refuse(
        `iqhub demo --broker-pki: ${paths.cert} was not issued by the CA in ${pki.ca.cert}`,
        'give --broker-pki the directory of one PKI: the broker trusts its CA, the hub and the cloud present its certificates',
      );
    }
    const cn = commonName(x);
    if (cn === undefined) refuse(`iqhub demo --broker-pki: ${paths.cert} has no single CN (the ${name} id)`);
    validateIdentity(cn as string, `${name} id (the CN of ${paths.cert})`);
    ids.push(cn as string);
  }
  const [hubId, cloudId] = ids as [string, string];
  if (hubId === cloudId) {
    refuse(
      `iqhub demo --broker-pki: the hub and the cloud certificates are both for ${JSON.stringify(hubId)}`,
      'the cloud identity may use every hub topic: issue the hub certificate for another id',
    );
  }
  return { url: `mqtts://${u.host}`, host, port, pki, hubId, cloudId, serverName };
}

/**
 * A TCP relay on 127.0.0.1 to `host:port`: the demo's hub connects here. `cut()` closes the
 * listener and every relayed connection (both sides: the broker sees the hub go, and publishes its
 * will); `restore()` listens again on the same port.
 */
export interface BrokerRelay extends CloudLine {
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startBrokerRelay(host: string, port: number): Promise<BrokerRelay> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const listen = (at: number): Promise<Server> =>
    new Promise((resolve, reject) => {
      const s = createServer((inbound) => {
        const outbound = netConnect({ host, port });
        for (const [a, b] of [
          [inbound, outbound],
          [outbound, inbound],
        ] as const) {
          sockets.add(a);
          a.on('error', () => b.destroy());
          a.on('close', () => {
            sockets.delete(a);
            b.destroy();
          });
          a.pipe(b);
        }
        inbound.setNoDelay(true);
        outbound.setNoDelay(true);
      });
      s.once('error', reject);
      s.listen(at, '127.0.0.1', () => resolve(s));
    });
  server = await listen(0);
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the broker relay has no TCP port');
  const local = address.port;
  const cut = async () => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  return {
    port: local,
    url: `mqtts://127.0.0.1:${local}`,
    cut,
    async restore() {
      server ??= await listen(local);
    },
    close: cut,
  };
}

/** The demo's broker as the scenario sees it: where the hub and the cloud connect, and the line to cut. */
export interface DemoBroker {
  /** Where the hub connects (the embedded broker, or the relay to the external one). */
  hubUrl: string;
  /** Where the reference cloud connects. */
  cloudUrl: string;
  /** The name the broker's certificate carries. */
  serverName: string;
  line: CloudLine;
  /** One line for the demo's output. */
  description: string;
  close(): Promise<void>;
}

/**
 * The external broker behind a relay when `external` is given, else the embedded broker (aedes,
 * mutual TLS with the demo's own PKI), which the line cut stops and restarts on the same port.
 */
export async function openDemoBroker(
  external: CheckedExternalBroker | undefined,
  pki: DevPkiPaths,
): Promise<DemoBroker> {
  if (external) {
    const relay = await startBrokerRelay(external.host, external.port);
    return {
      hubUrl: relay.url,
      cloudUrl: external.url,
      serverName: external.serverName,
      line: relay,
      description: `external MQTT broker ${external.url} (the hub through a relay on ${relay.url}; hub id ${external.hubId}, cloud id ${external.cloudId})`,
      close: () => relay.close(),
    };
  }
  const pem = (p: string) => readFileSync(p);
  const options = { ca: pem(pki.ca.cert), cert: pem(pki.broker.cert), key: pem(pki.broker.key), cloudIds: ['cloud'] };
  let broker: EmbeddedBroker | undefined = await startEmbeddedBroker(options);
  const { port, url } = broker;
  return {
    hubUrl: url,
    cloudUrl: url,
    serverName: 'localhost',
    // The access steps cut the line to the cloud (the broker goes away) and restore it on the same port.
    line: {
      cut: async () => {
        await broker?.close();
        broker = undefined;
      },
      restore: async () => {
        broker ??= await startEmbeddedBroker({ ...options, port });
      },
    },
    description: `embedded MQTT broker (mutual TLS) on ${url}`,
    close: async () => {
      await broker?.close();
    },
  };
}
