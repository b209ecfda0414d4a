import { writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lockIdParam } from '../../../src/app/control-methods.js';
import { ERROR_CODES } from '../../../src/base/error-codes.js';
import { HubError } from '../../../src/base/errors.js';
import { MAX_LINE_BYTES } from '../../../src/contract/control-socket.js';
import { callDaemon } from '../../../src/control-socket/socket-client.js';
import { ControlServer } from '../../../src/control-socket/socket-server.js';
import { silentLogger } from '../../../src/log/logger.js';
import { tempDir } from '../../helpers/tmp.js';

const servers: ControlServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

async function serve(): Promise<ControlServer> {
  const server = new ControlServer(join(tempDir(), 'run', 'control.sock'), silentLogger());
  let counter = 0;
  server.register('count', {
    params: { properties: { by: { type: 'integer', minimum: 1, maximum: 10 } }, required: ['by'] },
    handler: (p) => {
      counter += p.by as number;
      return { counter };
    },
  });
  server.register('refuse', {
    params: { properties: {} },
    handler: () => {
      throw new HubError('lock.unknown', 'no lock L9 here', { hint: 'see iqhub locks' });
    },
  });
  server.register('busy', {
    params: { properties: {} },
    handler: () => {
      throw new HubError('lock.busy', 'lock L1 is busy');
    },
  });
  server.register('crash', {
    params: { properties: {} },
    handler: () => {
      throw new Error('internal detail with secret 5eCr3t');
    },
  });
  await server.start();
  servers.push(server);
  return server;
}

function raw(path: string, data: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(data));
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        c.destroy();
        resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      }
    });
    c.on('error', reject);
  });
}

describe('control socket', () => {
  it('answers a valid request', async () => {
    const s = await serve();
    expect(await callDaemon(s.path, 'count', { by: 2 })).toEqual({ counter: 2 });
  });

  it('says what is wrong with a bad id in words, not with the method name and a regular expression', async () => {
    const s = await serve();
    s.register('locks.get', {
      params: { properties: { lockId: lockIdParam }, required: ['lockId'] },
      handler: () => 1,
    });
    const e = await callDaemon(s.path, 'locks.get', { lockId: 'bad/id' }).catch((x: unknown) => x as HubError);
    expect(e).toMatchObject({ code: 'control.bad-params' });
    expect((e as HubError).message).toMatch(/lockId is not an id: 1-64 characters of A-Z a-z 0-9/);
    expect((e as HubError).message).not.toMatch(/\^\[|must match pattern/);
    expect((e as HubError).hint).toMatch(/--help/);
  });

  it('refuses bad params without running the handler', async () => {
    const s = await serve();
    await expect(callDaemon(s.path, 'count', { by: 99 })).rejects.toMatchObject({ code: 'control.bad-params' });
    await expect(callDaemon(s.path, 'count', { by: 1, extra: true })).rejects.toMatchObject({
      code: 'control.bad-params',
    });
    await expect(callDaemon(s.path, 'count', {})).rejects.toMatchObject({ code: 'control.bad-params' });
    expect(await callDaemon(s.path, 'count', { by: 1 })).toEqual({ counter: 1 });
  });

  it('refuses garbage, an unknown method and a malformed envelope, and keeps serving', async () => {
    const s = await serve();
    expect(await raw(s.path, 'not json\n')).toMatchObject({ ok: false, error: { code: 'control.bad-json' } });
    expect(await raw(s.path, '{"id":1,"method":"nope"}\n')).toMatchObject({
      ok: false,
      error: { code: 'control.unknown-method' },
    });
    expect(await raw(s.path, '{"id":"x","method":"count"}\n')).toMatchObject({
      ok: false,
      error: { code: 'control.bad-request' },
    });
    expect(await raw(s.path, '[1,2]\n')).toMatchObject({ ok: false, error: { code: 'control.bad-request' } });
    expect(await callDaemon(s.path, 'count', { by: 3 })).toEqual({ counter: 3 });
  });

  it('refuses a request larger than the line limit', async () => {
    const s = await serve();
    const reply = await raw(s.path, 'x'.repeat(MAX_LINE_BYTES + 10));
    expect(reply).toMatchObject({ ok: false, error: { code: 'control.too-large' } });
  });

  it('passes a HubError through with its code and hint', async () => {
    const s = await serve();
    await expect(callDaemon(s.path, 'refuse')).rejects.toMatchObject({ code: 'lock.unknown', hint: 'see iqhub locks' });
  });

  it("a HubError thrown without a hint reaches the client with its code's hint", async () => {
    const s = await serve();
    await expect(callDaemon(s.path, 'busy')).rejects.toMatchObject({
      code: 'lock.busy',
      message: 'lock L1 is busy',
      hint: ERROR_CODES['lock.busy'],
    });
  });

  it("a code this iqhub does not know becomes daemon.unknown-error, keeping the daemon's code and message", async () => {
    const path = join(tempDir(), 'newer.sock');
    // A daemon of another version, answering with a code this client has never heard of.
    const newer = createServer((c) =>
      c.once('data', () =>
        c.end(`${JSON.stringify({ id: 1, ok: false, error: { code: 'future.thing', message: 'not yet' } })}\n`),
      ),
    );
    await new Promise<void>((resolve) => newer.listen(path, resolve));
    try {
      const e = (await callDaemon(path, 'status').catch((x: unknown) => x)) as HubError;
      expect(e).toBeInstanceOf(HubError);
      expect(e.code).toBe('daemon.unknown-error');
      expect(e.message).toBe('the daemon answered future.thing: not yet');
      expect(e.hint).toBe(ERROR_CODES['daemon.unknown-error']);
    } finally {
      await new Promise((resolve) => newer.close(resolve));
    }
  });

  it('an unexpected error gives a generic answer that does not leak its detail', async () => {
    const s = await serve();
    const e = (await callDaemon(s.path, 'crash').catch((x: unknown) => x)) as HubError;
    expect(e.code).toBe('control.internal');
    expect(e.message).not.toContain('5eCr3t');
  });

  it('a stale socket file left by a killed daemon is replaced', async () => {
    const dir = tempDir();
    const path = join(dir, 'control.sock');
    writeFileSync(path, '');
    const s = new ControlServer(path, silentLogger());
    await s.start();
    servers.push(s);
    s.register('ping', { params: { properties: {} }, handler: () => 'pong' });
    expect(await callDaemon(path, 'ping')).toBe('pong');
  });

  it('a socket that a live daemon answers on is not taken over', async () => {
    const s = await serve();
    const second = new ControlServer(s.path, silentLogger());
    await expect(second.start()).rejects.toMatchObject({ code: 'control.in-use' });
  });

  it('the client says the daemon is not running when nothing listens', async () => {
    await expect(callDaemon(join(tempDir(), 'none.sock'), 'status')).rejects.toMatchObject({
      code: 'daemon.not-running',
    });
  });
});
