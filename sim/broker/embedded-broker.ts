import type { Socket } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { validateIdentity } from '../../provisioning/dev-pki.js';
import { HubError } from '../../src/base/errors.js';
import type { Logger } from '../../src/log/logger.js';

/**
 * The broker of `npm start`: aedes (MQTT 3.1.1 only) behind a TLS server that requires a client
 * certificate from the given CA. A client's identity is its certificate's CN; the user name it
 * sends is ignored. A hub may use `ks/hubs/{CN}/#` only; a cloud identity may use `ks/hubs/#` (as in
 * the mosquitto ACL, so that a backend's `ks/hubs/#` subscription works on both).
 * A client id, once used by one identity, cannot be taken over by another (no session hijack).
 * A denied publish closes the connection (aedes, like AWS IoT Core, has no other way to say no
 * over 3.1.1); a denied subscription gets SUBACK 0x80.
 */
export interface EmbeddedBrokerOptions {
  port?: number;
  host?: string;
  /** PEM: the CA that client certificates must chain to, the broker's certificate and key. */
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
  /** CNs with the backend's rights (every hub's topics). */
  cloudIds?: string[];
  log?: Logger;
}

export interface EmbeddedBroker {
  port: number;
  url: string;
  close(): Promise<void>;
}

const BASE = ['ks', 'hubs'];

/** The ACL filter of an identity, as topic levels. */
function aclFor(cn: string, cloudIds: ReadonlySet<string>): string[] {
  return cloudIds.has(cn) ? [...BASE, '#'] : [...BASE, cn, '#'];
}

/** True when every topic that `filter` can match is matched by `acl` (both as topic levels). */
export function filterWithin(filter: string[], acl: string[]): boolean {
  for (let i = 0; i < acl.length; i++) {
    const a = acl[i];
    const f = filter[i];
    if (a === '#') return true;
    if (f === undefined || f === '#') return false;
    if (a !== '+' && f !== a) return false;
  }
  return filter.length === acl.length;
}

function peerCn(client: Client): string | undefined {
  const socket = client.conn as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function' || socket.authorized !== true) return undefined;
  const cn: unknown = socket.getPeerCertificate().subject?.CN;
  if (typeof cn !== 'string') return undefined; // absent, or several CNs (an array): refused
  try {
    validateIdentity(cn, 'certificate CN'); // no wildcard, separator or control character in an ACL level
    return cn;
  } catch {
    return undefined;
  }
}

export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { port = 0, host = '127.0.0.1', log } = opts;
  const cloudIds = new Set(opts.cloudIds ?? []);
  const identities = new WeakMap<Client, string>();
  const clientIdOwner = new Map<string, string>();
  const aclOf = (client: Client | null): string[] | undefined => {
    const cn = client ? identities.get(client) : undefined;
    return cn === undefined ? undefined : aclFor(cn, cloudIds);
  };

  const broker = await Aedes.createBroker({
    authenticate(client, _username, _password, done) {
      const cn = peerCn(client);
      const owner = clientIdOwner.get(client.id);
      if (cn === undefined || (owner !== undefined && owner !== cn)) {
        log?.warn({ clientId: client.id, cn }, cn ? 'broker: client id owned by another identity' : 'broker: no CN');
        const err = new Error(cn ? 'client id in use by another identity' : 'no certificate CN') as AuthenticateError;
        err.returnCode = cn ? 2 : 5; // identifier rejected : not authorized
        return done(err, false);
      }
      clientIdOwner.set(client.id, cn);
      identities.set(client, cn);
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      const acl = aclOf(client);
      if (acl && filterWithin(packet.topic.split('/'), acl)) return done(null);
      log?.warn({ cn: client ? identities.get(client) : undefined, topic: packet.topic }, 'broker: publish denied');
      done(new Error(`publish to ${packet.topic} denied`));
    },
    authorizeSubscribe(client, sub, done) {
      const acl = aclOf(client);
      if (acl && filterWithin(sub.topic.split('/'), acl)) return done(null, sub);
      log?.warn({ cn: identities.get(client), topic: sub.topic }, 'broker: subscription denied');
      done(null, null);
    },
    // Second line: nothing reaches a client outside its ACL, even from a restored session.
    authorizeForward(client, packet) {
      const acl = aclOf(client);
      return acl && filterWithin(packet.topic.split('/'), acl) ? packet : null;
    },
  });

  const sockets = new Set<Socket>();
  const server = createServer(
    {
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      handshakeTimeout: 10_000,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
    },
    (socket) => {
      socket.setNoDelay(true);
      broker.handle(socket);
    },
  );
  server.on('connection', (socket: Socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', (err) => log?.warn({ reason: err.message }, 'broker: TLS handshake refused'));
  broker.on('clientError', (client, err) => log?.debug({ clientId: client.id, reason: err.message }, 'broker: client'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new HubError('broker.listen', `The embedded broker cannot listen on ${host}:${port}: ${e.code ?? e.message}.`, {
          hint: 'Choose another port (0 picks a free one) or stop what is using it.',
          cause: e,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  log?.info({ port: boundPort }, 'broker: listening (mTLS, MQTT 3.1.1)');

  let closed = false;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    port: boundPort,
    url: `mqtts://${urlHost}:${boundPort}`,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
