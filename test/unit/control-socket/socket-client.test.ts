import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES } from '../../../src/contract/control-socket.js';
import { callDaemon } from '../../../src/control-socket/socket-client.js';
import { fakeControlSocket } from '../../helpers/fake-control.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * The CLI's one call to the daemon (src/control-socket/socket-client.ts) against a stand-in daemon
 * that misbehaves as a stopping, crashing or foreign one can. The timeout of each call is long
 * (30 s): a fault must be reported for what it is, at once, not as a timeout.
 */

const LONG = 30_000;

describe('callDaemon', () => {
  it('sends one request line and resolves with the result', async () => {
    let request: unknown;
    const socket = await fakeControlSocket((c, line) => {
      request = JSON.parse(line);
      c.end(`${JSON.stringify({ id: 1, ok: true, result: { up: true } })}\n`);
    });
    await expect(callDaemon(socket, 'status', { a: 1 }, LONG)).resolves.toEqual({ up: true });
    expect(request).toEqual({ id: 1, method: 'status', params: { a: 1 } });
  });

  it('a daemon that closes the connection without answering (stopped or crashed mid-call): said at once, not a timeout', async () => {
    const socket = await fakeControlSocket((c) => c.end());
    const t0 = Date.now();
    await expect(callDaemon(socket, 'open', {}, LONG)).rejects.toMatchObject({
      code: 'daemon.bad-reply',
      message: 'the daemon closed the connection before answering open',
    });
    expect(Date.now() - t0).toBeLessThan(LONG);
  });

  it('half an answer, then the connection closed: the same', async () => {
    const socket = await fakeControlSocket((c) => c.end('{"id":1,"ok":tr'));
    await expect(callDaemon(socket, 'status', {}, LONG)).rejects.toMatchObject({ code: 'daemon.bad-reply' });
  });

  it('a daemon that never answers: a timeout naming the method', async () => {
    const socket = await fakeControlSocket(() => {});
    await expect(callDaemon(socket, 'status', {}, 200)).rejects.toMatchObject({
      code: 'daemon.timeout',
      message: 'the daemon did not answer status within 0.2 s',
    });
  });

  it('a reply that is not JSON, or oversized, is refused', async () => {
    const garbled = await fakeControlSocket((c) => c.end('not json\n'));
    await expect(callDaemon(garbled, 'status', {}, LONG)).rejects.toMatchObject({
      code: 'daemon.bad-reply',
      message: 'the daemon sent a reply that is not JSON',
    });
    const flood = await fakeControlSocket((c) => c.write('x'.repeat(16 * MAX_LINE_BYTES + 1)));
    await expect(callDaemon(flood, 'status', {}, LONG)).rejects.toMatchObject({
      code: 'daemon.bad-reply',
      message: 'the daemon sent an oversized reply',
    });
  });

  it("the daemon's error keeps its code; a code this iqhub does not know does not pass for one of ours", async () => {
    const known = await fakeControlSocket((c) =>
      c.end(
        `${JSON.stringify({ id: 1, ok: false, error: { code: 'daemon.not-running', message: 'm', hint: 'h' } })}\n`,
      ),
    );
    await expect(callDaemon(known, 'status', {}, LONG)).rejects.toMatchObject({
      code: 'daemon.not-running',
      message: 'm',
      hint: 'h',
    });
    const foreign = await fakeControlSocket((c) =>
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
