import { describe, expect, it, vi } from 'vitest';
import { type CommandsSource, registerCommandMethods, registerLinkMethods } from '../../../src/app/control-methods.js';
import { HubError } from '../../../src/base/errors.js';
import { processHeapSettle } from '../../../src/base/heap-settle.js';
import type { ControlServer } from '../../../src/control-socket/socket-server.js';
import type { LinkManager } from '../../../src/link/manager.js';

type Handler = (p: Record<string, unknown>) => unknown;

/** The handler `commands.list` gets, without a socket. */
function commandsList(uplink: CommandsSource | undefined): Handler {
  let handler: Handler | undefined;
  const server = {
    register: (name: string, def: { handler: Handler }) => {
      if (name === 'commands.list') handler = def.handler;
    },
  } as unknown as ControlServer;
  registerCommandMethods(server, uplink);
  if (!handler) throw new Error('commands.list was not registered');
  return handler;
}

const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'returned';
  } catch (e) {
    return e instanceof HubError ? e.code : 'other';
  }
};

describe('iqhub commands on the control socket', () => {
  it('without an uplink, or before it is up, says so with a code (and what to do), not an empty list', () => {
    expect(codeOf(() => commandsList(undefined)({}))).toBe('commands.no-uplink');
    const starting = { commands: () => undefined } as unknown as CommandsSource;
    expect(codeOf(() => commandsList(starting)({}))).toBe('commands.not-ready');
  });

  it('passes the limit on (20 when not given) and returns the uplink view as it is', () => {
    const limits: number[] = [];
    const view = { stats: { accepted: 1, refused: {}, lockouts: 0, lockedOutUntil: null }, recent: [] };
    const up = {
      commands: (limit: number) => {
        limits.push(limit);
        return view;
      },
    } as unknown as CommandsSource;
    expect(commandsList(up)({})).toBe(view);
    expect(commandsList(up)({ limit: 3 })).toBe(view);
    expect(limits).toEqual([20, 3]);
  });
});

describe('times on the control socket are ISO 8601 (iqhub events, security, lock, open --json)', () => {
  const AT = Date.UTC(2026, 11, 7, 6, 30, 0, 5);
  const ISO = '2026-12-07T06:30:00.005Z';
  const state = { bolt: 'unlocked', mode: 'normal', doorOpen: false, batteryPercent: 90, lastSeq: 2, time: AT };
  const link = {
    get: () => ({ lockId: 'SIM-1', recentEvents: [{ seq: 1, at: AT, type: 'opened', receivedAt: AT + 1 }] }),
    lockState: async () => state,
    open: async () => state,
    lockNow: async () => state,
    pairing: {
      events: () => [{ seq: 2, at: AT, type: 'door', open: true, receivedAt: AT }],
      securityEvents: () => [{ at: AT, kind: 'rogue-device', lockId: null, detail: {} }],
    },
  } as unknown as LinkManager;
  const handlers = new Map<string, Handler>();
  registerLinkMethods(
    {
      register: (name: string, def: { handler: Handler }) => handlers.set(name, def.handler),
    } as unknown as ControlServer,
    link,
  );
  const call = async (m: string, p: Record<string, unknown> = {}) => handlers.get(m)!(p) as Promise<unknown>;

  it('events.list and security.events: at and receivedAt', async () => {
    expect(await call('events.list', { lockId: 'SIM-1' })).toEqual([
      { seq: 2, at: ISO, type: 'door', open: true, receivedAt: ISO },
    ]);
    expect(await call('security.events')).toEqual([{ at: ISO, kind: 'rogue-device', lockId: null, detail: {} }]);
  });

  it("locks.get: the recent events; locks.check, open and lock: the lock's clock", async () => {
    expect(await call('locks.get', { lockId: 'SIM-1' })).toEqual({
      lockId: 'SIM-1',
      recentEvents: [{ seq: 1, at: ISO, type: 'opened', receivedAt: '2026-12-07T06:30:00.006Z' }],
    });
    expect(await call('locks.check', { lockId: 'SIM-1' })).toMatchObject({ lockState: { ...state, time: ISO } });
    expect(await call('locks.open', { lockId: 'SIM-1', durationMs: 1000 })).toEqual({ ...state, time: ISO });
    expect(await call('locks.lock', { lockId: 'SIM-1' })).toEqual({ ...state, time: ISO });
  });
});

describe('locks.attach and the heap (issue 15, "Memory")', () => {
  const attachWith = (attach: () => Promise<unknown>) => {
    let handler: Handler | undefined;
    registerLinkMethods(
      {
        register: (name: string, def: { handler: Handler }) => {
          if (name === 'locks.attach') handler = def.handler;
        },
      } as unknown as ControlServer,
      { attach } as unknown as LinkManager,
    );
    return (p: Record<string, unknown>) => handler!(p) as Promise<unknown>;
  };

  it('asks for a collection once an attach has ended, attached or refused, and answers as before', async () => {
    const soon = vi.spyOn(processHeapSettle, 'soon').mockImplementation(() => {});
    try {
      const ok = attachWith(async () => ({ lockId: 'L-1' }));
      expect(await ok({ deviceId: 'D-1', setupCode: 'ABCD-EFGH' })).toEqual({ lockId: 'L-1' });
      expect(soon).toHaveBeenCalledTimes(1);
      const refused = attachWith(async () => {
        throw new HubError('attach.unreachable', 'no');
      });
      await expect(refused({ deviceId: 'D-1', setupCode: 'ABCD-EFGH' })).rejects.toMatchObject({
        code: 'attach.unreachable',
      });
      expect(soon).toHaveBeenCalledTimes(2);
    } finally {
      soon.mockRestore();
    }
  });
});
