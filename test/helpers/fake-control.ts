import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { tempDir } from './tmp.js';

const servers = new Set<Server>();
afterEach(() => {
  for (const s of servers) s.close();
  servers.clear();
});

/**
 * A stand-in for the daemon's control socket: `onRequest` gets each connection's first request line
 * (and the connection, to answer, misbehave or stay silent). Closed after the current test.
 * Returns the socket's path.
 */
export async function fakeControlSocket(onRequest: (c: Socket, line: string) => void): Promise<string> {
  const socket = join(tempDir('iqhub-control-'), 'control.sock');
  const server = createServer((c) => {
    let buf = '';
    c.setEncoding('utf8');
    c.on('error', () => {});
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) onRequest(c, buf.slice(0, nl));
    });
  });
  servers.add(server);
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return socket;
}
