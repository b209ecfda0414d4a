import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES } from '../../../src/contract/control-socket.js';
import { callDaemon } from '../../../src/control-socket/socket-client.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * The CLI's one call to the daemon (src/control-socket/socket-client.ts) against a stand-in daemon
 * that misbehaves as a stopping, crashing or foreign one can. The timeout of each call is long
 * (30 s): a fault must be reported for what it is, at once, not as a timeout.
 */

let server: Server | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
});

/** A daemon whose connection handler gets the request line. */
async function daemon(onRequest: (c: Socket, line: string) => void): Promise<string> {
  const socket = join(tempDir('iqhub-client-'), 'control.sock');
  server = createServer((c) => {
    let buf = '';
    c.setEncoding('utf8');
    c.on('error', () => {});
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) onRequest(c, buf.slice(0, nl));
    });
  });
  const s = server;
  await new Promise<void>((resolve) => s.listen(socket, resolve));
  return socket;
}

const LONG = 30_000;

describe('callDaemon', () => {
  it('sends one request line and resolves with the result', async () => {
    let request: unknown;
    const socket = await daemon((c, line) => {
      request = JSON.parse(line);
      c.end(`${JSON.stringify({ id: 1, ok: true, result: { up: true } })}\n`);
    });
    await expect(callDaemon(socket, 'status', { a: 1 }, LONG)).resolves.toEqual({ up: true });
    expect(request).toEqual({ id: 1, method: 'status', params: { a: 1 } });
  });

  it('a daemon that closes the connection without answering (stopped or crashed mid-call): said at once, not a timeout', async () => {
    const socket = await daemon((c) => c.end());
    const t0 = Date.now();
    await expect(callDaemon(socket, 'open', {}, LONG)).rejects.toMatchObject({
      code: 'daemon.bad-reply',
      message: 'the daemon closed the connection before answering open',
    });
    expect(Date.now() - t0).toBeLessThan(LONG);
  });

  it('half an answer, then the connection closed: the same', async () => {
    const socket = await daemon((c) => c.end('{"id":1,"ok":tr'));
    await expect(callDaemon(socket, 'status', {}, LONG)).rejects.toMatchObject({ code: 'daemon.bad-reply' });
  });

  it('a daemon that never answers: a timeout naming the method', async () => {
    const socket = await daemon(() => {});
    await expect(callDaemon(socket, 'status', {}, 200)).rejects.toMatchObject({
      code: 'daemon.timeout',
      message: 'the daemon did not answer status within 0.2 s',
    });
  });

  it('a reply that is not JSON, or oversized, is refused', async () => {
    const garbled = await daemon((c) => c.end('not json\n'));
    await expect(callDaemon(garbled, 'status', {}, LONG)).rejects.toMatchObject({
      code: 'daemon.bad-reply',
      message: 'the daemon sent a reply that is not JSON',
    });
    server?.close();
    const flood = await daemon((c) => c.write('x'.repeat(16 * MAX_LINE_BYTES + 1)));
    await expect(callDaemon(flood, 'status', {}, LONG)).rejects.toMatchObject({
      code: 'daemon.bad-reply',
      message: 'the daemon sent an oversized reply',
    });
  });

  it("the daemon's error keeps its code; a code this iqhub does not know does not pass for one of ours", async () => {
    const known = await daemon((c) =>
      c.end(
        `${JSON.stringify({ id: 1, ok: false, error: { code: 'daemon.not-running', message: 'm', hint: 'h' } })}\n`,
      ),
    );
    await expect(callDaemon(known, 'status', {}, LONG)).rejects.toMatchObject({
      code: 'daemon.not-running',
      message: 'm',
      hint: 'h',
    });
    server?.close();
    const foreign = await daemon((c) =>
      c.end(`${JSON.stringify({ id: 1, ok: false, error: { code: 'zz.new', message: 'later' } })}\n`),
    );
    await expect(callDaemon(foreign, 'status', {}, LONG)).rejects.toMatchObject({
      code: 'daemon.unknown-error',
      message: 'the daemon answered zz.new: later',
    });
  });

  it('nothing at the path: the daemon is not running', async () => {
    await expect(callDaemon(join(tempDir(), 'none.sock'), 'status', {}, LONG)).rejects.toMatchObject({
      code: 'daemon.not-running',
    });
  });
});
